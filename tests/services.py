"""Real local servers for tests: moto S3, the GCS emulator and a Range-capable static HTTP server.

Plain helpers (no pytest) so that fixtures, benchmarks and ad-hoc scripts can share them. Every server
listens on a free 127.0.0.1 port and is stopped by `Service.stop()` (also on interpreter exit, as a
safety net, so an interrupted session does not leave servers behind).
"""

from __future__ import annotations

import atexit
import contextlib
import email.utils
import http.server
import io
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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


PREFECT = str(Path(sys.executable).parent / "prefect")  # the CLI of the running virtualenv


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen, waits: tuple[float, ...] = (20.0,)) -> None:
    """SIGINT (once per entry of ``waits``, waiting that long each: Prefect's CLI announces its shutdown on
    the first and ends on the second), then SIGKILL to the process group it leads, so nothing it started
    outlives it."""
    for wait in waits:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


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

    # Without it Nagle's algorithm and delayed ACKs add ~40 ms to every small response.
    disable_nagle_algorithm = True

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


def start_http_file_server(directory: str | Path, *, fail_first: int = 0, status: int = 503) -> Service:
    """Range-capable static HTTP server for `directory`, in a daemon thread of this process.

    With ``fail_first`` every path answers ``status`` (e.g. 503, 429) to its first ``fail_first`` GETs,
    as an overloaded server does.
    """
    refused: dict[str, int] = {}
    lock = threading.Lock()

    class Flaky(_RangeRequestHandler):
        def do_GET(self) -> None:
            with lock:
                seen = refused.get(self.path, 0)
                refused[self.path] = seen + 1
            if seen < fail_first:
                self.send_error(status)
                return
            super().do_GET()

    def handler(*args: object, **kwargs: object) -> _RangeRequestHandler:
        return (Flaky if fail_first else _RangeRequestHandler)(*args, directory=str(directory), **kwargs)

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


# ---------------------------------------------------------------------------------------------------------
# FTP: pyftpdlib in a thread of this process, optionally dropping a share of connections.
# ---------------------------------------------------------------------------------------------------------


@dataclass
class FTPServerStats:
    """What the server saw; written by its loop thread only."""

    connections: int = 0
    active: int = 0
    peak_active: int = 0
    refused_at_greeting: int = 0  # answered 421 and closed
    aborted_transfers: int = 0  # data connection cut mid-way, control answers 426
    cut_sessions: int = 0  # data and control connections closed mid-transfer, no reply
    failed_logins: int = 0
    retr: int = 0
    rest: int = 0  # REST commands: transfers resumed part-way


@dataclass
class FTPService(Service):
    stats: FTPServerStats = field(default_factory=FTPServerStats)


def serve_ftp(handler: type, thread_name: str) -> tuple[int, Callable[[], None]]:
    """Serve a pyftpdlib handler class on a free 127.0.0.1 port from a thread; its port and a stop()."""
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

    ioloop = IOLoop()
    server = FTPServer(("127.0.0.1", 0), handler, ioloop=ioloop)
    port = server.address[1]
    stop_flag = threading.Event()

    def serve() -> None:
        while not stop_flag.is_set():
            ioloop.loop(0.05, blocking=False)  # serve_forever() would log a start line per call
        server.close_all()

    thread = threading.Thread(target=serve, name=f"{thread_name}-{port}", daemon=True)
    thread.start()

    def stop() -> None:
        stop_flag.set()
        thread.join(timeout=STOP_TIMEOUT)

    return port, stop


