"""Benchmark one real chunk: 2 full-size synthetic days of every product through ``flows.chunk.chunk_flow``.

Upstream, written first and timed apart: a synthetic mirror of 2024-05-14..15 with DUACS L4 at 0.125° and
7 along-track satellites × 50 k points a day (``build_mirror``), the gridded products at native resolution
(``write_product_day`` without a resolution, as format_day.py), a GDAC tree of 400 Argo profiles a day (as
format_argo_day.py) and 28 full SWOT L3 Basic passes a day served by a pyftpdlib FTP server on 127.0.0.1
(tests/services.py); the chunk finds them through OCEANTACO_CMEMS_MIRROR, OCEANTACO_ARGO_GDAC and
OCEANTACO_AVISO_*. The GLORYS files hold 11 depth levels (the synthetic default), copied whole.

The chunk runs in a child process, ``taskset -c 0,1 python -c <chunk_flow(...)>`` (a 2-CPU pod: its format
processes come from ``current_budget()``), as a flow run on a local Prefect server holding the provider
concurrency limits of ``oceantaco prefect setup`` (cmems 4, aviso 1, argo-gdac 4), with TMPDIR a fresh
folder (the pod's scratch). The storage root is a local folder, or with ``--bucket`` a moto S3 bucket
(tests/services.py): only then are downloads and format inputs staged in TMPDIR, as in a pod.

This process samples /proc every 0.1 s and reports: wall time of the chunk and of its download and format
subflows (the server's timestamps), the format tasks per product, CPU time of the process tree
(RUSAGE_CHILDREN), the peak RSS and PSS summed over the tree and the largest single process's VmHWM, the
most format worker processes alive at once, the peak bytes in TMPDIR (st_blocks, as du), and the raw and
formatted bytes per day under the root.

    .venv/bin/python benchmarks/chunk_day.py [--keep DIR] [--no-swot] [--bucket]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import logging
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oceantaco.catalog import load_catalog
from oceantaco.storage import Storage
from oceantaco.synthetic import (
    ArgoIndexRow,
    argo_profiles_for_days,
    build_mirror,
    group_argo_files,
    write_argo_index,
    write_argo_profile,
)
from oceantaco.synthetic_grids import GRIDDED_PRODUCTS, write_product_day
from oceantaco.synthetic_sparse import swot_day, write_swot_pass

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from process_tree import descendants, is_format_worker, kib_field, read_proc  # tests/ holds the helpers
from run_with_prefect import prefect_server
from services import start_ftp_server, start_moto_s3

DAYS = [dt.date(2024, 5, 14), dt.date(2024, 5, 15)]
ALONGTRACK_POINTS = 50_000  # per satellite and day (format_sparse.py)
ARGO_PROFILES = 400  # per day (format_argo_day.py)
SWOT_L3_ROOT = "swot_products/l3_karin_nadir/l3_lr_ssh/v2_0_1/Basic"  # AVISO's folder of L3 Basic passes
FTP_USER, FTP_PASSWORD = "bench", "bench-password"
BUCKET = "oceantaco-bench"
SAMPLE_SECONDS = 0.1
PIN = ["taskset", "-c", "0,1"]  # the pod's 2 CPUs
# The measured child: the chunk flow as its pod runs it (python -c: spawned format workers re-import nothing).
RUN_CHUNK = """import datetime as dt, sys
from flows.chunk import chunk_flow
start, end, root, products = sys.argv[1:]
chunk_flow(dt.date.fromisoformat(start), dt.date.fromisoformat(end), root, products.split(","))
"""
BUDGET = "from oceantaco.resources import current_budget as b; x = b(); print(x, x.format_processes())"
FLOWS = ("oceantaco-chunk", "oceantaco-download", "oceantaco-format")


def _write_argo(gdac: Path) -> None:
    files = group_argo_files(argo_profiles_for_days(DAYS, n_per_day=ARGO_PROFILES))
    for rel, profiles in files.items():
        write_argo_profile(gdac / "dac" / rel, profiles)
    write_argo_index(gdac / "ar_index_global_prof.txt", [ArgoIndexRow.for_file(p) for p in files.values()])


def _call(job: Callable[[], object]) -> None:
    job()


def write_upstream(upstream: Path, swot: bool) -> None:
    """The mirror, the full-size Argo GDAC (``gdac_full``) and the SWOT tree (``aviso``), in 2 processes."""
    jobs: list[Callable[[], object]] = [
        functools.partial(
            build_mirror, upstream, DAYS, grid_products=(), alongtrack_points=ALONGTRACK_POINTS
        ),
        functools.partial(_write_argo, upstream / "gdac_full"),
    ]
    jobs += [
        functools.partial(write_product_day, upstream / "cmems", token, day)  # no resolution: native
        for token in GRIDDED_PRODUCTS
        for day in DAYS
    ]
    passes = {(c, p): start for day in DAYS for c, p, start in swot_day(day)} if swot else {}
    jobs += [
        functools.partial(write_swot_pass, upstream / "aviso" / SWOT_L3_ROOT / f"cycle_{c:03d}", c, p, start)
        for (c, p), start in passes.items()
    ]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_call, jobs, chunksize=1)


@dataclass
class Peaks:
    """High-water marks of the chunk's process tree and scratch folder."""

    rss: int = 0  # bytes, VmRSS summed over the tree
    pss: int = 0  # bytes, Pss summed over the tree (shared pages split between processes)
    hwm: dict[int, tuple[int, str]] = field(default_factory=dict)  # pid -> (VmHWM bytes, role)
    workers: int = 0  # format worker processes alive at once
    scratch: int = 0  # bytes on disk under TMPDIR


