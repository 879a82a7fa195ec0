"""Benchmark the chunk fan-out (``flows.fanout.run_chunks``) on a local Prefect server, with trivial chunks.

Starts ``prefect server`` on a free 127.0.0.1 port (scratch PREFECT_HOME), creates the process work pool
``bench-fanout`` and deploys two flows of this file to it, the code being this checkout: a trivial
``oceantaco-chunk`` (chunk_flow's parameters, returns at once; its process imports only Prefect) and a parent
that calls ``run_chunks`` on N one-day chunks. One process worker runs both (``--limit`` = max_parallel + 1
for the parent, PREFECT_WORKER_QUERY_SECONDS=1); the parent polls every OCEANTACO_CHUNK_POLL_SECONDS=1 s
(set in the worker's environment, which its flow runs inherit).

For each N: the parent's wall time (its Running -> Completed); per chunk, from the server's timestamps, the
median and p95 of created -> Running ("queue", split at Pending: the worker took the run, then the process
started, loaded the flow and the engine came up) and of Running -> Completed; the parent's API requests per
chunk by endpoint, counted in the parent's process by wrapping ``httpx`` (Async)Client.send while
``run_chunks`` runs (UUIDs in paths shown as ``{id}``; Prefect's event websocket is not HTTP, not counted).

    .venv/bin/python benchmarks/fanout.py [--counts 10,50,200] [--max-parallel 8]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import numpy as np
from prefect import Flow, flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from oceantaco.chunks import split_days

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from run_with_prefect import prefect_server  # the local server and helpers the tests use too
from services import PREFECT, stop_process_group

REPO = Path(__file__).resolve().parents[1]
POOL = "bench-fanout"
POLL = "1"  # OCEANTACO_CHUNK_POLL_SECONDS of the parent
FIRST_DAY = dt.date(2024, 1, 1)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@flow(name="oceantaco-chunk")
def trivial_chunk(
    start: dt.date, end: dt.date, root: str, products: list[str] | None = None, swot_level: str | None = None
) -> None:
    """Stands for flows/chunk.py's chunk_flow (same name and parameters): does nothing."""


def _count_requests(counts: Counter[str]) -> None:
    """Count every request this process sends through httpx, by method and path, and by status when it is not
    a success (each retry of Prefect's client is a request of its own)."""

    def key(request: httpx.Request, response: httpx.Response | None) -> str:
        path = _UUID.sub("{id}", request.url.path.removeprefix("/api"))
        failed = (
            "" if response and response.is_success else f" -> {response.status_code if response else 'error'}"
        )
        return f"{request.method} {path}{failed}"

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = None
        try:
            response = sync_send(self, request, **kwargs)
            return response
        finally:
            counts[key(request, response)] += 1

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = None
        try:
            response = await async_send(self, request, **kwargs)
            return response
        finally:
            counts[key(request, response)] += 1

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]


@flow(name="bench-fanout-parent")
def parent(n_chunks: int, max_parallel: int, timeout_minutes: int, out: str) -> None:
    """run_chunks on ``n_chunks`` one-day chunks; writes its request counts and outcomes to ``out``."""
    from flows.fanout import run_chunks  # here, so the chunk runs (which load this file) import only Prefect

    chunks = split_days(FIRST_DAY, FIRST_DAY + dt.timedelta(days=n_chunks - 1), 1)
    counts: Counter[str] = Counter()
    _count_requests(counts)
    started = time.perf_counter()
    outcomes = run_chunks(
        chunks,
        lambda c: {"start": c.first, "end": c.last, "root": "unused"},
        max_parallel=max_parallel,
        timeout_minutes=timeout_minutes,
        inline=trivial_chunk,
    )
    seconds = time.perf_counter() - started
    states = Counter(o.state for o in outcomes)
    Path(out).write_text(json.dumps({"requests": counts, "seconds": seconds, "states": states}))


