"""The one storage interface of the project: a root (local path or fsspec URL) plus '/'-separated keys.

Writes are atomic (a reader never sees a partial object) and return the sha256 of what was stored; writing an
object that is already there byte for byte is skipped, so re-running a flow does not re-upload anything.

- Local disk: the data goes to a hidden ``<dir>/.<name>.tmp-<uuid>`` next to the destination, is fsynced and
  then renamed over the destination (``os.replace`` is atomic within a filesystem).
- s3, gcs, memory: one PUT/upload of finished bytes or of a finished local file is already atomic there (the
  object appears only when complete; multipart/resumable uploads are aborted by s3fs/gcsfs on failure), so no
  temp objects are ever created in a bucket.
- Other protocols (http, ftp, ...) have no atomic publish and are read-only sources here.

Reads are sequential, one object at a time, through bounded read-ahead: no big concurrent batched gathers,
which stall the single-threaded GCS emulator (and buy little against a real bucket for whole-file copies).

Credentials come only from the libraries' standard environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
STORAGE_EMULATOR_HOST, GOOGLE_APPLICATION_CREDENTIALS, ...) or explicit ``storage_options``; none is logged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TypeVar

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

# gcsfs reads this once, when it is first imported; its default ("true") probes every bucket for zonal/HNS
# features over gRPC, which costs ~60 s of timeouts per bucket against the GCS emulator and buys nothing for
# plain buckets. fsspec imports gcsfs lazily (on the first gs:// URL), so setting it here is early enough.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # streaming unit for hashing and copying
# Read-ahead of remote file objects: bounds memory per open object while keeping request counts low.
_REMOTE_BLOCK_SIZE = 8 << 20
_TEMP_NAME = re.compile(r"^\..+\.tmp-[0-9a-f]{32}$")
# Object metadata that changes whenever an object is replaced (the ones a backend reports are used).
_VERSION_FIELDS = ("generation", "ETag", "LastModified", "ino", "mtime", "created", "size")
_CANONICAL_PROTOCOL = {"gs": "gcs"}  # gcsfs registers ("gs", "gcs"); the project calls it gcs
_ATOMIC_PUT_PROTOCOLS = frozenset({"s3", "gcs", "memory"})
# Whole reads of an object that other processes keep replacing (the inventory during concurrent runs).
_REPLACED_READ_ATTEMPTS = 5

T = TypeVar("T")


# Buckets the reachability check knows how to probe, with the environment variables that usually fix it.
_BUCKET_FIXES = {
    "s3": "check AWS_ENDPOINT_URL and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the pod's IAM role)",
    "gcs": "check STORAGE_EMULATOR_HOST or GOOGLE_APPLICATION_CREDENTIALS (or workload identity)",
}
# One attempt with short timeouts: s3fs and botocore otherwise retry a closed port for ~25 s.
_PROBE_OPTIONS: dict[str, dict[str, object]] = {
    "s3": {"config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 5, "read_timeout": 15}},
}


class StorageUnreachableError(OSError):
    """A bucket root that cannot be used at all: no such bucket, no endpoint, no credentials."""


@dataclass(frozen=True)
class WriteResult:
    key: str  # key relative to the storage root, '/'-separated
    sha256: str  # hex sha256 of the object's bytes
    size: int
    written: bool  # False when an identical object was already there (nothing re-written)


def _clean_key(key: str, *, allow_root: bool = False) -> str:
    """Normalise a '/'-separated key; reject '.', '..' and empty segments so keys cannot escape the root."""
    cleaned = key.strip("/")
    if not cleaned:
        if allow_root:
            return ""
        raise ValueError("an object key must not be empty")
    if any(part in ("", ".", "..") for part in cleaned.split("/")):
        raise ValueError(f"invalid key {key!r}: empty, '.' or '..' segment")
    return cleaned


def _join(base: str, key: str) -> str:
    if not key:
        return base
    return base + key if base.endswith("/") else f"{base}/{key}"


def _is_temp(key: str) -> bool:
    return bool(_TEMP_NAME.match(key.rsplit("/", 1)[-1]))


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_SIZE):
        yield chunk


def _spool(chunks: Iterable[bytes], dest: Path) -> tuple[str, int]:
    """Write chunks to a new file dest; return (sha256, size) computed on the way."""
    digest = hashlib.sha256()
    size = 0
    with open(dest, "xb") as f:
        for chunk in chunks:
            f.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _hash_file(path: str | Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in _chunks(f):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _durable_replace(tmp: Path, dest: Path) -> None:
    """fsync tmp, then rename it over dest: readers see the old object or the complete new one."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)


