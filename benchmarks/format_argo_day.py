"""Benchmark the Argo format step on one busy synthetic day (~400 profiles, the real daily count).

Writes a GDAC tree for the day (core profile files and ``ar_index_global_prof.txt``), lays the day out in a
raw root as the download step does (the provider's plan, then ``fetch``: profile files under
``argo/dac/...`` and the per-day index sidecar), and, in a second raw root, the original pipeline's daily
point file ``argo/argo_YYYYMMDD.nc`` (argopy research mode). Then, each in a fresh process, it times
``format_product_day`` for the day and reports wall time, CPU time and peak RSS (VmHWM), with the points and
profiles the inventory records.

    .venv/bin/python benchmarks/format_argo_day.py [--profiles 400] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

from measure import peak_rss_mb, warm_up

from oceantaco.catalog import load_catalog
from oceantaco.formatting import format_product_day
from oceantaco.inventory import read_fragment
from oceantaco.providers import fetch, get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import (
    ArgoIndexRow,
    argo_profiles_for_days,
    group_argo_files,
    write_argo_index,
    write_argo_profile,
)
from oceantaco.synthetic_argo_points import point_file_name, write_argo_points

DAY = dt.date(2024, 1, 10)
ORIGINAL_SECONDS = 7.7  # the original format step on such a day (issue 3)
TARGET_SECONDS = 2.0


def write_day(work: Path, n_profiles: int) -> None:
    """GDAC tree -> raw root ``work/raw_gdac`` (provider layout); point file -> ``work/raw_points``."""
    product = load_catalog()["argo"]
    profiles = argo_profiles_for_days([DAY], n_per_day=n_profiles)
    gdac = work / "gdac"
    files = group_argo_files(profiles)
    for rel, in_file in files.items():
        write_argo_profile(gdac / "dac" / rel, in_file)
    write_argo_index(gdac / "ar_index_global_prof.txt", [ArgoIndexRow.for_file(p) for p in files.values()])
    provider = get_provider(product.provider, Settings(argo_gdac=str(gdac)))
    raw = Storage(str(work / "raw_gdac"))
    for plan in provider.plan(product, [DAY]):
        failed = [o for o in fetch(plan, Storage(str(gdac)), raw) if o.status == "failed"]
        if failed:
            raise RuntimeError(f"fetch failed: {failed[0].error}")
    write_argo_points(work / "raw_points" / product.raw_dir / point_file_name(DAY), profiles)


def _format_in_child(raw: str, formatted: str) -> tuple[float, float, float, int, int, int, int]:
    product = load_catalog()["argo"]
    warm_up()
    wall, cpu = time.perf_counter(), time.process_time()
    format_product_day(product, DAY, Storage(raw), Storage(formatted), Settings(), force=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    fragment = read_fragment(Storage(formatted), product, DAY)
    if fragment is None:
        tiles = points = profiles = 0
    else:
        tiles, points, profiles = len(fragment), *(int(fragment[c].sum()) for c in ("n_points", "n_profiles"))
    return wall, cpu, peak_rss_mb(), tiles, points, profiles, _n_inputs(raw)


def _n_inputs(raw: str) -> int:
    product = load_catalog()["argo"]
    return len(get_provider(product.provider, Settings()).raw_inputs(product, DAY, Storage(raw)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=400, help="floats reporting on the day")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per input kind (best is kept)")
    parser.add_argument("--keep", type=Path, help="write the day here and keep it (default: a temp dir)")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="oceantaco-argo-bench-"))
    spawn = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    if not (work / "raw_gdac").exists():
        with spawn.Pool(1) as pool:
            pool.apply(write_day, (work, args.profiles))
    print(f"synthetic Argo day ({args.profiles} floats) written in {time.perf_counter() - started:.1f} s")

    header = ("inputs", 8), ("tiles", 7), ("points", 8), ("profiles", 10), ("wall s", 8), ("cpu s", 8)
    header += (("peak MB", 9),)
    print("\n" + f"{'input':<22}" + "".join(f"{name:>{width}}" for name, width in header))
    for label, raw in (("GDAC profile files", "raw_gdac"), ("daily point file", "raw_points")):
        runs = []
        for _ in range(args.repeat):
            with spawn.Pool(1) as pool:
                runs.append(pool.apply(_format_in_child, (str(work / raw), str(work / f"formatted_{raw}"))))
        wall, cpu, rss, tiles, points, profiles, inputs = min(runs)
        print(f"{label:<22}{inputs:>8}{tiles:>7}{points:>8}{profiles:>10}{wall:>8.2f}{cpu:>8.2f}{rss:>9.0f}")
    print(f"\noriginal: {ORIGINAL_SECONDS:.1f} s for such a day; target: <= {TARGET_SECONDS:.1f} s")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
