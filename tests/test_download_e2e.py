"""End to end: ``oceantaco download --download`` of every product from real protocols on 127.0.0.1.

Issue 5's "Done when": all 11 products over three days from local servers into a local root and an ``s3://``
root, byte-identical to upstream, a second run that transfers nothing, and a format step that takes the
result. Upstream is served the way each provider reaches it in production:

* Copernicus Marine: the real ``copernicusmarine`` toolbox against a fake service (STAC catalogue over HTTP,
  native files and a GLORYS ARCO zarr in moto S3 on 127.0.0.1:80; GLORYS comes through ``subset``);
* SWOT: a pyftpdlib server with the AVISO tree, the user and password in the environment;
* Argo: the GDAC folder over HTTP (and over FTP, anonymous, as the GDACs serve it).

Also: a downloader killed with SIGKILL at seeded points and started again, the Argo GDAC over both
protocols with the real index and profile samples, and every output scanned for the test secrets.

Upstream is kept small so the module stays fast. Every Copernicus Marine file is one toolbox call of about
0.7 s here, so besides coarse grids, 200-point along-track files and 200-line SWOT passes, the hourly wind
is kept every 12 hours (the loader aggregates whatever hourly steps a day has) and each along-track
satellite flies one day of the three. Throughput per provider is printed (``pytest -s``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import xarray as xr
from services import (
    FTPService,
    SlowHTTPService,
    patch_copernicusmarine,
    start_fake_copernicus_marine,
    start_ftp_server,
    start_slow_http_file_server,
)
from typer.testing import CliRunner

from oceantaco.catalog import load_catalog
from oceantaco.cli import app
from oceantaco.inventory import read_inventory
from oceantaco.providers import aviso, cmems
from oceantaco.providers.argo_gdac import day_index_key
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror
from oceantaco.synthetic_grids import write_product_day
from oceantaco.synthetic_sparse import swot_day, write_swot_pass

pytestmark = pytest.mark.e2e

CATALOG = load_catalog()
ALL_PRODUCTS = [p.token for p in CATALOG.ordered()]  # slot order
# Within one month: the toolbox transport lists each dataset once per month.
DAYS = [dt.date(2024, 6, 10), dt.date(2024, 6, 11), dt.date(2024, 6, 12)]
RANGE = ["--start-date", "2024-06-10", "--end-date", "2024-06-12"]
FORMAT_RANGE = ["--date-min", "2024-06-10", "--date-max", "2024-06-12"]
GLORYS_PRODUCT = "GLOBAL_MULTIYEAR_PHY_001_030"
WIND_HOURS = ("00", "12")
SWOT_PASSES, SWOT_LINES = 3, 200
SWOT_ROOT = aviso.swot_layout(Settings(swot_level="l3", swot_kind="Basic")).server_root

CMEMS_USER, CMEMS_PASSWORD = "e2e-cmems-user-7f3a", "e2e-cmems-Pa55-91c4"
AVISO_USER, AVISO_PASSWORD = "e2e-swot-user", "e2e-swot-Pa55:@/wörd-3b8e"
SECRETS = (CMEMS_USER, CMEMS_PASSWORD, AVISO_PASSWORD)
PROVIDER_OF = {token: CATALOG[token].provider for token in ALL_PRODUCTS}
# Argo core profile files: R (real-time) or D (delayed mode), a trailing D for descending profiles; not the
# B (BGC), S (synthetic) or M (merged) files.
ARGO_CORE = re.compile(r"[RD]\d+_\d+D?\.nc")


# ---------------------------------------------------------------------------------------------------------
# Upstream trees and what a download of them must produce
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    cmems: Path  # Copernicus Marine native tree
    gdac: Path  # Argo GDAC tree
    aviso: Path  # AVISO FTP tree

    def expected(self, days: list[dt.date], products: list[str] | None = None) -> dict[str, Path]:
        """raw key -> upstream file of everything a download of ``days`` must fetch (GLORYS: the native file
        it is cut from), worked out from the trees and the catalog, not from the providers."""
        products = products or ALL_PRODUCTS
        wanted: dict[str, Path] = {}
        for path in sorted(p for p in self.cmems.rglob("*.nc")):
            rel = path.relative_to(self.cmems)
            dataset_id = rel.parts[1].rsplit("_", 1)[0]
            for token in products:
                for dataset in CATALOG[token].datasets:
                    if dataset.dataset_id == dataset_id and any(
                        dataset.file_regex(day).match(path.name)
                        and dataset in CATALOG[token].datasets_for(day)
                        for day in days
                    ):
                        wanted[f"{CATALOG[token].raw_dir}/{rel.as_posix()}"] = path
        if "l3_swot" in products:
            names = {p.name: p for p in self.aviso.rglob("SWOT_*.nc")}
            for day in days:
                for found in (aviso.PassFile.parse(name) for name in names):
                    if found is not None and found.overlaps(day):
                        wanted[f"l3_swot/{found.key}"] = names[found.key]
        if "argo" in products:
            for row in read_index_rows(self.gdac / "ar_index_global_prof.txt"):
                if row["date"][:8] in {f"{d:%Y%m%d}" for d in days} and ARGO_CORE.fullmatch(
                    row["file"].rsplit("/", 1)[-1]
                ):
                    wanted[f"argo/dac/{row['file']}"] = self.gdac / "dac" / row["file"]
        return wanted


def read_index_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    header = lines[0].split(",")
    return [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]


def build_upstream(root: Path, days: list[dt.date]) -> Upstream:
    mirror = build_mirror(
        root / "mirror", days, l4_resolution=1.0, grid_resolution=4.0, alongtrack_points=200
    )
    cmems_tree = Path(mirror.cmems_mirror)
    files = sorted(cmems_tree.rglob("*.nc"))
    for index, day in enumerate(days):
        # Hourly wind every 12 hours: the same layout and names, a twelfth of the toolbox calls.
        for dataset in CATALOG["l4_wind"].datasets_for(day):
            regex = dataset.file_regex(day)
            for path in files:
                found = regex.match(path.name)
                if found and found["step"] not in WIND_HOURS:
                    path.unlink()
        # Along-track: each satellite flies one day of the three (two or three satellites a day).
        for number, dataset in enumerate(CATALOG["l3_ssh"].datasets_for(day)):
            if (number + index) % len(days):
                for path in files:
                    if dataset.file_regex(day).match(path.name):
                        path.unlink()
    # A decoy outside the range: upstream has it, no plan may take it.
    write_product_day(cmems_tree, "l4_sst", days[-1] + dt.timedelta(days=1), resolution=4.0)
    swot = root / "aviso"
    written: set[tuple[int, int]] = set()
    for day in [*days, days[-1] + dt.timedelta(days=1)]:  # the day after: decoys but for the crossing pass
        for cycle, pass_number, start in swot_day(day, n_passes=SWOT_PASSES, n_lines=SWOT_LINES):
            if (cycle, pass_number) not in written:
                written.add((cycle, pass_number))
                folder = swot / SWOT_ROOT / f"cycle_{cycle:03d}"
                write_swot_pass(folder, cycle, pass_number, start, n_lines=SWOT_LINES)
    return Upstream(cmems_tree, Path(mirror.argo_gdac), swot)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Upstream:
    return build_upstream(tmp_path_factory.mktemp("upstream"), DAYS)


# ---------------------------------------------------------------------------------------------------------
# Helpers: reports, integrity, secrets, throughput
# ---------------------------------------------------------------------------------------------------------


def reports(raw: Storage) -> dict[str, str]:
    """key -> text of every report and run log under ``<raw>/logs``."""
    return {key: raw.read_bytes(key).decode() for key in raw.list("logs")}


def new_report(raw: Storage, before: dict[str, str]) -> tuple[dict, str]:
    """The JSON report and the run log a run added to ``<raw>/logs``."""
    added = {k: v for k, v in reports(raw).items() if k not in before}
    (report,) = [v for k, v in added.items() if k.endswith(".json")]
    (log,) = [v for k, v in added.items() if k.endswith(".log")]
    return json.loads(report), log


def data_keys(raw: Storage) -> set[str]:
    """Downloaded files: everything but reports, logs, the AVISO catalog cache and the Argo day indexes."""
    return {
        k
        for k in raw.list()
        if not k.startswith(("logs/", "l3_swot/catalog/")) and not k.startswith("argo/index/")
    }


def local_leftovers(root: Path) -> list[Path]:
    """Hidden staging files (``.<name>.tmp-<uuid>``) under a local root."""
    return sorted(p for p in root.rglob(".*.tmp-*") if p.is_file())


def assert_identical(raw: Storage, expected: dict[str, Path], keys: set[str] | None = None) -> None:
    # Another process wrote these objects after this one listed their folders; s3fs's listings cache would
    # still say they are missing (Storage.read_bytes does not refresh it), so start from a clean cache.
    raw.fs.invalidate_cache()
    for key in sorted(keys if keys is not None else expected):
        native = expected[key].read_bytes()
        if key.startswith("glorys/"):  # cut by subset: its own file under the native name
            check_glorys_cut(raw, key, len(native))
        else:
            assert raw.read_bytes(key) == native, f"{key} differs from upstream"


def check_glorys_cut(raw: Storage, key: str, native_size: int) -> None:
    assert 0 < raw.size(key) < native_size, key
    with raw.local_copy(key) as path, xr.open_dataset(path) as cut:
        assert sorted(cut.data_vars) == ["so", "thetao", "uo", "vo", "zos"]
        assert cut.sizes["time"] == 1 and cut.sizes["depth"] == 2


def assert_no_secrets(*texts: str, where: str = "") -> None:
    for text in texts:
        for index, secret in enumerate(SECRETS):
            if secret in text:  # not an assert: its message would print the secret
                pytest.fail(f"test secret #{index} appears in {where or 'an output'}")


def throughput(report: dict, seconds: float, label: str) -> dict[str, dict]:
    """Per provider: files and bytes fetched, the per-file transfer seconds, and rates; printed."""
    rows: dict[str, dict] = defaultdict(lambda: {"files": 0, "bytes": 0, "seconds": 0.0})
    for row in report["downloads"]:
        if row["status"] == "ok":
            stats = rows[PROVIDER_OF[row["product"]]]
            stats["files"] += 1
            stats["bytes"] += row["bytes"]
            stats["seconds"] += row["seconds"]
    for provider, stats in sorted(rows.items()):
        busy = max(stats["seconds"], 1e-9)
        stats["MB/s"] = stats["bytes"] / 1e6 / busy
        stats["files/s"] = stats["files"] / busy
        print(
            f"\nthroughput {label} {provider}: {stats['files']} files, {stats['bytes'] / 1e6:.2f} MB in "
            f"{stats['seconds']:.1f} s of transfers: {stats['MB/s']:.2f} MB/s, {stats['files/s']:.1f} files/s"
        )
    print(f"\nthroughput {label}: whole run {seconds:.1f} s (planning included)")
    return dict(rows)


# ---------------------------------------------------------------------------------------------------------
# 1. All 11 products, 3 days, from the local servers, into a local and an s3:// root
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Servers:
    ftp: FTPService
    gdac: SlowHTTPService
    cmems_config_url: str


@pytest.fixture(scope="module")
def servers(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """The fake Copernicus Marine service, the AVISO FTP server and the GDAC over HTTP; the environment
    points the pipeline at them as a pod's would (secrets in variables, never in arguments)."""
    try:
        fake = start_fake_copernicus_marine(
            upstream.cmems, tmp_path_factory.mktemp("cmems-service"), arco_products=(GLORYS_PRODUCT,)
        )
    except OSError as exc:
        pytest.skip(f"the toolbox drops ports from S3 URLs, so its fake needs moto on 127.0.0.1:80: {exc}")
    try:
        with (
            start_ftp_server(upstream.aviso, AVISO_USER, AVISO_PASSWORD) as ftp,
            # No throttle: the recorded requests show what a second run reads.
            start_slow_http_file_server(upstream.gdac, bytes_per_second=1e12) as gdac,
            patch_copernicusmarine(fake.config_url, user=CMEMS_USER),
            pytest.MonkeyPatch.context() as mp,
        ):
            mp.setenv("COPERNICUSMARINE_SERVICE_USERNAME", CMEMS_USER)
            mp.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", CMEMS_PASSWORD)
            mp.setenv("OCEANTACO_CMEMS_BACKOFF_SECONDS", "0.05")
            mp.delenv("OCEANTACO_CMEMS_MIRROR", raising=False)
            mp.delenv("OCEANTACO_AVISO_CATALOG_URL", raising=False)  # the CLI keeps it in the raw root
            mp.setenv("OCEANTACO_AVISO_FTP_URL", ftp.url)
            mp.setenv("OCEANTACO_AVISO_USER", AVISO_USER)
            mp.setenv("OCEANTACO_AVISO_PASSWORD", AVISO_PASSWORD)
            mp.setenv("OCEANTACO_ARGO_GDAC", gdac.url)
            aviso.reset_connection_pools()
            yield Servers(ftp, gdac, fake.config_url)
    finally:
        aviso.reset_connection_pools()
        fake.stop()


