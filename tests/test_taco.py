"""TACO packaging: a tiny formatted root (2 products over 3 days in 2 months) built, read back, rebuilt,
audited before publishing, and kept for a number of releases."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tacoreader
import xarray as xr

from oceantaco.catalog import load_catalog
from oceantaco.inventory import TileRecord, to_table
from oceantaco.regions import REGION_NAMES, REGIONS, region
from oceantaco.releases import CURRENT_KEY, read_current, read_manifest
from oceantaco.storage import Storage
from oceantaco.taco import TacoBuildError, build_taco, verify_output
from oceantaco.verify import TacoVerificationError

CATALOG = load_catalog()
DAYS = (dt.date(2024, 1, 31), dt.date(2024, 2, 1), dt.date(2024, 2, 2))
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


def part(output: Storage, month: str) -> str:
    """The one part of a month at the root (its name ends in the digest of its inputs)."""
    (name,) = [
        k for k in output.list(suffix=".tacozip") if k.startswith(f"OceanTACO_{month}_") and "/" not in k
    ]
    return name


def parts(output: Storage) -> list[str]:
    return [k for k in output.list(suffix=".tacozip") if "/" not in k]


def release_dirs(output: Storage) -> list[str]:
    return output.list_dirs("releases")


def test_build_writes_monthly_parts_a_live_catalog_and_a_published_release(built) -> None:
    tiles, output, report = built
    january, february = part(output, "2024_01"), part(output, "2024_02")
    current = read_current(output)
    assert current is not None and current.history == (current.release,)
    release = current.release
    assert output.list() == sorted(
        [
            ".tacocat/COLLECTION.json",
            ".tacocat/level0.parquet",
            ".tacocat/level1.parquet",
            ".tacocat/level2.parquet",
            CURRENT_KEY,
            january,
            february,
            f"releases/{release}/.tacocat/COLLECTION.json",
            f"releases/{release}/.tacocat/level0.parquet",
            f"releases/{release}/.tacocat/level1.parquet",
            f"releases/{release}/.tacocat/level2.parquet",
            f"releases/{release}/manifest.json",
        ]
    )
    # the live catalog is the release's own
    for name in ("COLLECTION.json", "level0.parquet", "level1.parquet", "level2.parquet"):
        assert output.read_bytes(f".tacocat/{name}") == output.read_bytes(
            f"releases/{release}/.tacocat/{name}"
        )
    assert report.published and report.release == release
    assert report.parts_written == (january, february)
    assert (report.days, report.tiles, report.placeholders) == (
        3,
        len(tiles.data),
        3 * 8 * 11 - len(tiles.data),
    )
    assert report.verify is not None and report.verify.failures == ()
    assert report.verify.payloads_checked == len(tiles.data)
    # the first payload of each product, and of each part: l4_ssh and argo in January, l4_ssh in February
    assert report.verify.payloads_opened == 3
    manifest = read_manifest(output, release)
    assert manifest["objects"] == [january, february]
    assert manifest["parts"][february]["days"] == ["2024_02_01", "2024_02_02"]
    assert (
        manifest["parts"][january]["tiles"]["2024_01_31/NORTH_ATLANTIC/argo.nc"]
        == hashlib.sha256(tiles.data[(DAYS[0], "NORTH_ATLANTIC", "argo")]).hexdigest()
    )
    assert manifest["parts"][february]["sha256"] == output.sha256(february)


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
        assert vsi.endswith(part(output, f"{day:%Y_%m}"))
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


def test_collection_metadata_has_the_real_extent(built) -> None:
    _, output, _ = built
    collection = tacoreader.load(output.url).collection
    assert collection["id"] == "sea_surface_state_regionalized"
    assert collection["licenses"] == ["CC-BY-4.0"]
    assert {p["name"] for p in collection["providers"]} >= {"Copernicus Marine Service", "Argo GDAC"}
    assert collection["extent"] == {
        "spatial": [-180.0, -90.0, 180.0, 90.0],
        "temporal": ["2024-01-31T00:00:00Z", "2024-02-02T23:59:59.999999Z"],
    }
    assert [p["file"] for p in collection["oceantaco:parts"]] == [
        part(output, "2024_01"),
        part(output, "2024_02"),
    ]


def test_verify_output_checks_the_live_release_in_full(built) -> None:
    tiles, output, _ = built
    report = verify_output(output, CATALOG)
    assert report.failures == () and report.payloads_checked == len(tiles.data)
    assert (report.days, report.regions, report.placeholders) == (3, 24, 3 * 8 * 11 - len(tiles.data))
    # against the inventory instead of the release manifest: the same
    assert verify_output(output, CATALOG, inventory=tiles.inventory).payloads_checked == len(tiles.data)


def _snapshot(output: Storage) -> dict[str, tuple[str, int]]:
    return {
        key: (output.sha256(key), Path(output.full_path(key)).stat().st_mtime_ns) for key in output.list()
    }


def test_second_build_rewrites_nothing_and_publishes_no_release(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    first = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    before = _snapshot(output)

    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)

    assert not report.published and report.release == first.release
    assert report.parts_written == () and report.objects_deleted == ()
    assert report.parts_unchanged == (part(output, "2024_01"), part(output, "2024_02"))
    # verified without re-hashing payloads that were checked when they were published
    assert report.verify is not None and report.verify.payloads_checked == 0 and report.verify.days == 3
    assert _snapshot(output) == before


def test_changed_tile_writes_a_new_february_part_and_keeps_the_old_release_readable(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    first = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    january, old_february = part(output, "2024_01"), part(output, "2024_02")
    january_bytes = output.sha256(january)
    old_tile = tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]
    collection = output.read_bytes(".tacocat/COLLECTION.json")

    tiles.replace(DAYS[2], "SOUTH_INDIAN", "argo", value=-5.0)
    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)

    new_february = report.parts_written[0]
    assert report.parts_written == (new_february,) and new_february != old_february
    assert report.parts_unchanged == (january,) and output.sha256(january) == january_bytes
    assert report.published and report.release != first.release
    assert report.verify is not None and report.verify.payloads_checked == 2 * 8 + 1  # February only
    assert read_current(output).history == (report.release, first.release)
    # the live dataset has the new tile; COLLECTION.json changes with the part checksums (reader caches)
    assert output.read_bytes(".tacocat/COLLECTION.json") != collection
    vsi = tacoreader.load(output.url).read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    assert vsi.endswith(new_february) and _payload(vsi) == tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]
    # the previous release is still whole: its catalog and its February part are kept
    tacoreader.clear_cache()
    old = tacoreader.load(output.url_of(f"releases/{first.release}/.tacocat"), base_path=output.url)
    vsi = old.read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    assert vsi.endswith(old_february) and _payload(vsi) == old_tile


def test_only_the_newest_releases_and_their_parts_are_kept(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    published, februaries = [], []
    for value in (1.0, 2.0, 3.0):
        tiles.replace(DAYS[1], "NORTH_PACIFIC_EAST", "l4_ssh", value=value)
        report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, keep_releases=2, verify=False)
        published.append(report.release)
        februaries.append(part(output, "2024_02") if value == 1.0 else report.parts_written[0])

    assert read_current(output).history == (published[2], published[1])
    assert release_dirs(output) == [published[1], published[2]]
    assert sorted(parts(output)) == sorted([part(output, "2024_01"), februaries[1], februaries[2]])
    assert report.objects_deleted == (februaries[0],)


def test_month_dropped_from_the_inventory_goes_once_no_release_references_it(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    january = part(output, "2024_01")
    february = tiles.inventory[tiles.inventory["timestamp_file"] >= pd.Timestamp("2024-02-01")]

    report = build_taco(february, tiles.formatted, output, CATALOG, keep_releases=1)

    assert report.parts_written == () and report.objects_deleted == (january,)
    assert report.verify is not None and report.verify.days == 2
    assert not output.exists(january)
    assert tacoreader.load(output.url).data["id"].to_pylist() == ["2024_02_01", "2024_02_02"]


def test_failed_audit_leaves_the_previous_release_live(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    first = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)
    live = {key: output.read_bytes(key) for key in output.list(".tacocat")}
    good_tile = tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]
    # a tile that matches its inventory row but is not NetCDF: only reading it back shows the problem
    bad = b"this is not a netcdf file"
    Path(tiles.formatted.full_path(CATALOG["argo"].tile_key("SOUTH_INDIAN", DAYS[2]))).write_bytes(bad)
    row = tiles.inventory["relative_path"] == CATALOG["argo"].tile_key("SOUTH_INDIAN", DAYS[2])
    tiles.inventory.loc[row, ["sha256", "size_bytes"]] = [hashlib.sha256(bad).hexdigest(), len(bad)]

    with pytest.raises(TacoVerificationError, match=r"2024_02_02/SOUTH_INDIAN/argo\.nc: xarray cannot open"):
        build_taco(tiles.inventory, tiles.formatted, output, CATALOG)

    assert read_current(output).release == first.release
    assert {key: output.read_bytes(key) for key in output.list(".tacocat")} == live
    vsi = tacoreader.load(output.url).read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    assert _payload(vsi) == good_tile
    (failed,) = [r for r in release_dirs(output) if r != first.release]  # staged, kept for inspection
    assert verify_output(output, CATALOG).failures == ()

    # fixed: the next build publishes, and the failed release and its part are cleared away
    tiles.replace(DAYS[2], "SOUTH_INDIAN", "argo", value=7.0)
    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)
    assert report.published and failed not in release_dirs(output)
    assert len(parts(output)) == 3  # January, the first February (kept release) and the new February


def test_rerun_after_a_crash_before_publishing_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oceantaco import releases

    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt("pod killed")

    with monkeypatch.context() as patch:
        patch.setattr(releases, "publish", crash)
        with pytest.raises(KeyboardInterrupt):
            build_taco(tiles.inventory, tiles.formatted, output, CATALOG)
    assert not output.exists(CURRENT_KEY) and not output.exists(".tacocat/COLLECTION.json")
    written = {name: Path(output.full_path(name)).stat().st_mtime_ns for name in parts(output)}
    assert len(written) == 2

    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)

    assert report.published and report.verify is not None
    assert report.verify.payloads_checked == len(tiles.data)  # parts found in storage are audited again
    assert {name: Path(output.full_path(name)).stat().st_mtime_ns for name in parts(output)} == written
    assert len(release_dirs(output)) == 1  # the crashed build's staged release is gone
    assert verify_output(output, CATALOG).failures == ()


def test_a_damaged_live_catalog_is_reported_and_repaired(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    output.delete(".tacocat/level1.parquet")

    with pytest.raises(TacoVerificationError, match=r"\.tacocat/level1\.parquet is not the one release"):
        verify_output(output, CATALOG)
    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG)
    assert report.published and report.parts_written == ()
    assert verify_output(output, CATALOG).failures == ()


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
        verify_output(output, CATALOG)
    assert len(info.value.report.failures) == 1
    assert info.value.report.payloads_checked == len(tiles.data)


def test_verify_against_an_inventory_reports_a_missing_day(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    january = tiles.inventory[tiles.inventory["timestamp_file"] < pd.Timestamp("2024-02-01")]
    build_taco(january, tiles.formatted, output, CATALOG, verify=False)
    with pytest.raises(TacoVerificationError, match=r"days: expected 2024_01_31\.\.2024_02_02"):
        verify_output(output, CATALOG, inventory=tiles.inventory)


def test_verify_reports_a_wrong_region_footprint(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    # rewrite the live level-1 table with the footprint of one region swapped for another's

    path = output.full_path(".tacocat/level1.parquet")
    table = pq.read_table(path)
    geometry = table["istac:geometry"].to_pylist()
    geometry[0] = region("SOUTH_INDIAN").polygon_wkb
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("istac:geometry"),
            "istac:geometry",
            pa.array(geometry, table.schema.field("istac:geometry").type),
        ),
        path,
    )
    with pytest.raises(TacoVerificationError, match=r"istac:geometry bounds"):
        verify_output(output, CATALOG)


def test_an_output_of_the_other_layout_is_refused(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))
    build_taco(tiles.inventory, tiles.formatted, output, CATALOG, verify=False)
    with pytest.raises(ValueError, match=r"holds a 'zip' dataset"):
        build_taco(tiles.inventory, tiles.formatted, output, CATALOG, layout="folder")


# --- FOLDER layout ----------------------------------------------------------------------------------------


def test_folder_layout_is_the_published_tree_and_updates_tile_by_tile(tmp_path: Path) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(str(tmp_path / "output"))

    first = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, layout="folder")

    assert first.tiles_uploaded == len(tiles.data) and first.verify.payloads_checked == len(tiles.data)
    keys = set(output.list())
    assert {"COLLECTION.json", "METADATA/level0.parquet", "METADATA/level2.parquet", CURRENT_KEY} <= keys
    assert "DATA/2024_02_01/SOUTH_INDIAN/argo.missing" in keys
    assert (
        output.read_bytes("DATA/2024_01_31/NORTH_ATLANTIC/argo.nc")
        == tiles.data[(DAYS[0], "NORTH_ATLANTIC", "argo")]
    )
    ds = tacoreader.load(output.url)
    assert ds.data["id"].to_pylist() == ["2024_01_31", "2024_02_01", "2024_02_02"]
    path = ds.read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    assert Path(path).read_bytes() == tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]
    files = ds.read("2024_02_01").read("SOUTH_INDIAN")
    assert list(zip(files["id"].to_pylist(), files["available"].to_pylist(), strict=True)) == tiles.slots(
        DAYS[1], "SOUTH_INDIAN"
    )

    tiles.replace(DAYS[1], "NORTH_ATLANTIC", "l4_ssh", value=-3.0)
    second = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, layout="folder")

    assert second.published and second.tiles_uploaded == 1 and second.verify.payloads_checked == 1
    tacoreader.clear_cache()
    path = tacoreader.load(output.url).read("2024_02_01").read("NORTH_ATLANTIC").read("l4_ssh.nc")
    assert Path(path).read_bytes() == tiles.data[(DAYS[1], "NORTH_ATLANTIC", "l4_ssh")]
    assert verify_output(output, CATALOG).payloads_checked == len(tiles.data)
    third = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, layout="folder")
    assert not third.published and third.tiles_uploaded == 0


# --- object storage ---------------------------------------------------------------------------------------


def test_build_on_s3_opens_with_tacoreader_from_the_bucket_prefix(tmp_path: Path, s3_bucket: str) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(f"{s3_bucket}/ocean/taco")

    report = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=tmp_path)

    assert report.verify is not None and report.verify.payloads_checked == len(tiles.data)
    february = part(output, "2024_02")
    assert ".tacocat/COLLECTION.json" in output.list()
    tacoreader.clear_cache()
    ds = tacoreader.load(output.url)
    assert ds.data["id"].to_pylist() == ["2024_01_31", "2024_02_01", "2024_02_02"]
    vsi = ds.read("2024_02_02").read("SOUTH_INDIAN").read("argo.nc")
    offset, size, container = VSISUBFILE.fullmatch(vsi).groups()
    assert container == f"/vsis3/{s3_bucket.removeprefix('s3://')}/ocean/taco/{february}"
    assert (
        output.read_range(february, int(offset), int(size)) == tiles.data[(DAYS[2], "SOUTH_INDIAN", "argo")]
    )

    # the catalog of a remote rebuild is made from metadata-only replicas of the unchanged parts
    tiles.replace(DAYS[0], "NORTH_ATLANTIC", "l4_ssh", value=-1.0)
    again = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=tmp_path)
    assert len(again.parts_written) == 1 and again.parts_written[0].startswith("OceanTACO_2024_01_")
    assert again.verify is not None and again.verify.failures == ()
    assert verify_output(output, CATALOG).payloads_checked == len(tiles.data)
    assert not any(p.name.startswith("oceantaco-taco-") for p in tmp_path.iterdir())


def test_failed_audit_on_s3_leaves_the_previous_release_live(tmp_path: Path, s3_bucket: str) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(f"{s3_bucket}/ocean/taco")
    first = build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=tmp_path)
    bad = b"not netcdf"  # matches its inventory row, so only the audit's xarray open catches it
    key = CATALOG["l4_ssh"].tile_key("NORTH_ATLANTIC", DAYS[0])
    Path(tiles.formatted.full_path(key)).write_bytes(bad)
    row = tiles.inventory["relative_path"] == key
    tiles.inventory.loc[row, ["sha256", "size_bytes"]] = [hashlib.sha256(bad).hexdigest(), len(bad)]

    with pytest.raises(TacoVerificationError, match="xarray cannot open"):
        build_taco(tiles.inventory, tiles.formatted, output, CATALOG, scratch_dir=tmp_path)

    assert read_current(output).release == first.release
    tacoreader.clear_cache()
    vsi = tacoreader.load(output.url).read("2024_01_31").read("NORTH_ATLANTIC").read("l4_ssh.nc")
    offset, size, _ = VSISUBFILE.fullmatch(vsi).groups()
    assert vsi.endswith(first.parts_written[0])
    good = tiles.data[(DAYS[0], "NORTH_ATLANTIC", "l4_ssh")]
    assert output.read_range(first.parts_written[0], int(offset), int(size)) == good
    assert verify_output(output, CATALOG).failures == ()


def test_folder_layout_on_s3_builds_verifies_and_updates(tmp_path: Path, s3_bucket: str) -> None:
    tiles = make_tiles(tmp_path / "formatted")
    output = Storage(f"{s3_bucket}/mirror")

    first = build_taco(
        tiles.inventory, tiles.formatted, output, CATALOG, layout="folder", scratch_dir=tmp_path
    )

    assert first.tiles_uploaded == len(tiles.data)
    tacoreader.clear_cache()
    ds = tacoreader.load(output.url)
    path = ds.read("2024_01_31").read("NORTH_PACIFIC_EAST").read("argo.nc")
    assert (
        path == f"/vsis3/{s3_bucket.removeprefix('s3://')}/mirror/DATA/2024_01_31/NORTH_PACIFIC_EAST/argo.nc"
    )
    assert verify_output(output, CATALOG).payloads_checked == len(tiles.data)

    tiles.replace(DAYS[0], "NORTH_PACIFIC_EAST", "argo", value=9.0)
    second = build_taco(
        tiles.inventory, tiles.formatted, output, CATALOG, layout="folder", scratch_dir=tmp_path
    )
    assert second.tiles_uploaded == 1
    key = "DATA/2024_01_31/NORTH_PACIFIC_EAST/argo.nc"
    assert output.read_bytes(key) == tiles.data[(DAYS[0], "NORTH_PACIFIC_EAST", "argo")]
    assert verify_output(output, CATALOG, inventory=tiles.inventory).failures == ()
