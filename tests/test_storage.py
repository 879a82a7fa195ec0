"""Conformance suite for oceantaco.storage.Storage: every test runs on local disk, memory, S3 (moto server)
and GCS (emulator) through the parametrized `storage_root` fixture, unless it is about one backend."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from services import start_http_file_server

from oceantaco import storage as storage_module
from oceantaco.storage import CHUNK_SIZE, Storage, WriteResult

MiB = 1 << 20


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes (so a wrong offset or a mixed-up object shows)."""
    block = hashlib.sha256(f"{seed}".encode()).digest() * 64  # 2 KiB
    return (block * (size // len(block) + 1))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def raw_keys(storage: Storage) -> list[str]:
    """Every file under the root as the filesystem itself sees it (temp objects included), as keys."""
    root = storage.full_path("")
    storage.fs.invalidate_cache()
    try:
        paths = storage.fs.find(root)
    except FileNotFoundError:
        return []
    return sorted(path[len(root) :].lstrip("/") for path in paths)


@pytest.fixture
def storage(storage_root: str) -> Storage:
    return Storage(storage_root)


@pytest.fixture
def scratch_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point `tempfile` at an empty directory so tests can check that helper temp files are cleaned up."""
    path = tmp_path / "tempdir"
    path.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(path))
    return path


class FailingFile:
    """Wraps a real file; a read that would go past `fail_after` bytes raises instead (like EIO)."""

    def __init__(self, f: io.BufferedReader, fail_after: int) -> None:
        self._f = f
        self._left = fail_after

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = os.fstat(self._f.fileno()).st_size - self._f.tell()
        if size > self._left:
            raise OSError(5, "injected: I/O error mid-read")
        self._left -= size
        return self._f.read(size)

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)

    def __enter__(self) -> FailingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


class FailingReader(io.RawIOBase):
    """A source file object that yields `fail_after` bytes of data and then raises, like a dropped link."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self._data = io.BytesIO(data)
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._fail_after:
            raise ConnectionResetError("injected: connection dropped mid-transfer")
        limit = self._fail_after - self._data.tell()
        return self._data.read(limit if size < 0 else min(size, limit))


# ---- basic object operations ---------------------------------------------------------------------------


def test_write_read_round_trip(storage: Storage) -> None:
    data = payload(2 * MiB + 123)  # several hashing chunks, not a multiple of the chunk size
    result = storage.write_bytes("2024/01/tile_0.nc", data)

    assert result == WriteResult(key="2024/01/tile_0.nc", sha256=sha(data), size=len(data), written=True)
    assert storage.read_bytes("2024/01/tile_0.nc") == data
    assert storage.sha256("2024/01/tile_0.nc") == hashlib.sha256(data).hexdigest()
    assert storage.exists("2024/01/tile_0.nc")
    assert storage.size("2024/01/tile_0.nc") == len(data)
    with storage.open_read("2024/01/tile_0.nc") as f:
        f.seek(MiB)
        assert f.read(10) == data[MiB : MiB + 10]
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]


def test_empty_object(storage: Storage) -> None:
    result = storage.write_bytes("empty.bin", b"")

    assert (result.size, result.sha256, result.written) == (0, sha(b""), True)
    assert storage.read_bytes("empty.bin") == b""
    assert storage.size("empty.bin") == 0
    assert storage.write_bytes("empty.bin", b"").written is False


def test_write_bytes_accepts_memoryview(storage: Storage) -> None:
    data = payload(70_000)
    result = storage.write_bytes("mv.nc", memoryview(data))  # what xarray's to_netcdf() returns

    assert (result.size, result.sha256, result.written) == (len(data), sha(data), True)
    assert storage.read_bytes("mv.nc") == data
    assert storage.write_bytes("mv.nc", bytearray(data)).written is False


def test_missing_key(storage: Storage) -> None:
    assert not storage.exists("nope/x.nc")
    assert storage.size("nope/x.nc") is None
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("nope/x.nc")
    storage.delete("nope/x.nc")  # no error
    storage.write_bytes("dir/x.nc", b"x")
    assert storage.size("dir") is None  # a directory is not an object
    assert not storage.exists("dir")


def test_rewrite_identical_bytes_is_skipped(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(300_000)
    storage.write_bytes("a/b.nc", data)

    def no_write(*args: object, **kwargs: object) -> None:
        raise AssertionError("an identical object must not be re-written")

    monkeypatch.setattr(storage.fs, "pipe_file", no_write)
    monkeypatch.setattr(storage.fs, "put_file", no_write)
    monkeypatch.setattr(storage_module.os, "replace", no_write)
    result = storage.write_bytes("a/b.nc", data)

    assert result == WriteResult(key="a/b.nc", sha256=sha(data), size=len(data), written=False)
    assert storage.read_bytes("a/b.nc") == data
    assert storage.list() == ["a/b.nc"]


def test_different_bytes_replace_the_object(storage: Storage) -> None:
    old, same_size, longer = payload(1000, seed=1), payload(1000, seed=2), payload(5000, seed=3)
    storage.write_bytes("k.nc", old)

    replaced = storage.write_bytes("k.nc", same_size)  # same size, different bytes: must compare hashes
    assert (replaced.written, replaced.sha256) == (True, sha(same_size))
    assert storage.read_bytes("k.nc") == same_size

    replaced = storage.write_bytes("k.nc", longer)
    assert (replaced.written, replaced.size) == (True, 5000)
    assert storage.read_bytes("k.nc") == longer
    assert storage.sha256("k.nc") == sha(longer)
    assert storage.list() == ["k.nc"]


def test_open_read_handles_are_independent(storage: Storage) -> None:
    data = payload(10_000)
    storage.write_bytes("h.bin", data)

    with storage.open_read("h.bin") as first, storage.open_read("h.bin") as second:
        assert first.read(100) == data[:100]
        assert second.read(50) == data[:50]
        assert first.read(100) == data[100:200]
        assert second.seekable()


def test_read_range(storage: Storage) -> None:
    data = payload(100_000)
    storage.write_bytes("r.bin", data)

    assert storage.read_range("r.bin", 0, 16) == data[:16]
    assert storage.read_range("r.bin", 54_321, 1000) == data[54_321:55_321]
    assert storage.read_range("r.bin", 99_990, 100) == data[99_990:]  # clipped at the end
    assert storage.read_range("r.bin", 500, 0) == b""
    with pytest.raises(ValueError):
        storage.read_range("r.bin", -1, 10)


# ---- listing -------------------------------------------------------------------------------------------


def test_list_is_recursive_sorted_relative_and_hides_temp_objects(storage: Storage) -> None:
    for key in ["b/2.nc", "a/x/3.nc", "c.txt", "a/1.nc"]:
        storage.write_bytes(key, key.encode())
    # A stray in-flight temp object (as an interrupted local write would leave next to its destination).
    storage.fs.pipe_file(storage.full_path("a/.1.nc.tmp-" + "0" * 32), b"partial")

    assert storage.list() == ["a/1.nc", "a/x/3.nc", "b/2.nc", "c.txt"]
    assert storage.list("a") == ["a/1.nc", "a/x/3.nc"]
    assert storage.list("a/") == ["a/1.nc", "a/x/3.nc"]
    assert storage.list(suffix=".nc") == ["a/1.nc", "a/x/3.nc", "b/2.nc"]
    assert storage.list("a/x", suffix=".txt") == []
    assert storage.list("missing") == []


def test_versions_change_when_an_object_is_replaced(storage: Storage) -> None:
    for key in ["f/a.parquet", "f/b.parquet", "f/c.txt"]:
        storage.write_bytes(key, b"first " + key.encode())
    storage.fs.pipe_file(storage.full_path("f/.a.parquet.tmp-" + "0" * 32), b"partial")
    before = storage.versions("f", suffix=".parquet")
    assert list(before) == ["f/a.parquet", "f/b.parquet"] and all(before.values())

    storage.write_bytes("f/a.parquet", b"second")
    after = storage.versions("f", suffix=".parquet")
    assert after["f/a.parquet"] != before["f/a.parquet"]
    assert after["f/b.parquet"] == before["f/b.parquet"]
    assert storage.versions("missing") == {}


def test_a_whole_read_of_an_object_replaced_midway_is_old_or_new_never_torn(storage: Storage) -> None:
    """Another process replaces the object while this one streams it (the inventory during concurrent
    format runs): hashing and copying see one version whole. On S3 the reader's pinned ETag fails the next
    ranged GET (EBUSY), on GCS the generation has changed by the end of the read (its ranged GETs are not
    pinned, so the bytes mixed both versions): either way the read starts again on the new object."""
    size = storage_module._REMOTE_BLOCK_SIZE + 4 * MiB  # a second ranged GET after the replacement
    old, new = payload(size, seed=1), payload(size, seed=2)
    storage.write_bytes("inv.parquet", old)
    other_process = Storage(storage.url)
    attempts = []

    def read_replacing_on_first_attempt(f) -> bytes:
        attempts.append(1)
        head = f.read(MiB)
        if len(attempts) == 1:
            other_process.write_bytes("inv.parquet", new)
        return head + f.read()

    whole = storage._read_whole("inv.parquet", read_replacing_on_first_attempt)
    assert whole in (old, new)
    if storage.protocol in ("s3", "gcs"):
        assert whole == new and len(attempts) == 2
    assert storage.sha256("inv.parquet") == hashlib.sha256(new).hexdigest()


def test_list_dirs(storage: Storage) -> None:
    assert storage.list_dirs() == []
    for key in ["2024/02/t.nc", "2024/01/t.nc", "2023/12/t.nc", "top.nc"]:
        storage.write_bytes(key, b"x")

    assert storage.list_dirs() == ["2023", "2024"]
    assert storage.list_dirs("2024") == ["01", "02"]
    assert storage.list_dirs("2024/01") == []
    assert storage.list_dirs("missing") == []


def test_child_and_urls(storage: Storage, storage_root: str) -> None:
    storage.write_bytes("tiles/2024/t0.nc", b"t0")
    child = storage.child("tiles")

    assert child.list() == ["2024/t0.nc"]
    assert child.read_bytes("2024/t0.nc") == b"t0"
    assert child.url == storage.url_of("tiles")
    assert storage.url_of("tiles/2024/t0.nc") == f"{storage.url}/tiles/2024/t0.nc"
    assert Storage(storage.url_of("tiles/2024")).read_bytes("t0.nc") == b"t0"  # url_of round-trips
    assert storage.url == storage_root.rstrip("/")
    assert storage.is_local == (storage.protocol == "file")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "a//b", "./a", ""])
