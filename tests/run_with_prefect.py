"""Run a command (the test suite) against one real Prefect API server started for it.

``make test`` uses this so the whole suite shares a single ``prefect server start`` on a free 127.0.0.1
port instead of paying Prefect's temporary-server start-up in every process; the server, its scratch
PREFECT_HOME and SQLite database are removed afterwards.

    python tests/run_with_prefect.py -- pytest -q
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from services import PREFECT, free_port, stop_process_group

START_TIMEOUT = 180.0


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def prefect_server() -> Iterator[dict[str, str]]:
    """`prefect server start` on a free 127.0.0.1 port with a scratch PREFECT_HOME (SQLite inside); yields
    the environment its clients need (PREFECT_API_URL, PREFECT_HOME, ...). The server and its home are
    removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="oceantaco-prefect-"))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        # The UI is served for the browser test; it must be told the API's port (it assumes 4200).
        "PREFECT_UI_API_URL": api_url,
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    log = open(home / "server.log", "wb")  # noqa: SIM115  (closed in finally)
    server = subprocess.Popen(
        [PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--analytics-off"],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        while not _healthy(api_url):
            if server.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                log.flush()
                raise RuntimeError(
                    (home / "server.log").read_text(errors="replace")[-4000:]
                    + "\nthe Prefect server did not start"
                )
            time.sleep(0.3)
        print(f"Prefect server ready at {api_url} in {time.monotonic() - started:.1f} s", flush=True)
        yield {**env, "PREFECT_API_URL": api_url}
    finally:
        stop_process_group(server)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def main(command: list[str]) -> int:
    try:
        with prefect_server() as env:
            return subprocess.call(command, env={**os.environ, **env})
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit("usage: run_with_prefect.py -- COMMAND [ARGS...]")
    sys.exit(main(args))
