"""Run reports: a markdown summary of one pipeline run, the inventory's coverage and a heatmap of it.

Pure functions over the step reports and the inventory, so they are testable without Prefect and usable
from the CLI as well; ``oceantaco.prefect_artifacts`` turns their output into Prefect artifacts.
matplotlib is imported only by ``coverage_heatmap_png``, so the rest works where it is not installed.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import numpy as np
import pandas as pd

from oceantaco.chunks import chunk_summary
from oceantaco.regions import REGION_NAMES

if TYPE_CHECKING:
    from oceantaco.catalog import Catalog
    from oceantaco.chunks import ChunkOutcome
    from oceantaco.steps import DownloadReport, FormatReport
    from oceantaco.taco import BuildReport

STEPS = ("download", "format", "download + format", "build")
MAX_LISTED_FAILURES = 10  # failures named in the markdown; the report JSON under logs/ has them all
N_REGIONS = len(REGION_NAMES)


# --- timings -------------------------------------------------------------------------------------------


@dataclass
class StepTimings:
    """Wall-clock seconds per step, measured with ``with timings.step("format"): ...``.

    A step that raises is still timed, so the summary of a failed run says where the time went.
    """

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def format_duration(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``2 min 05 s``, ``1 h 02 min``: readable at every scale of a backfill."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_bytes(n: int) -> str:
    """Exact count plus a decimal unit: ``1,500,000 (1.5 MB)``; the exact count is what one compares."""
    if n < 1000:
        return f"{n:,} B"
    size, unit = float(n), "B"
    for unit in ("kB", "MB", "GB", "TB"):  # noqa: B007  (the unit the loop stops at is the one used)
        size /= 1000
        if size < 1000:
            break
    return f"{n:,} ({size:.1f} {unit})"


# --- locations -----------------------------------------------------------------------------------------


def browser_url(location: str, *, folder: bool = False, env: Mapping[str, str] | None = None) -> str:
    """A URL a person can open for a storage location (local path or fsspec URL).

    - local paths: a ``file://`` URL (only useful on the machine, or a shared volume, that holds it);
    - ``s3://``: with ``AWS_ENDPOINT_URL`` (MinIO, moto, ...) the path-style URL on that endpoint; else
      the AWS console page of a folder, or the object's ``https://<bucket>.s3.amazonaws.com/<key>`` URL
      (an image needs a direct object URL: the console only shows object pages);
    - ``gs://``: with ``STORAGE_EMULATOR_HOST`` the JSON API URL on the emulator; else the Cloud console
      page of a folder, or ``https://storage.cloud.google.com/<bucket>/<key>`` for an object (Google's
      authenticated browser download: works for signed-in users with read access, public or not);
    - anything else (``memory://``, ``https://``, ...) unchanged.

    Direct S3 object URLs only load in a browser when the object is readable anonymously (public-read
    prefix, or a CDN/proxy in front): pass a public base URL to the caller instead when that is the case.
    """
    env = os.environ if env is None else env
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and location[1:3] in (":\\", ":/")):  # C:\ paths
        path = parts.path if scheme == "file" else location
        return Path(path).resolve().as_uri() + ("/" if folder else "")
    bucket, key = parts.netloc, parts.path.strip("/")
    if scheme in ("s3", "s3a"):
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            return f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}" + ("/" if folder and key else "")
        if folder:
            prefix = quote(f"{key}/", safe="") if key else ""
            return f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={prefix}"
        return f"https://{bucket}.s3.amazonaws.com/{quote(key)}"
    if scheme in ("gs", "gcs"):
        emulator = env.get("STORAGE_EMULATOR_HOST")
        if emulator:
            host = emulator if "://" in emulator else f"http://{emulator}"
            base = f"{host.rstrip('/')}/storage/v1/b/{bucket}/o"
            if folder:
                return f"{base}?prefix={quote(f'{key}/' if key else '', safe='')}"
            return f"{base}/{quote(key, safe='')}?alt=media"
        if folder:
            return f"https://console.cloud.google.com/storage/browser/{bucket}/{quote(key)}"
        return f"https://storage.cloud.google.com/{bucket}/{quote(key)}"
    return location


# --- run summary ---------------------------------------------------------------------------------------


def _download_counts(download: DownloadReport | Mapping[str, Any]) -> dict[str, int]:
    """The download summary from a report, its saved JSON body (``{"summary": ...}``) or a summary dict."""
    summary = download.get("summary", download) if isinstance(download, Mapping) else download.summary
    keys = ("planned_files", "planned_bytes", "ok", "skipped", "failed", "bytes_transferred")
    return {k: int(summary.get(k, 0)) for k in keys}


def _format_rows(format: FormatReport | Mapping[str, Any]) -> tuple[dict[str, int], list[str]]:
    """Counts per status and tile totals, plus the failures, from a report or its saved JSON body.

    A plain summary dict (no per-day rows) is accepted too; ``tiles_unchanged`` is then unknown (0).
    """
    rows = format.get("days") if isinstance(format, Mapping) else format.days
    if rows is None:  # a summary dict
        summary = dict(format)  # type: ignore[arg-type]
        counts = {k: int(summary.get(k, 0)) for k in ("formatted", "unchanged", "no_input", "failed")}
        counts["tiles_written"] = int(summary.get("tiles_written", 0))
        counts["tiles_unchanged"] = int(summary.get("tiles_unchanged", 0))
        counts["values_out_of_range"] = int(summary.get("values_out_of_range", 0))
        return counts, []
    counts = {status: sum(r["status"] == status for r in rows) for status in ("formatted", "unchanged")}
    counts["no_input"] = sum(r["status"] == "no_input" for r in rows)
    counts["failed"] = sum(r["status"] == "failed" for r in rows)
    for total in ("tiles_written", "tiles_unchanged", "values_out_of_range"):
        counts[total] = sum(int(r.get(total, 0) or 0) for r in rows)
    failures = [
        f"{r['product']} {r['day']}: {r.get('error_type', '')}: {r.get('error_message', '')}"
        for r in rows
        if r["status"] == "failed"
    ]
    return counts, failures


def _table(rows: Sequence[tuple[str, object]]) -> list[str]:
    return ["| | |", "|---|--:|", *(f"| {name} | {value} |" for name, value in rows)]


def _listed(failures: Sequence[str]) -> list[str]:
    # one list item per failure: multi-line messages and backticks would break the markdown
    flat = [" ".join(f.replace("`", "'").split()) for f in failures[:MAX_LISTED_FAILURES]]
    lines = [f"- `{f}`" for f in flat]
    if len(failures) > MAX_LISTED_FAILURES:
        lines.append(f"- … and {len(failures) - MAX_LISTED_FAILURES} more (see the report JSON under logs/)")
    return lines


def failure_message(download: DownloadReport | None, format: FormatReport | None) -> str | None:
    """What failed in a run's download and format steps, in one sentence; None when nothing did."""
    failed = (download.summary["failed"] if download else 0, format.summary["failed"] if format else 0)
    if not any(failed):
        return None
    return f"{failed[0]} download failure(s) and {failed[1]} (product, day) format failure(s)"


def _chunk_rows(chunks: Sequence[ChunkOutcome]) -> tuple[list[tuple[str, object]], list[str]]:
    rows: list[tuple[str, object]] = [
        ("chunks", f"{len(chunks):,}"),
        ("completed", f"{sum(c.ok for c in chunks):,}"),
        ("submitted again after a lost pod", f"{sum(len(c.attempts) > 1 for c in chunks):,}"),
        ("not completed", f"{sum(not c.ok for c in chunks):,}"),
    ]
    return rows, chunk_summary(list(chunks))


def run_summary_markdown(
    download: DownloadReport | Mapping[str, Any] | None,
    format: FormatReport | Mapping[str, Any] | None,
    build: BuildReport | None,
    timings: Mapping[str, float] | StepTimings | None = None,
    dataset_url: str | None = None,
    chunks: Sequence[ChunkOutcome] | None = None,
) -> str:
    """Markdown summary of one run: what each step did, how long it took, where the dataset is.

    Every step is optional, so a flow that ran only some steps (or failed half-way) still reports what it
    has. Numbers are exact counts (bytes with a unit as a reading aid) so a reader can compare runs.
    """
    seconds = dict(timings.seconds if isinstance(timings, StepTimings) else (timings or {}))
    problems = 0
    lines = ["# OceanTACO run summary", ""]
    if dataset_url:
        lines += [f"**Dataset:** [`{dataset_url}`]({browser_url(dataset_url, folder=True)})", ""]
    body: list[str] = []

    if chunks:
        rows, failed_chunks = _chunk_rows(chunks)
        # A chunk that reported counts through its failed files and days below; one that did not, here.
        problems += sum(not c.ok and not c.reported for c in chunks)
        body += ["## Chunks", "", *_table(rows), ""]
        body += [*_listed(failed_chunks), ""] if failed_chunks else []

    if download is not None:
        d = _download_counts(download)
        problems += d["failed"]
        dry = download.get("dry_run") if isinstance(download, Mapping) else download.dry_run
        body += ["## Download" + (" (dry run)" if dry else ""), ""]
        body += _table(
            [
                ("files planned", f"{d['planned_files']:,}"),
                ("bytes planned", format_bytes(d["planned_bytes"])),
                ("files fetched", f"{d['ok']:,}"),
                ("files skipped (already present)", f"{d['skipped']:,}"),
                ("failed (files, and products that failed whole)", f"{d['failed']:,}"),
                ("bytes fetched", format_bytes(d["bytes_transferred"])),
            ]
        )
        errors = download.get("errors", []) if isinstance(download, Mapping) else download.errors
        failed_files = (
            download.get("downloads", download.get("files", []))
            if isinstance(download, Mapping)
            else download.files
        )
        named = [f"{e['product']}: {e['error_type']}: {e['error_message']}" for e in errors or []]
        named += [
            f"{f['product']} {f['day']} {f['raw_key']}: {f.get('error')}"
            for f in failed_files or []
            if f.get("status") == "failed"
        ]
        body += ["", *_listed(named), ""] if named else [""]

    if format is not None:
        f, failures = _format_rows(format)
        problems += f["failed"]
        body += ["## Format", ""]
        body += _table(
            [
                ("(product, day) formatted", f"{f['formatted']:,}"),
                ("(product, day) unchanged", f"{f['unchanged']:,}"),
                ("(product, day) without input", f"{f['no_input']:,}"),
                ("(product, day) failed", f"{f['failed']:,}"),
                ("tiles written", f"{f['tiles_written']:,}"),
                ("tiles unchanged", f"{f['tiles_unchanged']:,}"),
                ("values out of range (set to fill)", f"{f['values_out_of_range']:,}"),
            ]
        )
        body += ["", *_listed(failures), ""] if failures else [""]

    if build is not None:
        body += ["## Build", ""]
        rows: list[tuple[str, object]] = [
            ("layout", build.layout),
            ("release", f"`{build.release}` " + ("published" if build.published else "unchanged, live")),
            ("days", f"{build.days:,}"),
            ("tiles", f"{build.tiles:,}"),
            ("placeholder slots", f"{build.placeholders:,}"),
        ]
        if build.layout == "zip":
            rows += [
                ("parts written", f"{len(build.parts_written):,}"),
                ("parts unchanged", f"{len(build.parts_unchanged):,}"),
            ]
        else:
            rows.append(("tiles uploaded", f"{build.tiles_uploaded:,}"))
        rows += [
            ("objects deleted", f"{len(build.objects_deleted):,}"),
            ("duplicate rows dropped", f"{len(build.duplicates_dropped):,}"),
        ]
        if build.verify is None:
            rows.append(("verify", "skipped"))
        else:
            problems += len(build.verify.failures)
            rows.append(("verify", build.verify.summary()))
        body += [*_table(rows), ""]
        if build.verify is not None and build.verify.failures:
            body += [*_listed(build.verify.failures), ""]

    state = "OK" if not problems else f"{problems:,} failure(s)"
    lines += [f"**Status:** {state}", ""]
    if seconds:
        ordered = [s for s in STEPS if s in seconds] + [s for s in seconds if s not in STEPS]
        lines += ["| step | duration |", "|---|--:|"]
        lines += [f"| {name} | {format_duration(seconds[name])} |" for name in ordered]
        lines += [f"| **total** | {format_duration(sum(seconds.values()))} |", ""]
    return "\n".join(lines + body).rstrip() + "\n"


# --- coverage ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """Regions (0–8) holding a tile, per day (rows) and product (columns, catalog slot order)."""

    days: tuple[dt.date, ...]
    products: tuple[str, ...]  # product tokens
    regions: np.ndarray  # int, shape (len(days), len(products))

    @property
    def tiles(self) -> int:
        return int(self.regions.sum())


def coverage(inventory: pd.DataFrame, catalog: Catalog, *, days: Sequence[dt.date] | None = None) -> Coverage:
    """Count distinct regions per (day, product) in the inventory.

    The day axis is ``days`` when given (e.g. the run's date range, so days without any tile show as
    gaps), else every day from the inventory's first to its last: a missing day inside a backfill is
    exactly what the report must show. Rows of a ``data_source`` the catalog does not know, or of an
    unknown region, are not counted.
    """
    products = catalog.ordered()
    column = {p.data_source: i for i, p in enumerate(products)}
    frame = pd.DataFrame(
        {
            "day": pd.to_datetime(inventory["timestamp_file"]).dt.date,
            "product": inventory["data_source"].map(column),
            "region": inventory["region"],
        }
    )
    frame = frame[frame["product"].notna() & frame["region"].isin(REGION_NAMES)]
    if days is None:
        if frame.empty:
            day_axis: list[dt.date] = []
        else:
            first, last = min(frame["day"]), max(frame["day"])
            day_axis = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    else:
        day_axis = sorted(set(days))
    row = {day: i for i, day in enumerate(day_axis)}
    counts = np.zeros((len(day_axis), len(products)), dtype=int)
    if not frame.empty:
        per_cell = frame.groupby(["day", "product"])["region"].nunique()
        for (day, product), n in per_cell.items():
            if day in row:
                counts[row[day], int(product)] = int(n)
    return Coverage(tuple(day_axis), tuple(p.token for p in products), counts)


def coverage_table(
    inventory: pd.DataFrame, catalog: Catalog, *, days: Sequence[dt.date] | None = None
) -> list[dict[str, Any]]:
    """One row per day: ``date``, one column per product token (regions with a tile, 0–8), ``tiles``.

    Plain JSON types, the shape Prefect's table artifact takes.
    """
    cov = coverage(inventory, catalog, days=days)
    return [
        {
            "date": day.isoformat(),
            **{token: int(n) for token, n in zip(cov.products, counts, strict=True)},
            "tiles": int(counts.sum()),
        }
        for day, counts in zip(cov.days, cov.regions, strict=True)
    ]


def coverage_markdown(
    inventory: pd.DataFrame, catalog: Catalog, *, days: Sequence[dt.date] | None = None
) -> str:
    """Per product: days with all 8 regions, partial days, empty days, and tiles; one line per product.

    Its size does not grow with the date range, so it stays readable for a year-long backfill and is
    useful where the heatmap cannot be shown.
    """
    cov = coverage(inventory, catalog, days=days)
    if not cov.days:
        return "## Coverage\n\nThe inventory has no tiles.\n"
    n_days = len(cov.days)
    lines = [
        "## Coverage",
        "",
        f"{cov.days[0]} – {cov.days[-1]} ({n_days} day(s)): {cov.tiles:,} of "
        f"{n_days * len(cov.products) * N_REGIONS:,} possible tiles "
        f"({n_days} days × {len(cov.products)} products × {N_REGIONS} regions).",
        "",
        f"| product | days with all {N_REGIONS} regions | partial days | days without tiles | tiles |",
        "|---|--:|--:|--:|--:|",
    ]
    for j, token in enumerate(cov.products):
        col = cov.regions[:, j]
        full, empty = int((col == N_REGIONS).sum()), int((col == 0).sum())
        lines.append(f"| {token} | {full} | {n_days - full - empty} | {empty} | {int(col.sum()):,} |")
    return "\n".join(lines) + "\n"


def _date_ticks(days: Sequence[dt.date], max_labels: int) -> list[int]:
    """Indices of the day labels to draw: every day when few, else a regular stride of whole weeks or
    months, so a 365-day backfill gets ~12 readable labels instead of 365 overlapping ones."""
    n = len(days)
    if n <= max_labels:
        return list(range(n))
    for stride in (2, 3, 7, 14):
        if math.ceil(n / stride) <= max_labels:
            return list(range(0, n, stride))
    month_starts = [i for i, day in enumerate(days) if day.day == 1] or [0]
    every = math.ceil(len(month_starts) / max_labels)
    return month_starts[::every]


def coverage_heatmap_png(
    inventory: pd.DataFrame,
    catalog: Catalog,
    *,
    days: Sequence[dt.date] | None = None,
    title: str | None = None,
    dpi: int = 100,
) -> bytes:
    """PNG heatmap of the coverage: days across, products down, colour = regions with a tile (0–8).

    Drawn on a bare ``Figure`` with the Agg canvas, never through pyplot: no global backend switch and no
    pyplot state shared between the threads of a Prefect worker. The width grows with the date range up
    to a cap, and date labels are thinned, so long backfills stay legible.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure

    cov = coverage(inventory, catalog, days=days)
    n_days, n_products = len(cov.days), len(cov.products)
    width = min(max(7.0, 3.5 + 0.18 * n_days), 18.0)
    height = 1.9 + 0.32 * n_products
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    # 0 (no tile) in light grey so gaps stand out; 1..8 on a perceptually uniform ramp
    ramp = colormaps["viridis"].resampled(N_REGIONS)
    cmap = ListedColormap(["#e6e6e6", *(ramp(i) for i in range(N_REGIONS))])
    norm = BoundaryNorm(np.arange(-0.5, N_REGIONS + 1.5), cmap.N)
    grid = cov.regions.T if n_days else np.zeros((n_products, 1), dtype=int)
    edges = {"edgecolors": "white", "linewidth": 0.5} if 0 < n_days <= 62 else {}
    mesh = ax.pcolormesh(grid, cmap=cmap, norm=norm, **edges)
    ax.set_ylim(n_products, 0)  # catalog slot order, top to bottom
    ax.set_yticks(np.arange(n_products) + 0.5, list(cov.products), fontsize=8)
    ticks = _date_ticks(cov.days, max_labels=max(4, int(width * 1.6)))
    ax.set_xticks([i + 0.5 for i in ticks], [cov.days[i].isoformat() for i in ticks], fontsize=8)
    ax.tick_params(axis="x", labelrotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.set_xlabel("day" if n_days else "day (no tiles)")
    if title is None:
        span = f"{cov.days[0]} – {cov.days[-1]}" if n_days else "empty inventory"
        title = f"OceanTACO coverage, {span}: regions with a tile per product and day"
    ax.set_title(title, fontsize=10)
    bar = fig.colorbar(mesh, ax=ax, ticks=range(N_REGIONS + 1), pad=0.01, fraction=0.03)
    bar.set_label(f"regions with a tile (of {N_REGIONS})", fontsize=8)
    bar.ax.tick_params(labelsize=8)

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()
