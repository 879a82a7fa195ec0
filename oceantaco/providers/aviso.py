"""AVISO (SWOT KaRIn swaths): the FTP transport, the catalog of passes, and which passes make a day.

The original pipeline keeps SWOT passes flat in ``l3_swot/`` (``--swot-level l3``) or ``l2_swot/``
(``--swot-level l2``). A pass file names its first and last measurement times, so the passes of a day are
those whose [start, end] intersects it: a pass crossing midnight serves both days, and the loader keeps
each observation in the day of its own time.

Download: the server root of the level and kind (``_ROOTS``) holds one ``cycle_NNN/`` folder per cycle.
Their listings (MLSD, else NLST + SIZE) make the catalog, cached as JSON under ``aviso_catalog_url`` and
re-listed when older than ``aviso_catalog_max_age_hours``. Files are read through :class:`AvisoFTPFileSystem`
(fsspec protocol ``avisoftp``), so the generic ``fetch`` streams them into any raw root with
``Storage.copy_from`` (staged, then published atomically). Its connections come from one pool per server and
user and process, at most ``aviso_max_connections`` open at a time; dropped connections and FTP 4xx replies
are retried with exponential backoff and jitter, resuming the transfer where it stopped (REST); 5xx replies
(login refused, file not found) fail at once with a message naming the product and the fix.

Credentials come from ``OCEANTACO_AVISO_USER``/``OCEANTACO_AVISO_PASSWORD``; the password stays a
``SecretStr`` until ``FTP.login`` and appears in no URL, log line, report or exception.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ftplib
import hashlib
import io
import json
import logging
import os
import random
import re
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import fsspec
from fsspec.spec import AbstractFileSystem
from fsspec.utils import infer_storage_options
from pydantic import SecretStr

from oceantaco.catalog import Product, load_catalog
from oceantaco.providers import DayPlan, RemoteFile, note_retry, register
from oceantaco.settings import Settings
from oceantaco.storage import Storage

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

L2_RAW_DIR = "l2_swot"
PASS_FILE = re.compile(
    r"SWOT_(?P<kind>L3_LR_SSH_(?:Basic|Expert)|L2_LR_SSH_Basic)_(?P<cycle>\d{3})_(?P<pass>\d{3})_"
    r"(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})_(?P<version>v\d+\.\d+\.\d+|[A-Z]{2}\w\d_\d{2})\.nc"
)
# Among files of one pass: L3 before L2, Expert (it carries the quality flag) before Basic.
_KIND_RANK = {"L3_LR_SSH_Expert": 0, "L3_LR_SSH_Basic": 1, "L2_LR_SSH_Basic": 2}

# Server folder of each (level, kind), as the original pipeline and AVISO's tree name them.
_ROOTS = {
    ("l3", "Basic"): "swot_products/l3_karin_nadir/l3_lr_ssh/v2_0_1/Basic",
    ("l3", "Expert"): "swot_products/l3_karin_nadir/l3_lr_ssh/v2_0_1/Expert",
    ("l2", "Basic"): "swot_products/l2_karin/l2_lr_ssh/PGC0/Basic",
}
_FILE_KIND = {"l3": "L3_LR_SSH_{kind}", "l2": "L2_LR_SSH_{kind}"}
_CYCLE_DIR = re.compile(r"cycle_\d+")
CATALOG_FORMAT = 1

# Retry policy; module constants so that tests can shorten the waits.
MAX_ATTEMPTS = 6  # consecutive failures without progress before a transfer gives up
BACKOFF_SECONDS = 1.0  # first wait; doubles per failure, with jitter, up to BACKOFF_CAP_SECONDS
BACKOFF_CAP_SECONDS = 30.0
TIMEOUT_SECONDS = 90.0  # control and data sockets, as the original
IDLE_CHECK_SECONDS = 30.0  # a pooled connection idle longer than this is probed with NOOP before reuse
_FIX = "set OCEANTACO_AVISO_USER and OCEANTACO_AVISO_PASSWORD (or --aviso-ftp-user/--aviso-ftp-pass)"


@dataclass(frozen=True)
class PassFile:
    key: str
    kind: str
    cycle: int
    pass_number: int
    start: dt.datetime
    end: dt.datetime
    version: str

    @classmethod
    def parse(cls, key: str) -> PassFile | None:
        found = PASS_FILE.fullmatch(key.rsplit("/", 1)[-1])
        if found is None:
            return None
        stamp = "%Y%m%dT%H%M%S"
        return cls(
            key,
            found["kind"],
            int(found["cycle"]),
            int(found["pass"]),
            dt.datetime.strptime(found["start"], stamp),
            dt.datetime.strptime(found["end"], stamp),
            found["version"],
        )

    def overlaps(self, day: dt.date) -> bool:
        start = dt.datetime.combine(day, dt.time())
        return self.start < start + dt.timedelta(days=1) and self.end >= start

    @property
    def days(self) -> list[dt.date]:
        """The UTC days this pass has measurements in (two for a pass crossing midnight)."""
        first, last = self.start.date(), self.end.date()
        span = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        return [d for d in span if self.overlaps(d)]

    @property
    def preference(self) -> tuple:
        """Sort key: the best file of a pass sorts last (kind, then the newest version)."""
        numbers = tuple(int(n) for n in re.findall(r"\d+", self.version))
        return (-_KIND_RANK[self.kind], numbers)


def passes_for_day(keys: list[str], day: dt.date) -> list[PassFile]:
    """One file per (cycle, pass) overlapping ``day``: the preferred kind and newest version."""
    best: dict[tuple[int, int], PassFile] = {}
    for key in keys:
        found = PassFile.parse(key)
        if found is None or not found.overlaps(day):
            continue
        current = best.get((found.cycle, found.pass_number))
        if current is None or found.preference > current.preference:
            best[(found.cycle, found.pass_number)] = found
    return sorted(best.values(), key=lambda p: (p.start, p.cycle, p.pass_number))


def newest_passes(keys: list[str], kind: str) -> list[PassFile]:
    """One file of ``kind`` per (cycle, pass), the newest version, in time order."""
    best: dict[tuple[int, int], PassFile] = {}
    for key in keys:
        found = PassFile.parse(key)
        if found is None or found.kind != kind:
            continue
        current = best.get((found.cycle, found.pass_number))
        if current is None or found.preference > current.preference:
            best[(found.cycle, found.pass_number)] = found
    return sorted(best.values(), key=lambda p: (p.start, p.cycle, p.pass_number))


# --- errors --------------------------------------------------------------------------------------------


class AvisoLoginError(PermissionError):
    """The server refused the login: wrong or missing credentials (a retry cannot help)."""


class AvisoRefusedError(PermissionError):
    """A permanent (5xx) reply other than a refused login or a missing file."""


def _code(error: BaseException) -> str:
    return str(error)[:3]


def _permanent(error: BaseException, what: str) -> BaseException | None:
    """The error to raise at once for ``error``, or None when a retry may succeed.

    4xx replies (421 too many users / closing, 425/426 data connection, 450/451 local errors), dropped or
    timed-out sockets and garbled replies after a drop are transient; 5xx replies are not.
    """
    if isinstance(error, AvisoLoginError | FileNotFoundError | AvisoRefusedError):
        return error
    if isinstance(error, ftplib.error_perm):
        if _code(error) == "550":
            return FileNotFoundError(
                f"{what}: not on the server ({error}); re-list it with --refresh-catalog"
            )
        return AvisoRefusedError(f"{what}: refused by the server ({error})")
    if isinstance(error, ftplib.error_temp | ftplib.error_reply | ftplib.error_proto | EOFError | OSError):
        return None
    return error


def _backoff(failures: int) -> float:
    """Exponential backoff with jitter: half the step fixed, half random, so clients do not retry in step."""
    step = min(BACKOFF_CAP_SECONDS, BACKOFF_SECONDS * 2 ** (failures - 1))
    return step / 2 + random.uniform(0, step / 2)


# --- connections ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to log in; the password is masked in every repr."""

    host: str
    port: int
    user: str
    password: SecretStr | None
    label: str  # names the product in messages

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class PoolStats:
    logins: int = 0
    retries: int = 0
    bytes: int = 0
    files: int = 0
    active: int = 0
    peak_active: int = 0


