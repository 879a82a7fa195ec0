"""Shared by the benchmark scripts (each imports it from its own folder)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PREFECT = str(Path(sys.executable).parent / "prefect")


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def stop_process(process: subprocess.Popen, waits: tuple[float, ...] = (20.0,)) -> None:
    """SIGINT (once per entry of ``waits``, waiting that long each), then SIGKILL to its process group."""
    for wait in waits:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def prefect_server() -> Iterator[dict[str, str]]:
    """`prefect server start` on a free 127.0.0.1 port with a scratch PREFECT_HOME (SQLite inside), as
    tests/run_with_prefect.py does; yields the environment of its clients (PREFECT_API_URL, PREFECT_HOME).
    The server and its home are removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="oceantaco-bench-prefect-"))
    port = str(_free_port())
    api_url = f"http://127.0.0.1:{port}/api"
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with open(home / "server.log", "wb") as log:
        server = subprocess.Popen(
            [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port, "--analytics-off"],
            env={**os.environ, **env, "PREFECT_LOGGING_LEVEL": "WARNING"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 180
            while not _healthy(api_url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((home / "server.log").read_text(errors="replace")[-3000:])
                time.sleep(0.3)
            yield env
        finally:
            stop_process(server)
            shutil.rmtree(home, ignore_errors=True)