def start_ftp_server(
    root: str | Path,
    user: str,
    password: str,
    *,
    drop_fraction: float = 0.0,
    mlsd: bool = True,
    seed: int = 0,
) -> FTPService:
    """Read-only pyftpdlib server of ``root`` for one user, on a free 127.0.0.1 port (url ftp://host:port).

    ``drop_fraction`` of new connections get "421" and are closed at the greeting, and that share of data
    transfers (files and listings) is broken part-way: half by cutting the data connection (the server then
    answers 426, as servers do), half by closing the whole session without a word, like a dropped network
    link. ``mlsd=False`` removes MLSD/MLST, as on old servers. Choices come from a seeded generator.
    """
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import DTPHandler, FTPHandler

    stats = FTPServerStats()
    rng = random.Random(seed)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm="elr")

    class DroppingDTP(DTPHandler):
        def __init__(self, sock: socket.socket, cmd_channel: FTPHandler) -> None:
            super().__init__(sock, cmd_channel)
            broken = drop_fraction and rng.random() < drop_fraction
            self._cut_at = rng.randint(1, 1 << 15) if broken else None
            self._whole_session = rng.random() < 0.5

        def send(self, data: bytes) -> int:
            if self._cut_at is None:
                return super().send(data)
            room = self._cut_at - self.tot_bytes_sent
            if room > 0:
                return super().send(data[:room])
            if self._cut_at >= 0:
                self._cut_at = -1  # cut once, from the loop: closing inside send() breaks pyftpdlib's RETR
                self.ioloop.call_later(0, self._cut, _errback=self.handle_error)
            return 0  # nothing more goes out before the cut

        def _cut(self) -> None:
            if self._closed:
                return
            if self._whole_session:
                stats.cut_sessions += 1
                self.cmd_channel.close()
            else:
                stats.aborted_transfers += 1
                self._resp = ("426 Connection closed; transfer aborted.", lambda *a, **k: None)
                self.close()

    class Handler(FTPHandler):
        dtp_handler = DroppingDTP
        use_sendfile = False  # transfers go through send(), where the drops happen
        auth_failed_timeout = 0
        banner = "oceantaco test FTP"
        _counted = False

        def handle(self) -> None:
            stats.connections += 1
            stats.active += 1
            stats.peak_active = max(stats.peak_active, stats.active)
            self._counted = True
            if drop_fraction and rng.random() < drop_fraction:
                stats.refused_at_greeting += 1
                self.respond("421 Service not available, closing control connection.")
                self.close_when_done()
                return
            super().handle()

        def close(self) -> None:
            if self._counted and not self._closed:
                self._counted = False
                stats.active -= 1
            super().close()

        def on_login_failed(self, username: str, password: str) -> None:
            stats.failed_logins += 1

        def ftp_RETR(self, file: str) -> object:
            stats.retr += 1
            return super().ftp_RETR(file)

        def ftp_REST(self, line: str) -> object:
            stats.rest += 1
            return super().ftp_REST(line)

    Handler.authorizer = authorizer
    if not mlsd:
        Handler.proto_cmds = {k: v for k, v in FTPHandler.proto_cmds.items() if k not in ("MLSD", "MLST")}
    port, stop = serve_ftp(Handler, "ftp-server")
    service = FTPService(
        name="ftp-server", url=f"ftp://127.0.0.1:{port}", port=port, _stopper=stop, stats=stats
    )
    atexit.register(service.stop)
    return service