def _deploy(env: dict[str, str]) -> None:
    subprocess.run(
        [PREFECT, "work-pool", "create", POOL, "--type", "process"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    for name in ("trivial_chunk", "parent"):
        source: Flow = Flow.from_source(source=str(REPO), entrypoint=f"benchmarks/fanout.py:{name}")
        with contextlib.redirect_stdout(io.StringIO()):  # its table of deployments
            source.deploy(name="bench", work_pool_name=POOL, print_next_steps=False, ignore_warnings=True)


def _chunk_runs(parent_id: UUID) -> list[tuple[FlowRun, dt.datetime | None]]:
    """The parent's chunk runs, each with the time it went Pending (the worker took it)."""
    runs: list[FlowRun] = []
    parent_filter = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
    with get_client(sync_client=True) as client:
        while page := client.read_flow_runs(flow_run_filter=parent_filter, limit=200, offset=len(runs)):
            runs += page
        pending = [
            min((s.timestamp for s in client.read_flow_run_states(r.id) if s.is_pending()), default=None)
            for r in runs
        ]
    return list(zip(runs, pending, strict=True))


def _seconds(a: dt.datetime | None, b: dt.datetime | None) -> float:
    return (b - a).total_seconds() if a and b else float("nan")


@dataclass
class Result:
    chunks: int
    parent_seconds: float  # the parent run's Running -> Completed
    run_chunks_seconds: float  # run_chunks alone, timed inside the parent
    picked: list[float]  # per chunk run: created -> Pending (the worker took it)
    started: list[float]  # Pending -> Running (process start, flow loaded, engine up)
    ran: list[float]  # per chunk run: Running -> Completed
    states: dict[str, int]
    requests: dict[str, int]  # the parent's, during run_chunks


@contextlib.contextmanager
def _worker(env: dict[str, str], limit: int, log: Path) -> Iterator[None]:
    command = [PREFECT, "worker", "start", "--pool", POOL, "--type", "process", "--limit", str(limit)]
    env = {**os.environ, **env, "PREFECT_WORKER_QUERY_SECONDS": "1", "OCEANTACO_CHUNK_POLL_SECONDS": POLL}
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield
        finally:
            stop_process_group(worker, waits=(5.0, 15.0))


def _run(n: int, max_parallel: int, scratch: Path) -> Result:
    out = scratch / f"parent-{n}.json"
    params = {"n_chunks": n, "max_parallel": max_parallel, "timeout_minutes": 30, "out": str(out)}
    run = run_deployment("bench-fanout-parent/bench", parameters=params, timeout=1200, poll_interval=1)
    if not (run.state and run.state.is_completed()):
        raise RuntimeError(f"the parent of {n} chunks ended {run.state}; see {scratch / 'worker.log'}")
    body = json.loads(out.read_text())
    chunks = _chunk_runs(run.id)
    return Result(
        chunks=n,
        parent_seconds=_seconds(run.start_time, run.end_time),
        run_chunks_seconds=body["seconds"],
        picked=[_seconds(r.created, pending) for r, pending in chunks],
        started=[_seconds(pending, r.start_time) for r, pending in chunks],
        ran=[_seconds(r.start_time, r.end_time) for r, _ in chunks],
        states=body["states"],
        requests=body["requests"],
    )


def _median_p95(values: list[float], width: int = 9) -> str:
    return f"{np.median(values):>{width}.2f}{np.percentile(values, 95):>7.2f}"


def _print(results: list[Result], max_parallel: int) -> None:
    print(
        f"\nmax_parallel {max_parallel}, worker --limit {max_parallel + 1}, "
        f"OCEANTACO_CHUNK_POLL_SECONDS={POLL}, PREFECT_WORKER_QUERY_SECONDS=1, {os.cpu_count()} CPUs; "
        "seconds, per chunk run: median then p95"
    )
    print(
        f"{'chunks':>6}{'parent':>8}{'/chunk':>8}{'run_chunks':>11}{'queue':>9}{'p95':>7}"
        f"{'picked':>9}{'p95':>7}{'+start':>9}{'p95':>7}{'run':>9}{'p95':>7}{'calls/chunk':>12}  states"
    )
    for r in results:
        calls = sum(r.requests.values()) / r.chunks
        queued = [a + b for a, b in zip(r.picked, r.started, strict=True)]
        print(
            f"{r.chunks:>6}{r.parent_seconds:>8.1f}{r.parent_seconds / r.chunks:>8.2f}"
            f"{r.run_chunks_seconds:>11.1f}{_median_p95(queued)}{_median_p95(r.picked)}{_median_p95(r.started)}"
            f"{_median_p95(r.ran)}{calls:>12.2f}  " + ", ".join(f"{k} {v}" for k, v in r.states.items())
        )
    totals = Counter[str]()
    for r in results:
        totals.update(r.requests)
    print("\nthe parent's API requests per chunk, by endpoint")
    print(f"{'endpoint':<52}" + "".join(f"{r.chunks:>8}" for r in results))
    for name, _ in totals.most_common():
        print(f"{name:<52}" + "".join(f"{r.requests.get(name, 0) / r.chunks:>8.2f}" for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--counts", default="10,50,200", help="chunk counts, one parent run each")
    parser.add_argument("--max-parallel", type=int, default=8, help="run_chunks' max_parallel")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="oceantaco-fanout-"))
    results = []
    with prefect_server() as env, temporary_settings({PREFECT_API_URL: env["PREFECT_API_URL"]}):
        _deploy(env)
        with _worker(env, args.max_parallel + 1, scratch / "worker.log"):
            for n in (int(n) for n in args.counts.split(",")):
                results.append(_run(n, args.max_parallel, scratch))
                print(f"{n} chunks: parent {results[-1].parent_seconds:.1f} s", flush=True)
    _print(results, args.max_parallel)
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
