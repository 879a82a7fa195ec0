"""A format-heavy chunk stays inside its pod's budget: the chunk flow runs in a process pinned to one CPU (as
a 1-CPU limit would give it), and the test samples its whole process tree from /proc while it runs: never
more format worker processes than CPUs, and the tree's resident memory under the chunk pod's limit."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest
from prefect_helpers import REPO
from process_tree import descendants, is_format_worker, kib_field, read_proc

from oceantaco.resources import GIB
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror
from oceantaco.synthetic_grids import GRIDDED_PRODUCTS

pytestmark = [pytest.mark.prefect, pytest.mark.e2e]

DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31)]
POD_MEMORY_LIMIT = 4 * GIB  # the chunk deployment's memory_limit in prefect.yaml
RUN_CHUNK = (
    "import datetime as dt, sys\n"
    "from flows.chunk import chunk_flow\n"
    "if __name__ == '__main__':\n"
    "    chunk_flow(dt.date.fromisoformat(sys.argv[1]), dt.date.fromisoformat(sys.argv[2]), sys.argv[3])\n"
)


def test_a_chunk_runs_at_most_one_format_process_per_cpu_and_stays_under_its_memory_limit(tmp_path):
    mirror = build_mirror(
        tmp_path / "upstream", DAYS, l4_resolution=0.25, grid_products=GRIDDED_PRODUCTS, grid_resolution=0.25
    )
    root = tmp_path / "root"
    env = {
        **os.environ,
        "OCEANTACO_CMEMS_MIRROR": mirror.cmems_mirror,
        "OCEANTACO_ARGO_GDAC": mirror.argo_gdac,
        "PYTHONPATH": str(REPO),
    }
    env.pop("OCEANTACO_FORMAT_PROCESSES", None)
    log = open(tmp_path / "chunk.log", "wb")  # noqa: SIM115  (closed below; a pipe could fill and block)
    chunk = subprocess.Popen(
        [sys.executable, "-c", RUN_CHUNK, f"{DAYS[0]}", f"{DAYS[-1]}", str(root)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}),
    )
    workers = peak_rss = samples = 0
    while chunk.poll() is None:
        tree = descendants(chunk.pid)
        workers = max(workers, sum(is_format_worker(pid) for pid in tree))
        peak_rss = max(peak_rss, sum(kib_field(read_proc(pid, "status"), "VmRSS:") for pid in tree))
        samples += 1
        time.sleep(0.05)
    log.close()
    assert chunk.returncode == 0, (tmp_path / "chunk.log").read_text()[-4000:]
    print(f"format workers at once {workers}, tree peak RSS {peak_rss / 2**20:.0f} MiB ({samples} samples)")

    assert workers == 1  # it formatted in a worker process, and only one on one CPU
    assert 0 < peak_rss < POD_MEMORY_LIMIT
    tiles = [k for k in Storage(Roots.under(str(root)).formatted).list() if k.endswith(".nc")]
    assert len(tiles) >= len(DAYS) * 8 * (1 + len(GRIDDED_PRODUCTS))  # every gridded product was formatted
