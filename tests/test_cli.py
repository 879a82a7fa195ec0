"""The seed CLI's three steps on a local root, without Prefect: flags, dry run, refusals, isolation."""

import datetime as dt
import hashlib
import io
import json
import re

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tacoreader
import xarray as xr
from typer.testing import CliRunner

from oceantaco.cli import app
from oceantaco.inventory import SCHEMA, read_inventory
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror
from oceantaco.taco import read_slots

DAYS = [dt.date(2024, 3, 1), dt.date(2024, 3, 2)]
RANGE = ["--start-date", "2024-03-01", "--end-date", "2024-03-02"]
FORMAT_RANGE = ["--date-min", "2024-03-01", "--date-max", "2024-03-02"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return build_mirror(tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=1.0)


@pytest.fixture
def flat(cli):
    """The CLI's output with rich's line wrapping undone."""
    return lambda *args, code=0: " ".join(cli(*args, code=code).split())


def to_parquet_bytes(inventory: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(inventory, schema=SCHEMA, preserve_index=False), buffer)
    return buffer.getvalue()


def fetchable(mirror) -> int:
    """Files a download copies: every upstream file but the Argo index, which is read, not copied."""
    return len(mirror.files) - 1


@pytest.fixture
def cli(mirror, upstream_env):
    upstream_env(mirror.cmems_mirror, mirror.argo_gdac)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        return result.output

    return invoke


def test_dry_run_is_the_default_and_writes_only_its_report(cli, mirror, tmp_path):
    raw = tmp_path / "raw"
    out = cli("download", *RANGE, "--output-dir", str(raw))
    assert "dry run: would fetch" in out
    log, report = sorted((raw / "logs").iterdir())  # download_log_<time>.log, download_report_<time>.json
    assert sorted(p for p in raw.rglob("*") if p.is_file()) == [log, report]
    assert report.name.startswith("download_report_") and log.name.startswith("download_log_")
    assert "summary:" in log.read_text() and "l4_ssh 2024-03-01: 1 file(s)" in log.read_text()
    body = json.loads(report.read_text())
    assert body["summary"]["planned_files"] == fetchable(mirror) and body["downloads"] == []


def test_three_steps_then_a_rerun_that_changes_nothing(cli, mirror, tmp_path):
    raw, formatted, taco = (str(tmp_path / n) for n in ("raw", "formatted", "taco"))
    out = cli("download", *RANGE, "--output-dir", raw, "--download", "--weekly-batches")
    assert f"fetched {fetchable(mirror)} file(s)" in out
    out = cli("format", *FORMAT_RANGE, "--data-dir", raw, "--output-dir", formatted, "-p", "2")
    # not a terminal: plain progress lines a log collector can read, no carriage returns
    assert "format: 22/22 (100%)" in out and "\r" not in out
    inventory = read_inventory(Storage(formatted))
    assert (inventory["data_source"] == "l4_ssh").sum() == 16
    out = cli("build", "--data-dir", formatted, "--output-dir", taco)
    assert "parts written 1" in out and "verify OK" in out
    assert "verify OK: 2 day(s), 16 region sample(s)" in cli("verify", taco)

    out = cli("download", *RANGE, "--output-dir", raw, "--download")
    assert f"fetched 0 file(s), 0.0 MB; skipped {fetchable(mirror)} already present" in out

    def outputs() -> dict:
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "formatted").rglob("*") if "logs" not in p.parts}

    before = outputs()
    out = cli("format", *FORMAT_RANGE, "--data-dir", raw, "--output-dir", formatted, "-p", "1")
    assert out.count("│ unchanged") == 10 * 2  # the status cells: 10 products with input x 2 days
    assert outputs() == before
    assert "nothing changed" in cli("build", "--data-dir", formatted, "--output-dir", taco)