@pytest.fixture
def counting_transfers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Descriptions of the toolbox calls made meanwhile in this process (describe/list/get/subset)."""
    calls: list[str] = []
    real = cmems.toolbox_call

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(cmems, "toolbox_call", counting)
    return calls


# The same CLI in a child process, with the toolbox pointed at the fake service as in this process: the s3
# root's runs go there, concurrently with the local root's (each toolbox call costs ~0.5 s of mostly
# client-side work, so two processes halve the wall time on two cores). Settings and secrets come from the
# inherited environment; argv holds the tests folder, the (public) fake catalogue URL and CLI arguments.
CHILD_CLI = """
import os, sys
sys.path.insert(0, sys.argv[1])
from services import patch_copernicusmarine
from oceantaco.cli import app
with patch_copernicusmarine(sys.argv[2], user=os.environ["COPERNICUSMARINE_SERVICE_USERNAME"]):
    app(sys.argv[3:], prog_name="oceantaco")
"""


@dataclass
class Run:
    output: str
    exit_code: int
    seconds: float
    argv: tuple[str, ...] = ()


def run_both(servers: Servers, local_args: list[str], child_args: list[str]) -> tuple[Run, Run]:
    """``oceantaco <local_args>`` here (CliRunner) while ``oceantaco <child_args>`` runs in a child."""
    argv = (
        sys.executable,
        "-c",
        CHILD_CLI,
        str(Path(__file__).parent),
        servers.cmems_config_url,
        *child_args,
    )
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        result = CliRunner().invoke(app, local_args)
        local = Run(result.output, result.exit_code, time.perf_counter() - started)
        output, _ = child.communicate(timeout=600)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return local, Run(output, child.returncode, time.perf_counter() - started, argv)


def check_first_run(raw: Storage, report: dict, expected: dict[str, Path]) -> None:
    assert report["errors"] == [] and report["summary"]["failed"] == 0, report["errors"]
    planned = {(row["product"], row["day"]): row["files"] for row in report["planned"]}
    assert sorted(planned) == sorted((t, d.isoformat()) for t in ALL_PRODUCTS for d in DAYS)
    assert all(planned.values()), f"a product has no file on some day: {planned}"
    statuses = defaultdict(list)
    for row in report["downloads"]:
        statuses[row["raw_key"]].append(row["status"])
    assert set(statuses) == set(expected)  # every planned file, and nothing else
    # Each file is fetched once; a SWOT pass crossing midnight is planned for both days, then present.
    assert all(s[0] == "ok" and set(s[1:]) <= {"skipped"} for s in statuses.values()), statuses
    assert data_keys(raw) == set(expected)
    assert_identical(raw, expected)
    for day in DAYS:  # each Argo day is marked complete
        assert raw.exists(day_index_key(CATALOG["argo"], day))
    if raw.is_local:
        assert local_leftovers(Path(raw.url)) == []


def test_all_products_three_days_into_local_and_s3_roots_then_nothing_then_format(
    upstream, servers, make_storage_root, tmp_path, caplog, counting_transfers
):
    caplog.set_level(logging.INFO)
    roots = {"local": make_storage_root("local"), "s3": make_storage_root("s3")}
    raws = {backend: Storage(url) for backend, url in roots.items()}
    expected = upstream.expected(DAYS)
    assert {key.split("/", 1)[0] for key in expected} >= {CATALOG[t].raw_dir for t in ALL_PRODUCTS}

    def download(backend: str) -> list[str]:
        return ["download", *RANGE, "--output-dir", roots[backend], "--download"]

    first = dict(zip(roots, run_both(servers, download("local"), download("s3")), strict=True))
    reports_first = {}
    for backend, run in first.items():
        assert run.exit_code == 0, f"{backend}: {run.output}"
        reports_first[backend], _ = new_report(raws[backend], {})
        check_first_run(raws[backend], reports_first[backend], expected)
        throughput(reports_first[backend], run.seconds, f"{backend} first run")
    assert any(c.startswith("subset ") for c in counting_transfers)  # GLORYS: subset, not the native file

    # A second run transfers nothing: every file skipped from the plan's sizes, nothing read upstream.
    counting_transfers.clear()
    retr, gdac_requests = servers.ftp.stats.retr, len(servers.gdac.requests)
    before = {backend: reports(raw) for backend, raw in raws.items()}
    second = dict(zip(roots, run_both(servers, download("local"), download("s3")), strict=True))
    for backend, run in second.items():
        assert run.exit_code == 0, f"{backend}: {run.output}"
        again, _ = new_report(raws[backend], before[backend])
        summary = again["summary"]
        assert (summary["ok"], summary["failed"], summary["bytes_transferred"]) == (0, 0, 0), summary
        assert summary["skipped"] == len(reports_first[backend]["downloads"]) == summary["planned_files"]
        assert {row["status"] for row in again["downloads"]} == {"skipped"}
        print(f"\nsecond run ({backend}): {run.seconds:.1f} s, nothing transferred")
    assert not [c for c in counting_transfers if c.startswith(("get ", "subset "))]
    assert servers.ftp.stats.retr == retr  # the AVISO catalog comes from the raw root's cache
    gets = [path for method, path in servers.gdac.requests[gdac_requests:] if method == "GET"]
    assert "/ar_index_global_prof.txt" in gets  # the index, read to plan...
    assert not [path for path in gets if path.startswith("/dac/")]  # ...but no profile

    # The format step takes every product of the three days. From the s3 root into a bucket, as in a pod;
    # the local root holds the same bytes (both were compared with upstream above).
    formatted = Storage(make_storage_root("s3"))
    started = time.perf_counter()
    result = CliRunner().invoke(
        app, ["format", *FORMAT_RANGE, "--data-dir", roots["s3"], "--output-dir", formatted.url, "-p", "2"]
    )
    fmt = Run(result.output, result.exit_code, time.perf_counter() - started)
    assert fmt.exit_code == 0, fmt.output
    print(f"\nformat (s3 to s3): {fmt.seconds:.1f} s")
    inventory = read_inventory(formatted)
    assert sorted(inventory["data_source"].unique()) == sorted(CATALOG[t].data_source for t in ALL_PRODUCTS)
    (format_report,) = [k for k in formatted.list("logs") if k.startswith("logs/format_report_")]
    days_formatted = json.loads(formatted.read_bytes(format_report))["days"]
    assert {(r["product"], r["day"]): r["status"] for r in days_formatted} == {
        (t, d.isoformat()): "formatted" for t in ALL_PRODUCTS for d in DAYS
    }

    # Secrets: in no output, argv, report, run log, cached catalog or captured log line.
    for backend, raw in raws.items():
        runs = (first[backend], second[backend], fmt)
        texts = [r.output for r in runs] + [" ".join(r.argv) for r in runs]
        texts += [raw.read_bytes(k).decode() for k in raw.list() if not k.endswith(".nc")]
        assert_no_secrets(*texts, where=f"the {backend} runs' outputs")
    assert_no_secrets(caplog.text, where="the captured log")


# ---------------------------------------------------------------------------------------------------------
# 2. Kill and restart: SIGKILL a downloader mid-way at seeded points, then run it again to completion
# ---------------------------------------------------------------------------------------------------------

KILL_PRODUCTS = ["l4_ssh", "l3_ssh", "l3_swot", "argo"]
KILL_RATE = 5e5  # bytes/s per connection of the slow HTTP server
KILL_LATENCY = 0.01  # s per request


@pytest.fixture(scope="module")
def kill_upstream(upstream: Upstream) -> Iterator[tuple[Upstream, SlowHTTPService, FTPService]]:
    """The CMEMS native tree (as a mirror) and the GDAC behind one slow HTTP server; SWOT over FTP."""
    root = upstream.cmems.parent
    with (
        start_slow_http_file_server(root, bytes_per_second=KILL_RATE, latency_seconds=KILL_LATENCY) as http,
        start_ftp_server(upstream.aviso, AVISO_USER, AVISO_PASSWORD) as ftp,
    ):
        yield upstream, http, ftp


def oceantaco_command() -> str:
    script = Path(sys.executable).parent / "oceantaco"
    if not script.exists():
        pytest.skip(f"the oceantaco console script is not installed next to {sys.executable}")
    return str(script)


def count_final(raw: Storage, expected: dict[str, Path]) -> int:
    if raw.is_local:
        root = Path(raw.url)
        return sum((root / key).is_file() for key in expected)
    try:
        return len(data_keys(raw) & set(expected))
    except ValueError:
        # s3fs race: when a prefix gets its first object between find's listing and its fallback info()
        # call, find returns the prefix itself, which Storage.list refuses. Polling again is enough here.
        return 0


@pytest.mark.parametrize(("backend", "seed"), [("local", 1), ("local", 2), ("s3", 3)])
def test_killed_download_resumes_with_only_what_is_missing(
    backend, seed, kill_upstream, make_storage_root, tmp_path
):
    upstream, http, ftp = kill_upstream
    rng = random.Random(seed)
    raw_url = make_storage_root(backend)
    raw = Storage(raw_url)
    scratch = tmp_path / "scratch"  # the downloader's temp dir, to see what a kill leaves there
    scratch.mkdir()
    expected = upstream.expected(DAYS, KILL_PRODUCTS)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OCEANTACO_", "COPERNICUSMARINE_"))},
        "OCEANTACO_CMEMS_MIRROR": f"{http.url}/{upstream.cmems.name}",
        "OCEANTACO_ARGO_GDAC": f"{http.url}/{upstream.gdac.name}",
        "OCEANTACO_AVISO_FTP_URL": ftp.url,
        "OCEANTACO_AVISO_USER": AVISO_USER,
        "OCEANTACO_AVISO_PASSWORD": AVISO_PASSWORD,
        "TMPDIR": str(scratch),
    }
    argv = [oceantaco_command(), "download", *RANGE, "--output-dir", raw_url, "--download"]
    for token in KILL_PRODUCTS:
        argv += ["--sources", token]
    assert_no_secrets(" ".join(argv), where="the downloader's argv")  # what `ps` would show

    kill_at = rng.randint(2, len(expected) * 3 // 4)
    out = tmp_path / "killed.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while count_final(raw, expected) < kill_at:
                assert proc.poll() is None, f"finished before the kill point:\n{out.read_text()}"
                assert time.monotonic() < deadline, "no progress"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.05))  # somewhere inside the next transfer
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    present = data_keys(raw) & set(expected)
    assert kill_at <= len(present) < len(expected)
    assert data_keys(raw) == present  # nothing under any other name
    assert_identical(raw, expected, present)  # no partial file under a final name
    leftovers = local_leftovers(Path(raw_url)) if backend == "local" else []
    for day in DAYS:  # a day marked complete has all its profiles
        if raw.exists(day_index_key(CATALOG["argo"], day)):
            assert set(upstream.expected([day], ["argo"])) <= present
    print(
        f"\nkill seed {seed} ({backend}): killed after {len(present)} of {len(expected)} files, "
        f"{len(leftovers)} staging file(s) left under hidden temp names, "
        f"{sum(1 for _ in scratch.rglob('*'))} scratch entries"
    )

    started = time.perf_counter()
    resumed = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report, log = new_report(raw, {})
    missing = set(expected) - present
    fetched = [row["raw_key"] for row in report["downloads"] if row["status"] == "ok"]
    assert sorted(fetched) == sorted(missing)  # only what was missing, each once
    assert {row["status"] for row in report["downloads"] if row["raw_key"] in present} == {"skipped"}
    assert report["summary"]["failed"] == 0
    assert report["summary"]["bytes_transferred"] == sum(expected[k].stat().st_size for k in missing)
    assert data_keys(raw) == set(expected)
    assert_identical(raw, expected)
    for day in DAYS:
        assert raw.exists(day_index_key(CATALOG["argo"], day))
    throughput(report, seconds, f"kill seed {seed} resumed ({backend})")
    if backend == "local":  # staging files of the killed run: hidden from listings, but nothing removes them
        orphans = len(local_leftovers(Path(raw_url)))
        print(f"\nkill seed {seed}: {orphans} staging file(s) still there after the rerun")
    assert_no_secrets(
        out.read_text(errors="replace"),
        resumed.stdout,
        resumed.stderr,
        log,
        json.dumps(report),
        where="the killed or resumed downloader's outputs",
    )


# ---------------------------------------------------------------------------------------------------------
# 3. Argo GDAC over FTP and HTTP: the index, then only the day's core profiles
# ---------------------------------------------------------------------------------------------------------


def gdac_server(transport: str, root: Path) -> SlowHTTPService | FTPService:
    if transport == "ftp":  # the GDACs serve FTP anonymously
        return start_ftp_server(root, "anonymous", "any")
    return start_slow_http_file_server(root, bytes_per_second=1e12)


def reads_so_far(server: SlowHTTPService | FTPService) -> int:
    return server.stats.retr if isinstance(server, FTPService) else len(server.requests)


def files_read(server: SlowHTTPService | FTPService, root: Path, since: int) -> int:
    """Files the server sent since ``since``: FTP RETRs, HTTP GETs of existing files (not 404 probes)."""
    if isinstance(server, FTPService):
        return server.stats.retr - since
    return sum(
        1
        for method, path in server.requests[since:]
        if method == "GET" and (root / path.lstrip("/")).is_file()
    )


@pytest.fixture(scope="module")
def gdac_with_decoys(upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic GDAC plus, per day, a BGC (B), synthetic (S) and merged (M) file of a float, and a
    core profile of the day after: all in the index and on the server, none to be fetched."""
    root = tmp_path_factory.mktemp("gdac") / "gdac"
    shutil.copytree(upstream.gdac, root)
    rows = read_index_rows(root / "ar_index_global_prof.txt")
    extra = []
    for day in DAYS:
        row = next(r for r in rows if r["date"].startswith(f"{day:%Y%m%d}"))
        folder, name = row["file"].rsplit("/", 1)
        for prefix in ("B", "S", "M"):
            extra.append({**row, "file": f"{folder}/{prefix}{name}"})
    after = DAYS[-1] + dt.timedelta(days=1)
    folder = rows[0]["file"].rsplit("/", 1)[0]
    wmo = folder.split("/")[1]
    extra.append({**rows[0], "file": f"{folder}/R{wmo}_0001.nc", "date": f"{after:%Y%m%d}120000"})
    with open(root / "ar_index_global_prof.txt", "a") as index:
        for row in extra:
            shutil.copyfile(root / "dac" / rows[0]["file"], root / "dac" / row["file"])
            index.write(",".join(row.values()) + "\n")
    return root


