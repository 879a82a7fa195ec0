"""A run's reports as Prefect artifacts: summary (markdown), coverage (table), heatmap (image), dataset link.

Call ``publish_artifacts`` inside a flow or task run: Prefect attaches artifacts to the run in context
(outside one it warns, and the artifacts belong to no run). The content comes from the pure functions of
``oceantaco.run_report``; this module only stores the heatmap and talks to Prefect.

Where the heatmap goes: Prefect image artifacts hold a URL, not bytes, and the Prefect database is no place
for images anyway. The PNG is written with ``Storage.write_bytes`` under ``<reports_url>/<run id>/``
(the flows use ``<root>/reports``, next to ``raw/``, ``formatted/`` and ``taco/`` but outside the
dataset, so TACO readers and the release garbage collector never see it) and the artifact points at
``run_report.browser_url`` of it: ``file://`` for a local root, the bucket's object URL for S3/GCS (an
emulator's URL when ``AWS_ENDPOINT_URL``/``STORAGE_EMULATOR_HOST`` is set). A browser shows it only if the
viewer can read the object; where the bucket is served publicly (CDN, public-read prefix) pass
``public_base_url``, which stands for ``reports_url``. The summary embeds the coverage as a small
markdown table and names the PNG's storage URL, so it is useful where the image cannot be shown.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.runtime import flow_run

from oceantaco import run_report
from oceantaco.catalog import Catalog, load_catalog
from oceantaco.inventory import INVENTORY_NAME, read_inventory
from oceantaco.storage import Storage

if TYPE_CHECKING:
    from oceantaco.chunks import ChunkOutcome
    from oceantaco.steps import DownloadReport, FormatReport, Roots
    from oceantaco.taco import BuildReport

# Prefect accepts artifact keys of lowercase letters, digits and dashes only (prefect.types.names).
_KEY = re.compile(r"[a-z0-9-]+")
HEATMAP_NAME = "coverage.png"


@dataclass(frozen=True)
class PublishedArtifacts:
    """Ids of the artifacts made (None: skipped for lack of input), and where the heatmap was stored."""

    summary: UUID
    coverage: UUID | None
    heatmap: UUID | None
    dataset: UUID | None
    heatmap_url: str | None  # storage URL of the PNG (s3://..., gs://..., or a local path)
    heatmap_browser_url: str | None  # what the image artifact points at


def artifact_keys(prefix: str = "oceantaco") -> dict[str, str]:
    """The four keys, ``<prefix>-run-summary`` etc.; refused early if Prefect would refuse them."""
    if not _KEY.fullmatch(prefix):
        raise ValueError(f"artifact key prefix {prefix!r}: only lowercase letters, digits and dashes")
    return {
        "summary": f"{prefix}-run-summary",
        "coverage": f"{prefix}-coverage",
        "heatmap": f"{prefix}-coverage-heatmap",
        "dataset": f"{prefix}-dataset",
    }


def current_run_id() -> str:
    """The flow run's id, or a UTC timestamp outside Prefect; names the report folder of this run."""
    return flow_run.get_id() or dt.datetime.now(dt.UTC).strftime("%Y%m%d_%H%M%S_%f")


