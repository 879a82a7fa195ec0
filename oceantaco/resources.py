"""What one pod (or one machine) may use: its CPU and memory budget, and the format processes that fit it.

``os.cpu_count()`` answers the node's cores, not the pod's: a pod limited to 2 CPUs on a 64-core node would
start 64 format processes and be throttled and OOM-killed. The budget is read from what actually bounds the
process: its CPU affinity (``taskset``, a static CPU manager) and its cgroup's CPU quota and memory limit
(Kubernetes' ``resources.limits``), cgroup v2 first, v1 as a fallback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3
# One format worker's peak: one (product, day) alone peaks at 0.7 GB at most (a full SWOT L3 day, the
# catalog's format_peak_rss_mb), but a pool worker keeps what earlier tasks left in its heap: its high-water
# mark reached 0.92 GB on a local root and 1.04 GB on S3 over a chunk of every product
# (benchmarks/chunk_day.py). 1.25 GiB per process covers that with a margin.
FORMAT_PROCESS_PEAK_BYTES = GIB * 5 // 4
# The chunk's own flow process: Prefect's engine, the download threads, the parent of the pool.
FLOW_PROCESS_RESERVE_BYTES = GIB * 3 // 4
# A limit this large means "unlimited" (cgroup v1 writes the largest page-aligned int64).
_UNLIMITED = 1 << 60

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Budget:
    """CPUs and memory this process may use; ``memory_bytes`` is None when nothing limits it."""

    cpus: int
    memory_bytes: int | None

    def format_processes(self, requested: int | None = None) -> int:
        """Format processes that fit: at most one per CPU, and as many 1.25 GiB workers as memory holds
        beside the flow process; ``requested`` (a setting) can lower that, never raise it."""
        fit = self.cpus
        if self.memory_bytes is not None:
            fit = min(fit, (self.memory_bytes - FLOW_PROCESS_RESERVE_BYTES) // FORMAT_PROCESS_PEAK_BYTES)
        if requested is not None:
            fit = min(fit, requested)
        return max(1, int(fit))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_cpus(root: Path) -> float | None:
    quota = _read(root / "cpu.max")  # v2: "<quota> <period>" or "max <period>"
    if quota is not None:
        limit, _, period = quota.partition(" ")
        if limit != "max" and period:
            return int(limit) / int(period)
        return None
    limit, period = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    if limit is not None and period is not None and int(limit) > 0:
        return int(limit) / int(period)
    return None


def _cgroup_memory(root: Path) -> int | None:
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        value = _read(path)
        if value is not None and value != "max" and int(value) < _UNLIMITED:
            return int(value)
    return None


def current_budget(cgroup_root: Path = CGROUP_ROOT) -> Budget:
    """The budget of this process: CPUs it may run on (affinity, then the cgroup quota rounded up, as a
    2.5-CPU limit still runs 3 processes usefully), and the cgroup's memory limit."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_cpus(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return Budget(cpus=cpus, memory_bytes=_cgroup_memory(cgroup_root))
