"""End to end through Prefect: download -> format -> build against the real local Prefect server, on a
local root and on a moto S3 root, checked value by value against the synthetic upstream files."""

import datetime as dt
import hashlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import tacoreader
import xarray as xr
from prefect_helpers import artifacts_of
from typer.testing import CliRunner

from flows.pipeline import pipeline
from oceantaco.catalog import load_catalog
from oceantaco.cli import app
from oceantaco.inventory import read_inventory
from oceantaco.regions import REGION_NAMES, region
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror
from oceantaco.taco import read_slots

pytestmark = [pytest.mark.prefect, pytest.mark.e2e]  # whole pipeline runs: `make test-e2e`

DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
CATALOG = load_catalog()
VSISUBFILE = re.compile(r"/vsisubfile/(\d+)_(\d+),(.+)")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return build_mirror(tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=0.5)


@pytest.fixture
def upstream(mirror, upstream_env):
    upstream_env(mirror.cmems_mirror, mirror.argo_gdac)
    return mirror


def expected_argo_points(mirror, day: dt.date) -> dict[tuple[int, int, float], float]:
    """(platform, cycle, pressure) -> temperature of every good level in the top 100 dbar, from the
    profiles the mirror was written from (adjusted values for D/A profiles)."""
    points = {}
    for profile in mirror.argo_profiles:
        if profile.juld.date() != day:
            continue
        adjusted = profile.data_mode != "R"
        pres, temp = profile.values("PRES", adjusted), profile.values("TEMP", adjusted)
        pres_qc, temp_qc = profile.qc("PRES", adjusted), profile.qc("TEMP", adjusted)
        for level in range(profile.n_levels):
            if pres_qc[level] in "12" and temp_qc[level] in "12" and pres[level] <= 100:
                points[(int(profile.platform_number), profile.cycle_number, float(pres[level]))] = temp[level]
    return points


def check_root(root: str, mirror) -> int:
    """Checks everything under ``root`` against the upstream files; returns the number of tiles."""
    roots = Roots.under(root)
    raw, formatted, taco = Storage(roots.raw), Storage(roots.formatted), Storage(roots.taco)

    # raw: byte-identical copies in the original layout
    for path in mirror.l4_ssh_files.values():
        key = "l4_ssh/" + path.relative_to(mirror.cmems_mirror).as_posix()
        assert raw.sha256(key) == hashlib.sha256(path.read_bytes()).hexdigest()
    for rel in mirror.argo_files:
        assert raw.read_bytes(f"argo/dac/{rel}") == (Path(mirror.argo_gdac) / "dac" / rel).read_bytes()

    # inventory rows match the tiles on disk, one way and the other
    inventory = read_inventory(formatted)
    assert sorted(inventory["relative_path"]) == sorted(k for k in formatted.list() if k.endswith(".nc"))
    for row in inventory.itertuples():
        assert formatted.sha256(row.relative_path) == row.sha256
        assert formatted.size(row.relative_path) == row.size_bytes
    ssh = inventory[inventory["data_source"] == "l4_ssh"]
    assert len(ssh) == len(DAYS) * 8 and set(ssh["dataset_version"]) == {"202411"}

    # L4 SSH: decoded tile == decoded upstream field on the tile, within half a packing step
    step = CATALOG["l4_ssh"].variables["sla"].scale_factor
    for day in DAYS:
        with xr.open_dataset(mirror.l4_ssh_files[day], engine="h5netcdf") as src:
            source = src["sla"].isel(time=0).load()
        for name in ("NORTH_ATLANTIC", "SOUTH_PACIFIC_WEST"):
            key = CATALOG["l4_ssh"].tile_key(name, day)
            tile = xr.open_dataset(io.BytesIO(formatted.read_bytes(key)), engine="h5netcdf").load()
            reg = region(name)
            assert tile["lat"].min() >= reg.lat_min and tile["lat"].max() < reg.lat_max
            assert tile["lon"].min() >= reg.lon_min and tile["lon"].max() < reg.lon_max
            expected = source.sel(latitude=tile["lat"].values, longitude=tile["lon"].values).values
            assert expected.shape == tile["sla"].shape
            assert np.array_equal(np.isnan(expected), np.isnan(tile["sla"].values))
            assert np.nanmax(np.abs(tile["sla"].values - expected)) <= step / 2 + 1e-9

    # Argo: exactly the good upper-ocean levels of the day's profiles, each in the tile of its position
    argo = inventory[inventory["data_source"] == "argo"]
    for day in DAYS:
        expected = expected_argo_points(mirror, day)
        got = {}
        rows = argo[argo["date_str"] == f"{day:%Y%m%d}"]
        for key, name in zip(rows["relative_path"], rows["region"], strict=True):
            tile = xr.open_dataset(io.BytesIO(formatted.read_bytes(key)), engine="h5netcdf").load()
            reg = region(name)
            assert reg.contains(tile["lon"].values, tile["lat"].values).all()
            for p, c, pres, temp in zip(
                tile["PLATFORM_NUMBER"].values,
                tile["CYCLE_NUMBER"].values,
                tile["PRES"].values,
                tile["TEMP"].values,
                strict=True,
            ):
                got[(int(p), int(c), float(pres))] = temp
        assert got.keys() == expected.keys()
        assert all(np.float32(got[k]) == np.float32(v) for k, v in expected.items())

    # TACO: 3 days x 8 regions x 11 slots, navigated with read() (correct for multi-part datasets)
    parts = sorted(k for k in taco.list() if k.endswith(".tacozip"))
    assert [re.sub(r"_[0-9a-f]{16}\.tacozip$", "", k) for k in parts] == [
        "OceanTACO_2024_01",
        "OceanTACO_2024_02",
    ]
    tacoreader.clear_cache()
    dataset = tacoreader.load(taco.url, cache=False)
    assert dataset.data["id"].to_pylist() == [f"{d:%Y_%m_%d}" for d in DAYS]
    tiles = set(inventory["relative_path"])
    for day in DAYS:
        regions = dataset.data.read(f"{day:%Y_%m_%d}")
        assert regions["id"].to_pylist() == list(REGION_NAMES)
        for name in REGION_NAMES:
            slots = regions.read(name)
            expected_ids = [
                p.output_id if p.tile_key(name, day) in tiles else p.placeholder_id for p in CATALOG.ordered()
            ]
            wanted = [p.output_id for p in CATALOG.ordered() if p.provider == "cmems"]
            assert [i for i in expected_ids if i in wanted] == wanted  # every CMEMS product in every tile
            assert slots["id"].to_pylist() == expected_ids
        vsi = regions.read("NORTH_ATLANTIC").read("l4_ssh.nc")
        offset, size, container = VSISUBFILE.match(vsi).groups()
        payload = taco.read_range(container.rsplit("/", 1)[-1], int(offset), int(size))
        assert payload == formatted.read_bytes(CATALOG["l4_ssh"].tile_key("NORTH_ATLANTIC", day))
    return len(inventory)


