"""Bad inputs to the format step (issue 9, fault category 3): damaged, mislabelled or missing raw files.

Every bad file is made by damaging a file of the synthetic upstream mirror (``build_mirror``), so it keeps
the real structure except for the one fault. The format step runs through the CLI, as an operator would,
and for each fault the test checks what must hold:

- the run report (saved JSON) and the inventory (``status``, ``reason``) say what happened and why;
- a failed (product, day) has one inventory row without a tile path and no tile on storage;
- the damaged raw file is moved to ``<raw>/quarantine/<key>`` with a JSON sidecar naming the reason;
- the other days are formatted normally, and the exit code is 1 when something failed.

Decisions: out-of-range values and a sparse product's day without a valid observation are accepted with a
note (``values_out_of_range`` / ``no_data``); a gridded product whose main variable is all fill fails; a day
without raw files is ``no_input`` and not a failure (upstream has gaps, e.g. before a mission starts).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from oceantaco.catalog import load_catalog
from oceantaco.cli import app
from oceantaco.formatting import QUARANTINE
from oceantaco.inventory import read_inventory
from oceantaco.steps import select_inventory
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror

CATALOG = load_catalog()
SSH, SMOS, L3_SSH = CATALOG["l4_ssh"], CATALOG["l3_sss_smos_asc"], CATALOG["l3_ssh"]
DAYS = [dt.date(2024, 1, 10), dt.date(2024, 1, 11), dt.date(2024, 1, 12)]
BAD_DAY = DAYS[1]
REGIONS_PER_DAY = 8


@pytest.fixture(scope="module")
def raw_template(tmp_path_factory) -> Path:
    """A raw root as the download step lays it out (``<raw_dir>/<native tree>``), copied from a mirror."""
    mirror = build_mirror(
        tmp_path_factory.mktemp("upstream"),
        DAYS,
        l4_resolution=2.0,
        grid_products=(SMOS.token,),
        grid_resolution=2.0,
        alongtrack_points=300,
    )
    files = {
        SSH.token: {day: [path] for day, path in mirror.l4_ssh_files.items()},
        **mirror.gridded_files,
        **mirror.sparse_files,
    }
    raw = tmp_path_factory.mktemp("raw-template")
    for token, per_day in files.items():
        for paths in per_day.values():
            for path in paths:
                target = raw / CATALOG[token].raw_dir / path.relative_to(mirror.cmems_mirror)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
    return raw


@pytest.fixture
def raw(raw_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the raw root for one test to damage."""
    return Path(shutil.copytree(raw_template, tmp_path / "raw"))


def raw_file(raw: Path, product, day: dt.date) -> Path:
    """The day's one raw file of a product with one file per day."""
    regexes = [d.file_regex(day) for d in product.datasets_for(day)]
    (path,) = [p for p in (raw / product.raw_dir).rglob("*.nc") if any(r.match(p.name) for r in regexes)]
    return path


def run_format(raw: Path, formatted: Path, token: str, days: list[dt.date], *, code: int) -> str:
    """``oceantaco format`` over ``days`` for one product, in-process; the output, after the exit code."""
    args = ["format", "--date-min", str(days[0]), "--date-max", str(days[-1]), "--data-dir", str(raw)]
    args += ["--output-dir", str(formatted), "--only-vars", token, "-p", "1", "--update-existing-inventory"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())  # rich's line wrapping undone


def report_rows(formatted: Path) -> dict[str, dict]:
    """The newest saved format report's rows by day."""
    newest = sorted((formatted / "logs").glob("format_report_*.json"))[-1]
    return {row["day"]: row for row in json.loads(newest.read_text())["days"]}


def inventory_rows(formatted: Path, product, day: dt.date) -> pd.DataFrame:
    """Every inventory row of (product, day), the non-tile ones too."""
    inventory = read_inventory(Storage(str(formatted)), tiles_only=False)
    return inventory[
        (inventory["data_source"] == product.data_source) & (inventory["date_str"] == f"{day:%Y%m%d}")
    ]


def tiles_on_disk(formatted: Path, product, day: dt.date) -> list[Path]:
    return sorted((formatted / product.data_source).glob(f"*_{day:%Y%m%d}.nc"))