def day_index_files(raw: Storage, day: dt.date) -> list[str]:
    lines = raw.read_bytes(day_index_key(CATALOG["argo"], day)).decode().splitlines()
    return sorted(line.split(",")[0] for line in lines[1:])


@pytest.mark.parametrize("transport", ["ftp", "http"])
def test_argo_gdac_index_then_only_the_days_core_profiles(
    transport, gdac_with_decoys, tmp_path, monkeypatch, caplog
):
    root = tmp_path / "raw"
    raw = Storage(str(root))
    gdac = Upstream(Path("/nonexistent"), gdac_with_decoys, Path("/nonexistent"))
    expected = gdac.expected(DAYS, ["argo"])
    dac = gdac_with_decoys / "dac"
    on_server = {f"argo/dac/{p.relative_to(dac).as_posix()}" for p in dac.rglob("*.nc")}
    assert len(on_server - set(expected)) == 3 * len(DAYS) + 1  # the decoys are there, to be left alone
    args = ["download", *RANGE, "--output-dir", str(root), "--download", "--sources", "argo"]
    # Each run its own --log-dir: reports are named by the second they start in, and these runs are quick.
    run_logs = iter(f"{root}/logs/run{n}" for n in range(9))
    with gdac_server(transport, gdac_with_decoys) as server:
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", server.url)
        since = reads_so_far(server)
        started = time.perf_counter()
        first = CliRunner().invoke(app, [*args, "--log-dir", next(run_logs)])
        seconds = time.perf_counter() - started
        assert first.exit_code == 0, first.output
        report, _ = new_report(raw, {})
        # The index once, then the day's core profiles, each once; no decoy.
        assert files_read(server, gdac_with_decoys, since) == 1 + len(expected)
        assert sorted(r["raw_key"] for r in report["downloads"]) == sorted(expected)
        assert {r["status"] for r in report["downloads"]} == {"ok"}
        assert data_keys(raw) == set(expected)
        assert_identical(raw, expected)
        for day in DAYS:  # the day's core rows of the index, written once the day is complete
            wanted = gdac.expected([day], ["argo"])
            assert wanted and day_index_files(raw, day) == sorted(k.removeprefix("argo/dac/") for k in wanted)
        throughput(report, seconds, f"argo over {transport}")

        before, since = reports(raw), reads_so_far(server)
        second = CliRunner().invoke(app, [*args, "--log-dir", next(run_logs)])
        assert second.exit_code == 0, second.output
        again, _ = new_report(raw, before)
        assert again["summary"]["ok"] == 0 and again["summary"]["bytes_transferred"] == 0
        assert {r["status"] for r in again["downloads"]} == {"skipped"}
        assert files_read(server, gdac_with_decoys, since) == 1  # the index only
    assert_no_secrets(first.output, second.output, caplog.text, *reports(raw).values())


