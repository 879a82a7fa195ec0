"""The pipeline's steps as plain functions; the CLI and the Prefect flows both call these.

A storage *root* holds the three areas of the original pipeline: ``raw/`` (download output),
``formatted/`` (tiles + inventory) and ``taco/`` (the TACO parts and catalog).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

from oceantaco import duplicates
from oceantaco.catalog import Catalog, Product, load_catalog
from oceantaco.formatting import FormatFailure, FormatResult, format_product_day
from oceantaco.inventory import INVENTORY_NAME, compact, read_inventory, tile_rows
from oceantaco.providers import DayPlan, FileOutcome, aviso, fetch, get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.taco import DEFAULT_KEEP_RELEASES, BuildReport, Layout, build_taco, verify_output
from oceantaco.verify import VerifyReport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Roots:
    """The pipeline's folders under one storage root; ``reports`` holds run reports outside the dataset."""

    raw: str
    formatted: str
    taco: str
    reports: str

    @classmethod
    def under(cls, root: str) -> Roots:
        base = root.rstrip("/")
        return cls(f"{base}/raw", f"{base}/formatted", f"{base}/taco", f"{base}/reports")


def date_range(start: dt.date, end: dt.date) -> list[dt.date]:
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def select_products(names: list[str] | None, catalog: Catalog | None = None) -> list[Product]:
    """Products by token, output id or raw folder, in slot order; every product when ``names`` is empty."""
    catalog = catalog or load_catalog()
    return catalog.resolve(names) if names else catalog.ordered()


# --- download ---------------------------------------------------------------------------------------


def plan_downloads(
    product_token: str, days: list[dt.date], settings: Settings, *, raw_url: str | None = None
) -> list[DayPlan]:
    """What to fetch per day; with ``raw_url`` the AVISO catalog is cached in that raw root."""
    product = load_catalog()[product_token]
    if raw_url is not None:
        settings = aviso.apply_cli_options(settings, raw_url)
    return get_provider(product.provider, settings).plan(product, days)


def fetch_day(plan: DayPlan, raw_url: str, settings: Settings) -> list[FileOutcome]:
    product = load_catalog()[plan.product]
    provider = get_provider(product.provider, settings)
    return fetch(plan, provider.source, Storage(raw_url))


@dataclass
class DownloadReport:
    """Per-file outcomes of one download run, saved as JSON under the log directory."""

    started: str
    dry_run: bool
    planned: list[dict] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)

    def add_plan(self, plan: DayPlan) -> None:
        self.planned.append(
            {
                "product": plan.product,
                "day": plan.day.isoformat(),
                "files": len(plan.files),
                "bytes": plan.total_bytes,
            }
        )

    def add_outcomes(self, plan: DayPlan, outcomes: list[FileOutcome]) -> None:
        for outcome in outcomes:
            self.files.append({"product": plan.product, "day": plan.day.isoformat(), **asdict(outcome)})

    def add_error(self, product: str, error: BaseException) -> None:
        self.errors.append(
            {"product": product, "error_type": type(error).__name__, "error_message": str(error)}
        )

    @property
    def summary(self) -> dict:
        counts = Counter(f["status"] for f in self.files)
        return {
            "planned_files": sum(p["files"] for p in self.planned),
            "planned_bytes": sum(p["bytes"] for p in self.planned),
            "ok": counts["ok"],
            "skipped": counts["skipped"],
            "failed": counts["failed"] + len(self.errors),
            "bytes_transferred": sum(f["bytes"] for f in self.files),
            # Retries over all files, whole-file tries beyond the first plus the transports' own recoveries
            # (FTP resumes, toolbox retries): how flaky the providers were during this run.
            "retries": sum(
                max(0, f.get("attempts", 1) - 1) + f.get("transport_retries", 0) for f in self.files
            ),
        }

    def save(self, log_dir: Storage) -> str:
        key = f"download_report_{self.started}.json"
        body = {
            "planned": self.planned,
            "downloads": self.files,
            "errors": self.errors,
            "summary": self.summary,
        }
        log_dir.write_bytes(key, json.dumps(body, indent=2, default=str).encode())
        return log_dir.url_of(key)


# --- format -------------------------------------------------------------------------------------------


def format_day(
    product_token: str, day: dt.date, raw_url: str, formatted_url: str, settings: Settings
) -> FormatResult:
    return format_product_day(
        load_catalog()[product_token], day, Storage(raw_url), Storage(formatted_url), settings
    )