class _Connection:
    """A logged-in control connection and the transfer type it is in (listings switch it to ASCII)."""

    def __init__(self, ftp: ftplib.FTP) -> None:
        self.ftp = ftp
        self.binary = True
        self.last_used = time.monotonic()

    def ensure_binary(self) -> None:
        if not self.binary:
            self.ftp.voidcmd("TYPE I")
            self.binary = True

    def close(self) -> None:
        self.ftp.close()


class ConnectionPool:
    """At most ``max_connections`` open connections to one server as one user; idle ones are reused.

    A connection is only ever created when no idle one is left, so open (busy + idle) connections never
    exceed the limit. A refused login is remembered: later callers fail at once instead of each trying
    (and a server locking the account after a few bad logins).
    """

    def __init__(self, endpoint: Endpoint, max_connections: int) -> None:
        self.endpoint = endpoint
        self.max_connections = max_connections
        self.stats = PoolStats()
        self.mlsd: bool | None = None  # unknown until the first listing
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._refused: str | None = None

    def _login(self) -> _Connection:
        if self._refused is not None:
            raise AvisoLoginError(self._refused)
        ep = self.endpoint
        ftp = ftplib.FTP(timeout=TIMEOUT_SECONDS)
        try:
            ftp.connect(ep.host, ep.port)
            ftp.login(ep.user, ep.password.get_secret_value() if ep.password is not None else "")
            ftp.voidcmd("TYPE I")
        except ftplib.error_perm as exc:
            ftp.close()
            if _code(exc) in ("530", "331", "332"):
                self._refused = (
                    f"{ep.label}: the AVISO FTP server {ep.address} refused the login of user {ep.user!r} "
                    f"({exc}); {_FIX}"
                )
                raise AvisoLoginError(self._refused) from None
            raise
        except BaseException:
            ftp.close()
            raise
        with self._lock:
            self.stats.logins += 1
        return _Connection(ftp)

    def _take_idle(self) -> _Connection | None:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if time.monotonic() - conn.last_used < IDLE_CHECK_SECONDS:
                return conn
            try:  # the server may have timed it out while idle: probe before trusting it
                conn.ftp.voidcmd("NOOP")
                return conn
            except (*ftplib.all_errors, EOFError):
                conn.close()

    def acquire(self) -> _Connection:
        """A logged-in connection, waiting for a free slot; give it back with :meth:`release`."""
        self._slots.acquire()
        try:
            conn = self._take_idle() or self._login()
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self.stats.active += 1
            self.stats.peak_active = max(self.stats.peak_active, self.stats.active)
        return conn

    def release(self, conn: _Connection, *, reuse: bool) -> None:
        """Return a connection; ``reuse=False`` closes it (after an error its state is unknown)."""
        with self._lock:
            self.stats.active -= 1
            if reuse:
                conn.last_used = time.monotonic()
                self._idle.append(conn)
        if not reuse:
            conn.close()
        self._slots.release()

    def note_retry(self) -> None:
        with self._lock:
            self.stats.retries += 1
        note_retry()  # and in the current file's outcome, when a fetch is running in this thread

    def note_file(self, size: int) -> None:
        with self._lock:
            self.stats.files += 1
            self.stats.bytes += size

    def failed(self, error: BaseException, what: str, failures: int) -> None:
        """After a failure: raise if it is permanent or the attempts are used up, else wait and return."""
        permanent = _permanent(error, what)
        if permanent is not None:
            if permanent is error:
                raise error
            raise permanent from None
        if failures >= MAX_ATTEMPTS:
            raise ConnectionError(
                f"{self.endpoint.label}: {what}: gave up after {failures} attempts: "
                f"{type(error).__name__}: {str(error) or 'connection closed by the server'}"
            ) from error
        self.note_retry()
        delay = _backoff(failures)
        logger.warning(
            "%s: %s: %s: %s; retry %d of %d in %.1f s",
            self.endpoint.label,
            what,
            type(error).__name__,
            str(error) or "connection closed by the server",
            failures,
            MAX_ATTEMPTS - 1,
            delay,
        )
        time.sleep(delay)

    def call(self, what: str, action: Callable[[_Connection], _T]) -> _T:
        """Run ``action`` on a pooled connection, retrying transient failures on a fresh one."""
        failures = 0
        while True:
            try:
                conn = self.acquire()
            except Exception as exc:
                failures += 1
                self.failed(exc, what, failures)
                continue
            try:
                result = action(conn)
            except Exception as exc:
                # After a 5xx reply the connection is still in a known state; after anything else it is not.
                self.release(conn, reuse=isinstance(exc, ftplib.error_perm))
                failures += 1
                self.failed(exc, what, failures)
                continue
            self.release(conn, reuse=True)
            return result

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_POOLS: dict[tuple, ConnectionPool] = {}
_POOLS_LOCK = threading.Lock()