class Storage:
    """A storage root (local path or fsspec URL) addressed by keys relative to it."""

    def __init__(self, root: str | os.PathLike[str], **storage_options: object) -> None:
        root = os.fspath(root)
        fs, path = url_to_fs(root, **storage_options)
        self.fs: fsspec.AbstractFileSystem = fs
        self._options = storage_options
        self._root = path.rstrip("/") or path
        # Keep the user's URL for remote roots: fs.unstrip_protocol() loses the host of ftp:// roots.
        self.url: str = self._root if self.is_local else (root if root.endswith("://") else root.rstrip("/"))
        self._prefix = self._root if self._root.endswith("/") else self._root + "/"

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    @property
    def protocol(self) -> str:
        """Canonical protocol of the filesystem: "file", "s3", "gcs", "memory", "http", ..."""
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return _CANONICAL_PROTOCOL.get(proto, proto)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def child(self, key: str) -> Storage:
        """A Storage rooted at key (same filesystem options)."""
        return Storage(self.url_of(_clean_key(key)), **self._options)

    def full_path(self, key: str) -> str:
        """Path of key inside self.fs, for direct fs calls."""
        return _join(self._root, _clean_key(key, allow_root=True))

    def url_of(self, key: str) -> str:
        """User-facing location of key: s3://..., gs://..., memory://... or a local absolute path."""
        return _join(self.url, _clean_key(key, allow_root=True))

    def _fresh(self, key: str) -> str:
        """full_path(key) with fsspec's listings cache dropped for it and its parents: other processes may
        have written since, and a stale listing of the parent would hide their object from ``open``."""
        path = self.full_path(key)
        self.fs.invalidate_cache(path)
        return path

    def _fresh_tree(self, prefix: str) -> str:
        """``_fresh`` for a listing: also drops the cached listings of every sub-directory, which a recursive
        ``find`` would otherwise serve stale."""
        path = self._fresh(prefix)
        below = path.rstrip("/") + "/"
        cache = getattr(self.fs, "dircache", None)
        if cache:
            for cached in [p for p in cache if p.startswith(below)]:
                cache.pop(cached, None)
        return path

    def _rel(self, path: str) -> str:
        if not path.startswith(self._prefix):
            raise ValueError(f"{path!r} is not under {self._root!r}")
        return path[len(self._prefix) :]

    def check_reachable(self) -> None:
        """Fail fast, with the likely fix, when this bucket root cannot be reached.

        One cheap request (the bucket's metadata) on a throw-away client without retries, so a wrong endpoint
        or missing credentials surface in a second as one clear error instead of a traceback after every
        retry of the first real request. Local, memory and read-only (http, ftp) roots are not probed.
        """
        fix = _BUCKET_FIXES.get(self.protocol)
        if fix is None:
            return
        bucket = self._root.split("/", 1)[0]
        options = {**_PROBE_OPTIONS.get(self.protocol, {}), **self._options}
        try:
            fs, _ = url_to_fs(self.url, skip_instance_cache=True, **options)
            if hasattr(fs, "retries"):
                fs.retries = 1  # s3fs' own retry loop, on top of botocore's
            fs.info(bucket)
        except FileNotFoundError:
            raise StorageUnreachableError(
                f"{self.url}: bucket {bucket!r} does not exist; create it or fix the URL, or {fix}"
            ) from None
        except Exception as exc:  # connection refused, DNS, no credentials, access denied, ...
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())
            raise StorageUnreachableError(f"{self.url}: cannot reach the bucket ({reason}); {fix}") from None

    # ---- reading ------------------------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        """Size in bytes of the object at key; None if there is no object (a directory is not one)."""
        try:
            info = self.fs.info(self._fresh(_clean_key(key)))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info["type"] == "file" else None

    def sha256(self, key: str) -> str:
        def digest(f: BinaryIO) -> str:
            hashed = hashlib.sha256()
            for chunk in _chunks(f):
                hashed.update(chunk)
            return hashed.hexdigest()

        return self._read_whole(key, digest)

    def _read_whole(self, key: str, consume: Callable[[BinaryIO], T]) -> T:
        """consume(an open reader of key), read again if another process replaced the object meanwhile
        (hashing and local copies of our own objects, e.g. the inventory during concurrent runs).

        Writes replace objects whole, but a remote reader fetches blocks with separate ranged GETs. On S3
        they are pinned to the first ETag, so a replacement fails the next one (s3fs: FileExpired, EBUSY);
        on GCS they are not, so a generation that changed during the read means the bytes may mix two
        versions. Either way the object is read again, and the result is always one version whole. Local
        readers keep the file they opened and memory reads are one call: neither can mix versions.
        """
        url = self.url_of(key)
        for attempt in range(1, _REPLACED_READ_ATTEMPTS + 1):
            generation = self._generation(key)
            try:
                with self.open_read(key) as f:
                    result = consume(f)
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == _REPLACED_READ_ATTEMPTS:
                    raise
            else:
                if generation == self._generation(key):
                    return result
            logger.debug("%s was replaced while being read; reading it again", url)
        raise OSError(errno.EBUSY, f"{url} was replaced during each of {_REPLACED_READ_ATTEMPTS} reads")

    def _generation(self, key: str) -> str | None:
        """The GCS generation of key (None elsewhere: see _read_whole)."""
        if self.protocol != "gcs":
            return None
        return self.fs.info(self._fresh(_clean_key(key))).get("generation")

    def read_bytes(self, key: str) -> bytes:
        return self.fs.cat_file(self._fresh(_clean_key(key)))

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """length bytes from offset start (fewer if the object ends first); start must lie inside it."""
        if start < 0 or length < 0:
            raise ValueError("start and length must be >= 0")
        if length == 0:
            return b""
        return self.fs.cat_file(self._fresh(_clean_key(key)), start=start, end=start + length)

    def open_read(self, key: str) -> BinaryIO:
        """Seekable binary file object; remote ones read ahead in bounded blocks."""
        path = self._fresh(_clean_key(key))
        if self.protocol == "memory":
            # MemoryFileSystem.open() hands out the stored object itself, whose position all readers share.
            return io.BytesIO(self.fs.cat_file(path))
        return self.fs.open(path, "rb", block_size=_REMOTE_BLOCK_SIZE)

    def list(self, prefix: str = "", suffix: str | None = None) -> list[str]:
        """Keys of all objects under the directory prefix (recursive, sorted), minus in-flight temp files."""
        try:
            paths = self.fs.find(self._fresh_tree(prefix))
        except FileNotFoundError:
            return []
        keys = (self._rel(path) for path in paths)
        return sorted(k for k in keys if not _is_temp(k) and (suffix is None or k.endswith(suffix)))

    def versions(self, prefix: str = "", suffix: str | None = None) -> dict[str, str]:
        """``list`` with a version token per key, from the same one listing: the token changes whenever the
        object is replaced, even by the same bytes (generation on GCS, ETag + time on S3, inode + mtime on
        disk), so a reader can tell that what it read earlier is no longer what is stored."""
        try:
            found = self.fs.find(self._fresh_tree(prefix), detail=True)
        except FileNotFoundError:
            return {}
        tokens = {}
        for path, info in found.items():
            key = self._rel(path)
            if _is_temp(key) or (suffix is not None and not key.endswith(suffix)):
                continue
            fields = (info.get(name) for name in _VERSION_FIELDS)
            tokens[key] = "/".join(str(value) for value in fields if value is not None)
        return dict(sorted(tokens.items()))

    def list_dirs(self, prefix: str = "") -> list[str]:
        """Names of the immediate sub-directories of prefix, sorted.

        Object stores have directories only while objects exist below them; on local disk a directory
        emptied by delete() stays listed.
        """
        try:
            entries = self.fs.ls(self._fresh(prefix), detail=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory")

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local file with the object's bytes: the file itself on local roots, else a temp download."""
        key = _clean_key(key)
        if self.is_local:
            path = Path(self.full_path(key))
            if not path.is_file():
                raise FileNotFoundError(self.url_of(key))
            yield path
            return
        with tempfile.TemporaryDirectory(prefix="oceantaco-") as tmp:
            dest = Path(tmp) / PurePosixPath(key).name
            self._read_whole(key, lambda f: _spool(_chunks(f), dest))
            yield dest

    # ---- writing ------------------------------------------------------------------------------------

    def _require_atomic_writes(self) -> None:
        if not self.is_local and self.protocol not in _ATOMIC_PUT_PROTOCOLS:
            raise NotImplementedError(f"{self.url}: no atomic write for {self.protocol!r} (read-only here)")

    def _holds(self, key: str, size: int, sha256: str) -> bool:
        """True if key already holds exactly these bytes (size first: it is one cheap metadata call)."""
        return self.size(key) == size and self.sha256(key) == sha256

    @contextlib.contextmanager
    def _local_temp(self, key: str) -> Iterator[Path]:
        """Hidden temp path next to key's destination; removed unless it was renamed into place."""
        dest = Path(self.full_path(key))
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex}")
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _staging_file(self, key: str) -> Iterator[Path]:
        """Where to assemble a new object: next to the destination on local roots, else in a temp dir."""
        if self.is_local:
            with self._local_temp(key) as tmp:
                yield tmp
        else:
            with tempfile.TemporaryDirectory(prefix="oceantaco-") as tmp:
                yield Path(tmp) / PurePosixPath(key).name

    def _publish(self, staged: Path, key: str) -> None:
        """Make a finished staged file (from _staging_file) the object at key, atomically."""
        path = self.full_path(key)
        if self.is_local:
            _durable_replace(staged, Path(path))
        else:
            self._upload(staged, path)

    def _upload(self, local: Path, path: str) -> None:
        """One atomic upload of a finished local file to an object store path."""
        if self.protocol == "memory":
            # fsspec's generic put_file streams into an object that is visible from the first write on.
            self.fs.pipe_file(path, local.read_bytes())
        else:
            self.fs.put_file(str(local), path)

    def _result(self, key: str, sha256: str, size: int, *, written: bool) -> WriteResult:
        logger.debug("%s %s (%d bytes)", "wrote" if written else "unchanged", self.url_of(key), size)
        return WriteResult(key=key, sha256=sha256, size=size, written=written)

    def write_bytes(self, key: str, data: bytes | bytearray | memoryview) -> WriteResult:
        """Store data at key atomically, unless key already holds the same bytes (written=False).

        Accepts any bytes-like object: xarray's ``to_netcdf()`` returns a memoryview.
        """
        key = _clean_key(key)
        self._require_atomic_writes()
        data = bytes(data)  # no copy for bytes; s3fs/gcsfs uploads want real bytes
        sha256, size = hashlib.sha256(data).hexdigest(), len(data)
        if self._holds(key, size, sha256):
            return self._result(key, sha256, size, written=False)
        if self.is_local:
            with self._local_temp(key) as tmp:
                _spool([data], tmp)
                self._publish(tmp, key)
        else:
            self.fs.pipe_file(self.full_path(key), data)  # one PUT: atomic on s3, gcs and memory
        return self._result(key, sha256, size, written=True)

    def put_file(self, local_path: str | Path, key: str) -> WriteResult:
        """Upload a local file to key atomically, unless key already holds the same bytes."""
        key = _clean_key(key)
        self._require_atomic_writes()
        sha256, size = _hash_file(local_path)
        if self._holds(key, size, sha256):
            return self._result(key, sha256, size, written=False)
        if self.is_local:
            with self._local_temp(key) as tmp, open(local_path, "rb") as src:
                _spool(_chunks(src), tmp)
                self._publish(tmp, key)
        else:
            self._upload(Path(local_path), self.full_path(key))
        return self._result(key, sha256, size, written=True)

    def copy_from(
        self, src: Storage, src_key: str, key: str, *, expected_size: int | None = None
    ) -> WriteResult:
        """Stream src/src_key to key (e.g. an https/ftp/s3 mirror into a bucket) with flat memory use.

        Skipped without reading the source when key exists with the source's size (expected_size, e.g. from
        a listing, saves a HEAD). Otherwise the source is streamed into a staging file while hashing, its
        length checked against the expected size (a short read is an error, not an object), then published.
        """
        key = _clean_key(key)
        self._require_atomic_writes()
        src_size = expected_size if expected_size is not None else src.size(src_key)
        if src_size is not None and self.size(key) == src_size:
            return self._result(key, self.sha256(key), src_size, written=False)
        with self._staging_file(key) as staged:
            with src.open_read(src_key) as f:  # src may be any source with open_read (a provider's)
                sha256, size = _spool(_chunks(f), staged)
            if src_size is not None and size != src_size:
                raise OSError(f"{src.url_of(src_key)}: read {size} bytes, expected {src_size}")
            if self._holds(key, size, sha256):
                return self._result(key, sha256, size, written=False)
            self._publish(staged, key)
        return self._result(key, sha256, size, written=True)

    def delete(self, key: str) -> None:
        """Remove the object at key; no error if it is missing."""
        path = self.full_path(_clean_key(key))
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)
        self.fs.invalidate_cache(path)

    def delete_tree(self, prefix: str) -> None:
        """Remove every object under the directory prefix (and the directory itself on local disk)."""
        path = self.full_path(_clean_key(prefix))
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(path, recursive=True)
        self.fs.invalidate_cache(path)
