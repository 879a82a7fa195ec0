"""Reading helpers on a tiny built dataset (test_taco's tiles plus point and binned tiles), local and on S3.

Expected values always come from what these tests wrote: the tile bytes and the arrays behind them.
``test_published_reader_path_*`` read without the helpers: they are the compatibility check.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import hashlib
import importlib.metadata
import io
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pandas as pd
import pytest
import tacoreader
import xarray as xr
from test_taco import ARGO, CATALOG, DAYS, Tiles, make_tiles

import oceantaco
from oceantaco.reading import (
    PayloadLocation,
    TileNotFoundError,
    _PayloadFile,
    ensure_duckdb_spatial,
    open_bbox,
    open_payload,
    open_tile,
    parse_vsi,
)
from oceantaco.regions import REGIONS, region
from oceantaco.storage import Storage
from oceantaco.taco import build_taco

VSISUBFILE = re.compile(r"/vsisubfile/(\d+)_(\d+),(.+)")
# Binned (l3_ssh) tiles: (day, region) -> track ids of the tile, in tile order.
BINNED = {
    (DAYS[1], "NORTH_ATLANTIC"): ["s3a_c1_t10", "j3n_c2_t20"],
    (DAYS[1], "NORTH_INDIAN"): ["j3n_c2_t20", "c2n_c3_t30", "h2b_c4_t40"],
    (DAYS[1], "SOUTH_ATLANTIC"): ["s3a_c1_t11", "s3a_c1_t10"],
    (DAYS[2], "NORTH_ATLANTIC"): ["s6a_c5_t50"],
}
SEAM_BBOX = (-50.0, 10.0, 30.0, 60.0)  # NORTH_ATLANTIC | NORTH_INDIAN, across lon = 0


@pytest.fixture(autouse=True)
def _reader_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tacoreader caches remote catalogs: keep them away from the user's ~/.cache."""
    monkeypatch.setenv("TACOREADER_CACHE_DIR", str(tmp_path / "tacoreader-cache"))


@dataclass
class Written:
    """The formatted tiles and what went into the sparse ones."""

    tiles: Tiles
    points: dict[tuple[dt.date, str], xr.Dataset] = field(default_factory=dict)
    binned: dict[tuple[dt.date, str], xr.Dataset] = field(default_factory=dict)

    def decoded(self, day: dt.date, region_name: str, token: str) -> xr.Dataset:
        """A written tile as xarray decodes its bytes."""
        data = self.tiles.data[(day, region_name, token)]
        with xr.open_dataset(io.BytesIO(data), engine="h5netcdf") as ds:
            return ds.load()

    def sha256(self, day: dt.date, region_name: str, token: str) -> str:
        key = CATALOG[token].tile_key(region_name, day)
        (sha,) = self.tiles.inventory.loc[self.tiles.inventory["relative_path"] == key, "sha256"]
        return sha


def _store(tiles: Tiles, day: dt.date, region_name: str, token: str, ds: xr.Dataset, **encoding) -> None:
    """Write ds as the tile of (day, region, token); update or add its inventory row like Tiles.replace."""
    key = CATALOG[token].tile_key(region_name, day)
    path = Path(tiles.formatted.full_path(key))
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    data = path.read_bytes()
    tiles.data[(day, region_name, token)] = data
    inventory = tiles.inventory
    rows = (inventory["relative_path"] == key).to_numpy()
    if not rows.any():  # a new product in that slot: start from the l4_ssh row of the same tile
        product = CATALOG[token]
        row = inventory[inventory["relative_path"] == CATALOG["l4_ssh"].tile_key(region_name, day)].copy()
        for column, value in {
            "relative_path": key,
            "data_source": product.data_source,
            "output_id": product.output_id,
            "variable": product.variable,
            "sensor": product.sensor,
            "modality": product.modality,
        }.items():
            row[column] = value
        inventory = tiles.inventory = pd.concat([inventory, row], ignore_index=True)
        rows = (inventory["relative_path"] == key).to_numpy()
    inventory.loc[rows, "sha256"] = hashlib.sha256(data).hexdigest()
    inventory.loc[rows, "size_bytes"] = len(data)