def connection_pool(endpoint: Endpoint, max_connections: int) -> ConnectionPool:
    """The process-wide pool for this server, user and password (each fetch task builds its own provider)."""
    secret = endpoint.password.get_secret_value() if endpoint.password is not None else ""
    key = (
        endpoint.host,
        endpoint.port,
        endpoint.user,
        hashlib.sha256(secret.encode()).hexdigest(),
        max_connections,
    )
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ConnectionPool(endpoint, max_connections)
        return pool


@atexit.register
def reset_connection_pools() -> None:
    """Close idle connections and forget every pool (and its refused logins and statistics)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close_idle()


def _forget_pools_in_child() -> None:
    # A forked worker must not talk over its parent's sockets, nor wait on a lock held at fork time.
    global _POOLS_LOCK
    _POOLS_LOCK = threading.Lock()
    _POOLS.clear()


os.register_at_fork(after_in_child=_forget_pools_in_child)


# --- listings ------------------------------------------------------------------------------------------


def _list_dir(pool: ConnectionPool, conn: _Connection, path: str) -> list[dict[str, Any]]:
    """Entries of ``path`` as fsspec info dicts: MLSD when the server has it, else NLST + SIZE."""
    if pool.mlsd is not False:
        conn.binary = False  # retrlines switches the connection to ASCII
        try:
            facts = list(conn.ftp.mlsd(path, facts=["type", "size"]))
        except ftplib.error_perm as exc:
            if _code(exc) not in ("500", "501", "502", "504"):
                raise
            pool.mlsd = False
        else:
            pool.mlsd = True
            entries = []
            for name, fact in facts:
                kind = fact.get("type", "")
                if kind in ("cdir", "pdir") or name in (".", ".."):
                    continue
                is_dir = kind == "dir"
                size = 0 if is_dir else int(fact.get("size", 0))
                entries.append(_info(f"{path.rstrip('/')}/{name}", size, is_dir))
            return entries
    conn.binary = False
    try:
        names = conn.ftp.nlst(path)
    except ftplib.error_temp as exc:
        if _code(exc) == "450":  # some servers answer 450 "no files found" for an empty folder
            return []
        raise
    conn.ensure_binary()  # SIZE is refused in ASCII mode
    entries = []
    for name in names:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        if base in (".", ".."):
            continue
        full = f"{path.rstrip('/')}/{base}"
        try:
            size = conn.ftp.size(full)
        except ftplib.error_perm:  # no size: a folder
            entries.append(_info(full, 0, True))
            continue
        entries.append(_info(full, int(size or 0), False))
    return entries


def _info(path: str, size: int, is_dir: bool) -> dict[str, Any]:
    return {"name": path, "size": size, "type": "directory" if is_dir else "file"}


# --- reading -------------------------------------------------------------------------------------------


class FTPReader(io.RawIOBase):
    """A sequential read of one server file that survives dropped connections.

    The transfer holds one pooled connection while it runs. When it breaks (socket error, 4xx reply, or a
    226 after too few bytes), the reader waits, takes a fresh connection and asks for the rest (REST at the
    current offset; servers without REST restart and the bytes already read are skipped). Consecutive
    failures without progress are bounded by ``MAX_ATTEMPTS``.
    """

    def __init__(self, fs: AvisoFTPFileSystem, path: str, size: int) -> None:
        super().__init__()
        self._fs = fs
        self._pool = fs.pool
        self.path = path
        self.size = size
        self._offset = 0
        self._conn: _Connection | None = None
        self._data: socket.socket | None = None
        self._failures = 0  # in a row, without a byte of progress
        self._total_failures = 0
        self._rest = True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._offset

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = {io.SEEK_SET: offset, io.SEEK_CUR: self._offset + offset, io.SEEK_END: self.size + offset}
        new = target[whence]
        if new < 0:
            raise ValueError("negative seek position")
        if new != self._offset:
            self._abandon()
            self._offset = new
        return new

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._offset < self.size:
            try:
                if self._data is None:
                    self._start()
                assert self._data is not None
                received = self._data.recv_into(
                    view[filled:], min(len(view) - filled, self.size - self._offset)
                )
                if received == 0:
                    self._finish()  # early end: raises, so the retry below resumes at the offset
                    continue
                filled += received
                self._offset += received
                self._failures = 0
            except Exception as exc:
                self._abandon()
                self._failures += 1
                self._total_failures += 1
                # A server that always breaks after a few bytes must not keep us busy forever.
                failures = MAX_ATTEMPTS if self._total_failures >= 4 * MAX_ATTEMPTS else self._failures
                self._pool.failed(exc, f"RETR {self.path} at byte {self._offset}", failures)
                self._fs.retries[self.path] += 1
        if self._offset >= self.size and self._data is not None:
            try:
                self._finish()
            except Exception as exc:  # every byte arrived; only the goodbye failed
                logger.debug("%s: end of RETR %s: %s", self._pool.endpoint.label, self.path, exc)
                self._abandon()
        return filled

    def _start(self) -> None:
        conn = self._pool.acquire()
        self._conn = conn
        conn.ensure_binary()
        rest = self._offset if self._offset and self._rest else None
        try:
            data = conn.ftp.transfercmd(f"RETR {self.path}", rest)
        except ftplib.error_perm as exc:
            if rest is None or _code(exc) not in ("500", "501", "502", "504"):
                raise
            self._rest = False  # no REST here: start over and skip what we have
            data = conn.ftp.transfercmd(f"RETR {self.path}")
        self._data = data
        skip = self._offset if rest is None else 0
        scratch = bytearray(1 << 16)
        while skip:
            got = data.recv_into(scratch, min(skip, len(scratch)))
            if got == 0:
                raise EOFError(f"transfer ended while skipping to byte {self._offset}")
            skip -= got

    def _finish(self) -> None:
        """End of the data stream: read the server's verdict and hand the connection back."""
        assert self._data is not None and self._conn is not None
        if self._offset >= self.size and self._data.recv(1):
            raise OSError(f"{self.path} is longer than the {self.size} bytes listed; re-list the catalog")
        self._data.close()
        self._data = None
        self._conn.ftp.voidresp()
        conn, self._conn = self._conn, None
        self._pool.release(conn, reuse=True)
        if self._offset < self.size:
            raise EOFError(f"the server ended the transfer at byte {self._offset} of {self.size}")
        self._pool.note_file(self.size)

    def _abandon(self) -> None:
        """Drop the transfer in progress: its connection is in an unknown state, so it is closed."""
        if self._data is not None:
            self._data.close()
            self._data = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool.release(conn, reuse=False)

    def close(self) -> None:
        if not self.closed:
            self._abandon()
        super().close()


