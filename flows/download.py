"""The download flow: plan per product, fetch per (product, day), each holding a slot of its provider's
global concurrency limit (see ``oceantaco.prefect_setup``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from prefect import flow, get_run_logger, task, unmapped

from flows.parameters import DryRun, FirstDay, LastDay, Products, Root, SwotLevel, described
from flows.retries import retry_download
from flows.settle import settle
from oceantaco import steps
from oceantaco.prefect_setup import occupy_slot, provider_limit
from oceantaco.providers import DayPlan, DownloadError, FileOutcome
from oceantaco.settings import Settings


def settings_for(swot_level: str | None) -> Settings:
    """The environment's settings (as in a pod), with the run's SWOT level when it names one."""
    return Settings() if swot_level is None else Settings(swot_level=swot_level)


@task(
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_download,
    task_run_name="plan-{product}",
)
def plan_downloads(
    product: str, days: list[dt.date], raw_url: str, swot_level: str | None = None
) -> list[DayPlan]:
    # Listing the source is a request to the provider too: it takes a slot like a transfer.
    # Without the limit on the server (setup not run) the task runs at once and its log says so.
    with occupy_slot(provider_limit(product)):
        return steps.plan_downloads(product, days, settings_for(swot_level), raw_url=raw_url)


@task(
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_download,
    task_run_name="fetch-{plan.product}-{plan.day}",
)
def fetch_day(plan: DayPlan, raw_url: str, swot_level: str | None = None) -> list[FileOutcome]:
    with occupy_slot(provider_limit(plan.product)):
        outcomes = steps.fetch_day(plan, raw_url, settings_for(swot_level))
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:  # fetched files are skipped on retry, so a retry costs only what failed
        raise DownloadError(plan, failed)
    return outcomes


@dataclass
class DownloadSummary:
    """What a download flow run planned and fetched; ``failed`` counts (product, day) pairs."""

    dry_run: bool
    plans: list[DayPlan] = field(default_factory=list)
    files: list[FileOutcome] = field(default_factory=list)
    failed: int = 0

    @property
    def planned_files(self) -> int:
        return sum(len(p.files) for p in self.plans)

    @property
    def planned_bytes(self) -> int:
        return sum(p.total_bytes for p in self.plans)


@flow(name="oceantaco-download")
@described
def download_flow(
    start: FirstDay,
    end: LastDay,
    root: Root,
    products: Products = None,
    swot_level: SwotLevel = None,
    dry_run: DryRun = False,
) -> DownloadSummary:
    """Fetch the raw files of every (product, day) into ``<root>/raw``.

    A provider that cannot even be listed fails its own product's days only. With ``dry_run`` the plans
    (files and bytes per product and day) are made and logged, nothing is fetched.
    """
    days = steps.date_range(start, end)
    raw = steps.Roots.under(root).raw
    tokens = [p.token for p in steps.select_products(products)]
    planned, failed_products = settle(
        plan_downloads.map(tokens, unmapped(days), unmapped(raw), unmapped(swot_level)), "plan"
    )
    summary = DownloadSummary(dry_run=dry_run, plans=[plan for plans in planned for plan in plans])
    summary.failed = failed_products * len(days)
    logger = get_run_logger()
    if dry_run:
        for plan in summary.plans:
            logger.info(
                "%s %s: %d file(s), %d bytes", plan.product, plan.day, len(plan.files), plan.total_bytes
            )
        logger.info("dry run: %d file(s), %d bytes planned", summary.planned_files, summary.planned_bytes)
        return summary
    fetched, failed_days = settle(fetch_day.map(summary.plans, unmapped(raw), unmapped(swot_level)), "fetch")
    summary.files = [outcome for outcomes in fetched for outcome in outcomes]
    summary.failed += failed_days
    return summary
