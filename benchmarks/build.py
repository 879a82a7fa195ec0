"""Benchmark the TACO build step on a year of synthetic inventory: 365 days × 8 regions × 11 products.

Every tile is a small, valid NetCDF4 file (≈7 KB, one 256-value float32 variable). They are written fast
(not timed): one template per product from xarray/h5netcdf, with the first values of its contiguous data
block patched per tile (day, region, product, version), so every tile has its own bytes and sha256 and
still opens with xarray. The inventory rows are those the format step writes (``TileRecord``).

Each build runs in a fresh process (wall time, CPU time, peak RSS = that process's VmHWM):

* the full year to an empty output, with verify on, then with verify off (build vs verify);
* on top of the full year: a no-op rebuild, one day added to the last month, then (on top of that) the
  first day of a new month, and one tile replaced mid-year (a re-formatted tile);
* "build s" is the wall time less ``report.verify.seconds``; "× full" divides by the full build's (with
  verify); "load before" is the 1-minute load average as the step starts (it still holds the previous
  step's tail: well above 1 on 2 cores means something else competed for the CPU).

2024 is a leap year: 365 days from 2024-01-01 end on 2024-12-30, so the day added to the last month is
2024-12-31 (a 31-day month rewritten: the worst case) and the new month's day is 2025-01-01.

    .venv/bin/python benchmarks/build.py [--days N] [--keep DIR] [--profile DIR]

``--keep DIR`` keeps the tiles, inventories and outputs (tiles and inventories are reused by the next run
with the same ``--days``). ``--profile DIR`` writes a cProfile ``<step>.prof`` per build and prints the
top functions; profiling slows the build, so its table is not the benchmark's. cProfile sees only the
main thread: the payload checks that ``verify`` runs in a thread pool show up as the pool's wait.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import datetime as dt
import hashlib
import json
import math
import multiprocessing
import os
import pstats
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import xarray as xr
from measure import peak_rss_mb, warm_up

from oceantaco.catalog import Product, load_catalog
from oceantaco.inventory import SORT_KEYS, TileRecord, read_inventory, to_table
from oceantaco.regions import REGIONS, Region
from oceantaco.storage import Storage
from oceantaco.taco import build_taco

START = dt.date(2024, 1, 1)
DAY_US = 86_400_000_000
# Targets of the full year on 2 cores, and of one added day relative to the full build.
TARGET_FULL_SECONDS = 180.0
TARGET_FULL_MB = 1536.0
TARGET_ADD_RATIO = 0.10
# The data block of every template: unique in the file, so the patch offset is found by search.
_MARKER = (np.arange(256, dtype="float32") + 0.5) * 1.25


@dataclasses.dataclass(frozen=True)
class Plan:
    """The days of the full build and the days the incremental builds add."""

    base: tuple[dt.date, ...]
    same_month: dt.date | None  # the day after the last one, if it is still in the last month
    new_month: dt.date  # the first day of the month after the last (added) day
    replaced: dt.date  # the mid-year day whose first tile is re-formatted

    @classmethod
    def of(cls, days: int) -> Plan:
        base = tuple(START + dt.timedelta(days=i) for i in range(days))
        following = base[-1] + dt.timedelta(days=1)
        same_month = following if following.month == base[-1].month else None
        last = same_month or base[-1]
        new_month = (last.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        return cls(base, same_month, new_month, base[len(base) // 2])

    @property
    def all_days(self) -> list[dt.date]:
        return [*self.base, *([self.same_month] if self.same_month else []), self.new_month]


class TileWriter:
    """Writes tiles from one template per product, patched per tile: fast and still valid NetCDF4."""

    def __init__(self, root: Path, products: list[Product]) -> None:
        self.root = root
        self.templates: dict[str, tuple[bytes, int]] = {}
        for product in products:
            ds = xr.Dataset(
                {product.variable or "value": (("cell",), _MARKER)},
                attrs={"title": f"oceantaco build benchmark: {product.token}"},
            )
            data = bytes(ds.to_netcdf(engine="h5netcdf"))
            self.templates[product.token] = data, data.index(_MARKER.tobytes())

    def write(self, product: Product, index: int, reg: Region, day: dt.date, version: int = 0) -> bytes:
        template, offset = self.templates[product.token]
        data = bytearray(template)
        values = np.array([day.toordinal(), REGIONS.index(reg), index, version], dtype="float32")
        data[offset : offset + values.nbytes] = values.tobytes()
        path = self.root / product.tile_key(reg.name, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return bytes(data)


def _record(product: Product, reg: Region, day: dt.date, data: bytes) -> TileRecord:
    """The inventory row the format step would write for this tile."""
    start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
    dataset = product.dataset_for(day)
    return TileRecord(
        relative_path=product.tile_key(reg.name, day),
        day=day,
        data_source=product.data_source,
        variable=product.variable,
        sensor=product.sensor,
        modality=product.modality,
        output_id=product.output_id,
        region=reg.name,
        spatial_wkb=reg.polygon_wkb,
        time_start_us=start,
        time_end_us=start + DAY_US - 1,
        bbox=list(reg.bounds),
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        source_files=[f"{product.token}_{day:%Y%m%d}.nc"],
        product_id=dataset.product_id,
        dataset_id=dataset.dataset_id,
        dataset_version="202411",
        software_version="benchmark",
        input_fingerprint="benchmark",
        resolution_deg_lat=product.resolution_deg,
        resolution_deg_lon=product.resolution_deg,
        resolution_km_lat=product.resolution_km,
        resolution_km_lon=product.resolution_km,
        gridded=product.tiling == "grid",
    )


def _write_inventory(path: Path, records: list[TileRecord]) -> None:
    table = to_table(records).sort_by([(key, "ascending") for key in SORT_KEYS])
    pq.write_table(table, path, compression="zstd")


def generate(work: Path, plan: Plan) -> None:
    """Tiles of every planned day, the replacement tile, and the inventory of each build."""
    products = load_catalog().ordered()
    writer = TileWriter(work / "formatted", products)
    records: dict[dt.date, list[TileRecord]] = {}
    for day in plan.all_days:
        records[day] = [
            _record(product, reg, day, writer.write(product, index, reg, day))
            for reg in REGIONS
            for index, product in enumerate(products)
        ]
    base = [r for day in plan.base for r in records[day]]
    _write_inventory(work / "inventory_base.parquet", base)
    same_month = base + (records[plan.same_month] if plan.same_month else [])
    _write_inventory(work / "inventory_same_month.parquet", same_month)
    _write_inventory(work / "inventory_new_month.parquet", same_month + records[plan.new_month])
    # The re-formatted tile: its new bytes wait next to the root; the run swaps them in and back.
    product, reg = products[0], REGIONS[0]
    key = product.tile_key(reg.name, plan.replaced)
    original = (work / "formatted" / key).read_bytes()
    replacement = writer.write(product, 0, reg, plan.replaced, version=1)
    (work / "replacement.nc").write_bytes(replacement)
    (work / "formatted" / key).write_bytes(original)
    new = _record(product, reg, plan.replaced, replacement)
    replaced = [new if r.relative_path == key else r for r in base]
    _write_inventory(work / "inventory_replaced.parquet", replaced)


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of any process it waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _build(
    inventory: str, formatted: str, output: str, scratch: str, verify: bool, profile: str | None
) -> dict[str, Any]:
    """One build in this (fresh) process: the timing, peak RSS and what the report says."""
    warm_up()
    inventory_frame = read_inventory(Storage(str(Path(inventory).parent)), Path(inventory).name)
    catalog = load_catalog()
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), _cpu_seconds()
    if profiler:
        profiler.enable()
    report = build_taco(
        inventory_frame,
        Storage(formatted),
        Storage(output),
        catalog,
        scratch_dir=Path(scratch),
        verify=verify,
    )
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - wall
    cpu = _cpu_seconds() - cpu
    if profiler and profile:
        profiler.dump_stats(profile)
    return {
        "wall": wall,
        "cpu": cpu,
        "rss": peak_rss_mb(),
        "written": len(report.parts_written),
        "unchanged": len(report.parts_unchanged),
        "verify": report.verify.seconds if report.verify is not None else None,
        "payloads": report.verify.payloads_checked if report.verify is not None else None,
    }


def _run(
    spawn: Any,
    work: Path,
    inventory: str,
    output: str,
    *,
    start_from: str | None,
    verify: bool = True,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Prepare the output (empty, or a copy of a previous one) and build into it in a fresh process."""
    dest = work / output
    shutil.rmtree(dest, ignore_errors=True)
    if start_from is None:
        dest.mkdir(parents=True)
    else:
        shutil.copytree(work / start_from, dest)
    (work / "scratch").mkdir(exist_ok=True)
    prof = str(profile / f"{output}.prof") if profile else None
    load = os.getloadavg()[0]
    with spawn.Pool(1) as pool:
        return {"load": load} | pool.apply(
            _build,
            (str(work / inventory), str(work / "formatted"), str(dest), str(work / "scratch"), verify, prof),
        )


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _table(rows: list[tuple[str, dict[str, Any]]], full_wall: float, full_build: float) -> str:
    header = (
        "| step | wall s | build s | verify s | cpu s | peak MB | parts written | unchanged "
        "| × full (wall) | × full (build) | load before |"
    )
    lines = [header, "|" + "---|" * 11]
    for label, r in rows:
        build = r["wall"] - (r["verify"] or 0.0)
        lines.append(
            f"| {label} | {r['wall']:.1f} | {build:.1f} | {_fmt(r['verify'], '.1f')} | {r['cpu']:.1f} "
            f"| {r['rss']:.0f} | {r['written']} | {r['unchanged']} | {r['wall'] / full_wall:.3f} "
            f"| {build / full_build:.3f} | {r['load']:.1f} |"
        )
    return "\n".join(lines)


