"""TACO packaging: a tiny formatted root (2 products over 3 days in 2 months) built, read back and rebuilt."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tacoreader
import xarray as xr

from oceantaco.catalog import load_catalog
from oceantaco.inventory import TileRecord, to_table
from oceantaco.regions import REGION_NAMES, REGIONS, region
from oceantaco.storage import Storage
from oceantaco.taco import (
    MANIFEST_KEY,
    TacoBuildError,
    TacoVerificationError,
    build_taco,
    verify_taco,
)

CATALOG = load_catalog()
DAYS = (dt.date(2024, 1, 31), dt.date(2024, 2, 1), dt.date(2024, 2, 2))
JANUARY, FEBRUARY = "OceanTACO_2024_01.tacozip", "OceanTACO_2024_02.tacozip"
# argo exists only here; l4_ssh everywhere. 2024-02-01 has no argo tile at all.
ARGO = {(DAYS[0], "NORTH_ATLANTIC"), (DAYS[0], "NORTH_PACIFIC_EAST"), (DAYS[2], "SOUTH_INDIAN")}
VSISUBFILE = re.compile(r"/vsisubfile/(\d+)_(\d+),(.+)")


@pytest.fixture(autouse=True)
def _reader_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """verify_taco clears tacoreader's cache: keep it away from the user's ~/.cache."""
    monkeypatch.setenv("TACOREADER_CACHE_DIR", str(tmp_path / "tacoreader-cache"))


@dataclass
class Tiles:
    """A formatted root with its inventory and the bytes of every tile by (day, region, product token)."""

    formatted: Storage
    inventory: pd.DataFrame
    data: dict[tuple[dt.date, str, str], bytes]

    def slots(self, day: dt.date, region_name: str) -> list[tuple[str, bool]]:
        """Expected (id, available) of one region, in catalog order."""
        return [
            (p.output_id, True) if (day, region_name, p.token) in self.data else (p.placeholder_id, False)
            for p in CATALOG.ordered()
        ]

    def replace(self, day: dt.date, region_name: str, token: str, value: float) -> None:
        """Rewrite one tile with new values and update its inventory row."""
        data = _write_tile(self.formatted, day, region_name, token, value)
        self.data[(day, region_name, token)] = data
        row = (self.inventory["relative_path"] == CATALOG[token].tile_key(region_name, day)).to_numpy()
        self.inventory.loc[row, "sha256"] = hashlib.sha256(data).hexdigest()
        self.inventory.loc[row, "size_bytes"] = len(data)


def _write_tile(formatted: Storage, day: dt.date, region_name: str, token: str, value: float) -> bytes:
    reg = region(region_name)
    lat = np.linspace(reg.lat_min + 1, reg.lat_max - 1, 4)
    lon = np.linspace(reg.lon_min + 1, reg.lon_max - 1, 5)
    ds = xr.Dataset(
        {"sla": (("lat", "lon"), np.full((4, 5), value, dtype="float32"))},
        coords={"lat": lat, "lon": lon},
        attrs={"tile": f"{token} {region_name} {day}"},
    )
    path = Path(formatted.full_path(CATALOG[token].tile_key(region_name, day)))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="h5netcdf")
    return path.read_bytes()


def make_tiles(root: Path) -> Tiles:
    formatted = Storage(str(root))
    records, data = [], {}
    for day in DAYS:
        start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
        for i, reg in enumerate(REGIONS):
            for token in ("l4_ssh", "argo"):
                if token == "argo" and (day, reg.name) not in ARGO:
                    continue
                product = CATALOG[token]
                tile = _write_tile(formatted, day, reg.name, token, value=day.day * 10 + i)
                data[(day, reg.name, token)] = tile
                dataset = product.dataset_for(day)
                records.append(
                    TileRecord(
                        relative_path=product.tile_key(reg.name, day),
                        day=day,
                        data_source=product.data_source,
                        variable=product.variable,
                        sensor=product.sensor,
                        modality=product.modality,
                        output_id=product.output_id,
                        region=reg.name,
                        spatial_wkb=reg.polygon_wkb,
                        time_start_us=start,
                        time_end_us=start + 86_400_000_000 - 1,
                        bbox=list(reg.bounds),
                        sha256=hashlib.sha256(tile).hexdigest(),
                        size_bytes=len(tile),
                        source_files=[f"raw_{day:%Y%m%d}_a.nc", f"raw_{day:%Y%m%d}_b.nc"],
                        product_id=dataset.product_id,
                        dataset_id=dataset.dataset_id,
                        dataset_version="202411",
                        software_version="test",
                        input_fingerprint="test",
                        resolution_deg_lat=product.resolution_deg,
                        resolution_km_lat=product.resolution_km,
                    )
                )
    return Tiles(formatted, to_table(records).to_pandas(), data)


def _payload(vsi: str) -> bytes:
    """Bytes of a local ``/vsisubfile/<offset>_<size>,<path>`` location."""
    offset, size, container = VSISUBFILE.fullmatch(vsi).groups()
    with open(container, "rb") as f:
        f.seek(int(offset))
        return f.read(int(size))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """One local build shared by the read-only tests (the build verifies itself)."""
    root = tmp_path_factory.mktemp("taco")
    tiles = make_tiles(root / "formatted")
    output = Storage(str(root / "output"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TACOREADER_CACHE_DIR", str(root / "tacoreader-cache"))
        report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=root)
    return tiles, output, report


def test_build_writes_two_monthly_parts_a_catalog_and_a_manifest(built) -> None:
    tiles, output, report = built
    assert output.list() == [
        ".tacocat/COLLECTION.json",
        ".tacocat/level0.parquet",
        ".tacocat/level1.parquet",
        ".tacocat/level2.parquet",
        JANUARY,
        FEBRUARY,
        MANIFEST_KEY,
    ]
    assert report.parts_written == (JANUARY, FEBRUARY)
    assert report.catalog_written
    assert (report.days, report.tiles, report.placeholders) == (
        3,
        len(tiles.data),
        3 * 8 * 11 - len(tiles.data),
    )
    assert report.verify is not None and report.verify.failures == ()
    assert report.verify.payloads_checked == len(tiles.data)
    assert report.verify.payloads_opened == 2  # the first l4_ssh and argo payloads
    manifest = json.loads(output.read_bytes(MANIFEST_KEY))
    assert manifest["parts"][FEBRUARY]["days"] == ["2024_02_01", "2024_02_02"]
    assert (
        manifest["parts"][JANUARY]["tiles"]["2024_01_31/NORTH_ATLANTIC/argo.nc"]
        == hashlib.sha256(tiles.data[(DAYS[0], "NORTH_ATLANTIC", "argo")]).hexdigest()
    )
    assert manifest["parts"][FEBRUARY]["sha256"] == output.sha256(FEBRUARY)


def test_navigation_lists_days_regions_and_every_slot_in_catalog_order(built) -> None:
    tiles, output, _ = built
    ds = tacoreader.load(output.url)
    assert ds.data["id"].to_pylist() == ["2024_01_31", "2024_02_01", "2024_02_02"]
    assert ds.data["stac:time_start"].to_pylist() == [f"{day}T00:00:00+00:00" for day in DAYS]
    for day in DAYS:
        regions = ds.read(f"{day:%Y_%m_%d}")
        assert regions["id"].to_pylist() == list(REGION_NAMES)
        for name in REGION_NAMES:
            files = regions.read(name)
            got = list(zip(files["id"].to_pylist(), files["available"].to_pylist(), strict=True))
            assert got == tiles.slots(day, name)
            placeholder = [i for i, (_, available) in enumerate(got) if not available]
            assert all(files["data_source"].to_pylist()[i] == "" for i in placeholder)
            assert all(files["internal:size"].to_pylist()[i] == 0 for i in placeholder)
    # 2024-02-01 has no argo tile: argo's slot holds an empty placeholder
    vsi = ds.read("2024_02_01").read("SOUTH_INDIAN").read("argo.missing")
    assert VSISUBFILE.fullmatch(vsi).group(2) == "0"


def test_payloads_read_back_byte_identical(built) -> None:
    tiles, output, _ = built
    ds = tacoreader.load(output.url)
    for (day, name, token), data in tiles.data.items():
        vsi = ds.read(f"{day:%Y_%m_%d}").read(name).read(CATALOG[token].output_id)
        assert vsi.endswith(JANUARY if day.month == 1 else FEBRUARY)
        assert _payload(vsi) == data
    day, name = DAYS[2], "SOUTH_INDIAN"
    vsi = ds.read(f"{day:%Y_%m_%d}").read(name).read("argo.nc")
    with xr.open_dataset(io.BytesIO(_payload(vsi)), engine="h5netcdf") as nc:
        assert nc.attrs["tile"] == f"argo {name} {day}"


def test_selecting_argo_never_returns_a_placeholder(built) -> None:
    tiles, output, _ = built
    want = sorted((f"{day:%Y_%m_%d}", name) for day, name in ARGO)
    ds = tacoreader.load(output.url)
    # filter-then-flatten: correct on multi-part datasets (an unfiltered flatten() is not)
    flat = ds.filter_datetime("2024-01-31/2024-02-02").flatten().to_pylist()
    assert len(flat) == 3 * 8 * 11
    argo = [row for row in flat if row["l2:id"] == "argo.nc"]
    assert sorted((row["l0:id"], row["l1:id"]) for row in argo) == want
    assert all(row["l2:available"] and row["l2:data_source"] == "argo" for row in argo)
    assert [row for row in flat if row["l2:data_source"] == "argo"] == argo
    for row in argo:
        day = dt.datetime.strptime(row["l0:id"], "%Y_%m_%d").date()
        assert _payload(row["gdal_vsi"]) == tiles.data[(day, row["l1:id"], "argo")]
    # SQL on the level tables, joined on the part each row comes from
    rows = ds.sql(
        """
        SELECT d.id AS day, r.id AS region, f.available, f.data_source
        FROM level2 f
        JOIN level1 r ON f."internal:parent_id" = r."internal:current_id"
                     AND f."internal:source_file" = r."internal:source_file"
        JOIN level0 d ON r."internal:parent_id" = d."internal:current_id"
                     AND r."internal:source_file" = d."internal:source_file"
        WHERE f.id = 'argo.nc' ORDER BY day, region
        """
    ).to_pylist()
    assert [(row["day"], row["region"]) for row in rows] == want
    assert all(row["available"] and row["data_source"] == "argo" for row in rows)


def test_collection_metadata_has_the_real_extent(built) -> None:
    _, output, _ = built
    collection = tacoreader.load(output.url).collection
    assert collection["id"] == "sea_surface_state_regionalized"
    assert collection["licenses"] == ["CC-BY-4.0"]
    assert collection["extent"] == {
        "spatial": [-180.0, -90.0, 180.0, 90.0],
        "temporal": ["2024-01-31T00:00:00Z", "2024-02-02T23:59:59.999999Z"],
    }
    assert [p["file"] for p in collection["oceantaco:parts"]] == [JANUARY, FEBRUARY]


def test_second_build_rewrites_nothing(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    before = {
        key: (output.sha256(key), Path(output.full_path(key)).stat().st_mtime_ns) for key in output.list()
    }

    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)

    assert report.parts_written == () and report.parts_deleted == ()
    assert report.parts_unchanged == (JANUARY, FEBRUARY)
    assert not report.catalog_written
    after = {
        key: (output.sha256(key), Path(output.full_path(key)).stat().st_mtime_ns) for key in output.list()
    }
    assert after == before


def test_changed_february_tile_rebuilds_only_february_then_the_catalog(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    first = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    january = output.sha256(JANUARY)
    manifest = json.loads(output.read_bytes(MANIFEST_KEY))
    collection = output.read_bytes(".tacocat/COLLECTION.json")

    tiles.replace(DAYS[2], "SOUTH_INDIAN", "argo", value=-5.0)
    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)

    assert report.parts_written == (FEBRUARY,) and report.parts_unchanged == (JANUARY,)
    assert report.catalog_written
    assert report.verify is not None and report.verify.payloads_checked == first.tiles
    assert output.sha256(JANUARY) == january
    new_manifest = json.loads(output.read_bytes(MANIFEST_KEY))
    assert new_manifest["parts"][JANUARY] == manifest["parts"][JANUARY]
    assert new_manifest["parts"][FEBRUARY]["sha256"] != manifest["parts"][FEBRUARY]["sha256"]
    # same days and counts, yet COLLECTION.json changes (part checksums): remote readers' caches key on it
    assert output.read_bytes(".tacocat/COLLECTION.json") != collection
    vsi = tacoreader.load(output.url).read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    assert _payload(vsi) == tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]


def test_month_dropped_from_the_inventory_is_deleted(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    february = tiles.inventory[tiles.inventory["timestamp_file"] >= pd.Timestamp("2024-02-01")]

    report = build_taco(february, tiles.formatted, output, CATALOG)

    assert report.parts_deleted == (JANUARY,) and report.parts_written == ()
    assert report.catalog_written and report.verify is not None and report.verify.days == 2
    assert not output.exists(JANUARY)
    assert tacoreader.load(output.url).data["id"].to_pylist() == ["2024_02_01", "2024_02_02"]


def test_tile_changed_behind_the_inventory_is_refused(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    _write_tile(tiles.formatted, DAYS[1], "NORTH_ATLANTIC", "l4_ssh", value=123.0)
    with pytest.raises(TacoBuildError, match=r"l4_ssh_NORTH_ATLANTIC_20240201\.nc: sha256"):
        build_taco(tiles.inventory, tiles.formatted, Storage(str(tmp_path / "output")), CATALOG)


def test_verify_reports_a_corrupted_payload(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    vsi = tacoreader.load(output.url).read("2024_01_31").read("NORTH_ATLANTIC").read("argo.nc")
    offset, size, container = VSISUBFILE.fullmatch(vsi).groups()
    with open(container, "r+b") as f:
        f.seek(int(offset) + int(size) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))

    with pytest.raises(
        TacoVerificationError, match=r"2024_01_31/NORTH_ATLANTIC/argo\.nc: payload sha256"
    ) as info:
        verify_taco(output, tiles.inventory, CATALOG)
    assert len(info.value.report.failures) == 1
    assert info.value.report.payloads_checked == len(tiles.data)


def test_verify_reports_a_missing_day(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    january = tiles.inventory[tiles.inventory["timestamp_file"] < pd.Timestamp("2024-02-01")]
    build_taco(january, tiles.formatted, output, CATALOG, verify=False)
    with pytest.raises(TacoVerificationError, match=r"days: expected 2024_01_31\.\.2024_02_02"):
        verify_taco(output, tiles.inventory, CATALOG)


def test_build_on_s3_opens_with_tacoreader_from_the_bucket_prefix(tmp_path: Path, s3_bucket: str) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(f"{s3_bucket}/ocean/taco")

    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=tmp_path)

    assert report.verify is not None and report.verify.payloads_checked == len(tiles.data)
    assert JANUARY in output.list() and ".tacocat/COLLECTION.json" in output.list()
    tacoreader.clear_cache()
    ds = tacoreader.load(output.url)
    assert ds.data["id"].to_pylist() == ["2024_01_31", "2024_02_01", "2024_02_02"]
    vsi = ds.read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    offset, size, container = VSISUBFILE.fullmatch(vsi).groups()
    assert container == f"/vsis3/{s3_bucket.removeprefix('s3://')}/ocean/taco/{FEBRUARY}"
    assert (
        output.read_range(FEBRUARY, int(offset), int(size)) == tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]
    )

    # the catalog of a remote rebuild is made from metadata-only replicas of the unchanged parts
    tiles.replace(DAYS[0], "NORTH_ATLANTIC", "l4_ssh", value=-1.0)
    again = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=tmp_path)
    assert again.parts_written == (JANUARY,) and again.catalog_written
    assert again.verify is not None and again.verify.failures == ()
    assert not any(p.name.startswith("oceantaco-taco-") for p in tmp_path.iterdir())