def test_invalid_keys_are_rejected(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError):
        Storage(tmp_path).write_bytes(key, b"x")


def test_root_normalisation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Storage("rel/dir/").url == str(tmp_path / "rel" / "dir")
    assert Storage(f"file://{tmp_path}/x").url == str(tmp_path / "x")
    local = Storage(tmp_path)
    assert (local.protocol, local.is_local, local.url_of("a/b")) == ("file", True, str(tmp_path / "a" / "b"))
    memory = Storage("memory://norm/")
    assert (memory.protocol, memory.is_local, memory.url_of("k")) == ("memory", False, "memory://norm/k")


def test_remote_protocols(s3_bucket: str, gcs_bucket: str) -> None:
    s3, gcs = Storage(f"{s3_bucket}/p/"), Storage(gcs_bucket)
    assert (s3.protocol, s3.url, s3.full_path("k")) == ("s3", f"{s3_bucket}/p", f"{s3_bucket[5:]}/p/k")
    assert (gcs.protocol, gcs.url_of("a/k")) == ("gcs", f"{gcs_bucket}/a/k")


# ---- files ---------------------------------------------------------------------------------------------


def test_put_file(storage: Storage, tmp_path: Path, scratch_tempdir: Path) -> None:
    data = payload(3 * MiB + 7)
    local = tmp_path / "upload.nc"
    local.write_bytes(data)

    first = storage.put_file(local, "up/load.nc")
    second = storage.put_file(str(local), "up/load.nc")

    assert first == WriteResult(key="up/load.nc", sha256=sha(data), size=len(data), written=True)
    assert second == WriteResult(key="up/load.nc", sha256=sha(data), size=len(data), written=False)
    assert storage.read_bytes("up/load.nc") == data
    assert local.read_bytes() == data  # the source is untouched (not moved) on every backend
    assert list(scratch_tempdir.iterdir()) == []


