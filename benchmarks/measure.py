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


def warm_up() -> None:
    """Pay the once-per-process import costs before timing: xarray pulls in dask (≈0.5-1 s) on its first
    write once dask is installed (the copernicusmarine toolbox brings it); a pipeline worker pays that once,
    not per (product, day)."""
    import numpy as np
    import xarray as xr

    from oceantaco.encoding import to_netcdf_bytes

    to_netcdf_bytes(xr.Dataset({"x": ("x", np.zeros(2))}), {})