def assert_formatted_normally(formatted: Path, product, days: list[dt.date]) -> None:
    """The other days: 8 ok tile rows each, every tile on disk, reported as formatted."""
    rows = report_rows(formatted)
    for day in days:
        assert rows[str(day)]["status"] == "formatted", rows[str(day)]
        inventory = inventory_rows(formatted, product, day)
        assert len(inventory) == REGIONS_PER_DAY and set(inventory["status"]) == {"ok"}
        assert len(tiles_on_disk(formatted, product, day)) == REGIONS_PER_DAY


def assert_failed_and_quarantined(
    raw: Path,
    formatted: Path,
    product,
    day: dt.date,
    bad: Path,
    damaged_sha256: str,
    reason: str,
    output: str,
) -> None:
    """The failure is named in the CLI output, the report and the inventory; the bad file is quarantined."""
    key = bad.relative_to(raw).as_posix()
    assert f"{product.token} {day}" in output.split("failed:")[-1]
    row = report_rows(formatted)[str(day)]
    assert row["status"] == "failed" and row["quarantined"] == [f"{QUARANTINE}/{key}"]
    assert reason in row["reason"] and bad.name in row["reason"]
    (inventory,) = inventory_rows(formatted, product, day).itertuples()
    assert inventory.status == "failed" and inventory.reason == row["reason"]
    assert pd.isna(inventory.relative_path) and pd.isna(inventory.sha256)
    assert tiles_on_disk(formatted, product, day) == []  # nothing of the bad file reached a tile
    # The bad bytes are kept for inspection, out of the day's listing, so a re-download fetches a fresh copy.
    kept = raw / QUARANTINE / key
    assert not bad.exists() and hashlib.sha256(kept.read_bytes()).hexdigest() == damaged_sha256
    sidecar = json.loads(kept.with_name(kept.name + ".json").read_text())
    assert sidecar["original_key"] == key and reason in sidecar["reason"]
    assert sidecar["product"] == product.token and sidecar["day"] == str(day)
    assert sidecar["sha256"] == damaged_sha256


# --- the damages: each takes the intact file and leaves a bad one at the same path ----------------------


def truncate(path: Path, rng: random.Random) -> None:
    """An interrupted transfer: the first half of the bytes."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def hdf5_garbage(path: Path, rng: random.Random) -> None:
    """The HDF5 signature, then random bytes: passes the magic-number check, not HDF5's own."""
    signature = b"\x89HDF\r\n\x1a\n"
    path.write_bytes(signature + rng.randbytes(path.stat().st_size - len(signature)))


def corrupt_chunk(path: Path, rng: random.Random) -> None:
    """Bit rot in one compressed chunk of ``sla``: the header and every other chunk still read."""
    with h5py.File(path, "r") as f:
        chunk = f["sla"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(chunk.byte_offset)
        f.write(rng.randbytes(chunk.size))


def rewrite(path: Path, change: Callable[[xr.Dataset], xr.Dataset]) -> None:
    """Rewrite with xarray, stored values and packing unchanged, after ``change``."""
    with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False, decode_times=False) as ds:
        changed = change(ds.load())
    changed.to_netcdf(path, engine="h5netcdf")


def drop_main_variable(path: Path, rng: random.Random) -> None:
    rewrite(path, lambda ds: ds.drop_vars("sla"))


def rename_dimensions(path: Path, rng: random.Random) -> None:
    """Grid dimensions named ``y``/``x``: the coordinates are still there, the variables' axes are not."""
    rewrite(path, lambda ds: ds.rename_dims({"latitude": "y", "longitude": "x"}))