def _points(day: dt.date, region_name: str, seed: int) -> xr.Dataset:
    """An Argo-like point table (N_POINTS with lon/lat/time coordinates) inside the region."""
    reg = region(region_name)
    rng = np.random.default_rng(seed)
    n = 40
    seconds = np.sort(rng.integers(0, 86_400, n))
    times = np.datetime64(day.isoformat(), "ns") + seconds.astype("timedelta64[s]")
    dims = ("N_POINTS",)
    return xr.Dataset(
        {
            "TEMP": (dims, rng.uniform(0, 30, n).astype("float32")),
            "PRES": (dims, rng.uniform(0, 100, n).astype("float32")),
            "PLATFORM_NUMBER": (dims, rng.integers(1_900_000, 7_000_000, n).astype("int32")),
        },
        coords={
            "lon": (dims, rng.uniform(reg.lon_min, reg.lon_max, n)),
            "lat": (dims, rng.uniform(reg.lat_min, reg.lat_max, n)),
            "time": (dims, times),
        },
        attrs={"title": f"argo {region_name} {day}"},
    )


def _binned(day: dt.date, region_name: str, track_ids: list[str], seed: int) -> xr.Dataset:
    """A binned tile: cell means on the test grid, primary_track (-1 = empty) and its track table."""
    reg = region(region_name)
    lat = np.linspace(reg.lat_min + 1, reg.lat_max - 1, 4)
    lon = np.linspace(reg.lon_min + 1, reg.lon_max - 1, 5)
    rng = np.random.default_rng(seed)
    primary = rng.integers(0, len(track_ids), (4, 5)).astype("int16")
    primary[1, 2] = primary[2, 3] = -1  # empty cells
    primary[1, 1] = len(track_ids) - 1  # the last track is used
    sla = np.where(primary >= 0, rng.uniform(-1, 1, (4, 5)), np.nan).astype("float32")
    return xr.Dataset(
        {
            "sla_filtered": (("lat", "lon"), sla),
            "primary_track": (("lat", "lon"), primary),
            "track_ids": (("track",), np.array(track_ids, dtype=object)),
            "track_times": (("track",), np.array([f"{day}T0{i}:00:00Z" for i, _ in enumerate(track_ids)])),
        },
        coords={"lat": lat, "lon": lon},
        attrs={"title": f"l3_ssh {day}", "n_tracks": len(track_ids)},
    )