def snapshot(root: str) -> dict[str, tuple[str, float]]:
    """Every object of the dataset (raw files, tiles, inventory, TACO), not the reports each run adds."""
    storage = Storage(root)
    return {
        k: (storage.sha256(k), Path(storage.full_path(k)).stat().st_mtime)
        for k in storage.list()
        if not k.startswith("reports/") and "/logs/" not in k
    }


def test_pipeline_on_a_local_root_and_a_rerun_rewrites_nothing(upstream, tmp_path):
    root = str(tmp_path / "root")
    report = pipeline(DAYS[0], DAYS[-1], root)
    assert report.days == 3 and not report.verify.failures
    assert report.tiles == check_root(root, upstream)
    before = snapshot(root)
    again = pipeline(DAYS[0], DAYS[-1], root)
    assert again.parts_written == () and not again.published
    assert snapshot(root) == before  # same objects, same bytes, not even rewritten (same mtimes)


def test_oceantaco_run_on_an_s3_root(upstream, s3_bucket):
    root = f"{s3_bucket}/dataset"
    result = CliRunner().invoke(
        app, ["run", "--start-date", "2024-01-30", "--end-date", "2024-02-01", "--root", root]
    )
    assert result.exit_code == 0, result.output
    assert "parts written 2" in result.output
    check_root(root, upstream)


def test_a_corrupt_upstream_day_fails_alone_and_the_rest_is_published(mirror, tmp_path, upstream_env):
    upstream = tmp_path / "upstream"
    shutil.copytree(mirror.cmems_mirror, upstream)
    (bad,) = upstream.rglob(f"dt_global_allsat_phy_l4_{DAYS[1]:%Y%m%d}_*.nc")
    bad.write_bytes(bad.read_bytes()[:4096])  # a truncated file, as an interrupted upstream write leaves it
    upstream_env(str(upstream), mirror.argo_gdac)
    root = str(tmp_path / "root")

    state = pipeline(DAYS[0], DAYS[-1], root, return_state=True)
    with pytest.raises(RuntimeError, match=r"0 download failure\(s\) and 1 \(product, day\) format failure"):
        state.result()
    summary = artifacts_of(state.state_details.flow_run_id)["oceantaco-run-summary"].data
    assert "**Status:** 1 failure(s)" in summary
    assert f"- `l4_ssh {DAYS[1]}: " in summary  # the failed day is named, and its chunk
    assert "- `chunk-0000_20240130-20240201 (2024-01-30..2024-02-01): FAILED after 1 attempt(s): " in summary

    slots = read_slots(Storage(Roots.under(root).taco))
    ssh = {(r["day"], r["available"]) for r in slots if r["slot"].startswith("l4_ssh")}
    assert ssh == {("2024_01_30", True), ("2024_01_31", False), ("2024_02_01", True)}
    assert {r["slot"] for r in slots if r["day"] == "2024_01_31" and r["slot"].startswith("l4_ssh")} == {
        "l4_ssh.missing"
    }
    assert sum(r["slot"] == "argo.nc" for r in slots if r["day"] == "2024_01_31") >= 1  # argo unaffected


def test_an_unreachable_provider_does_not_stop_the_other_product(mirror, tmp_path, upstream_env):
    upstream_env(mirror.cmems_mirror, str(tmp_path / "no-such-gdac"))
    root = str(tmp_path / "root")

    with pytest.raises(RuntimeError, match=r"1 download failure\(s\) and 0 \(product, day\) format failure"):
        pipeline(DAYS[0], DAYS[-1], root)

    slots = read_slots(Storage(Roots.under(root).taco))
    gridded = {p.output_id for p in CATALOG.ordered() if p.provider == "cmems"}  # every CMEMS product
    assert {r["slot"] for r in slots if r["available"]} == gridded
    assert sum(r["available"] for r in slots) == len(DAYS) * len(REGION_NAMES) * len(gridded)