def start_moto_s3_at(port: int) -> Service:
    """moto's S3 server on a fixed 127.0.0.1 port; OSError when the port is taken or not bindable.

    For clients that cannot be given a port: the copernicusmarine toolbox drops it from its S3 URLs, so a
    fake Copernicus Marine needs moto on port 80 (root only).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server will: reuse the port over TIME_WAIT connections of an earlier run, yet fail here,
        # rather than wait on whatever else answers, when something listens on it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    argv = [_venv_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    return _start_process("moto_server", argv, port)


# ---------------------------------------------------------------------------------------------------------
# A local Copernicus Marine service for the copernicusmarine toolbox (prefect-k8s-stack.md §6): a
# clients-config JSON and a STAC catalogue over HTTP, the native files (and, for chosen products, an ARCO
# "timeChunked" zarr built from them) as public-read objects in moto S3 on port 80.
# ---------------------------------------------------------------------------------------------------------

_AXES = {"time": "t", "latitude": "y", "lat": "y", "longitude": "x", "lon": "x", "depth": "z"}


@dataclass
class FakeCopernicusMarine:
    config_url: str  # what COPERNICUSMARINE_CONFIG_URL would be
    bucket: str
    s3: Service
    catalogue: Service
    datasets: dict[str, str]  # "<DATASET_ID>_<version>" -> product id

    def stop(self) -> None:
        self.catalogue.stop()
        self.s3.stop()


def _public_bucket(client: object, bucket: str) -> None:
    """The toolbox sends unsigned requests: objects must be readable by anyone."""
    import json

    client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))  # type: ignore[attr-defined]


def _arco_asset(files: list[Path], zarr_dir: Path) -> tuple[dict, dict, dict]:
    """Write a time-chunked zarr (format 2) of ``files``.

    Returns the STAC item's ``cube:dimensions`` and ``cube:variables`` and the asset's ``viewDims``.
    """
    import numpy as np
    import xarray as xr

    opened = [xr.open_dataset(path, engine="h5netcdf") for path in files]
    try:
        ds = xr.concat(opened, "time") if len(opened) > 1 else opened[0]
        encoding = {}
        for name, var in ds.variables.items():
            var.encoding.pop("chunks", None)
            var.encoding.pop("preferred_chunks", None)
            if name in ds.data_vars:
                encoding[name] = {
                    "chunks": tuple(1 if d in ("time", "depth") else ds.sizes[d] for d in var.dims)
                }
        ds.to_zarr(zarr_dir, zarr_format=2, consolidated=True, encoding=encoding, mode="w")
        dimensions = {
            d: {"type": "temporal" if d == "time" else "spatial", "axis": _AXES[d]}
            for d in ds.dims
            if d in _AXES
        }
        variables = {
            name: {
                "id": name,
                "standardName": var.attrs.get("standard_name", name),
                "unit": var.attrs.get("units", ""),
                "dimensions": list(var.dims),
            }
            for name, var in ds.data_vars.items()
        }
        view: dict[str, dict] = {}
        for d in dimensions:
            values = ds[d].values
            if d == "time":
                ms = values.astype("datetime64[ms]").astype(np.int64)
                coords = {"min": int(ms[0]), "max": int(ms[-1]), "step": 86_400_000}
                units = "milliseconds since 1970-01-01 00:00:00Z (no leap seconds)"
            elif d == "depth":
                coords = {"values": [float(v) for v in values]}
                units = "m"
            else:
                coords = {
                    "min": float(values[0]),
                    "max": float(values[-1]),
                    "step": float(values[1] - values[0]),
                }
                units = str(ds[d].attrs.get("units", ""))
            view[d] = {
                "units": units,
                "coords": coords,
                "chunkLen": 1 if d in ("time", "depth") else len(values),
            }
        return dimensions, variables, view
    finally:
        for ds_ in opened:
            ds_.close()


def start_fake_copernicus_marine(
    native_tree: str | Path, workdir: str | Path, *, arco_products: tuple[str, ...] = (), s3_port: int = 80
) -> FakeCopernicusMarine:
    """Serve the native tree ``<PRODUCT_ID>/<DATASET_ID>_<version>/...`` as Copernicus Marine would.

    Every ``<DATASET_ID>_<version>`` folder becomes a STAC item with a ``native`` asset (for ``get``); for
    products in ``arco_products`` it also gets a ``timeChunked`` zarr asset (for ``subset``) holding its
    files along time. Point the toolbox at it with :func:`patch_copernicusmarine`. moto listens on
    ``s3_port`` (80: the toolbox drops ports from S3 URLs); OSError if that port cannot be bound.
    """
    import json

    import boto3

    native_tree, workdir = Path(native_tree), Path(workdir)
    s3 = start_moto_s3_at(s3_port)
    try:
        endpoint = f"http://127.0.0.1:{s3_port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        )
        bucket = f"mdl-native-{os.getpid()}-{int(time.time() * 1000) % 10**9}"
        _public_bucket(client, bucket)

        def upload(path: Path, key: str) -> None:
            client.upload_file(str(path), bucket, key, ExtraArgs={"ACL": "public-read"})

        stac = workdir / "stac"
        stac.mkdir(parents=True, exist_ok=True)
        catalogue = start_http_file_server(stac)
        base = catalogue.url
        datasets: dict[str, str] = {}
        mapping: dict[str, str] = {}
        for product_dir in sorted(p for p in native_tree.iterdir() if p.is_dir()):
            product = product_dir.name
            links = []
            for version_dir in sorted(p for p in product_dir.iterdir() if p.is_dir()):
                name = version_dir.name
                datasets[name] = product
                mapping[name.rsplit("_", 1)[0]] = product
                files = sorted(p for p in version_dir.rglob("*") if p.is_file())
                for path in files:
                    upload(path, f"native/{product}/{path.relative_to(product_dir).as_posix()}")
                properties: dict = {"datetime": "2000-01-01T00:00:00Z", "title": name}
                assets: dict = {
                    "native": {
                        "href": f"{endpoint.replace(f':{s3_port}', '')}/{bucket}/native/{product}/{name}"
                    }
                }
                if product in arco_products and files:
                    zarr_dir = workdir / "arco" / product / name / "timeChunked.zarr"
                    dims, variables, view = _arco_asset(files, zarr_dir)
                    prefix = f"arco/{product}/{name}/timeChunked.zarr"
                    for path in sorted(p for p in zarr_dir.rglob("*") if p.is_file()):
                        upload(path, f"{prefix}/{path.relative_to(zarr_dir).as_posix()}")
                    properties.update({"cube:dimensions": dims, "cube:variables": variables})
                    assets["timeChunked"] = {
                        "href": f"{endpoint.replace(f':{s3_port}', '')}/{bucket}/{prefix}",
                        "type": "application/vnd+zarr",
                        "viewDims": view,
                    }
                else:
                    properties.update({"cube:dimensions": {}, "cube:variables": {}})
                item = {
                    "type": "Feature",
                    "stac_version": "1.0.0",
                    "id": name,
                    "geometry": None,
                    "bbox": None,
                    "properties": properties,
                    "assets": assets,
                    "links": [],
                }
                (stac / product / name).mkdir(parents=True, exist_ok=True)
                (stac / product / name / "dataset.stac.json").write_text(json.dumps(item))
                links.append({"rel": "item", "href": f"{name}/dataset.stac.json", "type": "application/json"})
            collection = {
                "type": "Collection",
                "stac_version": "1.0.0",
                "id": product,
                "title": product,
                "description": product,
                "license": "proprietary",
                "extent": {
                    "spatial": {"bbox": [[-180, -90, 180, 90]]},
                    "temporal": {"interval": [["1990-01-01T00:00:00Z", None]]},
                },
                "links": links,
            }
            (stac / product / "product.stac.json").write_text(json.dumps(collection))
        products = sorted(set(datasets.values()))
        root = {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "fake-copernicus-marine",
            "description": "local test catalogue",
            "links": [{"rel": "child", "href": f"{p}/product.stac.json"} for p in products],
        }
        (stac / "catalog.stac.json").write_text(json.dumps(root))
        (stac / "dataset_product_id_mapping.json").write_text(json.dumps(mapping))
        services = ("mds", "mds/serverlessNative", "mds/serverlessArco", "mds/serverlessArco/meta")
        config = {
            "clientVersions": {s: ">=1.0.0" for s in services},
            "catalogues": [
                {
                    "stac": f"{base}/catalog.stac.json",
                    "idMapping": f"{base}/dataset_product_id_mapping.json",
                    "stacRoot": base,
                }
            ],
        }
        (stac / "clients-config.json").write_text(json.dumps(config))
    except BaseException:
        s3.stop()
        raise
    return FakeCopernicusMarine(f"{base}/clients-config.json", bucket, s3, catalogue, datasets)


@contextlib.contextmanager
def patch_copernicusmarine(config_url: str, user: str = "tester") -> Iterator[None]:
    """Point an imported copernicusmarine toolbox at ``config_url`` and skip its credentials check.

    The toolbox reads COPERNICUSMARINE_CONFIG_URL once, at import, and checks every get/subset against the
    real authentication server (a module constant): both are patched here, and restored on exit.
    """
    from copernicusmarine.core_functions import marine_datastore_config, request_structure

    patches = [
        (marine_datastore_config, "MARINE_DATASTORE_CONFIG_URL_DIRECT", config_url),
        # Without this a broken fake falls back to the real CDN and looks like a network error.
        (marine_datastore_config, "MARINE_DATASTORE_CONFIG_URL_CDN", config_url),
        (
            request_structure,
            "get_and_check_username_password",
            lambda username, password, credentials_file: user,
        ),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


# ---------------------------------------------------------------------------------------------------------
# A deliberately slow static HTTP server: the Range-capable one above, with a per-request latency and a
# bandwidth cap, recording every request. For kill-and-restart tests, which need transfers in flight.
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SlowHTTPService(Service):
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path), in arrival order


class _ThrottledWriter(io.BufferedIOBase):
    """Writes to ``raw`` in slices, sleeping so the rate stays under ``bytes_per_second``."""

    SLICE = 8192

    def __init__(self, raw: io.BufferedIOBase, bytes_per_second: float) -> None:
        self._raw = raw
        self._rate = bytes_per_second

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        view = memoryview(data)
        for start in range(0, len(view), self.SLICE):
            piece = view[start : start + self.SLICE]
            self._raw.write(piece)
            time.sleep(len(piece) / self._rate)
        return len(view)

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        super().close()  # flushes first
        self._raw.close()


def start_slow_http_file_server(
    directory: str | Path, *, bytes_per_second: float, latency_seconds: float = 0.0
) -> SlowHTTPService:
    """:func:`start_http_file_server` at most ``bytes_per_second`` per connection, each request answered
    after ``latency_seconds``; ``service.requests`` records every request. Clients that vanish mid-transfer
    (a killed downloader) are not reported as server errors."""
    requests: list[tuple[str, str]] = []
    lock = threading.Lock()

    class Handler(_RangeRequestHandler):
        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes: without this, Nagle's algorithm holds the body until
            # the client's delayed ACK (~40 ms a response), which would swamp the throttle.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.wfile = _ThrottledWriter(self.wfile, bytes_per_second)  # type: ignore[assignment]

        def _serve(self, *, send_body: bool) -> None:
            with lock:
                requests.append(("GET" if send_body else "HEAD", self.path))
            time.sleep(latency_seconds)
            super()._serve(send_body=send_body)

        def list_directory(self, path: str | os.PathLike[str]) -> object:
            with lock:
                requests.append(("LIST", self.path))
            return super().list_directory(path)

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)  # type: ignore[arg-type]

    def handler(*args: object, **kwargs: object) -> Handler:
        return Handler(*args, directory=str(directory), **kwargs)

    server = Server(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name=f"slow-http-server-{port}", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=STOP_TIMEOUT)

    service = SlowHTTPService(
        name="slow-http-file-server",
        url=f"http://127.0.0.1:{port}",
        port=port,
        _stopper=stop,
        requests=requests,
    )
    atexit.register(service.stop)
    return service
