"""Micro-benchmark of the binning engine alone on a synthetic SWOT L3 day (no file I/O).

28 half-orbit passes of 9860 lines × 69 pixels (2 km, -68..68 km cross-track) on a circular orbit inclined
77.6° with 14 revolutions a day, binned at 2 km into the eight tiles. Three float32 variables shaped like
the L3 Basic product (ssha_filtered, ssha_unfiltered, mdt), with the nadir gap (|x| < 10 km) and ~30 %
"land" as NaN. Reports wall/CPU time of the engine (pass synthesis excluded), time per stage and peak RSS.

    .venv/bin/python benchmarks/binning_swot_day.py [--mode dict|stream] [--passes 28]
        [--dtype float32|float64] [--profile]

``dict`` calls ``bin_observations`` (all tiles' statistics held at the end); ``stream`` uses
``TileBinner.finish_iter`` and drops each tile after building its dense arrays, as a loader writing tiles
would. Run each mode in its own process: peak RSS is per process.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import time
from collections.abc import Iterator

import numpy as np

from oceantaco.binning import TileBinner, bin_observations

EARTH_RADIUS_KM = 6371.0
INCLINATION_DEG = 77.6
REVS_PER_DAY = 14.0
SIDEREAL_DAY_S = 86164.1
N_LINES, N_PIXELS = 9860, 69
VARIABLES = ("ssha_filtered", "ssha_unfiltered", "mdt")


def _pass_template(descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """Lat/lon (degrees, lon unwrapped) of one half orbit starting at the southern/northern turning point."""
    period = 86400.0 / REVS_PER_DAY
    t = (np.arange(N_LINES) / N_LINES + (0.5 if descending else 0.0)) * period / 2
    u = -np.pi / 2 + 2 * np.pi * t / period  # argument of latitude
    inc = np.radians(INCLINATION_DEG)
    lat = np.arcsin(np.sin(inc) * np.sin(u))
    lon = np.unwrap(np.arctan2(np.cos(inc) * np.sin(u), np.cos(u)) - 2 * np.pi / SIDEREAL_DAY_S * t)
    # Cross-track pixels along the local perpendicular of the ground track.
    east, north = np.gradient(lon) * np.cos(lat), np.gradient(lat)
    norm = np.hypot(east, north)
    x = (np.arange(N_PIXELS) - (N_PIXELS - 1) / 2) * 2.0 / EARTH_RADIUS_KM
    lat2 = lat[:, None] - (east / norm)[:, None] * x
    lon2 = lon[:, None] + (north / norm)[:, None] * x / np.cos(lat[:, None])
    return np.degrees(lat2), np.degrees(lon2)


def synthetic_passes(
    n_passes: int, seed: int = 0, dtype: str = "float32"
) -> Iterator[tuple[int, np.ndarray, np.ndarray, dict]]:
    """SWOT-like passes; pass k+2 repeats pass k shifted west by one revolution of Earth rotation."""
    rng = np.random.default_rng(seed)
    templates = [_pass_template(False), _pass_template(True)]
    shift_per_rev = 360.0 * (86400.0 / REVS_PER_DAY) / SIDEREAL_DAY_S
    gap = np.abs((np.arange(N_PIXELS) - (N_PIXELS - 1) / 2) * 2.0) < 10.0
    for k in range(n_passes):
        lat, lon0 = templates[k % 2]
        lon = (lon0 + 17.0 - shift_per_rev * (k // 2)) % 360.0  # L3 files store 0..360
        rlat, rlon = np.radians(lat), np.radians(lon)
        signal = 0.1 * np.sin(3 * rlon) * np.cos(2 * rlat)
        land = np.sin(2 * rlon + 1.0) * np.cos(3 * rlat) > 0.45
        ssha = (signal + 0.02 * rng.standard_normal(signal.shape)).astype(np.float32)
        unfiltered = ssha + (0.01 * rng.standard_normal(signal.shape)).astype(np.float32)
        mdt = (0.5 * np.cos(rlat)).astype(np.float32)
        for values in (ssha, unfiltered, mdt):
            values[:, gap] = np.nan
            values[land] = np.nan
        values = {"ssha_filtered": ssha, "ssha_unfiltered": unfiltered, "mdt": mdt}
        yield k, lat, lon, {name: x.astype(dtype, copy=False) for name, x in values.items()}


class _Timed:
    """Wraps the pass iterator to take synthesis time out of the engine's wall time."""

    def __init__(self, chunks: Iterator) -> None:
        self.chunks, self.seconds, self.points = chunks, 0.0, 0

    def __iter__(self) -> _Timed:
        return self

    def __next__(self) -> tuple:
        started = time.perf_counter()
        try:
            chunk = next(self.chunks)
        finally:
            self.seconds += time.perf_counter() - started
        self.points += chunk[1].size
        return chunk


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mode", choices=("dict", "stream"), default="dict")
    parser.add_argument("--passes", type=int, default=28)
    parser.add_argument("--resolution-km", type=float, default=2.0)
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), default="float32", help="value dtype fed in"
    )
    parser.add_argument("--profile", action="store_true", help="print the top functions by cumulative time")
    args = parser.parse_args()

    next(synthetic_passes(1))  # warm numpy and measure one pass's synthesis footprint
    baseline = _rss_mb()
    chunks = _Timed(synthetic_passes(args.passes, dtype=args.dtype))
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    wall, cpu = time.perf_counter(), time.process_time()
    n_cells, n_tiles, stages = 0, 0, {}
    if args.mode == "dict":
        tiles = bin_observations(chunks, args.resolution_km, VARIABLES)
        n_tiles, n_cells = len(tiles), sum(s.cells.size for s in tiles.values())
    else:
        binner = TileBinner(args.resolution_km, VARIABLES)
        for chunk in chunks:
            binner.add(*chunk)
        stages["add (route + buffer)"] = time.perf_counter() - wall - chunks.seconds
        finish_started = time.perf_counter()
        for _name, stats in binner.finish_iter():
            n_tiles += 1
            n_cells += stats.cells.size
            dense_started = time.perf_counter()
            for name in stats.names:  # what a writer does: one dense array at a time
                stats.dense(name)
            stages["dense arrays (all tiles)"] = (
                stages.get("dense arrays (all tiles)", 0.0) + time.perf_counter() - dense_started
            )
            del stats
        stages["finish (reduce)"] = time.perf_counter() - finish_started - stages["dense arrays (all tiles)"]
    wall = time.perf_counter() - wall - chunks.seconds
    cpu = time.process_time() - cpu
    if profiler:
        profiler.disable()

    print(
        f"mode={args.mode}  passes={args.passes}  points={chunks.points:,}  "
        f"resolution={args.resolution_km} km  values={args.dtype}"
    )
    print(f"tiles={n_tiles}  non-empty cells={n_cells:,}")
    print(f"synthesis (excluded): {chunks.seconds:.2f} s")
    print(f"engine wall: {wall:.2f} s   (process CPU incl. synthesis: {cpu:.2f} s)")
    for label, seconds in stages.items():
        print(f"  {label}: {seconds:.2f} s")
    print(f"peak RSS: {_rss_mb():.0f} MB   (baseline after imports + one pass: {baseline:.0f} MB)")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