def test_local_copy(storage: Storage, scratch_tempdir: Path) -> None:
    data = payload(MiB + 1)
    storage.write_bytes("x/obj.nc", data)

    with storage.local_copy("x/obj.nc") as path:
        assert path.is_file()
        assert path.name == "obj.nc"
        assert path.read_bytes() == data
    if storage.is_local:
        assert path == Path(storage.full_path("x/obj.nc"))
        assert path.exists()  # the object itself, not a copy
    else:
        assert not path.exists()
    assert list(scratch_tempdir.iterdir()) == []
    with pytest.raises(FileNotFoundError), storage.local_copy("x/missing.nc"):
        pass


def test_delete(storage: Storage) -> None:
    storage.write_bytes("d/one.nc", b"1")
    storage.write_bytes("d/two.nc", b"2")

    storage.delete("d/one.nc")
    storage.delete("d/one.nc")  # already gone: no error

    assert not storage.exists("d/one.nc")
    assert storage.list() == ["d/two.nc"]
    assert storage.read_bytes("d/two.nc") == b"2"


def test_delete_tree(storage: Storage) -> None:
    for key in ("r/1/a.json", "r/1/sub/b.parquet", "r/2/a.json", "r1.json"):
        storage.write_bytes(key, b"x")

    storage.delete_tree("r/1")
    storage.delete_tree("r/1")  # already gone: no error

    assert storage.list() == ["r/2/a.json", "r1.json"]
    assert storage.list_dirs("r") == ["2"]


