"""Flaky providers (issue 9, fault category 2): the real download against servers that fail on purpose.

* SWOT over AVISO FTP: 30 % of connections dropped (421 at the greeting, or closed at login) and of RETRs
  broken (truncated with a lying 226, aborted with 426, or the session reset);
* the Argo GDAC over HTTP: 429 with ``Retry-After``, 503, and connections reset part-way through the body;
* a CMEMS native-layout mirror over HTTP and in S3 (moto behind a proxy answering 503 SlowDown and
  resetting object downloads), and the real copernicusmarine toolbox against the fake Copernicus Marine
  service of tests/services.py with its S3 behind that proxy.

Each test runs the download step's own functions (``steps.plan_downloads`` / ``steps.fetch_day``, reported
through ``steps.DownloadReport`` as the CLI does) and checks that it completes, that every raw file's sha256
is the upstream file's, that the report counts the retries consistently with the faults the server says it
injected, and that no partial file is ever left under a final name (nor a staging file anywhere). Faults are
seeded (see flaky_servers.py), so a run replays exactly. Waits are shortened through the providers' retry
constants and the fsspec/botocore configuration; the servers and their faults are real.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
import s3fs
from flaky_servers import (
    FlakyFTPService,
    FlakyHTTPService,
    start_flaky_ftp_server,
    start_flaky_http_file_server,
    start_flaky_s3_proxy,
)
from services import start_moto_s3

import oceantaco.providers as providers
from oceantaco import steps
from oceantaco.catalog import load_catalog
from oceantaco.providers import FileOutcome, aviso
from oceantaco.providers.argo_gdac import day_index_key
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror
from oceantaco.synthetic_sparse import swot_day, write_swot_pass

CATALOG = load_catalog()
USER, PASSWORD = "flaky-swot", "flaky-Pa55:@/wörd"
SWOT_DAYS = [dt.date(2025, 1, 12), dt.date(2025, 1, 13), dt.date(2025, 1, 14)]
SWOT_ROOT = aviso.swot_layout(Settings(swot_level="l3", swot_kind="Basic")).server_root
MIRROR_DAYS = [dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
FTP_SEED = 10  # a seed under which every kind of FTP fault occurs (most do; this one is checked)
TEMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")  # Storage's staging files


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(
    products: list[str], days: list[dt.date], raw_url: str, settings: Settings
) -> steps.DownloadReport:
    """The download step as the CLI runs it: plan, fetch each day, record everything in one report."""
    report = steps.DownloadReport(started=steps.timestamp(), dry_run=False)
    for product in products:
        for plan in steps.plan_downloads(product, days, settings, raw_url=raw_url):
            report.add_plan(plan)
            report.add_outcomes(plan, steps.fetch_day(plan, raw_url, settings))
    return report


def outcomes_of(report: steps.DownloadReport) -> list[FileOutcome]:
    fields = FileOutcome.__dataclass_fields__
    return [FileOutcome(**{k: v for k, v in row.items() if k in fields}) for row in report.files]


def assert_complete_and_identical(
    report: steps.DownloadReport, raw: Storage, upstream: dict[str, Path]
) -> None:
    """Every planned file arrived (once), with the upstream file's sha256; nothing failed."""
    assert report.errors == [] and report.summary["failed"] == 0, report.files
    fetched = {row["raw_key"] for row in report.files}
    assert fetched == set(upstream), fetched ^ set(upstream)
    for key, path in upstream.items():
        assert sha256(raw.read_bytes(key)) == sha256(path.read_bytes()), key


def assert_no_leftovers(raw_dir: Path, allowed: set[str]) -> None:
    """No staging file anywhere, and every data file under a final name is one that arrived whole."""
    for path in raw_dir.rglob("*"):
        if path.is_file():
            rel = path.relative_to(raw_dir).as_posix()
            assert not TEMP_NAME.match(path.name), f"staging file left behind: {rel}"
            if path.suffix == ".nc":
                assert rel in allowed, f"unexpected file under a final name: {rel}"