def all_fill(path: Path, rng: random.Random) -> None:
    with h5py.File(path, "r+") as f:
        f["sla"][...] = f["sla"].attrs["_FillValue"]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (truncate, "cannot be read as NetCDF"),
        (hdf5_garbage, "cannot be read as NetCDF"),
        (corrupt_chunk, "OSError: Can't synchronously read data (filter returned failure during read)"),
        (drop_main_variable, "main variable(s) sla missing"),
        (rename_dimensions, "sla has dims ('time', 'y', 'x'), expected lat and lon"),
        (all_fill, "main variable sla holds only fill values"),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_a_damaged_l4_file_fails_only_its_day_and_is_quarantined(
    raw, raw_template, tmp_path, rng, damage, reason
):
    bad = raw_file(raw, SSH, BAD_DAY)
    damage(bad, rng)
    damaged_sha256 = hashlib.sha256(bad.read_bytes()).hexdigest()
    formatted = tmp_path / "formatted"
    output = run_format(raw, formatted, SSH.token, DAYS, code=1)
    assert_failed_and_quarantined(raw, formatted, SSH, BAD_DAY, bad, damaged_sha256, reason, output)
    assert_formatted_normally(formatted, SSH, [DAYS[0], DAYS[2]])
    # The TACO build takes tiles only: the failed row is never selected.
    selected = select_inventory(read_inventory(Storage(str(formatted)), tiles_only=False))
    assert len(selected) == 2 * REGIONS_PER_DAY and set(selected["status"]) == {"ok"}

    # A fresh copy (here: the intact upstream file again) formats the day and replaces the failed row.
    shutil.copy(raw_template / bad.relative_to(raw), bad)
    run_format(raw, formatted, SSH.token, [BAD_DAY], code=0)
    assert_formatted_normally(formatted, SSH, [BAD_DAY])


def test_values_outside_the_valid_range_become_fill_and_are_reported(raw, tmp_path):
    spec = SSH.variables["sla"]
    path = raw_file(raw, SSH, BAD_DAY)
    with h5py.File(path, "r+") as f:
        sla = f["sla"]
        stored = sla[...]
        box = np.zeros(stored.shape, bool)
        box[0, 50:60, 100:120] = True  # northern hemisphere, 20-40°E: one tile (NORTH_INDIAN)
        box &= stored != sla.attrs["_FillValue"]  # ocean cells only: land stays land
        stored[box] = round(10 * spec.valid_max / sla.attrs["scale_factor"][0])  # 10x the valid maximum
        sla[...] = stored
    formatted = tmp_path / "formatted"
    run_format(raw, formatted, SSH.token, DAYS, code=0)
    assert_formatted_normally(formatted, SSH, DAYS)  # accepted: the day is formatted...
    expected = int(box.sum())
    row = report_rows(formatted)[str(BAD_DAY)]
    assert row["values_out_of_range"] == expected > 0  # ...and the report says how many values were dropped
    assert row["reason"] == f"{expected} value(s) outside the catalog's valid range set to fill"
    inventory = inventory_rows(formatted, SSH, BAD_DAY)
    noted = inventory[inventory["n_out_of_range"] > 0]
    assert list(noted["region"]) == ["NORTH_INDIAN"] and noted["n_out_of_range"].sum() == expected
    assert noted["reason"].str.contains("outside the catalog's valid range").all()
    assert inventory.loc[inventory["n_out_of_range"] == 0, "reason"].isna().all()
    # Only valid data reached the tiles: the out-of-range cells are fill.
    for tile in tiles_on_disk(formatted, SSH, BAD_DAY):
        with xr.open_dataset(tile, engine="h5netcdf") as ds:
            values = ds["sla"].values
        assert np.nanmax(np.abs(values)) <= spec.valid_max
    assert not (raw / QUARANTINE).exists()


def test_a_future_date_is_refused(raw, tmp_path):
    future = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)
    formatted = tmp_path / "formatted"
    run_format(raw, formatted, SSH.token, [DAYS[0]], code=0)
    output = run_format(raw, formatted, SSH.token, [future], code=1)
    assert f"l4_ssh {future}" in output.split("failed:")[-1] and "is in the future" in output
    row = report_rows(formatted)[str(future)]
    assert row["status"] == "failed" and row["quarantined"] == []
    assert row["reason"].startswith(f"{future} is in the future (today is ")
    (inventory,) = inventory_rows(formatted, SSH, future).itertuples()
    assert (
        inventory.status == "failed"
        and inventory.reason == row["reason"]
        and pd.isna(inventory.relative_path)
    )
    assert tiles_on_disk(formatted, SSH, future) == [] and not (raw / QUARANTINE).exists()
    assert len(inventory_rows(formatted, SSH, DAYS[0])) == REGIONS_PER_DAY  # the earlier day is kept