def largest_first(pairs: list[tuple[str, dt.date]]) -> list[tuple[str, dt.date]]:
    """(product, day) pairs in decreasing formatting cost (the catalog's measured CPU seconds), days in
    order within a product."""
    catalog = load_catalog()
    return sorted(pairs, key=lambda pair: -catalog[pair[0]].format_cpu_seconds)


def format_many(
    pairs: list[tuple[str, dt.date]], raw_url: str, formatted_url: str, processes: int
) -> Iterator[tuple[str, dt.date, FormatResult | Exception]]:
    """Format (product, day) pairs, in worker processes when ``processes`` > 1; failures are yielded.

    The largest products start first, so with few workers the slowest one does not start last.
    """
    settings = Settings()
    if processes <= 1:
        for token, day in pairs:
            try:
                yield token, day, format_day(token, day, raw_url, formatted_url, settings)
            except Exception as exc:  # one bad (product, day) must not stop the others
                yield token, day, exc
        return
    ordered = largest_first(pairs)
    # spawn: HDF5 state inherited through fork is not safe to use in the child
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pair: pool.submit(format_day, *pair, raw_url, formatted_url, settings) for pair in ordered}
        for token, day in pairs:
            try:
                yield token, day, futures[(token, day)].result()
            except Exception as exc:
                yield token, day, exc


@dataclass
class FormatReport:
    """Outcome of every (product, day) of one format run, saved as JSON under the log directory.

    Every row has ``status`` and ``reason`` (null when there is nothing to say), as the inventory does; a
    failed row also has ``error_type``, ``error_message`` and the raw keys it ``quarantined``.
    """

    started: str
    days: list[dict] = field(default_factory=list)

    def add(self, product: str, day: dt.date, result: FormatResult | BaseException) -> None:
        row: dict = {"product": product, "day": day.isoformat()}
        if isinstance(result, FormatResult):
            row.update(asdict(result), day=day.isoformat())
        else:
            # A FormatFailure carries the original error's type; anything else failed outside the step
            # (a crashed worker, a Prefect task that never ran).
            failure = result if isinstance(result, FormatFailure) else None
            row.update(
                status="failed",
                reason=str(result),
                error_type=failure.error_type if failure else type(result).__name__,
                error_message=str(result),
                quarantined=list(failure.quarantined) if failure else [],
            )
        self.days.append(row)

    @property
    def failures(self) -> list[str]:
        return [
            f"{r['product']} {r['day']}: {r['error_type']}: {r['error_message']}"
            for r in self.days
            if r["status"] == "failed"
        ]

    @property
    def summary(self) -> dict:
        counts = Counter(r["status"] for r in self.days)
        return {
            **{status: counts[status] for status in ("formatted", "unchanged", "no_input", "failed")},
            "tiles_written": sum(r.get("tiles_written", 0) for r in self.days),
            "values_out_of_range": sum(r.get("values_out_of_range", 0) for r in self.days),
            "quarantined": sum(len(r.get("quarantined", ())) for r in self.days),
        }

    def save(self, log_dir: Storage) -> str:
        key = f"format_report_{self.started}.json"
        body = {"days": self.days, "summary": self.summary}
        log_dir.write_bytes(key, json.dumps(body, indent=2, default=str).encode())
        return log_dir.url_of(key)


def compact_inventory(
    formatted_url: str,
    products: list[str],
    days: list[dt.date],
    *,
    inventory_path: str = INVENTORY_NAME,
    update_existing: bool = True,
) -> int:
    """Merge this run's fragments into the inventory; returns the inventory's row count."""
    catalog = load_catalog()
    frame = compact(
        Storage(formatted_url),
        [catalog[t] for t in products],
        days,
        inventory_key=inventory_path,
        update_existing=update_existing,
    )
    return len(frame)


# --- build --------------------------------------------------------------------------------------------


