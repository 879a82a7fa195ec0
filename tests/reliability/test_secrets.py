"""Secrets never leak: provider passwords and cloud keys appear in no output, object or child argv.

Distinctive secrets are set the way a pod gets them (environment variables): the Copernicus Marine
account, the AVISO FTP password (the right one, and a wrong one for a failing download) and the S3 secret
key of the local moto server. The real CLI then runs download -> format -> build (and ``run`` with a
Prefect server) on a synthetic upstream (a CMEMS mirror and a local AVISO FTP server with SWOT passes)
into an S3 root, including a download whose AVISO login is refused.

Afterwards every output is scanned for every secret: the CLI's stdout and stderr; every object under the
root (run logs, report JSON, AVISO catalog, NetCDF tiles: raw bytes and every attribute, the inventory
parquet: bytes, decoded cells and schema metadata, TACO parts: each zip member, recursively); the command
lines of every process the CLI started, sampled from /proc while it ran; with Prefect, the flow runs'
parameters, logs and artifacts on the API server.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr
from services import FTPService, Service, start_ftp_server

from oceantaco.storage import Storage
from oceantaco.synthetic import MirrorManifest, build_mirror
from oceantaco.synthetic_sparse import swot_day, write_swot_pass

DAY = dt.date(2025, 1, 13)
SPAN = ["--start-date", DAY.isoformat(), "--end-date", DAY.isoformat()]
OCEANTACO = str(Path(sys.executable).parent / "oceantaco")
L3_ROOT = "swot_products/l3_karin_nadir/l3_lr_ssh/v2_0_1/Basic"
# The providers that take credentials: CMEMS (through the mirror, its account still set) and AVISO FTP.
PRODUCTS = ("l4_ssh", "l3_swot")
AVISO_USER = "swot-secrets-tester"
SECRETS = {
    "COPERNICUSMARINE_SERVICE_PASSWORD": "cmems-Pw-3b9e41d7c2",
    "OCEANTACO_AVISO_PASSWORD": "aviso-Pw-8f2c61a0e5",
    "AWS_SECRET_ACCESS_KEY": "aws-Secret-5d7a09b3f1",
}
WRONG_AVISO_PASSWORD = "aviso-Wrong-1c4e8b2f96"
ALL_SECRETS = (*SECRETS.values(), WRONG_AVISO_PASSWORD)
POLL_SECONDS = 0.02
T = TypeVar("T")


# ---- running the CLI while watching its children ----------------------------------------------------


def _children_of(pids: set[int]) -> set[int]:
    """Every live process whose parent is in pids (one pass over /proc)."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])  # after "pid (comm) state"
        if ppid in pids:
            found.add(int(entry.name))
    return found


@dataclass
class Watched:
    """A finished CLI run: its exit code, output and the argv of every process it started."""

    code: int
    output: str
    child_argvs: dict[int, str] = field(default_factory=dict)


