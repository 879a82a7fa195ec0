"""The download flow: plan per product, fetch per (product, day), each holding a slot of its provider's
global concurrency limit (see ``oceantaco.prefect_setup``)."""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from flows.parameters import DryRun, FirstDay, LastDay, Products, Root, SwotLevel, described
from flows.retries import retry_download
from flows.settle import settle
from oceantaco import steps
from oceantaco.prefect_setup import DOWNLOAD_THREADS, occupy_slot, provider_limit
from oceantaco.providers import DayPlan, DownloadError, FileOutcome
from oceantaco.settings import Settings
from oceantaco.storage import Storage


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
    if any(o.status == "failed" for o in outcomes):  # fetched files are skipped on retry
        raise DownloadError(plan, outcomes)
    return outcomes


# Threads, not processes: downloads wait on the network. As many as the providers' slots together, so a
# pod never holds threads that could only wait for a slot.
@flow(name="oceantaco-download", task_runner=ThreadPoolTaskRunner(max_workers=DOWNLOAD_THREADS))
@described
def download_flow(
    start: FirstDay,
    end: LastDay,
    root: Root,
    products: Products = None,
    swot_level: SwotLevel = None,
    dry_run: DryRun = False,
) -> steps.DownloadReport:
    """Fetch the raw files of every (product, day) into ``<root>/raw``.

    A provider that cannot even be listed fails its own product's days only. With ``dry_run`` the plans
    (files and bytes per product and day) are made and logged, nothing is fetched. The report is also
    saved as JSON under ``<root>/raw/logs``, as the CLI does.
    """
    days = steps.date_range(start, end)
    raw = steps.Roots.under(root).raw
    tokens = [p.token for p in steps.select_products(products)]
    report = steps.DownloadReport(started=steps.timestamp(), dry_run=dry_run)
    planned = settle(plan_downloads.map(tokens, unmapped(days), unmapped(raw), unmapped(swot_level)), "plan")
    plans: list[DayPlan] = []
    for token, outcome in zip(tokens, planned, strict=True):
        if isinstance(outcome, BaseException):
            report.add_error(token, outcome)
        else:
            plans += outcome
    for plan in plans:
        report.add_plan(plan)
    logger = get_run_logger()
    if not dry_run:
        fetched = settle(fetch_day.map(plans, unmapped(raw), unmapped(swot_level)), "fetch")
        for plan, outcome in zip(plans, fetched, strict=True):
            if isinstance(outcome, DownloadError):
                report.add_outcomes(plan, outcome.outcomes)
            elif isinstance(outcome, BaseException):
                report.add_error(plan.product, outcome)
            else:
                report.add_outcomes(plan, outcome)
    logger.info("download %s: %s", "plan" if dry_run else "done", report.summary)
    logger.info("report: %s", report.save(Storage(raw).child("logs")))
    return report