def select_inventory(
    inventory: pd.DataFrame,
    *,
    products: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """Tile rows of the given products (tokens) with ``timestamp_file`` in [start, end] (inclusive).

    Rows of failed / empty (product, day)s are never selected: they have no tile to build from.
    """
    inventory = tile_rows(inventory)
    day = inventory["timestamp_file"].dt.date
    keep = day == day
    if products is not None:
        catalog = load_catalog()
        keep &= inventory["data_source"].isin([catalog[token].data_source for token in products])
    if start is not None:
        keep &= day >= start
    if end is not None:
        keep &= day <= end
    return inventory[keep].reset_index(drop=True)


@dataclass(frozen=True)
class DuplicateCheck:
    """Duplicate analysis of the whole inventory and of the rows a build would use."""

    whole: duplicates.DuplicateAnalysis
    selected: duplicates.DuplicateAnalysis

    def summary(self) -> str:
        return (
            f"whole inventory: {self.whole.summary()}\n"
            f"selected rows (products and dates of this build): {self.selected.summary()}"
        )


def inventory_location(formatted_url: str, inventory_url: str | None) -> tuple[Storage, str]:
    """(storage, key) of the build's inventory: a path or URL of its own, else the formatted root's."""
    if inventory_url is None:
        return Storage(formatted_url), INVENTORY_NAME
    parent, _, name = inventory_url.rstrip("/").rpartition("/")
    return Storage(parent or "."), name


def analyze_duplicates(
    formatted_url: str,
    *,
    inventory_url: str | None = None,
    products: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    report_path: str | None = None,
) -> DuplicateCheck:
    """The seed's ``--analyze-duplicates-only``: analyse, optionally write the parquet report, build nothing.

    The report lists the whole inventory's colliding rows, with ``selected`` marking the rows inside the
    product and date filters.
    """
    catalog = load_catalog()
    inventory = read_inventory(*inventory_location(formatted_url, inventory_url))
    selection = select_inventory(inventory, products=products, start=start, end=end)
    check = DuplicateCheck(
        whole=duplicates.analyze(inventory, catalog), selected=duplicates.analyze(selection, catalog)
    )
    if report_path is not None:
        chosen = set(selection["relative_path"])
        check.whole.report["selected"] = check.whole.report["relative_path"].isin(chosen)
        duplicates.write_report(check.whole, report_path)
    return check


def build(
    formatted_url: str,
    output_url: str,
    *,
    inventory_url: str | None = None,
    products: list[str] | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    verify: bool = True,
    layout: Layout = "zip",
    keep_releases: int = DEFAULT_KEEP_RELEASES,
    resolve_duplicates: str | None = None,
    duplicate_report_path: str | None = None,
) -> BuildReport:
    """Build the TACO from the selected inventory rows; duplicates are refused unless a rule is given.

    With ``resolve_duplicates="newest"`` the newest processing time wins and the dropped rows are named in
    the report. ``duplicate_report_path`` writes the analysis of the selected rows first.
    """
    catalog = load_catalog()
    formatted = Storage(formatted_url)
    storage, key = inventory_location(formatted_url, inventory_url)
    inventory = select_inventory(read_inventory(storage, key), products=products, start=start, end=end)
    if inventory.empty:
        raise ValueError(f"the inventory at {storage.url_of(key)} has no rows to build from")
    analysis = duplicates.analyze(inventory, catalog)
    if duplicate_report_path is not None:
        duplicates.write_report(analysis, duplicate_report_path)
    dropped: list[str] = []
    if analysis.has_duplicates:
        if resolve_duplicates not in duplicates.RESOLUTION_RULES:
            raise duplicates.UnresolvedDuplicatesError.from_analysis(analysis)
        inventory, losers = duplicates.resolve(inventory, catalog)
        dropped = sorted(losers["relative_path"])
        logger.warning("dropped %d duplicate inventory row(s): %s", len(dropped), ", ".join(dropped))
    report = build_taco(
        inventory,
        formatted,
        Storage(output_url),
        catalog,
        layout=layout,
        keep_releases=keep_releases,
        verify=verify,
    )
    return replace(report, duplicates_dropped=tuple(dropped))


def verify(output_url: str, *, inventory_url: str | None = None) -> VerifyReport:
    """``oceantaco verify``: the live release in full, against its manifest or an inventory."""
    inventory = None
    if inventory_url is not None:
        inventory = read_inventory(*inventory_location(".", inventory_url))
    return verify_output(Storage(output_url), load_catalog(), inventory=inventory)


@contextmanager
def run_log(log_dir: Storage, key: str) -> Iterator[logging.Logger]:
    """Log the ``oceantaco`` loggers to ``<log_dir>/<key>`` (which may be in a bucket) for one run.

    Records go to a local temporary file first and are uploaded at the end, also when the run fails.
    Providers scrub credentials from what they log.
    """
    logger = logging.getLogger("oceantaco")
    with tempfile.TemporaryDirectory(prefix="oceantaco-log-") as scratch:
        path = Path(scratch) / "run.log"
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        previous = logger.level
        logger.addHandler(handler)
        logger.setLevel(min(previous or logging.INFO, logging.INFO))
        try:
            yield logger
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)
            handler.close()
            log_dir.put_file(path, key)


def timestamp() -> str:
    """UTC start time for report names; microseconds, so runs started in the same second never collide."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d_%H%M%S_%f")