def test_an_empty_day_is_no_input_not_a_failure(raw, tmp_path):
    raw_file(raw, SSH, BAD_DAY).unlink()
    formatted = tmp_path / "formatted"
    run_format(raw, formatted, SSH.token, DAYS, code=0)
    row = report_rows(formatted)[str(BAD_DAY)]
    assert row["status"] == "no_input" and row["reason"].startswith(f"no raw file for {BAD_DAY} under ")
    (inventory,) = inventory_rows(formatted, SSH, BAD_DAY).itertuples()
    assert (
        inventory.status == "no_input"
        and inventory.reason == row["reason"]
        and pd.isna(inventory.relative_path)
    )
    assert_formatted_normally(formatted, SSH, [DAYS[0], DAYS[2]])
    # A re-run finds the same: it rewrites neither the fragment nor the inventory.
    outputs = {p: p.stat().st_mtime_ns for p in formatted.rglob("*.parquet")}
    run_format(raw, formatted, SSH.token, DAYS, code=0)
    assert {p: p.stat().st_mtime_ns for p in formatted.rglob("*.parquet")} == outputs


def test_a_file_name_matching_two_dates_is_used_for_neither(raw, tmp_path):
    """SMOS names allow text after the date, so a name can carry a second one the pattern also accepts."""
    own = raw_file(raw, SMOS, DAYS[0])
    # Sorts after the day's own file, so it is the one the provider picks as the day's newest production.
    ambiguous = own.with_name(own.stem + f"_CSF2QA_{DAYS[1]:%Y%m%d}.nc")
    shutil.copy(raw_file(raw, SMOS, DAYS[1]), ambiguous)
    sha256 = hashlib.sha256(ambiguous.read_bytes()).hexdigest()
    formatted = tmp_path / "formatted"
    output = run_format(raw, formatted, SMOS.token, DAYS[:2], code=1)
    reason = f"the file name matches the pattern of several days ({DAYS[0]}, {DAYS[1]})"
    assert_failed_and_quarantined(raw, formatted, SMOS, DAYS[0], ambiguous, sha256, reason, output)
    assert_formatted_normally(formatted, SMOS, [DAYS[1]])
    # With the mislabelled file out of the way, the day's own file is used.
    run_format(raw, formatted, SMOS.token, [DAYS[0]], code=0)
    assert_formatted_normally(formatted, SMOS, [DAYS[0]])
    sources = inventory_rows(formatted, SMOS, DAYS[0])["source_files"]
    assert {tuple(s) for s in sources} == {(own.name,)}


def test_a_sparse_day_without_valid_observations_is_accepted_as_no_data(raw, tmp_path):
    """Along-track L3: a day whose passes hold only fill has no tile, legitimately (unlike a gridded L4)."""
    regexes = [d.file_regex(BAD_DAY) for d in L3_SSH.datasets_for(BAD_DAY)]
    day_files = [p for p in (raw / L3_SSH.raw_dir).rglob("*.nc") if any(r.match(p.name) for r in regexes)]
    assert day_files
    for path in day_files:
        with h5py.File(path, "r+") as f:
            f["sla_filtered"][...] = f["sla_filtered"].attrs["_FillValue"]
    formatted = tmp_path / "formatted"
    run_format(raw, formatted, L3_SSH.token, DAYS, code=0)
    row = report_rows(formatted)[str(BAD_DAY)]
    assert row["status"] == "formatted" and row["tiles_written"] == 0
    assert row["reason"] == f"the day's {len(day_files)} raw file(s) hold no valid observation in any region"
    (inventory,) = inventory_rows(formatted, L3_SSH, BAD_DAY).itertuples()
    assert (
        inventory.status == "no_data"
        and inventory.reason == row["reason"]
        and pd.isna(inventory.relative_path)
    )
    assert tiles_on_disk(formatted, L3_SSH, BAD_DAY) == [] and not (raw / QUARANTINE).exists()
    for day in (DAYS[0], DAYS[2]):
        assert report_rows(formatted)[str(day)]["tiles_written"] > 0
        assert set(inventory_rows(formatted, L3_SSH, day)["status"]) == {"ok"}