# ---- copy_from between backends ------------------------------------------------------------------------

COPY_PAIRS = [("local", "s3"), ("memory", "gcs"), ("s3", "local"), ("gcs", "memory"), ("s3", "gcs")]


@pytest.mark.parametrize(("src_backend", "dst_backend"), COPY_PAIRS, ids=[f"{a}-{b}" for a, b in COPY_PAIRS])
def test_copy_from_between_backends(
    make_storage_root: Callable[[str], str], src_backend: str, dst_backend: str, scratch_tempdir: Path
) -> None:
    src, dst = Storage(make_storage_root(src_backend)), Storage(make_storage_root(dst_backend))
    data = payload(2 * MiB + 5)
    src.write_bytes("mirror/2024/f.nc", data)

    first = dst.copy_from(src, "mirror/2024/f.nc", "raw/f.nc")
    with pytest.MonkeyPatch.context() as mp:  # a same-size destination is skipped without reading the source
        mp.setattr(src, "open_read", lambda key: pytest.fail("the source must not be read"))
        second = dst.copy_from(src, "mirror/2024/f.nc", "raw/f.nc")
        third = dst.copy_from(src, "mirror/2024/f.nc", "raw/f.nc", expected_size=len(data))

    assert first == WriteResult(key="raw/f.nc", sha256=sha(data), size=len(data), written=True)
    assert second == WriteResult(key="raw/f.nc", sha256=sha(data), size=len(data), written=False)
    assert third == second
    assert dst.read_bytes("raw/f.nc") == data
    assert dst.list() == ["raw/f.nc"]
    assert list(scratch_tempdir.iterdir()) == []


def test_copy_from_replaces_when_size_differs(storage: Storage, tmp_path: Path) -> None:
    src = Storage(tmp_path / "src")
    src.write_bytes("f.nc", payload(4000, seed=1))
    storage.write_bytes("f.nc", payload(3000, seed=2))

    result = storage.copy_from(src, "f.nc", "f.nc")

    assert (result.written, result.size) == (True, 4000)
    assert storage.read_bytes("f.nc") == payload(4000, seed=1)