def _disk_bytes(folder: Path) -> int:
    total = 0
    for base, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a temp file removed meanwhile
                total += os.lstat(os.path.join(base, name)).st_blocks * 512
    return total


def _sample(child: int, scratch: Path, peaks: Peaks) -> None:
    rss = pss = workers = 0
    for pid in descendants(child):
        status = read_proc(pid, "status")
        if not status:
            continue
        rss += kib_field(status, "VmRSS:")
        pss += kib_field(read_proc(pid, "smaps_rollup"), "Pss:")
        if is_format_worker(pid):
            role = "format worker"
            workers += 1
        elif pid == child:
            role = "chunk flow"
        else:
            role = read_proc(pid, "cmdline").replace("\0", " ")[:60]
        peaks.hwm[pid] = max(peaks.hwm.get(pid, (0, role)), (kib_field(status, "VmHWM:"), role))
    peaks.rss, peaks.pss = max(peaks.rss, rss), max(peaks.pss, pss)
    peaks.workers = max(peaks.workers, workers)
    peaks.scratch = max(peaks.scratch, _disk_bytes(scratch))


def measure_chunk(
    root: str, products: list[str], scratch: Path, env: dict[str, str], log: Path
) -> tuple[float, float, Peaks]:
    """Run the chunk child under taskset; its wall seconds, the tree's CPU seconds and peaks."""
    days = [str(DAYS[0]), str(DAYS[-1])]
    command = [*PIN, sys.executable, "-c", RUN_CHUNK, *days, root, ",".join(products)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    peaks = Peaks()
    started = time.perf_counter()
    with open(log, "wb") as out:
        child = subprocess.Popen(
            command, env={**env, "TMPDIR": str(scratch)}, stdout=out, stderr=subprocess.STDOUT
        )
        while child.poll() is None:
            _sample(child.pid, scratch, peaks)
            time.sleep(SAMPLE_SECONDS)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if child.returncode:
        print(f"the chunk failed (exit {child.returncode}): {log.read_text(errors='replace')[-3000:]}")
    return wall, cpu, peaks


def create_provider_limits() -> None:
    """The download concurrency limits `oceantaco prefect setup` creates (cmems 4, aviso 1, argo-gdac 4)."""
    from prefect.client.orchestration import get_client

    from oceantaco.prefect_setup import DEFAULT_LIMITS, ensure_concurrency_limits

    with get_client(sync_client=True) as client:
        ensure_concurrency_limits(client, DEFAULT_LIMITS)


def server_timings() -> tuple[dict[str, float], dict[str, list[float]]]:
    """Seconds of each flow run (by flow name) and of each format task (by product) on the server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        runs = client.read_flow_runs()
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="format-")))
    flow_seconds = {
        flows[r.flow_id]: (r.end_time - r.start_time).total_seconds()
        for r in runs
        if r.start_time and r.end_time
    }
    task_seconds: dict[str, list[float]] = defaultdict(list)
    for t in tasks:
        if t.start_time and t.end_time and t.name.startswith("format-") and t.name.count("-") >= 3:
            task_seconds[t.name.removeprefix("format-").rsplit("-", 3)[0]].append(
                (t.end_time - t.start_time).total_seconds()
            )
    return flow_seconds, task_seconds


def bytes_per_folder(url: str) -> dict[str, int]:
    """Bytes of the objects under ``url`` by first-level folder."""
    storage = Storage(url)
    top = storage.full_path("").rstrip("/") + "/"
    sizes: dict[str, int] = defaultdict(int)
    for path, info in storage.fs.find(top, detail=True).items():
        sizes[path.removeprefix(top).split("/")[0]] += info["size"]
    return sizes


def _report(
    products: list[str],
    wall: float,
    cpu: float,
    peaks: Peaks,
    flow_seconds: dict[str, float],
    task_seconds: dict[str, list[float]],
    raw: dict[str, int],
    formatted: dict[str, int],
) -> None:
    mb, n = 1e6, len(DAYS)
    largest, role = max(peaks.hwm.values())
    budget = subprocess.run([*PIN, sys.executable, "-c", BUDGET], capture_output=True, text=True).stdout
    print(f"\nchunk of {n} days, {' '.join(PIN)} on {os.cpu_count()} CPUs: {budget.strip()} format processes")
    print(f"products: {', '.join(products)}")
    rows: list[tuple[str, object]] = [("wall s", f"{wall:.1f}")]
    rows += [(f"  {name} (server) s", f"{flow_seconds.get(name, float('nan')):.1f}") for name in FLOWS]
    rows += [
        ("CPU s (process tree)", f"{cpu:.1f}"),
        ("peak RSS, tree sum MB", f"{peaks.rss / mb:.0f}"),
        ("peak PSS, tree sum MB", f"{peaks.pss / mb:.0f}"),
        ("largest process VmHWM MB", f"{largest / mb:.0f} ({role})"),
        ("format workers alive at once", peaks.workers),
        ("peak TMPDIR MB", f"{peaks.scratch / mb:.1f}"),
    ]
    for label, value in rows:
        print(f"{label:<34}{value}")
    print(f"\n{'format task':<20}{'runs':>6}{'sum s':>8}{'max s':>8}")
    for token, seconds in sorted(task_seconds.items(), key=lambda kv: -sum(kv[1])):
        print(f"{token:<20}{len(seconds):>6}{sum(seconds):>8.1f}{max(seconds):>8.1f}")
    raw["total"], formatted["total"] = sum(raw.values()), sum(formatted.values())
    print(f"\n{'MB per day':<20}{'raw':>10}{'formatted':>11}")
    for name in [*sorted((raw.keys() | formatted.keys()) - {"total"}), "total"]:
        print(f"{name:<20}{raw.get(name, 0) / mb / n:>10.1f}{formatted.get(name, 0) / mb / n:>11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", type=Path, help="write the upstream and the chunk's root here and keep them"
    )
    parser.add_argument("--no-swot", action="store_true", help="leave SWOT out")
    parser.add_argument(
        "--bucket",
        action="store_true",
        help="root in a moto S3 bucket: files are staged in TMPDIR, as in a pod",
    )
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="oceantaco-chunk-bench-"))
    upstream, scratch = work / "upstream", work / "scratch"
    shutil.rmtree(work / "root", ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    (upstream / "aviso").mkdir(parents=True, exist_ok=True)  # served by the FTP server, empty without SWOT
    if (upstream / "cmems").exists():
        print(f"upstream reused from {upstream}", flush=True)
    else:
        started = time.perf_counter()
        write_upstream(upstream, swot=not args.no_swot)
        print(f"upstream written in {time.perf_counter() - started:.1f} s (2 processes)", flush=True)

    ftp_log = logging.getLogger("pyftpdlib")  # with a handler of its own, pyftpdlib logs no line per file
    ftp_log.addHandler(logging.StreamHandler())
    ftp_log.setLevel(logging.WARNING)
    env = {
        **os.environ,
        "OCEANTACO_CMEMS_MIRROR": str(upstream / "cmems"),
        "OCEANTACO_ARGO_GDAC": str(upstream / "gdac_full"),
    }
    products = [t for t in load_catalog().slot_order if t != "l3_swot" or not args.no_swot]
    with contextlib.ExitStack() as servers:
        ftp = servers.enter_context(start_ftp_server(upstream / "aviso", FTP_USER, FTP_PASSWORD))
        env |= {"OCEANTACO_AVISO_FTP_URL": ftp.url, "OCEANTACO_AVISO_USER": FTP_USER}
        env["OCEANTACO_AVISO_PASSWORD"] = FTP_PASSWORD
        root = str(work / "root")
        if args.bucket:
            s3 = servers.enter_context(start_moto_s3())
            aws = {"AWS_ENDPOINT_URL": s3.url, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
            aws |= {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
            os.environ |= aws
            env |= aws
            Storage(f"s3://{BUCKET}").fs.mkdir(BUCKET)
            root = f"s3://{BUCKET}/root"
        prefect = servers.enter_context(prefect_server())
        os.environ |= prefect  # for this process's Prefect client, imported only now
        env |= prefect
        create_provider_limits()
        wall, cpu, peaks = measure_chunk(root, products, scratch, env, work / "chunk.log")
        flow_seconds, task_seconds = server_timings()
        raw, formatted = bytes_per_folder(f"{root}/raw"), bytes_per_folder(f"{root}/formatted")

    print(f"storage root: {root}")
    _report(products, wall, cpu, peaks, flow_seconds, task_seconds, raw, formatted)
    if args.no_swot:
        per_day = load_catalog()["l3_swot"].format_cpu_seconds
        print(f"\nSWOT left out: the catalog's {per_day} CPU s per day adds ~{per_day * len(DAYS):.0f} CPU s")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