def test_a_bad_raw_file_fails_only_its_day(cli, tmp_path):
    raw, formatted = str(tmp_path / "raw"), str(tmp_path / "formatted")
    cli("download", *RANGE, "--output-dir", raw, "--download", "--sources", "l4_ssh")
    (broken,) = [p for p in (tmp_path / "raw").rglob("*20240302_*.nc")]
    broken.write_bytes(broken.read_bytes()[:5000])  # truncated upload
    out = cli(
        "format",
        *FORMAT_RANGE,
        "--data-dir",
        raw,
        "--output-dir",
        formatted,
        "--only-vars",
        "l4_ssh.nc",
        "-p",
        "1",
        code=1,
    )
    assert "l4_ssh 2024-03-02" in out.split("failed:")[1]
    assert sorted(read_inventory(Storage(formatted))["date_str"].unique()) == ["20240301"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["download", "--swot-level", "l4"], "must be l2 or l3"),
        (["format", "--only-vars", "nonsense"], "unknown product"),
        (["build", "--layout", "tar"], "choose one of zip, folder"),
        (["build", "--resolve-duplicates", "oldest"], "choose one of newest"),
        (["verify", "/nonexistent/taco"], "no published release to verify"),
        (["download", "--dry-run", "--download"], "mutually exclusive"),
    ],
)
def test_wrong_options_are_refused(cli, args, message):
    assert message in cli(*args, code=2)


def test_malformed_date_is_a_usage_error(cli):
    assert "use YYYY-MM-DD" in cli("download", "--start-date", "2024-13-01", code=2)


def test_end_before_start_is_a_usage_error(cli):
    assert "before start date" in cli(
        "format", "--date-min", "2024-03-02", "--date-max", "2024-03-01", code=2
    )


def test_build_without_an_inventory_says_what_to_do(cli, tmp_path):
    out = cli(
        "build", "--data-dir", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "taco"), code=2
    )
    assert "run the format step first" in out


def test_update_existing_inventory_replaces_exactly_the_remade_rows(cli, tmp_path):
    """The original left duplicate SMOS rows: its processor name l3_sss_smos never matched the row names."""
    raw, formatted = str(tmp_path / "raw"), str(tmp_path / "formatted")
    cli(
        "download",
        *RANGE,
        "--output-dir",
        raw,
        "--download",
        "--sources",
        "l4_ssh",
        "--sources",
        "l3_sss_smos",
    )
    only = ["--only-vars", "l4_ssh", "--only-vars", "l3_sss_smos"]
    cli("format", *FORMAT_RANGE, "--data-dir", raw, "--output-dir", formatted, *only, "-p", "1")
    first = read_inventory(Storage(formatted))
    assert first.groupby("data_source").size().to_dict() == {
        "l3_sss_smos_asc": 16,
        "l3_sss_smos_desc": 16,
        "l4_ssh": 16,
    }
    one_day = ["--date-min", "2024-03-02", "--date-max", "2024-03-02"]
    smos = ["--only-vars", "l3_sss_smos"]
    cli(
        "format", *one_day, "--data-dir", raw, "--output-dir", formatted, *smos, "--update-existing-inventory"
    )
    again = read_inventory(Storage(formatted))
    assert not again["relative_path"].duplicated().any()
    assert sorted(again["relative_path"]) == sorted(first["relative_path"])
    cli("format", *one_day, "--data-dir", raw, "--output-dir", formatted, *smos)
    fresh = read_inventory(Storage(formatted))
    assert set(fresh["data_source"]) == {"l3_sss_smos_asc", "l3_sss_smos_desc"} and set(
        fresh["date_str"]
    ) == {"20240302"}