def test_copy_from_streams_with_flat_memory(tmp_path: Path) -> None:
    """A 24 MiB local -> local copy must not hold the object in memory (chunks of CHUNK_SIZE)."""
    src, dst = Storage(tmp_path / "src"), Storage(tmp_path / "dst")
    src.write_bytes("big.nc", payload(24 * MiB))

    tracemalloc.start()
    try:
        result = dst.copy_from(src, "big.nc", "big.nc")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.written and result.size == 24 * MiB
    assert peak < 4 * CHUNK_SIZE
    assert dst.sha256("big.nc") == src.sha256("big.nc") == result.sha256


def test_copy_from_http_mirror(tmp_path: Path, make_storage_root: Callable[[str], str]) -> None:
    """An https-like mirror (Range-capable local HTTP server) as a read-only source."""
    mirror_dir = tmp_path / "mirror" / "nrt"
    mirror_dir.mkdir(parents=True)
    data = payload(3 * MiB + 11)
    (mirror_dir / "f.nc").write_bytes(data)
    dst = Storage(make_storage_root("memory"))

    with start_http_file_server(tmp_path / "mirror") as server:
        src = Storage(f"{server.url}/nrt")
        assert src.size("f.nc") == len(data)
        assert src.read_range("f.nc", MiB, 100) == data[MiB : MiB + 100]
        first = dst.copy_from(src, "f.nc", "in/f.nc")
        second = dst.copy_from(src, "f.nc", "in/f.nc")
        with pytest.raises(NotImplementedError):
            src.write_bytes("new.nc", b"x")  # no atomic publish over http

    assert (first.written, first.sha256, second.written) == (True, sha(data), False)
    assert dst.read_bytes("in/f.nc") == data


# ---- atomicity: failures leave nothing behind ----------------------------------------------------------


def test_failed_copy_midway_leaves_no_object(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch_tempdir: Path
) -> None:
    """The source dies after 3 MiB: neither a partial object nor a temp object may be visible, and a
    previous version of the object stays intact."""
    src = Storage(tmp_path / "src")
    data = payload(5 * MiB)
    src.write_bytes("f.nc", data)
    storage.write_bytes("old/f.nc", b"previous version")
    monkeypatch.setattr(src, "open_read", lambda key: FailingReader(data, fail_after=3 * MiB))

    with pytest.raises(ConnectionResetError):
        storage.copy_from(src, "f.nc", "new/f.nc")
    with pytest.raises(ConnectionResetError):
        storage.copy_from(src, "f.nc", "old/f.nc")

    assert storage.list() == ["old/f.nc"]
    assert storage.read_bytes("old/f.nc") == b"previous version"
    assert raw_keys(storage) == ["old/f.nc"]  # no temp objects either
    assert list(scratch_tempdir.iterdir()) == []


def test_copy_from_short_source_is_an_error(storage: Storage, tmp_path: Path, scratch_tempdir: Path) -> None:
    """A source that ends before expected_size (truncated transfer) must not become an object."""
    src = Storage(tmp_path / "src")
    src.write_bytes("f.nc", payload(1000))

    with pytest.raises(OSError, match="expected 2000"):
        storage.copy_from(src, "f.nc", "f.nc", expected_size=2000)

    assert raw_keys(storage) == []
    assert list(scratch_tempdir.iterdir()) == []


