"""Real local servers for tests: moto S3, the GCS emulator and a Range-capable static HTTP server.

Plain helpers (no pytest) so that fixtures, benchmarks and ad-hoc scripts can share them. Every server
listens on a free 127.0.0.1 port and is stopped by `Service.stop()` (also on interpreter exit, as a
safety net, so an interrupted session does not leave servers behind).
"""

from __future__ import annotations

import atexit
import email.utils
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

# Never route loopback health checks through a proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Service:
    """A running local server. `stop()` is idempotent; usable as a context manager."""

    name: str
    url: str
    port: int
    _stopper: Callable[[], None] = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            atexit.unregister(self.stop)
            self._stopper()

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _venv_executable(name: str) -> str:
    """Console script installed next to the running interpreter (the project's .venv/bin)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def _responds(url: str) -> bool:
    """True once anything answers HTTP at url (any status code counts as up)."""
    try:
        with _NO_PROXY_OPENER.open(url, timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _start_process(name: str, argv: list[str], port: int) -> Service:
    """Start argv, wait until it answers HTTP on port, return a Service that terminates (then kills) it."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop(); server output, shown if start-up fails
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not _responds(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_reason = "exited" if proc.poll() is not None else f"not ready after {STARTUP_TIMEOUT:.0f} s"
            log.seek(0)
            output = log.read()[-4000:].decode(errors="replace")
            stop()
            raise RuntimeError(f"{name} {stop_reason}: {' '.join(argv)}\n{output}")
        time.sleep(0.1)
    service = Service(name=name, url=url, port=port, _stopper=stop)
    atexit.register(service.stop)
    return service


def start_moto_s3() -> Service:
    """moto's S3 server (everything in memory). Clients: AWS_ENDPOINT_URL=service.url, any key/secret."""
    port = free_port()
    argv = [_venv_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return _start_process("moto_server", argv, port)


def start_gcs_emulator() -> Service:
    """gcp-storage-emulator in memory. Clients: STORAGE_EMULATOR_HOST=service.url."""
    port = free_port()
    argv = [
        _venv_executable("gcp-storage-emulator"),
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
        "--in-memory",
    ]
    return _start_process("gcp-storage-emulator", argv, port)


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _RangeRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range `Range: bytes=a-b|a-|-n` support (206/416), HEAD and Content-Length.

    Directories are served by the base class (index listing), which fsspec's HTTP `ls` can parse.
    Multi-range requests are answered with the whole file (200), which RFC 9110 allows.
    """

    protocol_version = "HTTP/1.1"  # keep-alive, as object-store clients expect

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, *, send_body: bool) -> None:
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            if send_body:
                super().do_GET()
            else:
                super().do_HEAD()
            return
        size = os.path.getsize(path)
        start, end = 0, size - 1
        status = 200
        match = _RANGE.match(self.headers.get("Range", "").strip())
        first, last = match.groups() if match else ("", "")
        if (first or last) and not (first and last and int(first) > int(last)):  # else: no/invalid Range
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:  # suffix range: the last n bytes
                start = max(size - int(last), 0)
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        length = end - start + 1 if size else 0
        self.send_response(status)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        self.send_header("Last-Modified", email.utils.formatdate(os.path.getmtime(path), usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if send_body:
            with open(path, "rb") as f:
                f.seek(start)
                remaining = length
                while remaining:
                    chunk = f.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request logging (it would flood test output)."""


def start_http_file_server(directory: str | Path) -> Service:
    """Range-capable static HTTP server for `directory`, in a daemon thread of this process."""

    def handler(*args: object, **kwargs: object) -> _RangeRequestHandler:
        return _RangeRequestHandler(*args, directory=str(directory), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: no race for the port
    port = server.server_address[1]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"http-file-server-{port}", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_TIMEOUT)

    service = Service(name="http-file-server", url=f"http://127.0.0.1:{port}", port=port, _stopper=stop)
    atexit.register(service.stop)
    return service