def retries_in(report: steps.DownloadReport) -> int:
    total = sum(o.attempts - 1 + o.transport_retries for o in outcomes_of(report))
    assert report.summary["retries"] == total
    return total


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Short waits between tries (the policy itself is unchanged) and fresh FTP pools per test."""
    monkeypatch.setattr(providers, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(providers, "RETRY_AFTER_CAP_SECONDS", 0.05)
    monkeypatch.setattr(aviso, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setenv("OCEANTACO_CMEMS_BACKOFF_SECONDS", "0.01")
    aviso.reset_connection_pools()
    yield
    aviso.reset_connection_pools()


# ---------------------------------------------------------------------------------------------------------
# AVISO FTP (SWOT)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def swot_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("aviso")
    written = set()
    for day in [SWOT_DAYS[0] - dt.timedelta(days=1), *SWOT_DAYS, SWOT_DAYS[-1] + dt.timedelta(days=1)]:
        for cycle, pass_number, start in swot_day(day, n_passes=8, n_lines=200):
            if (cycle, pass_number) not in written:
                written.add((cycle, pass_number))
                write_swot_pass(
                    root / SWOT_ROOT / f"cycle_{cycle:03d}", cycle, pass_number, start, n_lines=400
                )
    return root


def swot_env(monkeypatch: pytest.MonkeyPatch, server: FlakyFTPService, tmp_path: Path) -> Settings:
    monkeypatch.setenv("OCEANTACO_AVISO_FTP_URL", server.url)
    monkeypatch.setenv("OCEANTACO_AVISO_USER", USER)
    monkeypatch.setenv("OCEANTACO_AVISO_PASSWORD", PASSWORD)
    monkeypatch.setenv("OCEANTACO_AVISO_CATALOG_URL", str(tmp_path / "catalog"))
    # One connection at a time: the server meets the faults in the same order on every run.
    monkeypatch.setenv("OCEANTACO_AVISO_MAX_CONNECTIONS", "1")
    return Settings()


def swot_upstream(tree: Path, report: steps.DownloadReport) -> dict[str, Path]:
    names = {p.name: p for p in tree.rglob("SWOT_*.nc")}
    keys = {row["raw_key"] for row in report.files}
    assert keys and all(k.startswith("l3_swot/") for k in keys)
    return {k: names[k.removeprefix("l3_swot/")] for k in keys}


def test_aviso_ftp_dropping_and_truncating_delivers_every_file_and_counts_the_retries(
    swot_tree, tmp_path, monkeypatch
):
    raw_dir = tmp_path / "raw"
    with start_flaky_ftp_server(swot_tree, USER, PASSWORD, fraction=0.3, seed=FTP_SEED) as server:
        settings = swot_env(monkeypatch, server, tmp_path)
        plans = steps.plan_downloads("l3_swot", SWOT_DAYS, settings)  # listing: faults met here too
        before = server.plan.total
        report = steps.DownloadReport(started=steps.timestamp(), dry_run=False)
        for plan in plans:
            report.add_plan(plan)
            report.add_outcomes(plan, steps.fetch_day(plan, str(raw_dir), settings))
        during_fetch = server.plan.total - before
        faults = dict(server.faults)
    print(f"\nAVISO FTP faults injected: {faults}; retries in the report: {report.summary['retries']}")

    upstream = swot_upstream(swot_tree, report)
    assert_complete_and_identical(report, Storage(str(raw_dir)), upstream)
    assert_no_leftovers(raw_dir, set(upstream))
    # Every kind of fault happened, and broken transfers were resumed (REST), not started over.
    assert {"drop_greeting", "drop_login", "truncate", "abort", "reset"} <= set(faults), faults
    assert server.rest > 0
    # Each fault the server injected while files were fetched cost exactly one retry, none more, and
    # the report has them all: per file (transport_retries: resumed in place) and in its summary.
    assert retries_in(report) == during_fetch > 0
    assert aviso.Aviso(settings).pool.stats.retries == server.plan.total  # listing faults included
    assert [o.status for o in outcomes_of(report)].count("ok") == len(upstream)


def test_a_file_the_ftp_server_always_truncates_is_never_published(swot_tree, tmp_path, monkeypatch):
    raw_dir = tmp_path / "raw"
    with start_flaky_ftp_server(swot_tree, USER, PASSWORD, fraction=0.0) as clean:
        plans = steps.plan_downloads("l3_swot", SWOT_DAYS[:1], swot_env(monkeypatch, clean, tmp_path))
    (plan,) = plans
    victim = plan.files[1].source_key
    aviso.reset_connection_pools()
    # Every transfer of the victim stops at half the file and says 226: resuming gets nothing more.
    with start_flaky_ftp_server(
        swot_tree, USER, PASSWORD, fraction=0.0, poison=lambda path: path == "/" + victim
    ) as server:
        settings = swot_env(monkeypatch, server, tmp_path)
        outcomes = steps.fetch_day(plan, str(raw_dir), settings)
        truncated = server.faults["truncate"]
    by_key = {o.raw_key: o for o in outcomes}
    bad = by_key.pop(plan.files[1].raw_key)
    assert bad.status == "failed" and bad.transient and "gave up" in (bad.error or "")
    assert bad.attempts == providers.ATTEMPTS  # whole-file tries...
    assert bad.transport_retries >= providers.ATTEMPTS * (aviso.MAX_ATTEMPTS - 1)  # ...and resumes in each
    assert truncated >= providers.ATTEMPTS
    assert {o.status for o in by_key.values()} == {"ok"}
    raw = Storage(str(raw_dir))
    assert not raw.exists(plan.files[1].raw_key)  # no partial file under the final name
    assert_no_leftovers(raw_dir, set(by_key))
    assert not any(raw.exists(k) for k in plan.sidecars)  # the day is not marked complete


# ---------------------------------------------------------------------------------------------------------
# HTTP: the Argo GDAC and a CMEMS mirror
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory):
    return build_mirror(
        tmp_path_factory.mktemp("mirror"),
        MIRROR_DAYS,
        l4_resolution=1.0,
        grid_products=(),
        alongtrack_points=200,
    )


def http_fault_bounds(server: FlakyHTTPService, before: dict) -> tuple[int, int]:
    """(faults every client must have retried, all faults) since ``before``.

    A fault on a ranged GET (the body of a file being copied) always surfaces as an error; a fault on a HEAD
    may be absorbed by fsspec, which falls back to a GET for a file's size.
    """
    seen = {k: v - before.get(k, 0) for k, v in server.seen.items()}
    must = sum(
        v
        for (method, shape, kind), v in seen.items()
        if method == "GET" and shape == "range" and kind != "served"
    )
    total = sum(v for (_, _, kind), v in seen.items() if kind != "served")
    return must, total


def test_argo_gdac_over_http_answering_429_503_and_resetting_delivers_every_profile(
    mirror, tmp_path, monkeypatch, caplog
):
    caplog.set_level(logging.WARNING, logger="oceantaco.providers")
    raw_dir = tmp_path / "raw"
    gdac = Path(mirror.argo_gdac)
    with start_flaky_http_file_server(gdac, fraction=0.3, seed=11, retry_after=1) as server:
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", server.url)
        settings = Settings()
        plans = steps.plan_downloads("argo", MIRROR_DAYS, settings)  # the index read: faults met too
        before = dict(server.seen)
        report = steps.DownloadReport(started=steps.timestamp(), dry_run=False)
        for plan in plans:
            report.add_plan(plan)
            report.add_outcomes(plan, steps.fetch_day(plan, str(raw_dir), settings))
        must, total = http_fault_bounds(server, before)
        faults = dict(server.faults)
    print(f"\nArgo HTTP faults injected: {faults}; retries in the report: {report.summary['retries']}")

    upstream = {row["raw_key"]: gdac / row["raw_key"].removeprefix("argo/") for row in report.files}
    assert len(upstream) >= 4
    raw = Storage(str(raw_dir))
    assert_complete_and_identical(report, raw, upstream)
    assert_no_leftovers(raw_dir, set(upstream))
    assert all(raw.exists(day_index_key(CATALOG["argo"], d)) for d in MIRROR_DAYS)  # days complete
    assert {"429", "503", "reset"} <= set(faults), faults
    assert 0 < must <= retries_in(report) <= total
    # A 429 carried Retry-After: 1; the wait honoured it (up to the cap the test set).
    honoured = [r for r in caplog.records if "server asked Retry-After 1 s" in r.getMessage()]
    assert honoured and all("in 0.05 s" in r.getMessage() for r in honoured)


def test_a_body_always_reset_part_way_is_never_published(mirror, tmp_path, monkeypatch):
    raw_dir = tmp_path / "raw"
    gdac = Path(mirror.argo_gdac)
    with start_flaky_http_file_server(gdac, fraction=0.0) as clean:
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", clean.url)
        (plan,) = steps.plan_downloads("argo", MIRROR_DAYS[:1], Settings())
    victim = "/" + plan.files[0].source_key
    with start_flaky_http_file_server(gdac, fraction=0.0, poison=lambda path: path == victim) as server:
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", server.url)
        outcomes = steps.fetch_day(plan, str(raw_dir), Settings())
        resets = server.faults["reset"]
    bad, *good = outcomes
    assert bad.status == "failed" and bad.transient and bad.attempts == providers.ATTEMPTS == resets
    assert {o.status for o in good} == {"ok"}
    raw = Storage(str(raw_dir))
    assert not raw.exists(bad.raw_key)
    assert_no_leftovers(raw_dir, {o.raw_key for o in good})
    assert not raw.exists(day_index_key(CATALOG["argo"], plan.day))


def cmems_upstream(mirror, report: steps.DownloadReport) -> dict[str, Path]:
    tree = Path(mirror.cmems_mirror)
    out = {}
    for row in report.files:
        raw_dir = CATALOG[row["product"]].raw_dir
        out[row["raw_key"]] = tree / row["raw_key"].removeprefix(f"{raw_dir}/")
    return out


def cmems_products(mirror) -> list[str]:
    return ["l4_ssh", *sorted(mirror.sparse_files)]


def test_cmems_mirror_over_flaky_http(mirror, tmp_path, monkeypatch):
    raw_dir = tmp_path / "raw"
    tree = Path(mirror.cmems_mirror)
    with start_flaky_http_file_server(tree.parent, fraction=0.3, seed=5) as server:
        monkeypatch.setenv("OCEANTACO_CMEMS_MIRROR", f"{server.url}/{tree.name}")
        report = download(cmems_products(mirror), MIRROR_DAYS, str(raw_dir), Settings())
        faults = dict(server.faults)
    print(
        f"\nCMEMS mirror HTTP faults injected: {faults}; retries in the report: {report.summary['retries']}"
    )
    upstream = cmems_upstream(mirror, report)
    assert len(upstream) >= 2 * len(cmems_products(mirror))
    assert_complete_and_identical(report, Storage(str(raw_dir)), upstream)
    assert_no_leftovers(raw_dir, set(upstream))
    assert 0 < retries_in(report) <= sum(faults.values())


# ---------------------------------------------------------------------------------------------------------
# S3: a CMEMS mirror in moto, behind a proxy answering 503 SlowDown and resetting downloads
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_mirror(mirror) -> Iterator[tuple[str, str]]:
    """(moto URL, s3:// URL of the mirror's cmems tree), uploaded straight to moto (no faults)."""
    import boto3

    with start_moto_s3() as moto:
        client = boto3.client(
            "s3",
            endpoint_url=moto.url,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket="flaky-mirror")
        tree = Path(mirror.cmems_mirror)
        for path in sorted(p for p in tree.rglob("*") if p.is_file()):
            client.upload_file(str(path), "flaky-mirror", f"cmems/{path.relative_to(tree).as_posix()}")
        yield moto.url, "s3://flaky-mirror/cmems"


@pytest.mark.parametrize("library_retries", [True, False], ids=["s3fs-retries", "ours-only"])
def test_cmems_mirror_in_s3_answering_slowdown_and_resetting(
    s3_mirror, mirror, tmp_path, monkeypatch, library_retries
):
    moto_url, mirror_url = s3_mirror
    raw_dir = tmp_path / "raw"
    with start_flaky_s3_proxy(moto_url, fraction=0.3, seed=3) as proxy:
        options: dict = {"endpoint_url": proxy.url, "key": "x", "secret": "x"}
        if not library_retries:
            # s3fs and botocore each retry on their own, unseen by the report; with both off every fault
            # reaches the providers' retries, which must then do the whole job.
            options["config_kwargs"] = {"retries": {"max_attempts": 1, "mode": "standard"}}
            monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
        monkeypatch.setitem(fsspec.config.conf, "s3", options)
        monkeypatch.setenv("OCEANTACO_CMEMS_MIRROR", mirror_url)
        monkeypatch.setattr(providers, "ATTEMPTS", 4)  # the listing sizes are tries too
        report = download(cmems_products(mirror), MIRROR_DAYS, str(raw_dir), Settings())
        faults, (must, total) = dict(proxy.faults), http_fault_bounds(proxy, {})
    print(
        f"\nS3 faults injected ({library_retries=}): {faults}; "
        f"retries in the report: {report.summary['retries']}"
    )
    upstream = cmems_upstream(mirror, report)
    assert_complete_and_identical(report, Storage(str(raw_dir)), upstream)
    assert_no_leftovers(raw_dir, set(upstream))
    assert {"503", "reset"} <= set(faults) and total == sum(faults.values())
    assert retries_in(report) <= total
    if not library_retries:
        # With s3fs' and botocore's retries off, the providers' own retries did the job; s3fs still absorbs
        # some faults (a HEAD answered SlowDown: it then finds the size in a listing), so the report's count
        # is bounded by, not equal to, the faults injected (asserted above); here it must not be zero.
        assert retries_in(report) > 0 and must > 0


def test_cmems_toolbox_against_copernicus_marine_with_a_flaky_s3(mirror, tmp_path, monkeypatch):
    """The real copernicusmarine toolbox against the fake service, its S3 behind the faulty proxy.

    The toolbox drops ports from S3 URLs, so the proxy must listen on 127.0.0.1:80 (moto itself gets a free
    port); skipped when that port cannot be bound.
    """
    from services import free_port, patch_copernicusmarine, start_fake_copernicus_marine

    fake = start_fake_copernicus_marine(mirror.cmems_mirror, tmp_path / "service", s3_port=free_port())
    try:
        try:
            proxy = start_flaky_s3_proxy(fake.s3.url, fraction=0.3, seed=2, port=80)
        except OSError as exc:
            pytest.skip(f"the fake Copernicus Marine needs 127.0.0.1:80 for its S3: {exc}")
        raw_dir = tmp_path / "raw"
        with proxy, patch_copernicusmarine(fake.config_url, user="flaky-cmems"):
            monkeypatch.setenv("COPERNICUSMARINE_SERVICE_USERNAME", "flaky-cmems")
            monkeypatch.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", "flaky-cmems-pw")
            monkeypatch.delenv("OCEANTACO_CMEMS_MIRROR", raising=False)
            report = download(["l4_ssh"], MIRROR_DAYS, str(raw_dir), Settings())
            faults, seen = dict(proxy.faults), dict(proxy.seen)
    finally:
        fake.stop()
    print(f"\nCMEMS toolbox S3 requests {seen}; retries in the report: {report.summary['retries']}")
    upstream = cmems_upstream(mirror, report)
    assert len(upstream) == len(MIRROR_DAYS)
    assert_complete_and_identical(report, Storage(str(raw_dir)), upstream)
    assert_no_leftovers(raw_dir, set(upstream))
    assert {"503", "reset"} <= set(faults), seen  # a HEAD answered SlowDown, a download reset part-way
    # botocore (adaptive mode, 10 attempts) absorbs most faults inside the toolbox; those that escape it are
    # retried by toolbox_call and counted in the file's transport_retries.
    assert retries_in(report) <= sum(faults.values())
