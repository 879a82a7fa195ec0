"""Real servers on 127.0.0.1 that misbehave on purpose, deterministically, for the reliability tests.

* :func:`start_flaky_ftp_server`: pyftpdlib dropping connections at the greeting (421) or at login (closed
  without a reply), and breaking RETR transfers: truncated (the server stops early yet answers 226, as a
  server whose disk read came up short does), aborted (data connection cut, 426) or reset (the whole
  session closed without a word).
* :func:`start_flaky_http_file_server`: the Range-capable static server of ``tests/services.py`` answering
  429 (with ``Retry-After``) or 503, or resetting the connection part-way through the body.
* :func:`start_flaky_s3_proxy`: a reverse proxy in front of moto's S3 server answering 503 ``SlowDown`` or
  resetting object downloads part-way.

Every choice comes from ``random.Random`` seeded with (seed, what is asked, how many times it was asked),
not from one shared generator, so the faults a file meets do not depend on how threads interleave.
``max_faults_per_key`` bounds the faults one file (or, for connections, one run of consecutive connections)
can meet, so that a client retrying a bounded number of times always finishes: the tests check that it does,
not whether it was lucky. Each server counts what it did in ``faults`` (a Counter keyed by fault kind).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import http.server
import os
import random
import socket
import struct
import sys
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from services import STOP_TIMEOUT, Service, _RangeRequestHandler, serve_ftp


class FaultPlan:
    """Seeded, per-key fault decisions with a cap per key; thread-safe."""

    def __init__(self, seed: int, fraction: float, kinds: tuple[str, ...], max_faults_per_key: int) -> None:
        self.seed, self.fraction, self.kinds, self.cap = seed, fraction, kinds, max_faults_per_key
        self.faults: Counter[str] = Counter()  # by kind
        self.requests: Counter[str] = Counter()  # by key: how many times it was asked
        self.per_key: Counter[str] = Counter()  # faults met by each key
        self._lock = threading.Lock()

    def draw(self, key: str, kinds: tuple[str, ...] | None = None) -> tuple[str | None, random.Random]:
        """The fault for this request of ``key`` (None: serve it) and a generator for its details."""
        with self._lock:
            nth = self.requests[key]
            self.requests[key] += 1
            rng = random.Random(f"{self.seed}|{key}|{nth}")
            if self.per_key[key] >= self.cap or rng.random() >= self.fraction:
                return None, rng
            kind = rng.choice(kinds or self.kinds)
            self.per_key[key] += 1
            return kind, rng

    def count(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def reset_streak(self, key: str) -> None:
        """For keys whose cap bounds consecutive faults (connections): a success starts a new run."""
        with self._lock:
            self.per_key[key] = 0

    @property
    def total(self) -> int:
        return sum(self.faults.values())


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---------------------------------------------------------------------------------------------------------
# FTP
# ---------------------------------------------------------------------------------------------------------


@dataclass
class FlakyFTPService(Service):
    plan: FaultPlan = field(default=None)  # type: ignore[assignment]
    retr: Counter[str] = field(default_factory=Counter)  # RETR commands per path
    rest: int = 0  # RETRs resumed part-way (REST)

    @property
    def faults(self) -> Counter[str]:
        return self.plan.faults


class _TruncatingFile:
    """A file that reads as if it ended ``keep`` bytes after the position the transfer starts at."""

    def __init__(self, f: BinaryIO, keep: int) -> None:
        self._f, self._keep, self._limit = f, keep, None

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        if self._limit is None:
            self._limit = self._f.tell() + self._keep
        room = self._limit - self._f.tell()
        if room <= 0:
            return b""
        return self._f.read(room if size < 0 else min(size, room))

    def __getattr__(self, name: str) -> Any:  # name, closed, close: those of the real file
        return getattr(self._f, name)


def start_flaky_ftp_server(
    root: str | Path,
    user: str,
    password: str,
    *,
    fraction: float = 0.3,
    seed: int = 0,
    max_faults_per_key: int = 2,
    poison: Callable[[str], bool] = lambda path: False,
) -> FlakyFTPService:
    """Read-only pyftpdlib server of ``root`` for one user, failing ``fraction`` of connections and RETRs.

    Connections: ``drop_greeting`` (421, closed) or ``drop_login`` (closed on PASS, no reply); at most
    ``max_faults_per_key`` in a row. RETRs, at most ``max_faults_per_key`` per path: ``truncate`` (stops
    part-way, then 226), ``abort`` (data connection cut part-way, 426) or ``reset`` (control and data
    connections closed part-way). Paths for which ``poison`` is true are never served past their first
    half: every RETR of them stops there (or at once, when resumed beyond it) and answers 226.
    """
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.filesystems import AbstractedFS
    from pyftpdlib.handlers import DTPHandler, FTPHandler

    plan = FaultPlan(seed, fraction, ("truncate", "abort", "reset"), max_faults_per_key)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elr")

    class TruncatingFS(AbstractedFS):
        def open(self, filename: str, mode: str) -> Any:
            f = super().open(filename, mode)
            pending = getattr(self.cmd_channel, "pending_fault", None)
            if pending is not None and pending[0] == "truncate":
                return _TruncatingFile(f, pending[1])
            return f

    class CuttingDTP(DTPHandler):
        """Sends the first ``cut`` bytes of an abort/reset RETR, then breaks the transfer."""

        _cut: tuple[str, int] | None = None
        _armed = False

        def send(self, data: bytes) -> int:
            if not self._armed:  # the first send of this data connection: is its RETR to be broken?
                self._armed = True
                pending = getattr(self.cmd_channel, "pending_fault", None)
                if pending is not None and pending[0] in ("abort", "reset"):
                    self._cut = pending
            if self._cut is None:
                return super().send(data)
            kind, at = self._cut
            room = at - self.tot_bytes_sent
            if room > 0:
                return super().send(data[:room])
            if kind:  # once, from the loop: closing inside send() breaks pyftpdlib's RETR
                self._cut = ("", at)
                self.ioloop.call_later(0, self._break, kind, _errback=self.handle_error)
            return 0  # nothing more goes out before the break

        def _break(self, kind: str) -> None:
            if self._closed:
                return
            if kind == "reset":
                self.cmd_channel.close()
            else:
                self._resp = ("426 Connection closed; transfer aborted.", lambda *a, **k: None)
                self.close()

    class Handler(FTPHandler):
        dtp_handler = CuttingDTP
        abstracted_fs = TruncatingFS
        use_sendfile = False  # transfers go through send() and read(), where the faults are
        auth_failed_timeout = 0
        banner = "oceantaco flaky test FTP"
        pending_fault: tuple[str, int] | None = None
        _drop_at_login = False

        def handle(self) -> None:
            kind, _ = plan.draw("connection", ("drop_greeting", "drop_login"))
            if kind is None:
                plan.reset_streak("connection")
            elif kind == "drop_greeting":
                plan.count(kind)
                self.respond("421 Service not available, closing control connection.")
                self.close_when_done()
                return
            else:
                self._drop_at_login = True
            super().handle()

        def ftp_PASS(self, line: str) -> object:
            if self._drop_at_login:
                plan.count("drop_login")
                self.close()  # no reply: the client reads EOF
                return None
            return super().ftp_PASS(line)

        def ftp_RETR(self, file: str) -> object:
            rel = "/" + os.path.relpath(file, str(root)).replace(os.sep, "/")
            service.retr[rel] += 1
            start = self._restart_position
            if start:
                service.rest += 1
            size = os.path.getsize(file) if os.path.isfile(file) else 0
            kind, rng = plan.draw(rel)
            self.pending_fault = None
            if poison(rel):  # never more than the first half, however it is resumed
                kind = "truncate"
                self.pending_fault = (kind, max(0, size // 2 - start))
                plan.count(kind)
            elif kind is not None and size - start > 1:
                self.pending_fault = (kind, rng.randint(1, size - start - 1))
                plan.count(kind)
            try:
                return super().ftp_RETR(file)
            finally:
                if kind == "truncate":  # consumed by open(); abort/reset wait for the data connection
                    self.pending_fault = None

        def ftp_PASV(self, line: str) -> object:
            self.pending_fault = None  # a new data connection: the last transfer's fault is spent
            return super().ftp_PASV(line)

        def ftp_EPSV(self, line: str) -> object:
            self.pending_fault = None
            return super().ftp_EPSV(line)

    Handler.authorizer = authorizer
    port, stop = serve_ftp(Handler, "flaky-ftp")
    service = FlakyFTPService(
        name="flaky-ftp-server", url=f"ftp://127.0.0.1:{port}", port=port, _stopper=stop, plan=plan
    )
    atexit.register(service.stop)
    return service


# ---------------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------------


@dataclass
class FlakyHTTPService(Service):
    plan: FaultPlan = field(default=None)  # type: ignore[assignment]
    # (method, "range" or "whole", fault kind or "served") -> count, for checking clients' retry counts
    seen: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @property
    def faults(self) -> Counter[str]:
        return self.plan.faults


class _CuttingWriter:
    """Passes ``keep`` body bytes through, then resets the connection and swallows the rest."""

    def __init__(self, handler: http.server.BaseHTTPRequestHandler, keep: int) -> None:
        self._handler, self._raw, self._left = handler, handler.wfile, keep

    def write(self, data: bytes) -> int:
        if self._left > 0:
            piece = bytes(data[: self._left])
            self._raw.write(piece)
            self._left -= len(piece)
            if self._left == 0:
                self._handler.close_connection = True
                self._handler.rfile.close()  # drop makefile's reference, so close() really closes
                _reset(self._handler.connection)
        return len(data)

    def flush(self) -> None:
        pass

    @property
    def closed(self) -> bool:  # StreamRequestHandler.finish() asks
        return self._raw.closed

    def close(self) -> None:
        self._raw.close()


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Connections we reset, and clients giving up on them, are the point here, not server errors.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _serve_in_thread(server: http.server.HTTPServer, name: str) -> Callable[[], None]:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_TIMEOUT)

    return stop


def start_flaky_http_file_server(
    directory: str | Path,
    *,
    fraction: float = 0.3,
    seed: int = 0,
    max_faults_per_key: int = 2,
    retry_after: int = 1,
    poison: Callable[[str], bool] = lambda path: False,
) -> FlakyHTTPService:
    """Range-capable static server of ``directory`` failing ``fraction`` of file requests (HEAD and GET).

    Faults, at most ``max_faults_per_key`` per path: ``429`` (``Retry-After: <retry_after>``), ``503``, and
    for GETs ``reset`` (the headers promise the whole body, part of it is sent, then a TCP RST). Folder
    listings are served faithfully. Paths for which ``poison`` is true are reset on every GET.
    """
    plan = FaultPlan(seed, fraction, ("429", "503", "reset"), max_faults_per_key)
    seen: Counter[tuple[str, str, str]] = Counter()
    lock = threading.Lock()

    class Handler(_RangeRequestHandler):
        _reset_rng: random.Random | None = None  # set when this GET is to be reset part-way
        _cut = False
        _length = 0

        def do_GET(self) -> None:
            self._maybe_fail("GET")

        def do_HEAD(self) -> None:
            self._maybe_fail("HEAD")

        def _maybe_fail(self, method: str) -> None:
            path = urllib.parse.urlsplit(self.path).path
            kind, rng = None, None
            if os.path.isfile(self.translate_path(self.path)):
                kind, rng = plan.draw(path, None if method == "GET" else ("429", "503"))
                if method == "GET" and poison(path):
                    kind = "reset"
            shape = "range" if self.headers.get("Range") else "whole"
            if kind in ("429", "503"):
                plan.count(kind)
                with lock:
                    seen[(method, shape, kind)] += 1
                self.send_response(int(kind))
                if kind == "429":
                    self.send_header("Retry-After", str(retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._reset_rng, self._cut, self._length = (rng if kind == "reset" else None), False, 0
            self._shape, self._method = shape, method
            self._serve(send_body=method == "GET")
            if not self._cut:
                with lock:
                    seen[(method, shape, "served")] += 1

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "content-length":
                self._length = int(value)
            super().send_header(keyword, value)

        def end_headers(self) -> None:
            super().end_headers()
            if self._reset_rng is not None and self._length > 1:
                keep = self._reset_rng.randint(1, self._length - 1)
                self._reset_rng, self._cut = None, True
                plan.count("reset")
                with lock:
                    seen[(self._method, self._shape, "reset")] += 1
                self.wfile = _CuttingWriter(self, keep)  # type: ignore[assignment]

    def handler(*args: object, **kwargs: object) -> Handler:
        return Handler(*args, directory=str(directory), **kwargs)

    server = _QuietServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    stop = _serve_in_thread(server, f"flaky-http-{port}")
    service = FlakyHTTPService(
        name="flaky-http-file-server",
        url=f"http://127.0.0.1:{port}",
        port=port,
        _stopper=stop,
        plan=plan,
        seen=seen,
    )
    atexit.register(service.stop)
    return service


# ---------------------------------------------------------------------------------------------------------
# S3: a reverse proxy in front of moto
# ---------------------------------------------------------------------------------------------------------

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


def start_flaky_s3_proxy(
    upstream: str,
    *,
    fraction: float = 0.3,
    seed: int = 0,
    max_faults_per_key: int = 2,
    port: int = 0,
) -> FlakyHTTPService:
    """A proxy to the S3 server at ``upstream`` (moto) failing ``fraction`` of object reads.

    Object HEADs and GETs (``/<bucket>/<key>``), at most ``max_faults_per_key`` per object, are answered
    ``503 SlowDown`` (as S3 does under load) or, for GETs, ``reset`` part-way through the body; bucket
    requests (listings) and writes pass through untouched. Point clients at ``service.url``.
    """
    target = urllib.parse.urlsplit(upstream)
    plan = FaultPlan(seed, fraction, ("503", "reset"), max_faults_per_key)
    seen: Counter[tuple[str, str, str]] = Counter()
    lock = threading.Lock()

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            method = self.command
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            path = urllib.parse.urlsplit(self.path).path
            is_object = method in ("GET", "HEAD") and len(path.strip("/").split("/")) >= 2
            # Keyed by the object key without the bucket: test buckets have run-specific names.
            key = path.strip("/").split("/", 1)[-1]
            kind, rng = plan.draw(key, None if method == "GET" else ("503",)) if is_object else (None, None)
            shape = "range" if self.headers.get("Range") else "whole"
            if kind == "503":
                plan.count("503")
                with lock:
                    seen[(method, shape, "503")] += 1
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(0 if method == "HEAD" else len(_SLOW_DOWN)))
                self.end_headers()
                if method != "HEAD":
                    self.wfile.write(_SLOW_DOWN)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            try:
                conn.request(method, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status, reply_headers = response.status, response.getheaders()
            finally:
                conn.close()
            self.send_response(status)
            for name, value in reply_headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            declared = (
                len(data)
                if method != "HEAD"
                else int(dict((k.lower(), v) for k, v in reply_headers).get("content-length", 0))
            )
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            if method == "HEAD":
                with lock:
                    seen[(method, shape, "served")] += 1
                return
            if kind == "reset" and status < 300 and len(data) > 1:
                keep = rng.randint(1, len(data) - 1)
                plan.count("reset")
                with lock:
                    seen[(method, shape, "reset")] += 1
                self.wfile.write(data[:keep])
                self.close_connection = True
                self.rfile.close()
                _reset(self.connection)
                return
            self.wfile.write(data)
            if is_object:
                with lock:
                    seen[(method, shape, "served")] += 1

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

    server = _QuietServer(("127.0.0.1", port), Proxy)
    bound = server.server_address[1]
    stop = _serve_in_thread(server, f"flaky-s3-proxy-{bound}")
    service = FlakyHTTPService(
        name="flaky-s3-proxy",
        url=f"http://127.0.0.1:{bound}",
        port=bound,
        _stopper=stop,
        plan=plan,
        seen=seen,
    )
    atexit.register(service.stop)
    return service
