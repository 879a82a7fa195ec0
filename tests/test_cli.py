"""The seed CLI's three steps on a local root, without Prefect: flags, dry run, refusals, isolation."""

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from oceantaco.cli import app
from oceantaco.inventory import read_inventory
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror

DAYS = [dt.date(2024, 3, 1), dt.date(2024, 3, 2)]
RANGE = ["--start-date", "2024-03-01", "--end-date", "2024-03-02"]
FORMAT_RANGE = ["--date-min", "2024-03-01", "--date-max", "2024-03-02"]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return build_mirror(tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=1.0)


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
    inventory = read_inventory(Storage(formatted))
    assert (inventory["data_source"] == "l4_ssh").sum() == 16
    out = cli("build", "--data-dir", formatted, "--output-dir", taco)
    assert "parts written 1" in out and "verified: " in out

    out = cli("download", *RANGE, "--output-dir", raw, "--download")
    assert f"fetched 0 file(s), 0.0 MB; skipped {fetchable(mirror)} already present" in out

    def outputs() -> dict:
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "formatted").rglob("*") if "logs" not in p.parts}

    before = outputs()
    out = cli("format", *FORMAT_RANGE, "--data-dir", raw, "--output-dir", formatted, "-p", "1")
    assert out.count("│ unchanged") == 10 * 2  # the status cells: 10 products with input x 2 days
    assert outputs() == before
    assert "parts written 0, unchanged 1" in cli("build", "--data-dir", formatted, "--output-dir", taco)


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
        (["build", "--analyze-duplicates-only"], "not implemented yet"),
        (["download", "--dry-run", "--download"], "mutually exclusive"),
    ],
)
def test_unimplemented_or_wrong_options_are_refused(cli, args, message):
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
