"""Running chunks and the build as flow runs of their own deployments, on the pool of the calling run.

A pipeline run started from a deployment submits each chunk as a run of the ``oceantaco-chunk`` deployment
on its own work pool (on ``oceantaco-k8s``: one Kubernetes Job per chunk), linked to it as subflows,
keeping at most ``max_parallel`` in flight; then one run of the ``oceantaco-build`` deployment on the same
pool. Outside a deployment (``oceantaco run``, a test calling the flow) there is no pool to fan out to: the
chunks run one after the other in this process, each with its own format process pool, and the build
inline. Which attempt to make next is decided by ``oceantaco.chunks.ChunkTracker``; this module only talks
to Prefect.

Load on the server: one ``read_flow_runs`` call per poll for all chunks in flight, plus three calls per
attempt submitted (``run_deployment`` reads the deployment, creates the linking task run and the flow run):
5-6 requests per chunk in all, measured with ``benchmarks/fanout.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from prefect.states import Cancelling, State

from oceantaco import run_records
from oceantaco.chunks import COMPLETED, CRASHED, TIMED_OUT, Chunk, ChunkOutcome, ChunkTracker
from oceantaco.settings import Settings
from oceantaco.taco import BuildReport

CHUNK_FLOW = "oceantaco-chunk"
BUILD_FLOW = "oceantaco-build"
MAX_ATTEMPTS = 3  # per chunk or build: the first, and two after lost pods
READ_BATCH = 200  # the Prefect API's default and largest page of flow runs


def sibling_deployment(flow_name: str) -> str | None:
    """``flow/deployment`` of ``flow_name``'s deployment on the work pool of this run's deployment, or None
    when this run has no deployment. A pool without one is refused with what to deploy."""
    context = FlowRunContext.get()
    deployment_id = context.flow_run.deployment_id if context and context.flow_run else None
    if deployment_id is None:
        return None
    with get_client(sync_client=True) as client:
        pool = client.read_deployment(deployment_id).work_pool_name
        found = client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        )
    if not found:
        raise RuntimeError(
            f"no deployment of flow {flow_name!r} on work pool {pool!r}: deploy it from prefect.yaml "
            "(`prefect deploy --all`, or the deployment of that flow for this pool)"
        )
    return f"{flow_name}/{sorted(d.name for d in found)[0]}"


def _key(kind: str, name: str, attempt: int) -> str:
    """Idempotency key of one attempt: a pipeline run restarted under the same id (an evicted parent pod)
    finds the runs it had already created instead of starting them twice."""
    return f"{flow_run.get_id()}/{kind}/{name}/{attempt}"


def _submit(deployment: str, kind: str, name: str, attempt: int, parameters: dict[str, Any]) -> FlowRun:
    return run_deployment(
        deployment,
        parameters=parameters,
        timeout=0,
        as_subflow=True,
        flow_run_name=f"{name}-try{attempt}",
        idempotency_key=_key(kind, name, attempt),
    )


def _cancel(client: SyncPrefectClient, run: FlowRun, minutes: int) -> str:
    message = f"no final state {minutes} min after submission: cancelled, to be tried again"
    client.set_flow_run_state(run.id, Cancelling(message=message), force=True)
    return message


def current_runs(client: SyncPrefectClient, run_ids: list[str]) -> dict[str, FlowRun | None]:
    """Each flow run as the server has it now (None: not there), in requests of at most
    ``READ_BATCH`` ids, the most the API returns at once."""
    found: dict[str, FlowRun | None] = dict.fromkeys(run_ids)
    for start in range(0, len(run_ids), READ_BATCH):
        batch = [UUID(run_id) for run_id in run_ids[start : start + READ_BATCH]]
        flow_run_filter = FlowRunFilter(id=FlowRunFilterId(any_=batch))
        for run in client.read_flow_runs(flow_run_filter=flow_run_filter, limit=len(batch)):
            found[str(run.id)] = run
    return found


def _wait_for_attempts(
    deployment: str,
    kind: str,
    tracker: ChunkTracker,
    parameters: Callable[[Chunk], dict[str, Any]],
    timeout_minutes: int,
    name: Callable[[Chunk], str],
) -> None:
    logger = get_run_logger()
    poll = Settings().chunk_poll_seconds
    submitted: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        while not tracker.finished:
            for chunk, attempt in tracker.next_to_start():
                run = _submit(deployment, kind, name(chunk), attempt, parameters(chunk))
                tracker.started(chunk, str(run.id))
                submitted[str(run.id)] = time.monotonic()
                logger.info("%s try %d: flow run %s (%s)", name(chunk), attempt, run.name, run.id)
            time.sleep(poll)
            for run_id, run in current_runs(client, list(tracker.in_flight)).items():
                state: State | None = run.state if run is not None else None
                if run is None:  # deleted from the server: nothing will ever finish it
                    outcome, message = CRASHED, "the flow run is no longer on the server"
                elif state is not None and state.is_final():
                    outcome, message = state.type.value, state.message
                elif time.monotonic() - submitted[run_id] > timeout_minutes * 60:
                    outcome, message = TIMED_OUT, _cancel(client, run, timeout_minutes)
                else:
                    continue
                chunk = tracker.in_flight[run_id]
                again = tracker.ended(run_id, outcome, message)
                log = logger.info if outcome == COMPLETED else logger.warning
                log("%s: %s%s", name(chunk), outcome, "; submitting it again" if again else "")


def run_chunks(
    chunks: list[Chunk],
    parameters: Callable[[Chunk], dict[str, Any]],
    *,
    max_parallel: int,
    timeout_minutes: int,
    inline: Callable[..., State],
) -> list[ChunkOutcome]:
    """Run every chunk (see the module docstring); ``inline`` is the chunk flow, called with
    ``return_state=True`` when there is no deployment to submit to."""
    tracker = ChunkTracker(chunks, max_parallel=max_parallel, max_attempts=MAX_ATTEMPTS)
    deployment = sibling_deployment(CHUNK_FLOW)
    if deployment is None:
        for chunk in chunks:
            state = inline(**parameters(chunk), return_state=True)
            run_id = str(state.state_details.flow_run_id)
            tracker.started(chunk, run_id)
            tracker.ended(run_id, state.type.value, state.message)
    else:
        _wait_for_attempts(deployment, "chunk", tracker, parameters, timeout_minutes, lambda c: c.name)
    return tracker.results()


def run_build(
    window: Chunk,
    parameters: dict[str, Any],
    reports_url: str,
    *,
    timeout_minutes: int,
    inline: Callable[..., BuildReport],
) -> BuildReport | None:
    """One build after the chunks of ``window``: a run of the build deployment on this run's pool (tried
    again if its pod is lost), or ``inline`` (the build flow) outside a deployment. Raises if it failed."""
    deployment = sibling_deployment(BUILD_FLOW)
    if deployment is None:
        return inline(**parameters)
    tracker = ChunkTracker([window], max_parallel=1, max_attempts=MAX_ATTEMPTS)
    _wait_for_attempts(deployment, "build", tracker, lambda _: parameters, timeout_minutes, lambda _: "build")
    (outcome,) = tracker.results()
    if not outcome.ok:
        raise RuntimeError(
            f"build {outcome.state} after {len(outcome.attempts)} attempt(s): {outcome.message}"
        )
    record = run_records.load(reports_url, outcome.run_id)
    return record.build if record is not None else None
