"""What the Prefect tests share: `prefect deploy` from the checkout, a worker, creating a deployment run and
waiting for its end, its subflow runs and artifacts, a digest of a dataset root, and the fixtures
`tiny_mirror`, `kubernetes_pool` and `local_deployments` (a pytest plugin of conftest)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
    TaskRunFilterName,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import Artifact, FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from services import PREFECT, stop_process_group

from oceantaco import prefect_setup
from oceantaco.inventory import read_inventory
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.synthetic import MirrorManifest, build_mirror
from oceantaco.taco import read_slots

REPO = Path(__file__).resolve().parents[1]
TINY_DAY = dt.date(2024, 1, 31)


def prefect_deploy(*names: str, env: dict[str, str] | None = None) -> str:
    """`prefect --no-prompt deploy` of the named deployments (all without names) from the checkout's
    prefect.yaml; returns its output."""
    selection = [arg for name in names for arg in ("--name", name)] or ["--all"]
    result = subprocess.run(
        [PREFECT, "--no-prompt", "deploy", *selection],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@contextlib.contextmanager
def process_worker(
    pool: str,
    log: Path,
    *,
    run_once: bool = False,
    worker_type: str = "process",
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> Iterator[subprocess.Popen]:
    """`prefect worker start` on ``pool`` (a process worker from the checkout by default), polling every
    second (with ``run_once`` it runs what is queued and exits). Whatever is left (the worker, the flow-run
    processes it started) is stopped: SIGINT twice, then SIGKILL to its process group."""
    command = [PREFECT, "worker", "start", "--pool", pool, "--type", worker_type]
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            command + (["--run-once"] if run_once else []),
            cwd=cwd,
            # Pipeline runs ask for their chunks' states every second instead of every 10.
            env={
                **(os.environ if env is None else env),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "OCEANTACO_CHUNK_POLL_SECONDS": "1",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield worker
        finally:
            stop_process_group(worker, waits=(5.0, 15.0))


def subflow_runs(parent: UUID | str) -> dict[str, list[FlowRun]]:
    """The flow runs linked to ``parent`` as its subflows, by flow name (a pipeline run's
    ``oceantaco-chunk`` and ``oceantaco-build`` runs), oldest first."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[UUID(str(parent))])
            )
        )
        names = {run.flow_id: client.read_flow(run.flow_id).name for run in runs}
    by_flow: dict[str, list[FlowRun]] = {}
    for run in sorted(runs, key=lambda run: run.created):
        by_flow.setdefault(names[run.flow_id], []).append(run)
    return by_flow


def chunk_formatting(parent: UUID, timeout: float) -> UUID:
    """The id of a chunk run of ``parent`` that has a format task running, once there is one."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            chunks = {run.id for run in subflow_runs(parent).get("oceantaco-chunk", [])}
            running = client.read_task_runs(
                task_run_filter=TaskRunFilter(
                    name=TaskRunFilterName(like_="format-"),
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.RUNNING])),
                )
            )
            for task in running:
                format_run = client.read_flow_run(task.flow_run_id)  # the chunk's format sub-flow
                if format_run.parent_task_run_id is None:
                    continue
                chunk = client.read_task_run(format_run.parent_task_run_id).flow_run_id
                if chunk in chunks:
                    return chunk
            time.sleep(0.2)
    raise TimeoutError(f"no chunk of {parent} started formatting within {timeout} s")


def wait_for_final_state(run_id: UUID | str, timeout: float) -> FlowRun:
    """The flow run once its state is final, or as it is when `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(str(run_id)))
        while not (run.state and run.state.is_final()) and time.monotonic() < deadline:
            time.sleep(0.5)
            run = client.read_flow_run(run.id)
    return run


def artifacts_of(run_id: UUID | str) -> dict[str, Artifact]:
    """The artifacts a flow run created, by key."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(str(run_id))]))
        )
    return {a.key: a for a in artifacts}


@pytest.fixture(scope="session")
def tiny_mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    """One day (TINY_DAY) of L4 SSH on a 1° grid and of Argo: the smallest upstream a whole run needs."""
    return build_mirror(
        tmp_path_factory.mktemp("upstream"),
        [TINY_DAY],
        l4_resolution=1.0,
        grid_products=(),
        alongtrack_points=None,
    )


@pytest.fixture
def kubernetes_pool() -> Iterator[str]:
    """oceantaco-k8s with k8s/base-job-template.json, as `oceantaco prefect setup` makes it; removed after
    the test when the test made it."""
    pool = prefect_setup.KUBERNETES_POOL
    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
            existed = True
        except ObjectNotFound:
            existed = False
        specs = prefect_setup.work_pool_specs(["kubernetes"], prefect_setup.default_base_job_template())
        prefect_setup.ensure_work_pools(client, specs)
    yield pool
    if not existed:
        with get_client(sync_client=True) as client:
            client.delete_work_pool(pool)


LOCAL_DEPLOYMENTS = ("backfill-local", "chunk-local", "rebuild-local")


@pytest.fixture(scope="module")
def local_deployments() -> Iterator[None]:
    """The oceantaco-local pool and the three -local deployments a fanned-out backfill needs."""
    with get_client(sync_client=True) as client:
        prefect_setup.ensure_work_pools(
            client, prefect_setup.work_pool_specs(["local"], prefect_setup.default_base_job_template())
        )
    prefect_deploy(*LOCAL_DEPLOYMENTS)
    yield
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            if deployment.name in LOCAL_DEPLOYMENTS:
                client.delete_deployment(deployment.id)


def create_run(deployment: str, **parameters: object) -> FlowRun:
    """A run of ``deployment`` ("flow/deployment") with ``parameters``, as the UI's Custom run makes it."""
    with get_client(sync_client=True) as client:
        deployment_id = client.read_deployment_by_name(deployment).id
        return client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


def dataset_digest(root: str) -> dict[str, object]:
    """What a reader gets: every tile's sha256, the TACO parts (named by their content digest), the slots."""
    roots = Roots.under(root)
    inventory = read_inventory(Storage(roots.formatted))
    taco = Storage(roots.taco)
    return {
        "tiles": sorted(zip(inventory["relative_path"], inventory["sha256"], strict=True)),
        "parts": sorted(k for k in taco.list() if k.endswith(".tacozip")),
        "slots": sorted((r["day"], r["region"], r["slot"], r["available"]) for r in read_slots(taco)),
    }