def publish_artifacts(
    *,
    dataset_url: str | None,
    reports_url: str,
    inventory: pd.DataFrame | None = None,
    download: DownloadReport | Mapping[str, Any] | None = None,
    format: FormatReport | Mapping[str, Any] | None = None,
    build: BuildReport | None = None,
    timings: Mapping[str, float] | run_report.StepTimings | None = None,
    days: Sequence[dt.date] | None = None,
    catalog: Catalog | None = None,
    run_id: str | None = None,
    key_prefix: str = "oceantaco",
    public_base_url: str | None = None,
    chunks: Sequence[ChunkOutcome] | None = None,
) -> PublishedArtifacts:
    """Create the run's artifacts (keys from ``artifact_keys(key_prefix)``):

    - ``<prefix>-run-summary`` (markdown): ``run_report.run_summary_markdown``, then the coverage per
      product (``run_report.coverage_markdown``) and where the heatmap is;
    - ``<prefix>-coverage`` (table): ``run_report.coverage_table``, a row per day, regions (0–8) per product;
    - ``<prefix>-coverage-heatmap`` (image): the PNG stored at ``<reports_url>/<run id>/coverage.png``;
    - ``<prefix>-dataset`` (link): the dataset's browser URL, labelled with its storage URL.

    Without ``inventory`` the coverage table and the heatmap are skipped; without ``dataset_url`` the link.
    ``days`` fixes the coverage's day axis (e.g. the run's date range); by default the inventory's span.
    """
    keys = artifact_keys(key_prefix)
    catalog = catalog or load_catalog()
    run_id = run_id or current_run_id()
    summary = run_report.run_summary_markdown(download, format, build, timings, dataset_url, chunks)

    coverage_id = heatmap_id = None
    heatmap_url = heatmap_link = None
    if inventory is not None:
        rows = run_report.coverage_table(inventory, catalog, days=days)
        summary += "\n" + run_report.coverage_markdown(inventory, catalog, days=days)
        if rows:
            coverage_id = create_table_artifact(
                rows,
                key=keys["coverage"],
                description="Regions (of 8) holding a tile, per day and product, from the inventory.",
            )
            png = run_report.coverage_heatmap_png(inventory, catalog, days=days)
            reports = Storage(reports_url)
            key = f"{run_id}/{HEATMAP_NAME}"
            reports.write_bytes(key, png)
            heatmap_url = reports.url_of(key)
            heatmap_link = (
                f"{public_base_url.rstrip('/')}/{key}"
                if public_base_url
                else run_report.browser_url(heatmap_url)
            )
            heatmap_id = create_image_artifact(
                heatmap_link,
                key=keys["heatmap"],
                description=f"Coverage heatmap, stored at {heatmap_url}.",
            )
            summary += f"\nHeatmap: [`{heatmap_url}`]({heatmap_link})\n"

    summary_id = create_markdown_artifact(summary, key=keys["summary"], description="OceanTACO run summary.")
    dataset_id = None
    if dataset_url:
        dataset_id = create_link_artifact(
            run_report.browser_url(dataset_url, folder=True),
            link_text=dataset_url,
            key=keys["dataset"],
            description="Where the published OceanTACO dataset is (tacoreader.load this location).",
        )
    return PublishedArtifacts(summary_id, coverage_id, heatmap_id, dataset_id, heatmap_url, heatmap_link)


def report_run(
    roots: Roots,
    *,
    days: Sequence[dt.date],
    download: DownloadReport | None = None,
    format: FormatReport | None = None,
    build: BuildReport | None = None,
    timings: run_report.StepTimings | None = None,
    chunks: Sequence[ChunkOutcome] | None = None,
) -> PublishedArtifacts | None:
    """``publish_artifacts`` for a pipeline run under ``roots``: coverage of ``days`` from the inventory in
    ``roots.formatted`` (when there is one), the heatmap under ``roots.reports``, the link to ``roots.taco``.

    Never raises: the report describes the run, it is not part of it, so a failure to write it (a reports
    bucket without write access, the Prefect API briefly away) is logged as a warning and the run's own
    state stands.
    """
    try:
        formatted = Storage(roots.formatted)
        inventory = read_inventory(formatted) if formatted.exists(INVENTORY_NAME) else None
        return publish_artifacts(
            dataset_url=roots.taco if build is not None else None,
            reports_url=roots.reports,
            inventory=inventory,
            download=download,
            format=format,
            build=build,
            timings=timings,
            days=days,
            chunks=chunks,
        )
    except Exception as exc:
        get_run_logger().warning("run report not published: %s: %s", type(exc).__name__, exc)
        return None
