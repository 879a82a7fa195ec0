"""Shared by the benchmark scripts (each imports it from its own folder)."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mb() -> float:
    """This process's own peak resident set size in MB.

    ``ru_maxrss`` would include the parent's: Linux keeps the high-water mark across exec, so a spawned
    worker of a large parent reports the parent's peak.
    """
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
