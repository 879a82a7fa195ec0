"""Run reports: the markdown summary, the coverage table and heatmap, browser URLs, the progress helper,
and (marked prefect) the artifacts read back from the Prefect server.

Expected values are worked out by hand from the hand-made inputs, never from the code under test.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from oceantaco import run_report
from oceantaco.catalog import load_catalog
from oceantaco.chunks import ChunkOutcome, split_days
from oceantaco.formatting import FormatResult
from oceantaco.progress import progress
from oceantaco.regions import REGION_NAMES
from oceantaco.steps import DownloadReport, FormatReport
from oceantaco.storage import Storage
from oceantaco.taco import BuildReport
from oceantaco.verify import VerifyReport

CATALOG = load_catalog()
TOKENS = [p.token for p in CATALOG.ordered()]
D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)


# --- hand-made inputs ----------------------------------------------------------------------------------


def download_report() -> DownloadReport:
    """4 files planned (2,000,000 B); fetched 2 (1,200,000 + 300,000 B), 1 skipped, 1 failed, and one
    product that failed as a whole: 2 failures."""
    report = DownloadReport(started="20240105_000000_000000", dry_run=False)
    report.planned = [{"product": "l4_ssh", "day": "2024-01-01", "files": 4, "bytes": 2_000_000}]
    base = {"product": "l4_ssh", "day": "2024-01-01", "seconds": 1.0, "transient": False, "attempts": 1}
    report.files = [
        {**base, "raw_key": "a.nc", "status": "ok", "bytes": 1_200_000, "error": None},
        {**base, "raw_key": "b.nc", "status": "ok", "bytes": 300_000, "error": None},
        {**base, "raw_key": "c.nc", "status": "skipped", "bytes": 0, "error": None},
        {**base, "raw_key": "d.nc", "status": "failed", "bytes": 0, "error": "TimeoutError: slow"},
    ]
    report.errors = [{"product": "argo", "error_type": "PermissionError", "error_message": "no login"}]
    return report


def format_report() -> FormatReport:
    """2 formatted (8 + 5 tiles written, 3 values out of range), 1 unchanged (8 tiles), 1 without
    input, 1 failed."""
    report = FormatReport(started="20240105_000000_000000")
    report.add("l4_ssh", D1, FormatResult("l4_ssh", D1, "formatted", tiles_written=8, values_out_of_range=3))
    report.add("argo", D1, FormatResult("argo", D1, "formatted", tiles_written=5))
    report.add("l4_ssh", D2, FormatResult("l4_ssh", D2, "unchanged", tiles_unchanged=8))
    report.add("l3_swot", D1, FormatResult("l3_swot", D1, "no_input"))
    report.add("glorys", D1, ValueError("boom: no depth level"))
    return report


def build_report() -> BuildReport:
    verify = VerifyReport(
        days=3, regions=24, payloads_checked=200, payloads_opened=200, placeholders=64, seconds=2.0
    )
    return BuildReport(
        url="/data/taco",
        layout="zip",
        release="20240105T000000Z-ab12",
        published=True,
        days=3,
        tiles=200,
        placeholders=64,
        parts_written=("OceanTACO_2024_01_aaa.tacozip", "OceanTACO_2024_02_bbb.tacozip"),
        parts_unchanged=("OceanTACO_2023_12_ccc.tacozip",),
        tiles_uploaded=0,
        objects_deleted=("OceanTACO_2024_01_old.tacozip",),
        seconds=3.2,
        verify=verify,
    )


def inventory(cells: dict[tuple[dt.date, str], list[str]]) -> pd.DataFrame:
    """Inventory rows (only the columns coverage reads) for (day, data_source) -> regions."""
    rows = [
        {"timestamp_file": pd.Timestamp(day), "data_source": source, "region": region, "size_bytes": 100}
        for (day, source), regions in cells.items()
        for region in regions
    ]
    return pd.DataFrame(rows)


ALL = list(REGION_NAMES)
# 3 days × 2 products: l4_ssh has 8, 7 (one region missing), 8 regions; argo 3, none, 8; one duplicate row
# (the same region twice) must count once.
COVERAGE_CELLS = {
    (D1, "l4_ssh"): ALL,
    (D1, "argo"): ["NORTH_ATLANTIC", "SOUTH_INDIAN", "NORTH_PACIFIC_EAST", "NORTH_ATLANTIC"],
    (D2, "l4_ssh"): [r for r in ALL if r != "SOUTH_ATLANTIC"],
    (D3, "l4_ssh"): ALL,
    (D3, "argo"): ALL,
}


# --- markdown summary ----------------------------------------------------------------------------------


def test_run_summary_markdown_has_the_numbers():
    timings = {"download": 12.5, "format": 125.0, "build": 3.2}  # total 140.7 s = 2 min 21 s
    text = run_report.run_summary_markdown(
        download_report(), format_report(), build_report(), timings, "s3://bucket/oceantaco/taco"
    )
    expected_lines = [
        "**Status:** 3 failure(s)",  # 2 download + 1 format; verify clean
        "| download | 12.5 s |",
        "| format | 2 min 05 s |",
        "| build | 3.2 s |",
        "| **total** | 2 min 21 s |",
        "| files planned | 4 |",
        "| bytes planned | 2,000,000 (2.0 MB) |",
        "| files fetched | 2 |",
        "| files skipped (already present) | 1 |",
        "| failed (files, and products that failed whole) | 2 |",
        "| bytes fetched | 1,500,000 (1.5 MB) |",
        "| (product, day) formatted | 2 |",
        "| (product, day) unchanged | 1 |",
        "| (product, day) without input | 1 |",
        "| (product, day) failed | 1 |",
        "| tiles written | 13 |",
        "| tiles unchanged | 8 |",
        "| values out of range (set to fill) | 3 |",
        "| release | `20240105T000000Z-ab12` published |",
        "| parts written | 2 |",
        "| parts unchanged | 1 |",
        "| objects deleted | 1 |",
        "| tiles | 200 |",
        "| placeholder slots | 64 |",
    ]
    lines = text.splitlines()
    for line in expected_lines:
        assert line in lines, line
    assert "verify OK: 3 day(s), 24 region sample(s), 200 payload(s)" in text
    assert "glorys 2024-01-01: ValueError: boom: no depth level" in text
    assert "argo: PermissionError: no login" in text
    assert "d.nc: TimeoutError: slow" in text
    assert "[`s3://bucket/oceantaco/taco`](" in text


def test_the_summary_names_every_chunk_that_did_not_complete_and_counts_only_the_unreported_ones():
    # Chunk 0 completed on its 2nd attempt (a lost pod), chunk 1 failed and reported its one failed day
    # (counted in the format section), chunk 2 was lost 3 times and left no report: 1 + 1 failures.
    chunks = [ChunkOutcome(c) for c in split_days(D1, D3, 1)]
    chunks[0].attempts = [("a", "CRASHED"), ("b", "COMPLETED")]
    chunks[0].reported = True
    chunks[1].attempts = [("c", "FAILED")]
    chunks[1].reported, chunks[1].message = True, "1 (product, day) format failure(s)"
    chunks[2].attempts = [("d", "CRASHED"), ("e", "CRASHED"), ("f", "CRASHED")]
    format = FormatReport(started="20240105_000000_000000")
    format.add("l4_ssh", D2, ValueError("bad file"))
    text = run_report.run_summary_markdown(None, format, None, chunks=chunks)
    lines = text.splitlines()
    for line in (
        "**Status:** 2 failure(s)",
        "| chunks | 3 |",
        "| completed | 1 |",
        "| submitted again after a lost pod | 2 |",
        "| not completed | 2 |",
        "- `chunk-0001_20240102-20240102 (2024-01-02..2024-01-02): FAILED after 1 attempt(s): "
        "1 (product, day) format failure(s)`",
        "- `chunk-0002_20240103-20240103 (2024-01-03..2024-01-03): CRASHED after 3 attempt(s)`",
    ):
        assert line in lines, (line, text)
    assert "chunk-0000" not in text


def test_run_summary_accepts_partial_runs_and_saved_json():
    # only a download, given as the saved report JSON's body; a dry run; no timings, no dataset
    body = {"summary": {"planned_files": 9, "planned_bytes": 999, "ok": 0, "skipped": 0, "failed": 0}}
    text = run_report.run_summary_markdown({**body, "dry_run": True}, None, None)
    assert "## Download (dry run)" in text
    assert "| files planned | 9 |" in text and "| bytes planned | 999 B |" in text
    assert "**Status:** OK" in text
    assert "## Format" not in text and "## Build" not in text and "| step |" not in text


def test_step_timings_measure_and_survive_errors():
    timings = run_report.StepTimings()
    with timings.step("download"):
        pass
    with pytest.raises(RuntimeError), timings.step("format"):
        raise RuntimeError("x")
    assert set(timings.seconds) == {"download", "format"}
    assert all(s >= 0 for s in timings.seconds.values())
    text = run_report.run_summary_markdown(None, None, None, timings)
    assert "| download |" in text and "| format |" in text


def test_format_helpers():
    assert run_report.format_duration(0.44) == "0.4 s"
    assert run_report.format_duration(3725) == "1 h 02 min"
    assert run_report.format_bytes(999) == "999 B"
    assert run_report.format_bytes(2_500_000_000) == "2,500,000,000 (2.5 GB)"


# --- coverage ------------------------------------------------------------------------------------------


def test_coverage_table_counts_regions_per_day_and_product():
    rows = run_report.coverage_table(inventory(COVERAGE_CELLS), CATALOG)
    others = {t: 0 for t in TOKENS if t not in ("l4_ssh", "argo")}
    assert rows == [
        {"date": "2024-01-01", **others, "l4_ssh": 8, "argo": 3, "tiles": 11},
        {"date": "2024-01-02", **others, "l4_ssh": 7, "argo": 0, "tiles": 7},
        {"date": "2024-01-03", **others, "l4_ssh": 8, "argo": 8, "tiles": 16},
    ]
    assert list(rows[0]) == ["date", *TOKENS, "tiles"]  # catalog slot order


def test_coverage_fills_missing_days_and_honours_a_given_range():
    cells = {(D1, "l4_ssh"): ALL, (D3, "l4_ssh"): ["NORTH_ATLANTIC"], (D3, "not_a_product"): ALL}
    rows = run_report.coverage_table(inventory(cells), CATALOG)
    assert [(r["date"], r["l4_ssh"], r["tiles"]) for r in rows] == [
        ("2024-01-01", 8, 8),
        ("2024-01-02", 0, 0),  # a gap inside the span is a row of zeros
        ("2024-01-03", 1, 1),  # the unknown data source is not counted
    ]
    rows = run_report.coverage_table(inventory(cells), CATALOG, days=[D2, D3, dt.date(2024, 1, 4)])
    assert [(r["date"], r["tiles"]) for r in rows] == [
        ("2024-01-02", 0),
        ("2024-01-03", 1),
        ("2024-01-04", 0),
    ]
    empty = inventory({}).reindex(columns=["timestamp_file", "data_source", "region"])
    assert run_report.coverage_table(empty, CATALOG) == []


def test_coverage_markdown_per_product():
    text = run_report.coverage_markdown(inventory(COVERAGE_CELLS), CATALOG)
    lines = text.splitlines()
    # 3 days × 11 products × 8 regions = 264 possible; 8 + 3 + 7 + 8 + 8 = 34 tiles
    assert "2024-01-01 – 2024-01-03 (3 day(s)): 34 of 264 possible tiles" in text
    assert "| l4_ssh | 2 | 1 | 0 | 23 |" in lines
    assert "| argo | 1 | 1 | 1 | 11 |" in lines
    assert "| glorys | 0 | 0 | 3 | 0 |" in lines


# --- heatmap -------------------------------------------------------------------------------------------


def _image(png: bytes):
    image = pytest.importorskip("PIL.Image")
    return image.open(io.BytesIO(png))


def test_heatmap_is_a_png_that_shows_the_coverage():
    pytest.importorskip("matplotlib")
    png = run_report.coverage_heatmap_png(inventory(COVERAGE_CELLS), CATALOG)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    picture = _image(png)
    assert picture.format == "PNG" and picture.width > 0 and picture.height > 0
    less = dict(COVERAGE_CELLS)
    less[(D3, "argo")] = ["NORTH_ATLANTIC"]
    other = _image(run_report.coverage_heatmap_png(inventory(less), CATALOG))
    assert other.size == picture.size
    assert other.convert("RGB").tobytes() != picture.convert("RGB").tobytes()


def test_heatmap_of_a_year_stays_legible():
    pytest.importorskip("matplotlib")
    start = dt.date(2023, 1, 1)
    year = [start + dt.timedelta(days=i) for i in range(365)]
    cells = {(day, "l4_ssh"): ALL for day in year}
    picture = _image(run_report.coverage_heatmap_png(inventory(cells), CATALOG))
    assert 0 < picture.width <= 1800 and picture.height > 0  # width capped at 18 in × 100 dpi
    ticks = run_report._date_ticks(year, max_labels=28)
    assert 1 < len(ticks) <= 28 and ticks[0] == 0
    assert run_report._date_ticks(year[:5], max_labels=28) == [0, 1, 2, 3, 4]


def test_heatmap_of_an_empty_inventory():
    pytest.importorskip("matplotlib")
    empty = inventory({}).reindex(columns=["timestamp_file", "data_source", "region"])
    assert _image(run_report.coverage_heatmap_png(empty, CATALOG)).width > 0


# --- browser URLs --------------------------------------------------------------------------------------


def test_browser_urls(tmp_path):
    assert run_report.browser_url(str(tmp_path / "a b.png")) == (tmp_path / "a b.png").as_uri()
    assert run_report.browser_url(f"file://{tmp_path}/x", folder=True) == f"{tmp_path.as_uri()}/x/"
    aws: dict[str, str] = {}
    assert run_report.browser_url("s3://b/r/c.png", env=aws) == "https://b.s3.amazonaws.com/r/c.png"
    assert (
        run_report.browser_url("s3://b/r/taco", folder=True, env=aws)
        == "https://s3.console.aws.amazon.com/s3/buckets/b?prefix=r%2Ftaco%2F"
    )
    minio = {"AWS_ENDPOINT_URL": "http://minio:9000/"}
    assert run_report.browser_url("s3://b/r/c.png", env=minio) == "http://minio:9000/b/r/c.png"
    assert run_report.browser_url("gs://b/r/c.png", env={}) == "https://storage.cloud.google.com/b/r/c.png"
    assert (
        run_report.browser_url("gs://b/r/taco", folder=True, env={})
        == "https://console.cloud.google.com/storage/browser/b/r/taco"
    )
    emulator = {"STORAGE_EMULATOR_HOST": "localhost:9023"}
    assert (
        run_report.browser_url("gs://b/r/c.png", env=emulator)
        == "http://localhost:9023/storage/v1/b/b/o/r%2Fc.png?alt=media"
    )
    assert run_report.browser_url("memory://x/y") == "memory://x/y"


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_browser_url_of_an_emulated_bucket_serves_the_object(make_storage_root, backend):
    """On the moto / GCS emulators the URL given to the image artifact really returns the bytes (S3: once
    the object is public-read, as a browser fetches it without credentials)."""
    root = Storage(make_storage_root(backend))
    root.write_bytes("reports/run/coverage.png", b"\x89PNG fake")
    if backend == "s3":
        root.fs.chmod(root.full_path("reports/run/coverage.png"), acl="public-read")
    with urllib.request.urlopen(run_report.browser_url(root.url_of("reports/run/coverage.png"))) as response:
        assert response.read() == b"\x89PNG fake"


# --- progress ------------------------------------------------------------------------------------------


def _plain_console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=False, width=60), out


def test_progress_without_a_terminal_prints_plain_lines():
    console, out = _plain_console()
    with progress(5, "format", console=console) as advance:
        for i in range(5):
            advance(item=f"l4_ssh 2024-01-0{i + 1} " + "x" * 80)  # longer than the console's width
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) == 5  # few items: one line each, none wrapped, no extra closing line
    assert [line.split(",")[0] for line in lines] == [f"format: {i}/5 ({i * 20}%)" for i in range(1, 6)]
    assert "elapsed 00:00" in lines[0] and "eta" in lines[0] and "last: l4_ssh 2024-01-01" in lines[0]


def test_progress_without_a_terminal_thins_many_items():
    console, out = _plain_console()
    with progress(1000, "download", console=console) as advance:
        for _ in range(1000):
            advance()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10  # one line per 10 %
    assert lines[-1].startswith("download: 1000/1000 (100%)")


def test_progress_without_a_terminal_reports_where_it_stopped():
    console, out = _plain_console()
    with pytest.raises(KeyError), progress(1000, "format", console=console) as advance:
        advance(5)
        raise KeyError("x")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("format: 5/1000 (0%)") and lines[0].endswith("stopped by an error")


def test_progress_on_a_terminal_draws_a_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    with progress(3, "format", console=console) as advance:
        for i in range(3):
            advance(item=f"day {i}")
    text = out.getvalue()
    assert "━" in text and "3/3" in text and "format" in text


# --- Prefect artifacts ---------------------------------------------------------------------------------


@pytest.mark.prefect
@pytest.mark.parametrize("backend", ["local", "s3"])
def test_publish_artifacts_reads_back_from_prefect(make_storage_root, backend):
    pytest.importorskip("matplotlib")
    from prefect import flow
    from prefect.runtime import flow_run
    from prefect_helpers import artifacts_of

    from oceantaco.prefect_artifacts import publish_artifacts

    root = make_storage_root(backend)
    dataset_url = f"{root}/taco"

    @flow(name="oceantaco-artifacts-test")
    def report_flow():
        published = publish_artifacts(
            dataset_url=dataset_url,
            reports_url=f"{root}/reports",
            inventory=inventory(COVERAGE_CELLS),
            download=download_report(),
            format=format_report(),
            build=build_report(),
            timings={"download": 12.5, "format": 125.0, "build": 3.2},
        )
        return flow_run.get_id(), published

    run_id, published = report_flow()
    by_key = artifacts_of(run_id)
    assert set(by_key) == {
        "oceantaco-run-summary",
        "oceantaco-coverage",
        "oceantaco-coverage-heatmap",
        "oceantaco-dataset",
    }

    summary = by_key["oceantaco-run-summary"]
    assert summary.type == "markdown"
    expected = ["| files fetched | 2 |", "| tiles written | 13 |", "| parts written | 2 |"]
    expected.append("| l4_ssh | 2 | 1 | 0 | 23 |")  # the coverage section
    for line in expected:
        assert line in summary.data.splitlines(), line

    table = by_key["oceantaco-coverage"]
    assert table.type == "table"
    rows = json.loads(table.data)
    assert [(r["date"], r["l4_ssh"], r["argo"]) for r in rows] == [
        ("2024-01-01", 8, 3),
        ("2024-01-02", 7, 0),
        ("2024-01-03", 8, 8),
    ]

    image = by_key["oceantaco-coverage-heatmap"]
    assert image.type == "image"
    png_key = f"reports/{run_id}/coverage.png"
    storage = Storage(root)
    assert storage.read_bytes(png_key).startswith(b"\x89PNG")
    assert published.heatmap_url == storage.url_of(png_key)
    assert image.data == published.heatmap_browser_url
    assert published.heatmap_url in summary.data and image.data in summary.data
    if backend == "s3":  # a browser fetches it without credentials
        storage.fs.chmod(storage.full_path(png_key), acl="public-read")
    with urllib.request.urlopen(image.data) as response:  # file:// or the moto endpoint: the PNG itself
        assert response.read() == storage.read_bytes(png_key)

    link = by_key["oceantaco-dataset"]
    assert link.type == "markdown"
    if backend == "local":
        assert link.data == f"[{dataset_url}]({Path(dataset_url).as_uri()}/)"
    else:
        bucket_path = dataset_url.removeprefix("s3://")
        assert link.data.startswith(f"[{dataset_url}](http://") and f"/{bucket_path}/)" in link.data