# --- filesystem ----------------------------------------------------------------------------------------


class AvisoFTPFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem over a :class:`ConnectionPool` (protocol ``avisoftp``).

    fsspec's own FTP filesystem shares one connection between threads and has no retries; this one gives
    every operation a pooled connection and every transfer a resumable reader.
    """

    protocol = "avisoftp"
    root_marker = "/"
    cachable = False  # the pool, not fsspec's instance cache, is what is shared

    def __init__(self, host: str, port: int = 21, *, pool: ConnectionPool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pool = pool
        self.retries: Counter[str] = Counter()  # failed attempts per server path, for reports

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        return "/" + infer_storage_options(path)["path"].lstrip("/").rstrip("/")

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict[str, Any]:
        out = infer_storage_options(urlpath)
        return {k: v for k, v in out.items() if k in ("host", "port")}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        path = self._strip_protocol(path)
        entries = self.pool.call(f"list {path}", lambda conn: _list_dir(self.pool, conn, path))
        return entries if detail else sorted(e["name"] for e in entries)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if path == "/":
            return _info("/", 0, True)

        def size(conn: _Connection) -> int:
            conn.ensure_binary()
            return int(conn.ftp.size(path) or 0)

        try:
            return _info(path, self.pool.call(f"SIZE {path}", size), False)
        except FileNotFoundError:
            parent, _, name = path.rpartition("/")
            try:  # SIZE fails on folders too: look for the name in the parent's listing
                entries = self.ls(parent or "/")
            except FileNotFoundError:
                entries = []
            for entry in entries:
                if entry["name"].rsplit("/", 1)[-1] == name:
                    return entry
            raise

    def _open(self, path: str, mode: str = "rb", block_size: Any = None, **kwargs: Any) -> FTPReader:
        if mode != "rb":
            raise NotImplementedError(f"{self.protocol}: read-only (mode {mode!r})")
        path = self._strip_protocol(path)
        info = self.info(path)
        if info["type"] != "file":
            raise IsADirectoryError(path)
        return FTPReader(self, path, info["size"])


fsspec.register_implementation(AvisoFTPFileSystem.protocol, AvisoFTPFileSystem, clobber=True)


# --- catalog -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """What one (level, kind) setting means: server folder, file kind and raw folder."""

    level: str
    kind: str
    server_root: str  # no leading '/': a key under the source Storage
    file_kind: str
    raw_dir: str

    @property
    def catalog_key(self) -> str:
        return f"aviso_swot_{self.level}_{self.kind}.json"


def swot_layout(settings: Settings, product: Product | None = None, prefix: str = "") -> Layout:
    level, kind = settings.swot_level, settings.swot_kind
    root = _ROOTS.get((level, kind))
    if root is None:
        known = ", ".join(f"{lv}/{k}" for lv, k in _ROOTS)
        raise ValueError(f"SWOT {level} {kind} is not on the AVISO server; choose one of {known}")
    raw_dir = L2_RAW_DIR if level == "l2" else (product.raw_dir if product else "l3_swot")
    return Layout(
        level, kind, "/".join(p for p in (prefix, root) if p), _FILE_KIND[level].format(kind=kind), raw_dir
    )


def default_catalog_url(raw_url: str, settings: Settings) -> str:
    """Where the download command caches the catalog: next to the passes, in the raw root."""
    return Storage(raw_url).url_of(f"{swot_layout(settings).raw_dir}/catalog")


@dataclass
class Catalog:
    """Every file under the level's server root: ``{cycle folder: [[name, size], ...]}``."""

    created: dt.datetime
    server: str
    root: str
    cycles: dict[str, list[list[Any]]] = field(default_factory=dict)

    def files(self) -> dict[str, int]:
        """Server keys (relative to the server root '/') and their sizes."""
        return {
            f"{self.root}/{cycle}/{name}": int(size)
            for cycle, names in self.cycles.items()
            for name, size in names
        }

    def to_json(self) -> bytes:
        body = {
            "format": CATALOG_FORMAT,
            "created": self.created.isoformat(),
            "server": self.server,
            "root": self.root,
            "total_cycles": len(self.cycles),
            "total_files": sum(len(v) for v in self.cycles.values()),
            "cycles": self.cycles,
        }
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Catalog | None:
        try:
            body = json.loads(data)
            if body.get("format") != CATALOG_FORMAT:
                return None
            return cls(
                dt.datetime.fromisoformat(body["created"]), body["server"], body["root"], body["cycles"]
            )
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable cache is rebuilt, not an error


