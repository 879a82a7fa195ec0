"""``oceantaco demo``: the whole pipeline, offline, on a synthetic upstream mirror of three days."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror
from oceantaco.taco import BuildReport, read_slots

# Three days across a month boundary, so the demo shows two monthly parts and the catalog over them.
DEMO_DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]


def run_demo(output: Path, console: Console) -> BuildReport:
    """Replace ``output`` with a fresh mirror + pipeline run; print where the TACO is and what it holds."""
    from flows.pipeline import pipeline  # Prefect is imported only when the demo runs

    output = output.resolve()
    shutil.rmtree(output, ignore_errors=True)
    output.mkdir(parents=True)
    started = time.monotonic()
    mirror = build_mirror(output / "upstream", DEMO_DAYS)
    console.print(
        f"synthetic upstream mirror: {len(mirror.files)} files under {mirror.root} "
        f"({time.monotonic() - started:.1f} s)"
    )
    # The flow's tasks read their settings from the environment, as they do in a Kubernetes pod.
    os.environ["OCEANTACO_CMEMS_MIRROR"] = mirror.cmems_mirror
    os.environ["OCEANTACO_ARGO_GDAC"] = mirror.argo_gdac
    report = pipeline(DEMO_DAYS[0], DEMO_DAYS[-1], str(output / "pipeline"))

    slots = read_slots(Storage(report.url))
    available = Counter(row["slot"] for row in slots if row["available"])
    table = Table("payload", "available in (day, region) pairs")
    for slot, count in sorted(available.items()):
        table.add_row(slot, f"{count} of {report.days * 8}")
    console.print(report.summary())
    console.print(table)
    console.print(
        f"done in {time.monotonic() - started:.1f} s. Open it with: tacoreader.load({report.url!r})"
    )
    return report
