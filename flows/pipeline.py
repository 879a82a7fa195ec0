"""Prefect wiring of the OceanTACO pipeline: chunks of download -> format, then one build.

Every task calls one plain function of ``oceantaco.steps``. A run splits its days into chunks
(``oceantaco.chunks``); from a deployment each chunk is a flow run of the ``oceantaco-chunk`` deployment on
the same work pool (one Kubernetes Job each on ``oceantaco-k8s``), at most ``max_parallel_chunks`` at a
time, and the build one run of the ``oceantaco-build`` deployment after the last chunk
(``flows.fanout``). The bucket and the inventory, not Prefect's result cache, decide what is already done,
so every chunk is idempotent and a chunk tried again after a lost pod converges to the same outputs.
The deployments in ``prefect.yaml`` run ``pipeline`` (daily-update, backfill, reprocess), ``chunk_flow``
(chunk) and ``build_flow`` (rebuild).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows import fanout
from flows.build import build_flow
from flows.chunk import chunk_flow
from flows.download import download_flow
from flows.format import format_flow
from flows.parameters import (
    DEFAULT_CHUNK_TIMEOUT_MINUTES,
    DEFAULT_LAG_DAYS,
    DEFAULT_MAX_PARALLEL_CHUNKS,
    ChunkTimeoutMinutes,
    DaysPerChunk,
    DryRun,
    End,
    KeepReleases,
    LagDays,
    LastNDays,
    Layout,
    MaxParallelChunks,
    Products,
    Root,
    Start,
    SwotLevel,
    Verify,
    check_root,
    described,
    resolve_window,
)
from oceantaco import run_records, steps
from oceantaco.chunks import DEFAULT_DAYS_PER_CHUNK, Chunk, ChunkOutcome, chunk_summary, split_days
from oceantaco.prefect_artifacts import report_run
from oceantaco.run_report import StepTimings, failure_message
from oceantaco.taco import DEFAULT_KEEP_RELEASES, BuildReport

__all__ = ["build_flow", "chunk_flow", "download_flow", "format_flow", "pipeline"]


def scheduled_day() -> dt.date:
    """The UTC day the run was scheduled for (now, outside a scheduled run): a late or retried run of a
    daily schedule covers the same window as it would have on time."""
    scheduled = flow_run.scheduled_start_time.astimezone(dt.UTC)
    return dt.date(scheduled.year, scheduled.month, scheduled.day)


@flow(name="oceantaco-pipeline")
@described
def pipeline(
    start: Start,
    end: End,
    root: Root,
    products: Products = None,
    verify: Verify = True,
    last_n_days: LastNDays = None,
    lag_days: LagDays = DEFAULT_LAG_DAYS,
    swot_level: SwotLevel = None,
    dry_run: DryRun = False,
    layout: Layout = "zip",
    keep_releases: KeepReleases = DEFAULT_KEEP_RELEASES,
    days_per_chunk: DaysPerChunk = DEFAULT_DAYS_PER_CHUNK,
    max_parallel_chunks: MaxParallelChunks = DEFAULT_MAX_PARALLEL_CHUNKS,
    chunk_timeout_minutes: ChunkTimeoutMinutes = DEFAULT_CHUNK_TIMEOUT_MINUTES,
) -> BuildReport | steps.DownloadReport:
    """Chunks of download -> format, then one build, for a date range (start..end) or a rolling window
    (last_n_days).

    From a deployment every chunk is its own flow run on this run's work pool (a Kubernetes Job on
    oceantaco-k8s), at most max_parallel_chunks at a time; a chunk whose pod is lost is submitted again.
    Fails at the end if any chunk, file or (product, day) failed; the other days are still formatted and
    published. A dry run only plans the downloads and returns the plan (failing if a product could not be
    planned). Every run, failed or not, leaves its report as artifacts (see ``oceantaco.prefect_artifacts``).
    """
    first, last = resolve_window(start, end, last_n_days, lag_days, scheduled_day())
    roots = steps.Roots.under(check_root(root))
    tokens = [p.token for p in steps.select_products(products)]
    chunks = split_days(first, last, days_per_chunk)
    get_run_logger().info(
        "days %s..%s in %d chunk(s) of %d day(s), products %s, root %s",
        first,
        last,
        len(chunks),
        days_per_chunk,
        ", ".join(tokens),
        root,
    )
    timings = StepTimings()
    records = run_records.StepReports()
    outcomes: list[ChunkOutcome] = []
    try:
        if dry_run:
            with timings.step("download"):
                records.download = download_flow(first, last, root, tokens, swot_level, dry_run)
            if records.download.errors:
                raise RuntimeError(f"{len(records.download.errors)} product(s) could not be planned")
            return records.download
        with timings.step("download + format"):
            outcomes = fanout.run_chunks(
                chunks,
                lambda c: {
                    "start": c.first,
                    "end": c.last,
                    "root": root,
                    "products": tokens,
                    "swot_level": swot_level,
                },
                max_parallel=max_parallel_chunks,
                timeout_minutes=chunk_timeout_minutes,
                inline=chunk_flow,
            )
        records = run_records.collect(roots.reports, outcomes)
        with timings.step("build"):
            records.build = fanout.run_build(
                Chunk(0, first, last),
                {
                    "root": root,
                    "products": tokens,
                    "verify": verify,
                    "layout": layout,
                    "keep_releases": keep_releases,
                },
                roots.reports,
                timeout_minutes=chunk_timeout_minutes,
                inline=build_flow,
            )
    finally:
        report_run(
            roots,
            days=steps.date_range(first, last),
            download=records.download,
            format=records.format,
            build=records.build,
            timings=timings,
            chunks=outcomes,
        )
    problems = [f"chunk {line}" for line in chunk_summary(outcomes)]
    if failed := failure_message(records.download, records.format):
        problems.insert(0, failed)
    if problems:
        raise RuntimeError("; ".join(problems) + "; the rest is published (see the run summary artifact)")
    return records.build