# When this process was first asked to refresh each (catalog url, server, root): listings made since then
# count as refreshed, so weekly batches of one run re-list once, not once per batch.
_REFRESH_SINCE: dict[tuple[str, str, str], dt.datetime] = {}


def list_catalog(fs: AvisoFTPFileSystem, server: str, root: str, workers: int) -> Catalog:
    """List the root's ``cycle_NNN`` folders, several at a time (each listing on its own connection)."""
    started = time.perf_counter()
    names = [e["name"].rsplit("/", 1)[-1] for e in fs.ls(root) if e["type"] == "directory"]
    cycles = sorted((n for n in names if _CYCLE_DIR.fullmatch(n)), key=lambda n: int(n.split("_")[1]))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(cycles) or 1))) as threads:
        listings = list(threads.map(lambda c: fs.ls(f"{root}/{c}"), cycles))
    catalog = Catalog(dt.datetime.now(dt.UTC), server, root.strip("/"))
    for cycle, entries in zip(cycles, listings, strict=True):
        catalog.cycles[cycle] = sorted(
            [e["name"].rsplit("/", 1)[-1], e["size"]] for e in entries if e["type"] == "file"
        )
    logger.info(
        "AVISO catalog of %s/%s: %d cycles, %d files, listed in %.1f s",
        server,
        root,
        len(cycles),
        sum(len(v) for v in catalog.cycles.values()),
        time.perf_counter() - started,
    )
    return catalog


