"""A backfill fans out: the real `backfill-local`, `chunk-local` and `rebuild-local` deployments from
prefect.yaml on a process worker of oceantaco-local, against the real server `make test` starts. Each chunk
is a subprocess flow run linked to the backfill run, at most `max_parallel_chunks` at once, then one build;
the dataset is the one a single-process `oceantaco run` makes."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from prefect.client.schemas.objects import FlowRun, StateType
from prefect_helpers import create_run, dataset_digest, process_worker, subflow_runs, wait_for_final_state
from typer.testing import CliRunner

from oceantaco import prefect_setup
from oceantaco.cli import app
from oceantaco.synthetic import MirrorManifest, build_mirror

pytestmark = [pytest.mark.prefect, pytest.mark.e2e]  # 5 flow runs as processes: `make test-e2e`

DAYS = [dt.date(2024, 1, 29) + dt.timedelta(days=i) for i in range(6)]  # over a month end: two parts
PRODUCTS = ["l4_ssh", "argo"]


@pytest.fixture(scope="module")
def six_days(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    return build_mirror(
        tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=1.0, grid_products=(), alongtrack_points=None
    )


def run_backfill(root: Path, log: Path, **parameters: object) -> FlowRun:
    """Trigger backfill-local over DAYS as a person would, and serve it with one process worker."""
    run = create_run(
        "oceantaco-pipeline/backfill-local",
        start=DAYS[0],
        end=DAYS[-1],
        root=str(root),
        products=PRODUCTS,
        **parameters,
    )
    with process_worker(prefect_setup.LOCAL_POOL, log):
        final = wait_for_final_state(run.id, timeout=400)
    assert final.state.type == StateType.COMPLETED, (final.state, log.read_text()[-5000:])
    return final


def most_at_once(runs: list[FlowRun]) -> int:
    """The largest number of ``runs`` running at the same instant, from their own start and end times."""
    edges = sorted([(r.start_time, 1) for r in runs] + [(r.end_time, -1) for r in runs])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def test_a_backfill_runs_its_chunks_as_bounded_subflow_runs_then_builds_once(
    local_deployments, six_days, upstream_env, tmp_path
):
    upstream_env(six_days.cmems_mirror, six_days.argo_gdac)  # the worker and its flow runs inherit it
    root = tmp_path / "fanned-out"
    started = time.monotonic()
    parent = run_backfill(root, tmp_path / "worker.log", days_per_chunk=2, max_parallel_chunks=2)
    print(f"6 days in 3 chunks, 2 at a time: trigger to completion {time.monotonic() - started:.1f} s")

    children = subflow_runs(parent.id)
    chunks, builds = children["oceantaco-chunk"], children["oceantaco-build"]
    assert sorted((c.parameters["start"], c.parameters["end"]) for c in chunks) == [
        (DAYS[0].isoformat(), DAYS[1].isoformat()),
        (DAYS[2].isoformat(), DAYS[3].isoformat()),
        (DAYS[4].isoformat(), DAYS[5].isoformat()),
    ]
    assert all(c.state.type == StateType.COMPLETED and c.parameters["products"] == PRODUCTS for c in chunks)
    assert most_at_once(chunks) == 2  # in parallel, and never more than max_parallel_chunks
    (build,) = builds
    assert build.state.type == StateType.COMPLETED
    assert build.start_time >= max(c.end_time for c in chunks)  # after the last chunk, once

    # The same days through `oceantaco run` in one process give the same dataset, byte for byte.
    single = tmp_path / "single"
    result = CliRunner().invoke(
        app,
        ["run", "--start-date", f"{DAYS[0]}", "--end-date", f"{DAYS[-1]}", "--root", str(single)]
        + [arg for p in PRODUCTS for arg in ("--products", p)]
        + ["--days-per-chunk", "6"],
    )
    assert result.exit_code == 0, result.output
    fanned_out, one_process = dataset_digest(str(root)), dataset_digest(str(single))
    assert len(fanned_out["tiles"]) == 6 * 8 + sum(1 for s in fanned_out["slots"] if s[2] == "argo.nc")
    assert len(fanned_out["parts"]) == 2
    assert fanned_out == one_process