# The real GDAC samples (../shared/fixtures/real/argo_gdac: the real index, 2 702 rows, and four profile
# files) served as they are. On these days every index row has its file in the sample: one profile each.
REAL_COMPLETE_DAYS = ["2001-09-02", "2010-07-17"]
# On 2022-04-23 the index lists two core profiles; the sample holds one (R6903247_275.nc).
REAL_PARTIAL_DAY = "2022-04-23"


def argo_download(raw: Storage, day: str, *extra: str) -> tuple[Run, dict]:
    """One quick CLI run with its own --log-dir (reports are named by the second a run starts in)."""
    before = reports(raw)
    log_dir = raw.url_of(f"logs/run{len(before)}")
    args = ["download", "--start-date", day, "--end-date", day, "--output-dir", raw.url, "--download"]
    args += ["--log-dir", log_dir]
    result = CliRunner().invoke(app, [*args, "--sources", "argo", *extra])
    report, _ = new_report(raw, before)
    return Run(result.output, result.exit_code, 0.0), report


@pytest.mark.parametrize("transport", ["ftp", "http"])
def test_real_gdac_index_and_profiles_over_ftp_and_http(transport, real_fixtures, tmp_path, monkeypatch):
    source = real_fixtures / "argo_gdac"
    raw = Storage(str(tmp_path / "raw"))
    present = "argo/dac/coriolis/6903247/profiles/R6903247_275.nc"
    missing = "argo/dac/coriolis/6903247/profiles/R6903247_276D.nc"
    with gdac_server(transport, source) as server:
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", server.url)
        since = reads_so_far(server)
        run, report = argo_download(raw, REAL_PARTIAL_DAY, "--continue-on-error")
        assert run.exit_code == 1, run.output  # the profile missing upstream fails, alone
        outcomes = {r["raw_key"]: r["status"] for r in report["downloads"]}
        assert outcomes == {present: "ok", missing: "failed"}
        assert files_read(server, source, since) == 2  # the index, the one profile
        assert raw.read_bytes(present) == (source / present.removeprefix("argo/")).read_bytes()
        assert not raw.exists(day_index_key(CATALOG["argo"], dt.date.fromisoformat(REAL_PARTIAL_DAY)))

        since = reads_so_far(server)
        run, report = argo_download(raw, REAL_PARTIAL_DAY, "--continue-on-error")
        assert {r["raw_key"]: r["status"] for r in report["downloads"]} == {
            present: "skipped",
            missing: "failed",
        }
        assert files_read(server, source, since) == 1  # the index only: what arrived is not fetched again