def _write_dataset(root: Path) -> Written:
    written = Written(make_tiles(root / "formatted"))
    for seed, (day, name) in enumerate(sorted(ARGO)):
        written.points[(day, name)] = ds = _points(day, name, seed)
        _store(written.tiles, day, name, "argo", ds)
    for seed, ((day, name), track_ids) in enumerate(sorted(BINNED.items())):
        written.binned[(day, name)] = ds = _binned(day, name, track_ids, 100 + seed)
        _store(written.tiles, day, name, "l3_ssh", ds, primary_track={"_FillValue": -1})
    return written


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Written, str]:
    """The dataset built into a local directory: (what was written, dataset URL)."""
    root = tmp_path_factory.mktemp("reading")
    written = _write_dataset(root)
    output = Storage(str(root / "output"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TACOREADER_CACHE_DIR", str(root / "tacoreader-cache"))
        build_taco(written.tiles.inventory, written.tiles.formatted, output, CATALOG, scratch_dir=root)
    return written, output.url


@pytest.fixture(scope="module")
def on_s3(local, s3_server, tmp_path_factory: pytest.TempPathFactory) -> tuple[Written, str]:
    """The same tiles built into a moto S3 bucket prefix."""
    written, _ = local
    root = tmp_path_factory.mktemp("reading-s3")
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    Storage(f"s3://{bucket}").fs.mkdir(bucket)
    output = Storage(f"s3://{bucket}/ocean/taco")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TACOREADER_CACHE_DIR", str(root / "tacoreader-cache"))
        build_taco(written.tiles.inventory, written.tiles.formatted, output, CATALOG, scratch_dir=root)
    return written, output.url


def _crop(ds: xr.Dataset, bbox: tuple[float, float, float, float]) -> xr.Dataset:
    lon_min, lat_min, lon_max, lat_max = bbox
    lat, lon = ds["lat"].values, ds["lon"].values
    return ds.isel(
        lat=np.flatnonzero((lat >= lat_min) & (lat <= lat_max)),
        lon=np.flatnonzero((lon >= lon_min) & (lon <= lon_max)),
    )


# ---- open_tile ----------------------------------------------------------------------------------------


def test_open_tile_returns_every_written_tile(local) -> None:
    written, url = local
    with tacoreader.load(url) as taco:  # one load for all tiles
        for (day, name, token), _ in sorted(written.tiles.data.items()):
            with open_tile(taco, day, name, token) as ds:
                xr.testing.assert_identical(ds.load(), written.decoded(day, name, token))
    # l4_ssh tiles hold day * 10 + region index (make_tiles); every accepted form of date and product
    index = [r.name for r in REGIONS].index("SOUTH_INDIAN")
    with tacoreader.load(url) as taco:
        for source, date, product in (
            (url, DAYS[1], "l4_ssh"),
            (taco, "2024-02-01", "l4_ssh.nc"),
            (taco, "2024_02_01", "l4_ssh"),
        ):
            with oceantaco.open_tile(source, date, "SOUTH_INDIAN", product) as ds:
                assert ds.attrs["tile"] == "l4_ssh SOUTH_INDIAN 2024-02-01"
                want = np.full((4, 5), DAYS[1].day * 10 + index, "float32")
                np.testing.assert_array_equal(ds["sla"].values, want)


def test_open_tile_reads_lazily_from_the_payload(local) -> None:
    written, url = local
    day, name = DAYS[0], "NORTH_ATLANTIC"
    ds = open_tile(url, day, name, "argo")
    assert not ds["TEMP"].variable._in_memory  # nothing read until asked
    np.testing.assert_array_equal(ds["TEMP"].values[5:9], written.points[(day, name)]["TEMP"].values[5:9])
    assert ds.encoding["source"].startswith("/vsisubfile/")
    ds.close()


def test_open_tile_on_s3(on_s3) -> None:
    written, url = on_s3
    assert url.startswith("s3://")
    for day, name, token in ((DAYS[2], "SOUTH_INDIAN", "argo"), (DAYS[0], "NORTH_PACIFIC_WEST", "l4_ssh")):
        with open_tile(url, day, name, token) as ds:
            xr.testing.assert_identical(ds.load(), written.decoded(day, name, token))


def test_open_payload_gives_exactly_the_tile_bytes(local, on_s3) -> None:
    for written, url in (local, on_s3):
        day, name = DAYS[1], "NORTH_INDIAN"
        data = written.tiles.data[(day, name, "l3_ssh")]
        with tacoreader.load(url) as taco:
            vsi = taco.read(f"{day:%Y_%m_%d}").read(name).read("l3_ssh.nc")
        with open_payload(vsi) as f:
            assert f.read() == data
            assert f.seek(-10, io.SEEK_END) == len(data) - 10
            assert f.read(100) == data[-10:]
            assert f.read(1) == b""
            f.seek(3)
            assert f.read(5) == data[3:8]


def test_payload_file_block_cache_stays_inside_the_payload() -> None:
    source = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    calls: list[tuple[int, int]] = []

    def fetch(start: int, stop: int) -> bytes:
        calls.append((start, stop))
        return source[start:stop]

    f = _PayloadFile(fetch, len(source), block_size=1024, max_blocks=3)
    rng = np.random.default_rng(1)
    for _ in range(300):
        start = int(rng.integers(0, len(source)))
        length = int(rng.integers(0, 5000))
        f.seek(start)
        assert f.read(length) == source[start : start + length]
    assert all(0 <= a < b <= len(source) for a, b in calls)
    f.seek(0)
    assert f.read() == source
    f.close()
    with pytest.raises(ValueError):
        f.read(1)


def test_placeholder_and_missing_day_or_region_raise(local) -> None:
    _, url = local
    with pytest.raises(TileNotFoundError, match=r"argo\.nc.*SOUTH_INDIAN.*2024-02-01.*placeholder"):
        open_tile(url, DAYS[1], "SOUTH_INDIAN", "argo")
    with pytest.raises(TileNotFoundError, match=r"day 2024-03-01 .*not in the dataset"):
        open_tile(url, dt.date(2024, 3, 1), "NORTH_ATLANTIC", "l4_ssh")
    with pytest.raises(LookupError, match=r"l3_ssh\.nc.*SOUTH_INDIAN.*placeholder"):
        open_tile(url, DAYS[1], "SOUTH_INDIAN", "l3_ssh")
    with pytest.raises(ValueError, match="unknown region"):
        open_tile(url, DAYS[0], "ARCTIC", "l4_ssh")
    with pytest.raises(ValueError, match="unknown product"):
        open_tile(url, DAYS[0], "NORTH_ATLANTIC", "l5_ssh")


# ---- open_bbox ----------------------------------------------------------------------------------------


def test_open_bbox_joins_two_tiles_across_the_seam(local) -> None:
    written, url = local
    day = DAYS[0]
    ds = oceantaco.open_bbox(url, day, bbox=SEAM_BBOX, product="l4_ssh")
    west = _crop(written.decoded(day, "NORTH_ATLANTIC", "l4_ssh"), SEAM_BBOX)
    east = _crop(written.decoded(day, "NORTH_INDIAN", "l4_ssh"), SEAM_BBOX)
    assert west.sizes["lon"] and east.sizes["lon"]  # both tiles contribute
    assert list(ds["time"].values) == [np.datetime64("2024-01-31", "ns")]
    np.testing.assert_array_equal(ds["lat"].values, west["lat"].values)
    np.testing.assert_array_equal(ds["lon"].values, np.concatenate([west["lon"].values, east["lon"].values]))
    assert (
        ds["lat"].min() >= 10 and ds["lat"].max() <= 60 and ds["lon"].min() >= -50 and ds["lon"].max() <= 30
    )
    want = np.concatenate([west["sla"].values, east["sla"].values], axis=1)
    np.testing.assert_array_equal(ds["sla"].isel(time=0).values, want)
    assert set(np.unique(want)) == {310, 311}  # NORTH_ATLANTIC and NORTH_INDIAN of 2024-01-31


def test_open_bbox_joins_four_tiles_at_a_corner(local) -> None:
    written, url = local
    bbox = (-10.0, -10.0, 10.0, 10.0)
    ds = open_bbox(url, DAYS[2], DAYS[2], bbox=bbox, product="l4_ssh")
    want = np.full((2, 2), np.nan, "float32")
    for name, (i, j) in {
        "SOUTH_ATLANTIC": (0, 0),
        "SOUTH_INDIAN": (0, 1),
        "NORTH_ATLANTIC": (1, 0),
        "NORTH_INDIAN": (1, 1),
    }.items():
        (want[i, j],) = _crop(written.decoded(DAYS[2], name, "l4_ssh"), bbox)["sla"].values.ravel()
    np.testing.assert_array_equal(ds["lat"].values, [-1.0, 1.0])
    np.testing.assert_array_equal(ds["lon"].values, [-1.0, 1.0])
    np.testing.assert_array_equal(ds["sla"].isel(time=0).values, want)


def test_open_bbox_leaves_the_quadrant_of_a_missing_tile_empty(local) -> None:
    written, url = local
    bbox = (-10.0, -10.0, 10.0, 10.0)
    ds = open_bbox(url, DAYS[1], bbox=bbox, product="l3_ssh").isel(time=0)
    np.testing.assert_array_equal(ds["lat"].values, [-1.0, 1.0])
    np.testing.assert_array_equal(ds["lon"].values, [-1.0, 1.0])
    # SOUTH_INDIAN has no l3_ssh tile on DAYS[1]
    assert np.isnan(ds["sla_filtered"].values[0, 1]) and np.isnan(ds["primary_track"].values[0, 1])
    for name, (i, j) in {"SOUTH_ATLANTIC": (0, 0), "NORTH_ATLANTIC": (1, 0), "NORTH_INDIAN": (1, 1)}.items():
        tile = _crop(written.binned[(DAYS[1], name)], bbox)
        assert ds["sla_filtered"].values[i, j] == tile["sla_filtered"].values.item()
        track = ds["track_ids"].values[int(ds["primary_track"].values[i, j])]
        assert track == tile["track_ids"].values[tile["primary_track"].values.item()]
    want = []  # distinct ids in order of first appearance, tiles in region-name order
    for name in ("NORTH_ATLANTIC", "NORTH_INDIAN", "SOUTH_ATLANTIC"):
        want += [t for t in BINNED[(DAYS[1], name)] if t not in want]
    assert ds["track_ids"].values.tolist() == want


def test_open_bbox_gives_one_entry_per_day_across_months(local) -> None:
    written, url = local
    ds = open_bbox(url, "2024-01-31", "2024-02-02", bbox=SEAM_BBOX, product="l4_ssh")
    assert list(ds["time"].values) == [np.datetime64(day.isoformat(), "ns") for day in DAYS]
    for t, day in enumerate(DAYS):
        west = _crop(written.decoded(day, "NORTH_ATLANTIC", "l4_ssh"), SEAM_BBOX)["sla"].values
        east = _crop(written.decoded(day, "NORTH_INDIAN", "l4_ssh"), SEAM_BBOX)["sla"].values
        np.testing.assert_array_equal(ds["sla"].isel(time=t).values, np.concatenate([west, east], axis=1))


def test_open_bbox_filters_argo_points_by_their_own_position(local) -> None:
    written, url = local
    bbox = (-60.0, 20.0, 150.0, 70.0)  # NORTH_ATLANTIC and NORTH_PACIFIC_EAST have argo on DAYS[0]
    ds = open_bbox(url, DAYS[0], DAYS[2], bbox=bbox, product="argo")
    parts = []
    for name in ("NORTH_ATLANTIC", "NORTH_PACIFIC_EAST"):  # day, then region name
        pts = written.points[(DAYS[0], name)]
        inside = (pts.lon >= -60) & (pts.lon <= 150) & (pts.lat >= 20) & (pts.lat <= 70)
        parts.append(pts.isel(N_POINTS=np.flatnonzero(inside.values)))
    want = xr.concat(parts, dim="N_POINTS")
    assert 0 < want.sizes["N_POINTS"] < 80  # some points of the two tiles are outside the box
    assert ds.sizes["N_POINTS"] == want.sizes["N_POINTS"]
    for name in ("lon", "lat", "time", "TEMP", "PRES", "PLATFORM_NUMBER"):
        np.testing.assert_array_equal(ds[name].values, want[name].values)
    assert "time" not in ds.dims


def test_open_bbox_merges_the_track_tables_of_binned_tiles(local) -> None:
    written, url = local
    ds = open_bbox(url, DAYS[0], DAYS[2], bbox=SEAM_BBOX, product="l3_ssh")
    # DAYS[0] has no l3_ssh tile: left out
    assert list(ds["time"].values) == [np.datetime64(day.isoformat(), "ns") for day in DAYS[1:]]
    assert ds["track_ids"].dims == ("time", "track")
    assert ds["track_ids"].values.tolist() == [
        ["s3a_c1_t10", "j3n_c2_t20", "c2n_c3_t30", "h2b_c4_t40"],
        ["s6a_c5_t50", "", "", ""],
    ]
    for t, day in enumerate(DAYS[1:]):
        for name in ("NORTH_ATLANTIC", "NORTH_INDIAN"):
            cells = _crop(written.binned[(DAYS[1], name)], SEAM_BBOX)  # the same grid every day
            out = ds.isel(time=t).sel(lat=cells["lat"], lon=cells["lon"])
            if (day, name) not in written.binned:  # no NORTH_INDIAN tile on DAYS[2]: empty cells
                assert np.isnan(out["sla_filtered"].values).all()
                continue
            tile = _crop(written.binned[(day, name)], SEAM_BBOX)
            np.testing.assert_array_equal(out["sla_filtered"].values, tile["sla_filtered"].values)
            original, merged = tile["primary_track"].values, out["primary_track"].values
            assert np.isnan(merged[original < 0]).all()
            used = original >= 0
            assert used.any()
            names = out["track_ids"].values[merged[used].astype(int)]
            np.testing.assert_array_equal(names, tile["track_ids"].values[original[used]])

    dropped = open_bbox(url, DAYS[1], bbox=SEAM_BBOX, product="l3_ssh", tracks="drop")
    assert "track" not in dropped.dims and "primary_track" not in dropped and "sla_filtered" in dropped


def test_open_bbox_on_s3(on_s3) -> None:
    written, url = on_s3
    ds = open_bbox(url, DAYS[1], bbox=SEAM_BBOX, product="l4_ssh")
    west = _crop(written.decoded(DAYS[1], "NORTH_ATLANTIC", "l4_ssh"), SEAM_BBOX)["sla"].values
    east = _crop(written.decoded(DAYS[1], "NORTH_INDIAN", "l4_ssh"), SEAM_BBOX)["sla"].values
    np.testing.assert_array_equal(ds["sla"].isel(time=0).values, np.concatenate([west, east], axis=1))


def test_open_bbox_without_a_tile_raises(local) -> None:
    _, url = local
    with pytest.raises(TileNotFoundError, match=r"no l4_sst\.nc tile intersects"):
        open_bbox(url, DAYS[0], bbox=SEAM_BBOX, product="l4_sst")
    with pytest.raises(TileNotFoundError):
        open_bbox(url, "2023-01-01", "2023-01-05", bbox=SEAM_BBOX, product="l4_ssh")
    with pytest.raises(ValueError, match="antimeridian"):
        open_bbox(url, DAYS[0], bbox=(170, 0, -170, 10), product="l4_ssh")
    with pytest.raises(ValueError, match="before start"):
        open_bbox(url, DAYS[2], DAYS[0], bbox=SEAM_BBOX, product="l4_ssh")


@pytest.mark.parametrize(
    ("vsi", "container", "offset", "size"),
    [
        (
            "/vsisubfile/10_20,/data/taco/OceanTACO_2024_01.tacozip",
            "/data/taco/OceanTACO_2024_01.tacozip",
            10,
            20,
        ),
        ("/vsisubfile/0_5,/vsis3/bucket/p/x.tacozip", "s3://bucket/p/x.tacozip", 0, 5),
        ("/vsisubfile/3_4,/vsigs/bucket/x.tacozip", "gs://bucket/x.tacozip", 3, 4),
        ("/vsisubfile/7_8,/vsicurl/https://host/d/x.tacozip", "https://host/d/x.tacozip", 7, 8),
    ],
)
def test_parse_vsi(vsi: str, container: str, offset: int, size: int) -> None:
    assert parse_vsi(vsi) == PayloadLocation(container, offset, size)


@pytest.mark.parametrize(
    "vsi", ["/vsizip/x.zip/a.nc", "/vsisubfile/1_2,/vsiunknown/b/x", "/vsisubfile/a_2,/x"]
)
def test_parse_vsi_refuses_other_locations(vsi: str) -> None:
    with pytest.raises(ValueError):
        parse_vsi(vsi)


# ---- DuckDB spatial -----------------------------------------------------------------------------------


def test_ensure_duckdb_spatial_installs_from_the_wheel_into_a_fresh_home(tmp_path: Path) -> None:
    """In a new HOME (no extension there yet) it installs the wheel's own file, which then loads."""
    script = (
        "import duckdb\n"
        "from oceantaco.reading import ensure_duckdb_spatial\n"
        "path = ensure_duckdb_spatial()\n"
        "assert ensure_duckdb_spatial() == path\n"
        "con = duckdb.connect()\n"
        '(mode,) = con.execute("SELECT install_mode FROM duckdb_extensions() '
        "WHERE extension_name = 'spatial'\").fetchone()\n"
        "con.execute('LOAD spatial')\n"
        "print(path, mode)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    path, mode = result.stdout.split()
    assert Path(path).is_relative_to(tmp_path / ".duckdb" / "extensions")
    assert mode == "CUSTOM_PATH"  # from a file, not from the extension repository
    assert filecmp.cmp(path, _wheel_spatial(), shallow=False)


def test_ensure_duckdb_spatial_in_this_process() -> None:
    path = ensure_duckdb_spatial()
    assert Path(path).is_file() and ensure_duckdb_spatial() == path
    con = duckdb.connect()
    con.execute("LOAD spatial")
    assert con.execute(
        "SELECT ST_Intersects(ST_MakeEnvelope(0, 0, 2, 2), ST_MakeEnvelope(1, 1, 3, 3))"
    ).fetchone()[0]


# ---- the published OceanTACO reader's path, without the helpers -----------------------------------------


def _wheel_spatial() -> Path:
    con = duckdb.connect()
    (platform,) = con.execute("PRAGMA platform").fetchone()
    dist = importlib.metadata.distribution("duckdb-ext-spatial")
    (file,) = (
        f
        for f in dist.files
        if f.name == "spatial.duckdb_extension"
        and f"v{duckdb.__version__}" in f.parts
        and platform in f.parts
    )
    return Path(str(dist.locate_file(file)))


@pytest.fixture
def spatial_by_hand() -> None:
    """filter_bbox needs DuckDB's spatial extension: installed here with duckdb alone, not the helper."""
    con = duckdb.connect()
    try:
        con.execute("LOAD spatial")
    except duckdb.Error:
        con.execute(f"INSTALL '{_wheel_spatial()}'")


def _published_selection(url: str, day: dt.date, bbox: tuple[float, ...], output_id: str) -> pd.DataFrame:
    """ocean_taco.dataset.retrieve.query_files: load → filter_datetime → filter_bbox(level=1) → flatten."""
    dataset = tacoreader.load(url, backend="pandas")
    flat = dataset.filter_datetime(f"{day}/{day}").filter_bbox(*bbox, level=1).flatten()
    return flat[flat["l2:id"].isin({output_id})]


@pytest.mark.parametrize("where", ["local", "on_s3"])
@pytest.mark.usefixtures("spatial_by_hand")
def test_published_reader_path_reads_the_inventoried_bytes(
    where: str, request: pytest.FixtureRequest
) -> None:
    written, url = request.getfixturevalue(where)
    for day in DAYS:
        for token, regions in (
            ("l4_ssh", ["NORTH_ATLANTIC", "NORTH_INDIAN"]),
            (
                "argo",
                sorted(name for d, name in ARGO if d == day and name in ("NORTH_ATLANTIC", "NORTH_INDIAN")),
            ),
        ):
            files = _published_selection(url, day, SEAM_BBOX, f"{token}.nc")
            assert sorted(files["l1:id"]) == regions
            assert (files["l0:id"] == f"{day:%Y_%m_%d}").all()
            for _, row in files.iterrows():
                offset, size, container = VSISUBFILE.fullmatch(row["gdal_vsi"]).groups()
                start, end = int(offset), int(offset) + int(size)
                if container.startswith("/vsis3/"):
                    data = fsspec.filesystem("s3").cat_file(
                        container.removeprefix("/vsis3/"), start=start, end=end
                    )
                else:
                    with open(container, "rb") as f:
                        f.seek(start)
                        data = f.read(end - start)
                assert hashlib.sha256(data).hexdigest() == written.sha256(day, row["l1:id"], token)
                with xr.open_dataset(io.BytesIO(data), engine="h5netcdf") as nc:
                    assert nc.attrs.get("tile", nc.attrs.get("title")).startswith(token)