def run_watched(args: list[str], env: dict[str, str], timeout: float = 240) -> Watched:
    """Run the real CLI, sampling the command lines of all its descendants until it exits."""
    proc = subprocess.Popen(
        [OCEANTACO, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    argvs: dict[int, str] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            family = {proc.pid}
            frontier = {proc.pid}
            while frontier:  # grandchildren too: worker pools, toolbox helpers
                frontier = _children_of(frontier) - family
                family |= frontier
            for pid in family - {proc.pid}:
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argvs.setdefault(pid, f.read().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    pass
            time.sleep(POLL_SECONDS)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        stop.set()
        watcher.join()
    return Watched(proc.returncode, output.decode(errors="replace"), argvs)


# ---- scanning what was written ------------------------------------------------------------------------


def texts_of(name: str, data: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) views of an object: its raw bytes plus what compression or encoding would hide."""
    yield name, data
    if depth > 3:
        return
    if data[:2] == b"\x1f\x8b":
        yield from texts_of(f"{name}!gunzip", gzip.decompress(data), depth + 1)
    elif data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                yield from texts_of(f"{name}!{member}", archive.read(member), depth + 1)
    elif data[:4] == b"PAR1":
        table = pq.read_table(io.BytesIO(data))
        yield f"{name}!schema", str(table.schema.metadata or {}).encode()
        yield f"{name}!cells", str(table.to_pylist()).encode()
    elif data[:4] in (b"\x89HDF", b"CDF\x01", b"CDF\x02"):
        with xr.open_dataset(io.BytesIO(data)) as ds:
            attrs = [ds.attrs, *(ds[v].attrs for v in ds.variables)]
            yield f"{name}!attrs", repr(attrs).encode()
            strings = [ds[v].values.tolist() for v in ds.variables if ds[v].dtype.kind in "OSU"]
            yield f"{name}!strings", repr(strings).encode()


def leaks(where: str, text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [f"{where}: {secret}" for secret in ALL_SECRETS if secret.encode() in data]


def scan_root(root: str) -> tuple[int, list[str]]:
    """(objects scanned, leaks) over every object under root."""
    storage = Storage(root)
    keys = storage.list()
    found = []
    for key in keys:
        for where, data in texts_of(key, storage.read_bytes(key)):
            found += leaks(where, data)
    return len(keys), found


def scan_run(label: str, run: Watched) -> list[str]:
    found = leaks(f"{label} output", run.output)
    for pid, argv in run.child_argvs.items():
        found += leaks(f"{label} child {pid} argv {argv[:80]}", argv)
    return found


# ---- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    return build_mirror(
        tmp_path_factory.mktemp("upstream"),
        [DAY],
        l4_resolution=1.0,
        grid_products=(),
        alongtrack_points=None,
    )


@pytest.fixture(scope="module")
def aviso_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FTPService]:
    """AVISO-like FTP server with two small SWOT L3 passes of DAY, for AVISO_USER and the right password."""
    tree = tmp_path_factory.mktemp("aviso")
    for cycle, pass_number, start in swot_day(DAY, n_passes=2, n_lines=50):
        write_swot_pass(tree / L3_ROOT / f"cycle_{cycle:03d}", cycle, pass_number, start, n_lines=50)
    with start_ftp_server(tree, AVISO_USER, SECRETS["OCEANTACO_AVISO_PASSWORD"]) as service:
        yield service


@pytest.fixture
def secret_env(s3_server: Service, mirror: MirrorManifest, aviso_server: FTPService) -> dict[str, str]:
    """A pod's environment: upstream settings plus every credential, as variables (never arguments)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCEANTACO_", "COPERNICUSMARINE_"))}
    env.update(SECRETS)
    env.update(
        COPERNICUSMARINE_SERVICE_USERNAME="cmems-user-secrets-test",
        AWS_ACCESS_KEY_ID="oceantaco-test-key",
        OCEANTACO_CMEMS_MIRROR=mirror.cmems_mirror,
        OCEANTACO_ARGO_GDAC=mirror.argo_gdac,
        OCEANTACO_AVISO_FTP_URL=aviso_server.url,
        OCEANTACO_AVISO_USER=AVISO_USER,
    )
    return env


def sources(flag: str) -> list[str]:
    return [arg for token in PRODUCTS for arg in (flag, token)]


# ---- tests ---------------------------------------------------------------------------------------------


def test_the_scan_sees_through_zip_gzip_parquet_and_netcdf(tmp_path: Path) -> None:
    """A secret hidden in a compressed parquet cell or a NetCDF attribute, inside a zip, is still found."""
    secret = SECRETS["AWS_SECRET_ACCESS_KEY"]
    ds = xr.Dataset({"x": ("n", [1.0, 2.0])}, attrs={"history": f"made with {secret}"})
    nc = ds.to_netcdf(engine="h5netcdf", encoding={"x": {"zlib": True}})
    parquet = io.BytesIO()
    pq.write_table(pa.table({"note": [secret[::-1], secret]}), parquet, compression="zstd")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("tile.nc", bytes(nc))
        z.writestr("meta.parquet", parquet.getvalue())
    z_bytes = gzip.compress(archive.getvalue())
    found = [leak for where, data in texts_of("part", z_bytes) for leak in leaks(where, data)]
    assert any("tile.nc!attrs" in f for f in found) and any("meta.parquet!cells" in f for f in found)
    assert leaks("clean", "nothing to see") == []


def test_no_secret_in_outputs_objects_or_child_argv_of_the_three_steps(
    s3_bucket: str, secret_env: dict[str, str]
) -> None:
    root = f"{s3_bucket}/root"
    raw, formatted, taco = f"{root}/raw", f"{root}/formatted", f"{root}/taco"
    runs: dict[str, Watched] = {}

    # A refused AVISO login first, so the listing is attempted (no cached catalog yet): the error path.
    wrong = {**secret_env, "OCEANTACO_AVISO_PASSWORD": WRONG_AVISO_PASSWORD}
    runs["refused download"] = run_watched(
        ["download", *SPAN, "--output-dir", raw, "--download", "--sources", "l3_swot"], wrong
    )
    assert runs["refused download"].code == 1, runs["refused download"].output
    assert "refused the login" in " ".join(runs["refused download"].output.split())

    runs["download"] = run_watched(
        ["download", *SPAN, "--output-dir", raw, "--download", *sources("--sources")], secret_env
    )
    assert runs["download"].code == 0, runs["download"].output
    runs["format"] = run_watched(
        [
            "format",
            "--date-min",
            DAY.isoformat(),
            "--date-max",
            DAY.isoformat(),
            "--data-dir",
            raw,
            "--output-dir",
            formatted,
            "-p",
            "2",
            *sources("--only-vars"),
        ],
        secret_env,
    )
    assert runs["format"].code == 0, runs["format"].output
    runs["build"] = run_watched(["build", "--data-dir", formatted, "--output-dir", taco], secret_env)
    assert runs["build"].code == 0, runs["build"].output

    found = [leak for label, run in runs.items() for leak in scan_run(label, run)]
    scanned, in_objects = scan_root(root)
    assert not found + in_objects
    # The scan saw what it had to: each step's report or log, SWOT and other tiles, the inventory, TACO parts.
    keys = Storage(root).list()
    assert scanned == len(keys) > 10
    for wanted in (
        "raw/logs/download_report_",
        "raw/logs/download_log_",
        "formatted/logs/format_report_",
        "formatted/file_inventory.parquet",
        ".tacozip",
    ):
        assert any(wanted in k for k in keys), wanted
    assert any("l3_swot" in k and k.endswith(".nc") for k in keys if k.startswith("formatted/"))
    # The format step's worker processes were seen, so their argv was really checked.
    assert runs["format"].child_argvs


@pytest.mark.prefect
def test_no_secret_in_a_prefect_run_its_logs_or_artifacts(s3_bucket: str, secret_env: dict[str, str]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterTimestamp,
    )

    root = f"{s3_bucket}/run"
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    # A run whose AVISO login is refused (the failure goes through task logs and the run summary), then one
    # that succeeds.
    wrong = {**secret_env, "OCEANTACO_AVISO_PASSWORD": WRONG_AVISO_PASSWORD}
    refused = run_watched(["run", *SPAN, "--root", f"{s3_bucket}/refused", "--products", "l3_swot"], wrong)
    assert refused.code == 1, refused.output
    run = run_watched(["run", *SPAN, "--root", root, *sources("--products")], secret_env)
    assert run.code == 0, run.output
    found = scan_run("refused run", refused) + scan_run("run", run)
    scanned, in_objects = scan_root(s3_bucket)
    assert scanned > 10
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=started))
        )
        by_run = FlowRunFilter(id=FlowRunFilterId(any_=[r.id for r in flow_runs]))
        task_runs = paged(lambda offset: client.read_task_runs(flow_run_filter=by_run, offset=offset))
        log_filter = LogFilter(timestamp=LogFilterTimestamp(after_=started))
        logs = paged(lambda offset: client.read_logs(log_filter=log_filter, offset=offset))
        artifacts = paged(
            lambda offset: client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in flow_runs])
                ),
                offset=offset,
            )
        )
    assert flow_runs and task_runs and logs and artifacts  # the runs did talk to this server
    prefect_text = "\n".join(
        [
            *(f"{r.name} {r.parameters!r} {r.state.message if r.state else ''}" for r in flow_runs),
            *(f"{t.name} {t.state.message if t.state else ''}" for t in task_runs),
            *(log.message for log in logs),
            *(f"{a.key} {a.data!r} {a.description!r}" for a in artifacts),
        ]
    )
    # The refused login did reach the server (so the error path was scanned), without its password.
    assert "refused the login" in " ".join(prefect_text.split())
    found += leaks("Prefect flow/task runs, logs and artifacts", prefect_text)
    assert not found + in_objects


def paged(read: Callable[[int], list[T]]) -> list[T]:
    """Every item of a Prefect API listing (the server caps each page)."""
    items: list[T] = []
    while page := read(len(items)):
        items += page
    return items
