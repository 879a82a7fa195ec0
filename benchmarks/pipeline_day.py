"""Benchmark one full-resolution day through download (mirror copy) and format, per product.

Writes a synthetic upstream day at native resolution (DUACS L4 0.125°, ~8 Argo profiles per region-day),
then times each step in this process and reports wall time, CPU time and peak RSS.

    .venv/bin/python benchmarks/pipeline_day.py [--days N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from oceantaco.catalog import load_catalog
from oceantaco.formatting import format_product_day
from oceantaco.providers import fetch, get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror


def _measure(rows: list, label: str, func: Callable[..., object], *args: object) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    func(*args)
    rows.append((label, time.perf_counter() - wall, time.process_time() - cpu))


def _download(plans: list, provider, raw: Storage) -> None:
    for plan in plans:
        fetch(plan, provider.source, raw)


def _format(product, days: list[dt.date], raw: Storage, formatted: Storage, settings: Settings) -> None:
    for day in days:
        format_product_day(product, day, raw, formatted, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args()
    days = [dt.date(2024, 1, 15) + dt.timedelta(days=i) for i in range(args.days)]
    catalog = load_catalog()
    rows: list = []
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        started = time.perf_counter()
        mirror = build_mirror(base / "upstream", days, grid_products=())  # gridded: format_day.py
        print(f"synthetic upstream: {time.perf_counter() - started:.1f} s")
        settings = Settings(cmems_mirror=mirror.cmems_mirror, argo_gdac=mirror.argo_gdac)
        raw, formatted = Storage(str(base / "raw")), Storage(str(base / "formatted"))
        for token in ("l4_ssh", "argo"):
            product = catalog[token]
            provider = get_provider(product.provider, settings)
            plans = provider.plan(product, days)
            nbytes = sum(p.total_bytes for p in plans)
            _measure(rows, f"download {token}", _download, plans, provider, raw)
            _measure(rows, f"format {token}", _format, product, days, raw, formatted, settings)
            if nbytes:
                print(f"{token}: {nbytes / 1e6:.1f} MB upstream per {len(days)} day(s)")
    print(f"{'step':<20}{'wall s':>10}{'cpu s':>10}")
    for label, wall, cpu in rows:
        print(f"{label:<20}{wall:>10.2f}{cpu:>10.2f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