def test_continue_on_error_lets_the_other_products_finish(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCEANTACO_AVISO_USER", "someone")  # and no password: SWOT refuses before connecting
    monkeypatch.delenv("OCEANTACO_AVISO_PASSWORD", raising=False)
    sources = ["--sources", "l3_swot", "--sources", "argo"]  # slot order: SWOT first
    stop, go_on = tmp_path / "stop", tmp_path / "go-on"
    out = cli("download", *RANGE, "--output-dir", str(stop), "--download", *sources, code=1)
    assert "l3_swot failed" in out and not (stop / "argo").exists()
    out = cli(
        "download", *RANGE, "--output-dir", str(go_on), "--download", "--continue-on-error", *sources, code=1
    )
    assert "l3_swot failed" in out and any((go_on / "argo").rglob("*.nc"))
    (report,) = (go_on / "logs").glob("download_report_*.json")
    assert [e["product"] for e in json.loads(report.read_text())["errors"]] == ["l3_swot"]


def test_duplicates_are_analysed_refused_and_resolved_by_the_newest_processing_time(cli, flat, tmp_path):
    raw, formatted, taco = (str(tmp_path / n) for n in ("raw", "formatted", "taco"))
    cli("download", *RANGE, "--output-dir", raw, "--download", "--sources", "l4_ssh")
    cli("format", *FORMAT_RANGE, "--data-dir", raw, "--output-dir", formatted, "-p", "1")
    storage = Storage(formatted)
    inventory = read_inventory(storage)
    # a second tile for one slot, processed later (e.g. a re-run that wrote under another name)
    old = inventory.iloc[0].copy()
    newer = old.copy()
    newer["relative_path"] = old["relative_path"].replace(".nc", "_rerun.nc")
    newer["processed_at"] = old["processed_at"] + pd.Timedelta(hours=1)
    with xr.open_dataset(io.BytesIO(storage.read_bytes(old["relative_path"])), engine="h5netcdf") as ds:
        tile = bytes(ds.assign_attrs(rerun="yes").to_netcdf(engine="h5netcdf"))
    storage.write_bytes(newer["relative_path"], tile)
    newer["sha256"] = hashlib.sha256(tile).hexdigest()
    with_duplicate = pd.concat([inventory, newer.to_frame().T], ignore_index=True)
    storage.write_bytes("file_inventory.parquet", to_parquet_bytes(with_duplicate))
    report_path = str(tmp_path / "reports" / "duplicates.parquet")

    out = flat(
        "build", "--data-dir", formatted, "--analyze-duplicates-only", "--duplicate-report-path", report_path
    )
    assert "whole inventory: Duplicates: 2 of 17 inventory rows" in out
    assert "1 colliding slot(s)" in out and not (tmp_path / "taco").exists()
    report = pd.read_parquet(report_path)
    assert sorted(report["relative_path"]) == sorted([old["relative_path"], newer["relative_path"]])
    assert report.set_index("relative_path")["keep"].to_dict() == {
        old["relative_path"]: False,
        newer["relative_path"]: True,
    }
    day = old["timestamp_file"].date()
    other_day = next(d for d in DAYS if d != day).isoformat()
    out = flat(
        "build",
        "--data-dir",
        formatted,
        "--analyze-duplicates-only",
        "--start-date",
        other_day,
        "--end-date",
        other_day,
    )
    assert "selected rows (products and dates of this build): No duplicates" in out

    out = flat("build", "--data-dir", formatted, "--output-dir", taco, code=2)
    assert "1 slot(s) hold more than one tile" in out and "--resolve-duplicates newest" in out
    assert not (tmp_path / "taco").exists()

    out = flat("build", "--data-dir", formatted, "--output-dir", taco, "--resolve-duplicates", "newest")
    assert f"duplicates dropped (newest processing time wins): 1: {old['relative_path']}" in out
    rows = [r for r in read_slots(Storage(taco)) if r["available"]]
    assert len(rows) == 16  # l4_ssh, 2 days x 8 regions: the duplicate took no slot of its own
    ds = tacoreader.load(taco)
    vsi = ds.read(f"{day:%Y_%m_%d}").read(old["region"]).read("l4_ssh.nc")
    offset, size, container = re.fullmatch(r"/vsisubfile/(\d+)_(\d+),(.+)", vsi).groups()
    with open(container, "rb") as f:
        f.seek(int(offset))
        assert f.read(int(size)) == tile
