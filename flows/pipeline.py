"""Prefect wiring of the OceanTACO pipeline: every task calls one plain function of ``oceantaco.steps``.

Download and format tasks are mapped per (product, day) so that each can run in parallel; the bucket and
the inventory, not Prefect's result cache, decide what is already done, so every task is idempotent and a
retried flow re-runs finished tasks cheaply.
"""

from __future__ import annotations

import datetime as dt

from prefect import Task, flow, get_run_logger, task, unmapped
from prefect.client.schemas.objects import State, TaskRun
from prefect.futures import PrefectFuture

from oceantaco import steps
from oceantaco.formatting import FormatResult
from oceantaco.providers import DayPlan, DownloadError, FileOutcome, is_transient
from oceantaco.settings import Settings
from oceantaco.taco import DEFAULT_KEEP_RELEASES, BuildReport, Layout


def _retry_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry timeouts and dropped connections, never a missing file or a bad input."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_if_transient)
def plan_downloads(product: str, days: list[dt.date], raw_url: str) -> list[DayPlan]:
    return steps.plan_downloads(product, days, Settings(), raw_url=raw_url)


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=_retry_if_transient)
def fetch_day(plan: DayPlan, raw_url: str) -> list[FileOutcome]:
    outcomes = steps.fetch_day(plan, raw_url, Settings())
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:  # fetched files are skipped on retry, so a retry costs only what failed
        raise DownloadError(plan, failed)
    return outcomes


@task
def format_day(product: str, day: dt.date, raw_url: str, formatted_url: str) -> FormatResult:
    return steps.format_day(product, day, raw_url, formatted_url, Settings())


@task
def compact_inventory(formatted_url: str, products: list[str], days: list[dt.date]) -> int:
    return steps.compact_inventory(formatted_url, products, days)


@task
def build_taco(
    formatted_url: str, output_url: str, products: list[str], verify: bool, layout: Layout, keep_releases: int
) -> BuildReport:
    return steps.build(
        formatted_url,
        output_url,
        products=products,
        verify=verify,
        layout=layout,
        keep_releases=keep_releases,
    )


def _settle(futures: list[PrefectFuture], what: str) -> tuple[list, int]:
    """Wait for mapped tasks; failures are logged and counted, never allowed to stop their siblings."""
    results, failed = [], 0
    for future in futures:
        future.wait()
        state = future.state
        if state.is_completed():
            results.append(future.result())
        else:
            failed += 1
            get_run_logger().error("%s failed: %s", what, state.message)
    return results, failed


@flow(name="download")
def download_flow(start: dt.date, end: dt.date, root: str, products: list[str] | None = None) -> int:
    """Fetch raw files for every (product, day) into ``<root>/raw``; returns the number of failed days.

    A provider that cannot even be listed fails its own product's days only.
    """
    days = steps.date_range(start, end)
    raw = steps.Roots.under(root).raw
    tokens = [p.token for p in steps.select_products(products)]
    planned, failed_products = _settle(plan_downloads.map(tokens, unmapped(days), unmapped(raw)), "plan")
    plans = [plan for product_plans in planned for plan in product_plans]
    _, failed_days = _settle(fetch_day.map(plans, unmapped(raw)), "fetch")
    return failed_days + failed_products * len(days)


@flow(name="format")
def format_flow(start: dt.date, end: dt.date, root: str, products: list[str] | None = None) -> int:
    """Tile every (product, day) and compact the inventory; returns the number of failed (product, day)."""
    roots = steps.Roots.under(root)
    days = steps.date_range(start, end)
    tokens = [p.token for p in steps.select_products(products)]
    pairs = [(t, d) for t in tokens for d in days]
    futures = format_day.map(
        [t for t, _ in pairs], [d for _, d in pairs], unmapped(roots.raw), unmapped(roots.formatted)
    )
    _, failed = _settle(futures, "format")
    compact_inventory(roots.formatted, tokens, days)
    return failed


@flow(name="build")
def build_flow(
    root: str,
    products: list[str] | None = None,
    verify: bool = True,
    layout: Layout = "zip",
    keep_releases: int = DEFAULT_KEEP_RELEASES,
) -> BuildReport:
    """Build the changed TACO parts and a new catalog in ``<root>/taco``, audit them, then publish."""
    roots = steps.Roots.under(root)
    tokens = [p.token for p in steps.select_products(products)]
    return build_taco(roots.formatted, roots.taco, tokens, verify, layout, keep_releases)


@flow(name="oceantaco-pipeline")
def pipeline(
    start: dt.date, end: dt.date, root: str, products: list[str] | None = None, verify: bool = True
) -> BuildReport:
    """download -> format -> build for a date range; fails at the end if any day failed on the way."""
    failed_downloads = download_flow(start, end, root, products)
    failed_formats = format_flow(start, end, root, products)
    report = build_flow(root, products, verify)
    if failed_downloads or failed_formats:
        raise RuntimeError(f"{failed_downloads} download day(s) and {failed_formats} format day(s) failed")
    return report
