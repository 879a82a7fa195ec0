"""Benchmark the format step on one full-size synthetic day of the sparse products.

7 along-track satellites × ~50 k 1-Hz points (L3 SSH, 7 km cells), 28 SWOT L3 passes of 9860 × 69 pixels
(2 km cells) and ~400 Argo profiles. Each product is formatted in a fresh process: wall time, CPU time and
peak RSS (VmHWM of that process). ``--profile`` prints where the SWOT time goes.

    .venv/bin/python benchmarks/format_sparse.py [--keep DIR] [--products l3_ssh,l3_swot] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import multiprocessing
import pstats
import shutil
import tempfile
import time
from pathlib import Path

from measure import peak_rss_mb, warm_up

from oceantaco.catalog import load_catalog
from oceantaco.formatting import format_product_day
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic_sparse import write_sparse_day

DAY = dt.date(2024, 5, 14)
ORIGINAL_SECONDS = {"l3_swot": 768.0, "l3_ssh": 5.8, "argo": 7.7}


def _format(token: str, raw: str, formatted: str, profile: bool) -> tuple[float, float, float, int]:
    product = load_catalog()[token]
    warm_up()
    wall, cpu = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    result = format_product_day(product, DAY, Storage(raw), Storage(formatted), Settings(), force=True)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    tiles = result.tiles_written + result.tiles_unchanged
    return time.perf_counter() - wall, time.process_time() - cpu, peak_rss_mb(), tiles


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, help="write the day here and keep it (default: a temp dir)")
    parser.add_argument("--products", default="l3_ssh,l3_swot")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="oceantaco-sparse-"))
    raw, formatted = work / "raw", work / "formatted"
    spawn = multiprocessing.get_context("spawn")
    if not raw.exists():
        started = time.perf_counter()
        with spawn.Pool(1) as pool:
            pool.apply(write_sparse_day, (raw, DAY), {"products": ("l3_ssh", "l3_swot")})
        print(f"synthetic full-size day written in {time.perf_counter() - started:.1f} s under {raw}")
    print(f"{'product':<10}{'wall s':>8}{'cpu s':>8}{'peak MB':>9}{'tiles':>7}{'orig s':>8}")
    for token in args.products.split(","):
        with spawn.Pool(1) as pool:
            wall, cpu, rss, tiles = pool.apply(_format, (token, str(raw), str(formatted), args.profile))
        print(f"{token:<10}{wall:>8.2f}{cpu:>8.2f}{rss:>9.0f}{tiles:>7}{ORIGINAL_SECONDS[token]:>8.1f}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
