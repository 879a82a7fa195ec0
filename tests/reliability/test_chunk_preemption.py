"""A chunk's pod killed mid-format heals without a person: the real `backfill-local`, `chunk-local` and
`rebuild-local` deployments on a process worker; while a chunk's format tasks run, its whole process group
(the flow process and its format worker processes, as a pod's end kills them) is SIGKILLed. The worker
reports the run Crashed, the backfill submits the chunk again, completes, and the dataset is identical to
an uninterrupted backfill's."""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.schemas.objects import FlowRun, StateType
from prefect_helpers import (
    chunk_formatting,
    create_run,
    dataset_digest,
    process_worker,
    subflow_runs,
    wait_for_final_state,
)

from oceantaco import prefect_setup
from oceantaco.synthetic import MirrorManifest, build_mirror

pytestmark = [pytest.mark.prefect, pytest.mark.reliability]

DAYS = [dt.date(2024, 1, 30) + dt.timedelta(days=i) for i in range(4)]
PRODUCTS = ["l4_ssh", "argo"]


@pytest.fixture(scope="module")
def four_days(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    return build_mirror(
        tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=0.5, grid_products=(), alongtrack_points=None
    )


def trigger(root: Path) -> FlowRun:
    return create_run(
        "oceantaco-pipeline/backfill-local",
        start=DAYS[0],
        end=DAYS[-1],
        root=str(root),
        products=PRODUCTS,
        days_per_chunk=2,
    )


def process_group_of(flow_run: UUID) -> int:
    """The process group of the flow run's own process (the worker starts each in a new session)."""
    wanted = f"PREFECT__FLOW_RUN_ID={flow_run}".encode()
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            return os.getpgid(pid)
    raise LookupError(f"no process of flow run {flow_run}")


def test_a_chunk_killed_mid_format_is_submitted_again_and_the_result_is_identical(
    local_deployments, four_days, upstream_env, tmp_path
):
    upstream_env(four_days.cmems_mirror, four_days.argo_gdac)  # the worker and its flow runs inherit it
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    with process_worker(prefect_setup.LOCAL_POOL, tmp_path / "worker.log"):
        first = trigger(reference)
        assert wait_for_final_state(first.id, timeout=400).state.type == StateType.COMPLETED

        run = trigger(killed)
        victim = chunk_formatting(run.id, timeout=200)
        os.killpg(process_group_of(victim), signal.SIGKILL)
        final = wait_for_final_state(run.id, timeout=400)
    log = (tmp_path / "worker.log").read_text()
    assert final.state.type == StateType.COMPLETED, (final.state, log[-5000:])

    chunks = subflow_runs(run.id)["oceantaco-chunk"]
    attempts: dict[str, list[StateType]] = {}
    for chunk in chunks:
        attempts.setdefault(chunk.parameters["start"], []).append(chunk.state.type)
    killed_start = next(c.parameters["start"] for c in chunks if c.id == victim)
    assert attempts.pop(killed_start) == [StateType.CRASHED, StateType.COMPLETED]
    assert list(attempts.values()) == [[StateType.COMPLETED]]
    assert len(subflow_runs(run.id)["oceantaco-build"]) == 1
    assert dataset_digest(str(killed)) == dataset_digest(str(reference))