# --- provider ------------------------------------------------------------------------------------------


def _endpoint(settings: Settings) -> tuple[Endpoint, str]:
    """Server endpoint and path prefix from ``aviso_ftp_url``; refuses credentials inside the URL."""
    parts = urlsplit(settings.aviso_ftp_url)
    if parts.username or parts.password:
        # The URL is not repeated: it holds the secret.
        raise ValueError(
            "OCEANTACO_AVISO_FTP_URL must not contain credentials; "
            "set OCEANTACO_AVISO_USER and OCEANTACO_AVISO_PASSWORD instead"
        )
    if parts.scheme != "ftp" or not parts.hostname:
        raise ValueError(
            f"OCEANTACO_AVISO_FTP_URL must look like ftp://host[:port][/prefix], not {parts.scheme}://"
        )
    tokens = [p.token for p in load_catalog().ordered() if p.provider == "aviso"]
    endpoint = Endpoint(
        host=parts.hostname,
        port=parts.port or 21,
        user=settings.aviso_user or "anonymous",
        password=settings.aviso_password,
        label=f"SWOT ({', '.join(tokens)}) on AVISO FTP",
    )
    return endpoint, parts.path.strip("/")


@register
class Aviso:
    name = "aviso"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._source: Storage | None = None

    @property
    def pool(self) -> ConnectionPool:
        endpoint, _ = _endpoint(self.settings)
        return connection_pool(endpoint, self.settings.aviso_max_connections)

    @property
    def source(self) -> Storage:
        """The server as a read-only Storage rooted at '/'; keys are server paths."""
        if self._source is None:
            endpoint, _ = _endpoint(self.settings)
            self._source = Storage(f"avisoftp://{endpoint.address}", pool=self.pool)
        return self._source

    def layout(self, product: Product | None = None) -> Layout:
        return swot_layout(self.settings, product, _endpoint(self.settings)[1])

    def catalog(self) -> Catalog:
        """The cached catalog when fresh enough, else a new listing (which replaces the cache)."""
        settings, lay = self.settings, self.layout()
        endpoint, _ = _endpoint(settings)
        cache_url = settings.aviso_catalog_url or str(Path(tempfile.gettempdir()) / "oceantaco-aviso-catalog")
        cache = Storage(cache_url)
        now = dt.datetime.now(dt.UTC)
        oldest = now - dt.timedelta(hours=settings.aviso_catalog_max_age_hours)
        if settings.aviso_refresh_catalog:
            since = _REFRESH_SINCE.setdefault((cache.url, endpoint.address, lay.server_root), now)
            oldest = max(oldest, since)
        if cache.exists(lay.catalog_key):
            cached = Catalog.from_json(cache.read_bytes(lay.catalog_key))
            if (
                cached is not None
                and cached.server == endpoint.address
                and cached.root == lay.server_root
                and cached.created >= oldest
            ):
                logger.info("AVISO catalog from %s (%s)", cache.url_of(lay.catalog_key), cached.created)
                return cached
        fs = self.source.fs
        assert isinstance(fs, AvisoFTPFileSystem)
        catalog = list_catalog(fs, endpoint.address, lay.server_root, settings.aviso_max_connections)
        if settings.aviso_catalog_write:
            cache.write_bytes(lay.catalog_key, catalog.to_json())
        return catalog

    def plan(self, product: Product, days: list[dt.date]) -> list[DayPlan]:
        """The newest file of every pass touching each day; a pass crossing midnight is in both days."""
        if self.settings.aviso_user is None:
            logger.warning(
                "%s: no AVISO credentials, SWOT passes are not downloaded; %s", product.token, _FIX
            )
            return [DayPlan(product.token, day, ()) for day in days]
        if self.settings.aviso_password is None and self.settings.aviso_user != "anonymous":
            raise AvisoLoginError(
                f"{product.token}: an AVISO user is set but no password; set OCEANTACO_AVISO_PASSWORD "
                "(or --aviso-ftp-pass)"
            )
        if not days:
            return []
        lay = self.layout(product)
        # One login before anything else: bad credentials fail here once, not once per file.
        self.pool.call("login", lambda conn: None)
        files = self.catalog().files()
        wanted: dict[dt.date, list[RemoteFile]] = {day: [] for day in days}
        for found in newest_passes(list(files), lay.file_kind):
            name = found.key.rsplit("/", 1)[-1]
            for day in found.days:
                if day in wanted:
                    wanted[day].append(RemoteFile(found.key, f"{lay.raw_dir}/{name}", files[found.key]))
        return [DayPlan(product.token, day, tuple(wanted[day])) for day in days]

    def raw_inputs(self, product: Product, day: dt.date, raw: Storage) -> list[str]:
        keys = [*raw.list(product.raw_dir), *raw.list(L2_RAW_DIR)]
        return [p.key for p in passes_for_day(keys, day)]


def apply_cli_options(
    settings: Settings,
    raw_url: str,
    *,
    user: str | None = None,
    password: str | None = None,
    level: str | None = None,
    refresh_catalog: bool = False,
    dry_run: bool = False,
) -> Settings:
    """Settings for a download run: the seed CLI's AVISO options over the environment's, and the catalog
    cached in the raw root unless ``OCEANTACO_AVISO_CATALOG_URL`` says otherwise; a dry run reads that
    cache but writes nothing."""
    update: dict[str, Any] = {"aviso_catalog_write": settings.aviso_catalog_write and not dry_run}
    if user:
        update["aviso_user"] = user
    if password:
        update["aviso_password"] = SecretStr(password)
    if level:
        update["swot_level"] = level
    if refresh_catalog:
        update["aviso_refresh_catalog"] = True
    merged = settings.model_copy(update=update)
    if merged.aviso_catalog_url is None:
        merged = merged.model_copy(update={"aviso_catalog_url": default_catalog_url(raw_url, merged)})
    return merged