def _print_profile(path: Path, top: int) -> None:
    stats = pstats.Stats(str(path))
    print(f"\n### {path.stem}: top {top} by cumulative time")
    stats.sort_stats("cumulative").print_stats(top)
    print(f"### {path.stem}: top {top} by own time")
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=365, help="days of the full build from 2024-01-01")
    parser.add_argument("--keep", type=Path, help="work here and keep everything (default: a temp dir)")
    parser.add_argument("--profile", type=Path, help="write a cProfile .prof per build here and print it")
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args()
    plan = Plan.of(args.days)
    work = args.keep or Path(tempfile.mkdtemp(prefix="oceantaco-build-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="oceantaco-tacoreader-cache-"))
    os.environ["TACOREADER_CACHE_DIR"] = str(cache)  # inherited by the spawned builds
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    try:
        stamp = work / "generated.json"
        description = {"days": [str(d) for d in plan.all_days], "replaced": str(plan.replaced)}
        if not stamp.exists() or json.loads(stamp.read_text()) != description:
            shutil.rmtree(work / "formatted", ignore_errors=True)
            started = time.perf_counter()
            generate(work, plan)
            stamp.write_text(json.dumps(description))
            print(f"synthetic tiles and inventories written in {time.perf_counter() - started:.1f} s")
        tiles = len(plan.all_days) * len(REGIONS) * len(load_catalog().ordered())
        size = sum(f.stat().st_size for f in (work / "formatted").rglob("*.nc"))
        print(
            f"{len(plan.base)} days {plan.base[0]}..{plan.base[-1]} (+ {plan.same_month or 'no day'} in the "
            f"last month, + {plan.new_month} in a new month): {tiles} tiles, {size / 1e6:.0f} MB under {work}"
        )

        spawn = multiprocessing.get_context("spawn")
        rows: list[tuple[str, dict[str, Any]]] = []
        outputs: list[str] = []

        def run(label: str, inventory: str, output: str, **kwargs: Any) -> dict[str, Any]:
            result = _run(
                spawn, work, f"inventory_{inventory}.parquet", output, profile=args.profile, **kwargs
            )
            rows.append((label, result))
            outputs.append(output)
            print(f"  {label}: {result['wall']:.1f} s, {result['rss']:.0f} MB", flush=True)
            return result

        full = run("full year, verify", "base", "out_full", start_from=None)
        run("full year, no verify", "base", "out_full_noverify", start_from=None, verify=False)
        run("no-op rebuild", "base", "out_noop", start_from="out_full")
        run("no-op rebuild, no verify", "base", "out_noop_noverify", start_from="out_full", verify=False)
        adds = []
        if plan.same_month:
            day = plan.same_month
            adds.append(run(f"+1 day {day} (last month)", "same_month", "out_same", start_from="out_full"))
            run(
                f"+1 day {day}, no verify",
                "same_month",
                "out_same_noverify",
                start_from="out_full",
                verify=False,
            )
        previous = "out_same" if plan.same_month else "out_full"
        adds.append(run(f"+1 day {plan.new_month} (new month)", "new_month", "out_new", start_from=previous))
        key = load_catalog().ordered()[0].tile_key(REGIONS[0].name, plan.replaced)
        tile = work / "formatted" / key
        original = tile.read_bytes()
        tile.write_bytes((work / "replacement.nc").read_bytes())
        try:
            run(f"1 tile re-formatted ({plan.replaced})", "replaced", "out_replaced", start_from="out_full")
        finally:
            tile.write_bytes(original)

        full_build = full["wall"] - (full["verify"] or 0.0)
        print(f"\n{_table(rows, full['wall'], full_build)}\n")
        year = "" if args.days == 365 else f" (targets are for 365 days; this run has {args.days})"
        ok = full["wall"] <= TARGET_FULL_SECONDS and full["rss"] <= TARGET_FULL_MB
        print(
            f"target full year ≤ {TARGET_FULL_SECONDS:.0f} s and ≤ {TARGET_FULL_MB:.0f} MB on 2 cores: "
            f"{full['wall']:.1f} s, {full['rss']:.0f} MB -> {'met' if ok else 'MISSED'}{year}"
        )
        worst = max(r["wall"] for r in adds) / full["wall"]
        print(
            f"target adding one day ≤ {TARGET_ADD_RATIO:.0%} of the full build: worst {worst:.1%} "
            f"-> {'met' if worst <= TARGET_ADD_RATIO else 'MISSED'}{year}"
        )
        print(f"({os.cpu_count()} CPUs; verify checked {full['payloads']} payloads)")
        if args.profile:
            for output in outputs:
                _print_profile(args.profile / f"{output}.prof", args.profile_top)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
