"""Prefect wiring of the OceanTACO pipeline: download -> format -> build.

Every task calls one plain function of ``oceantaco.steps``. Download and format tasks are mapped per
(product, day) so that each can run in parallel; the bucket and the inventory, not Prefect's result cache,
decide what is already done, so every task is idempotent and a retried flow re-runs finished tasks cheaply.
The deployments in ``prefect.yaml`` run ``pipeline`` (daily-update, backfill, reprocess) and ``build_flow``
(rebuild).
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.build import build_flow
from flows.download import download_flow
from flows.format import format_flow
from flows.parameters import (
    DEFAULT_LAG_DAYS,
    DryRun,
    End,
    KeepReleases,
    LagDays,
    LastNDays,
    Layout,
    Products,
    Root,
    Start,
    SwotLevel,
    Verify,
    check_root,
    described,
    resolve_window,
)
from oceantaco import steps
from oceantaco.prefect_artifacts import report_run
from oceantaco.run_report import StepTimings
from oceantaco.taco import DEFAULT_KEEP_RELEASES, BuildReport

__all__ = ["build_flow", "download_flow", "format_flow", "pipeline"]


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
) -> BuildReport | steps.DownloadReport:
    """download -> format -> build for a date range (start..end) or a rolling window (last_n_days).

    Fails at the end if any (product, day) failed on the way; the other days are still formatted and
    published. A dry run only plans the downloads and returns the plan (failing if a product could not be
    planned). Every run, failed or not, leaves its report as artifacts (see ``oceantaco.prefect_artifacts``).
    """
    first, last = resolve_window(start, end, last_n_days, lag_days, scheduled_day())
    roots = steps.Roots.under(check_root(root))
    tokens = [p.token for p in steps.select_products(products)]
    get_run_logger().info("days %s..%s, products %s, root %s", first, last, ", ".join(tokens), root)
    timings = StepTimings()
    downloads = formats = build = None
    try:
        with timings.step("download"):
            downloads = download_flow(first, last, root, tokens, swot_level, dry_run)
        if dry_run:
            if downloads.errors:
                raise RuntimeError(f"{len(downloads.errors)} product(s) could not be planned")
            return downloads
        with timings.step("format"):
            formats = format_flow(first, last, root, tokens)
        with timings.step("build"):
            build = build_flow(root, tokens, verify, layout, keep_releases)
    finally:
        report_run(
            roots,
            days=steps.date_range(first, last),
            download=downloads,
            format=formats,
            build=build,
            timings=timings,
        )
    failed = {"download": downloads.summary["failed"], "format": formats.summary["failed"]}
    if any(failed.values()):
        raise RuntimeError(
            f"{failed['download']} download failure(s) and {failed['format']} (product, day) format "
            "failure(s); the rest is published (see the run summary artifact)"
        )
    return build
