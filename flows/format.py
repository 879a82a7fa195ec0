"""The format flow: one task per (product, day), then the inventory is compacted.

Its task runner is chosen by the caller: the chunk flow runs it with a process pool sized to the pod.
"""

from __future__ import annotations

import datetime as dt

from prefect import flow, get_run_logger, task, unmapped

from flows.parameters import FirstDay, LastDay, Products, Root, described
from flows.retries import retry_network
from flows.settle import settle
from oceantaco import steps
from oceantaco.formatting import FormatResult
from oceantaco.settings import Settings
from oceantaco.storage import Storage


@task(
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_network,
    task_run_name="format-{product}-{day}",
)
def format_day(product: str, day: dt.date, raw_url: str, formatted_url: str) -> FormatResult:
    return steps.format_day(product, day, raw_url, formatted_url, Settings())


@task(retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_network)
def compact_inventory(formatted_url: str, products: list[str], days: list[dt.date]) -> int:
    return steps.compact_inventory(formatted_url, products, days)


@flow(name="oceantaco-format")
@described
def format_flow(start: FirstDay, end: LastDay, root: Root, products: Products = None) -> steps.FormatReport:
    """Tile every (product, day) of ``<root>/raw`` into ``<root>/formatted`` and compact the inventory.

    A (product, day) that fails is in the report with its error; the others are formatted and listed. The
    report is also saved as JSON under ``<root>/formatted/logs``, as the CLI does.
    """
    roots = steps.Roots.under(root)
    days = steps.date_range(start, end)
    tokens = [p.token for p in steps.select_products(products)]
    # Largest products first: with a few worker processes the slowest (product, day) must not start last.
    pairs = steps.largest_first([(t, d) for t in tokens for d in days])
    futures = format_day.map(
        [t for t, _ in pairs], [d for _, d in pairs], unmapped(roots.raw), unmapped(roots.formatted)
    )
    report = steps.FormatReport(started=steps.timestamp())
    for (token, day), outcome in zip(pairs, settle(futures, "format"), strict=True):
        report.add(token, day, outcome)
    rows = compact_inventory(roots.formatted, tokens, days)
    logger = get_run_logger()
    logger.info("format done: %s; inventory: %d row(s)", report.summary, rows)
    logger.info("report: %s", report.save(Storage(roots.formatted).child("logs")))
    return report