@pytest.mark.parametrize("operation", ["write_bytes", "put_file", "copy_from"])
def test_failed_upload_leaves_no_object(
    storage: Storage, tmp_path: Path, scratch_tempdir: Path, operation: str
) -> None:
    """The final publish step (rename / PUT / upload) fails: old object intact, no temp left anywhere."""
    storage.write_bytes("t/f.nc", b"previous version")
    data = payload(MiB + 3)
    local = tmp_path / "f.nc"
    local.write_bytes(data)

    def failing_publish(*args: object, **kwargs: object) -> None:
        raise OSError("injected: upload failed")

    write = {
        "write_bytes": lambda: storage.write_bytes("t/f.nc", data),
        "put_file": lambda: storage.put_file(local, "t/f.nc"),
        "copy_from": lambda: storage.copy_from(Storage(tmp_path), "f.nc", "t/f.nc"),
    }[operation]
    with pytest.MonkeyPatch.context() as mp, pytest.raises(OSError, match="injected"):
        mp.setattr(storage.fs, "pipe_file", failing_publish)
        mp.setattr(storage.fs, "put_file", failing_publish)
        mp.setattr(storage_module.os, "replace", failing_publish)
        write()

    assert storage.read_bytes("t/f.nc") == b"previous version"
    assert raw_keys(storage) == ["t/f.nc"]
    assert list(scratch_tempdir.iterdir()) == []
    assert local.read_bytes() == data


def test_put_file_failing_midway_leaves_no_object(
    storage: Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch_tempdir: Path
) -> None:
    """The real upload path (rename on disk, s3fs/gcsfs/memory upload) dies while reading the source file:
    after the hashing pass, every further open of it yields a file whose reads fail after 1.5 MiB."""
    storage.write_bytes("t/f.nc", b"previous version")
    local = tmp_path / "f.nc"
    local.write_bytes(payload(3 * MiB))
    real_open = io.open
    opens = 0

    def flaky_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        nonlocal opens
        f = real_open(file, mode, *args, **kwargs)
        if isinstance(file, str | Path) and Path(file) == local and mode == "rb":
            opens += 1
            if opens > 1:  # the first open is put_file's hashing pass
                return FailingFile(f, fail_after=3 * MiB // 2)
        return f

    monkeypatch.setattr("builtins.open", flaky_open)
    monkeypatch.setattr("io.open", flaky_open)  # pathlib.Path.read_bytes goes through io.open
    with pytest.raises(OSError, match="injected"):
        storage.put_file(local, "t/f.nc")
    monkeypatch.setattr("builtins.open", real_open)
    monkeypatch.setattr("io.open", real_open)

    assert opens >= 2
    assert storage.read_bytes("t/f.nc") == b"previous version"
    assert raw_keys(storage) == ["t/f.nc"]
    assert list(scratch_tempdir.iterdir()) == []


def test_concurrent_readers_never_see_a_partial_local_file(tmp_path: Path) -> None:
    """While 20 MB objects are (re)written in one thread, a reader polling the key sees it missing or
    complete: full size, and head and tail from the same version."""
    storage = Storage(tmp_path)
    size = 20 * 1000 * 1000
    versions = [payload(size, seed=1), payload(size, seed=2)]
    heads_tails = {(v[:64], v[-64:]) for v in versions}
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(4):
                storage.write_bytes("big/obj.nc", versions[i % 2])
        except BaseException as exc:  # surfaced by the assertions below
            errors.append(exc)
        finally:
            done.set()

    observed_sizes: list[int | None] = []
    temp_seen = False
    thread = threading.Thread(target=writer)
    thread.start()
    while not done.is_set():
        temp_seen = temp_seen or any(p.name.startswith(".obj.nc.tmp-") for p in tmp_path.glob("big/.*"))
        observed_sizes.append(storage.size("big/obj.nc"))
        try:
            with storage.open_read("big/obj.nc") as f:
                head = f.read(64)
                f.seek(-64, os.SEEK_END)
                assert (head, f.read(64)) in heads_tails
        except FileNotFoundError:
            assert observed_sizes[-1] is None  # once there, an object never disappears during a replace
        assert "big/obj.nc" in storage.list() or observed_sizes[-1] is None
    thread.join()

    assert errors == []
    assert temp_seen, "the reader never overlapped a write; the test proved nothing"
    assert set(observed_sizes) <= {None, size}
    assert storage.list() == ["big/obj.nc"]
    assert storage.read_bytes("big/obj.nc") == versions[1]