@pytest.mark.parametrize("transport", ["ftp", "http"])
def test_real_gdac_days_with_one_profile_complete_and_format(transport, real_fixtures, tmp_path, monkeypatch):
    source = real_fixtures / "argo_gdac"
    gdac = Upstream(Path("/nonexistent"), source, Path("/nonexistent"))
    raw = Storage(str(tmp_path / "raw"))
    formatted = tmp_path / "formatted"
    with gdac_server(transport, source) as server:
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", server.url)
        for day in REAL_COMPLETE_DAYS:
            expected = gdac.expected([dt.date.fromisoformat(day)], ["argo"])
            assert len(expected) == 1
            run, report = argo_download(raw, day)
            assert run.exit_code == 0, run.output
            assert [(r["raw_key"], r["status"]) for r in report["downloads"]] == [(*expected, "ok")]
            assert_identical(raw, expected)
            run, report = argo_download(raw, day)
            assert [r["status"] for r in report["downloads"]] == ["skipped"]
            fmt = CliRunner().invoke(
                app,
                [
                    *("format", "--date-min", day, "--date-max", day, "--data-dir", raw.url),
                    *("--output-dir", str(formatted), "--only-vars", "argo", "-p", "1"),
                    "--update-existing-inventory",
                ],
            )
            assert fmt.exit_code == 0, fmt.output
            assert re.search(rf"{day}\s*│\s*formatted", fmt.output), fmt.output
    assert len(data_keys(raw)) == len(REAL_COMPLETE_DAYS)
    inventory = read_inventory(Storage(str(formatted)))
    # The 2001 profile (an old float without PSAL) yields no tile; the 2010 one does.
    assert set(inventory["data_source"]) == {"argo"}
    assert set(inventory["timestamp_file"].dt.date.astype(str)) == {"2010-07-17"}
