"""Benchmark the format step on one full-resolution synthetic day of every gridded product.

Writes a native-resolution upstream day (GLORYS 1/12° with the depth levels used, OSTIA 0.05°, DUACS L4,
MULTIOBS SSS and wind 0.125° with 24 hourly files, ODYSSEA 0.1°, SMOS ~0.25°) into a raw root, then:

* per product, in a fresh process: wall time, CPU time and peak RSS of ``format_product_day``;
* the floor per product: the time to only read the variables the loader needs and to zlib-write the same
  output bytes again (the packed tile arrays with the same encoding);
* the whole day with ``--processes 2`` (the CLI's worker pool), wall time and the workers' peak RSS.

    .venv/bin/python benchmarks/format_day.py [--keep DIR] [--products glorys,l4_sst,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import multiprocessing
import resource
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import xarray as xr
from measure import peak_rss_mb, warm_up

from oceantaco import steps
from oceantaco.catalog import load_catalog
from oceantaco.encoding import to_netcdf_bytes
from oceantaco.formatting import format_product_day
from oceantaco.inventory import read_fragment
from oceantaco.providers import get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import L4_SSH_DATASET_VERSION, write_duacs_l4
from oceantaco.synthetic_grids import GRIDDED_PRODUCTS, write_product_day

DAY = dt.date(2024, 1, 10)
# Seconds the original format step took for each product on such a day (issue 3, 2 cores, one process).
ORIGINAL_SECONDS = {
    "glorys": 3.6,
    "l4_ssh": 3.2,
    "l4_sst": 3.7,
    "l4_sss": 1.2,
    "l4_wind": 0.5,
    "l3_sst": 2.2,
    "l3_sss_smos_asc": 1.9 / 2,
    "l3_sss_smos_desc": 1.9 / 2,
}


def write_day(raw: Path, products: list[str]) -> None:
    catalog = load_catalog()
    for token in products:
        product = catalog[token]
        if token == "l4_ssh":
            dataset = product.dataset_for(DAY)
            name = f"dt_global_allsat_phy_l4_{DAY:%Y%m%d}_20241120.nc"
            folder = raw / "l4_ssh" / dataset.product_id / f"{dataset.dataset_id}_{L4_SSH_DATASET_VERSION}"
            write_duacs_l4(folder / f"{DAY:%Y/%m}" / name, DAY, dt.date(2024, 11, 20))
        else:
            write_product_day(raw / product.raw_dir, token, DAY)


def _format_in_child(token: str, raw: str, formatted: str) -> tuple[float, float, float]:
    warm_up()
    product = load_catalog()[token]
    wall, cpu = time.perf_counter(), time.process_time()
    format_product_day(product, DAY, Storage(raw), Storage(formatted), Settings(), force=True)
    return time.perf_counter() - wall, time.process_time() - cpu, peak_rss_mb()


def _read_inputs(token: str, raw: Storage) -> float:
    """Seconds to read, undecoded, every variable the loader reads (the needed depth levels only)."""
    product = load_catalog()[token]
    keys = get_provider(product.provider, Settings()).raw_inputs(product, DAY, raw)
    sources = {spec.source or name: spec for name, spec in product.variables.items()}
    started = time.perf_counter()
    for key in keys:
        with h5py.File(raw.full_path(key), "r") as f:
            depths = f["depth"][:] if "depth" in f else None
            for name, spec in sources.items():
                if name not in f:
                    continue
                var = f[name]
                if depths is not None and var.ndim == 4 and spec.depth_m is not None:
                    var[0, int(np.argmin(np.abs(depths - spec.depth_m)))]
                else:
                    var[...]
    return time.perf_counter() - started


def _rewrite_outputs(token: str, formatted: Storage) -> float:
    """Seconds to zlib-write the same packed tile arrays again with the same encoding."""
    product = load_catalog()[token]
    tiles = []
    for key in read_fragment(formatted, product, DAY)["relative_path"]:
        with xr.open_dataset(io.BytesIO(formatted.read_bytes(key)), engine="h5netcdf", decode_cf=False) as ds:
            ds = ds.load()
        encoding = {
            name: {
                "zlib": True,
                "complevel": var.encoding.get("complevel", 1),
                "shuffle": var.encoding.get("shuffle", False),
                "chunksizes": var.encoding.get("chunksizes"),
            }
            for name, var in ds.data_vars.items()
        }
        tiles.append((ds, encoding))
    started = time.perf_counter()
    for ds, encoding in tiles:
        to_netcdf_bytes(ds, encoding)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", type=Path, help="write the day here and keep it (default: a temp dir)")
    parser.add_argument("--products", default=",".join(["l4_ssh", *GRIDDED_PRODUCTS]))
    args = parser.parse_args()
    products = args.products.split(",")
    work = args.keep or Path(tempfile.mkdtemp(prefix="oceantaco-bench-"))
    raw, formatted = work / "raw", work / "formatted"
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    if not raw.exists():  # in a child, so this process stays small and its children's peak RSS is theirs
        with spawn.Pool(1) as pool:
            pool.apply(write_day, (raw, products))
    print(f"synthetic native day written in {time.perf_counter() - started:.1f} s under {raw}")

    rows = []
    for token in products:
        with spawn.Pool(1) as pool:
            wall, cpu, rss = pool.apply(_format_in_child, (token, str(raw), str(formatted)))
        read = _read_inputs(token, Storage(str(raw)))
        write = _rewrite_outputs(token, Storage(str(formatted)))
        rows.append((token, wall, cpu, rss, read + write, ORIGINAL_SECONDS.get(token)))

    header = ("wall s", 8), ("cpu s", 8), ("peak MB", 9), ("floor s", 9), ("x floor", 9), ("orig s", 8)
    print("\n" + f"{'product':<18}" + "".join(f"{name:>{width}}" for name, width in header))
    for token, wall, cpu, rss, floor, original in rows:
        print(
            f"{token:<18}{wall:>8.2f}{cpu:>8.2f}{rss:>9.0f}{floor:>9.2f}{wall / floor:>9.2f}"
            f"{original if original is not None else float('nan'):>8.2f}"
        )
    wall, cpu, floor = (sum(r[i] for r in rows) for i in (1, 2, 4))
    print(f"{'sum':<18}{wall:>8.2f}{cpu:>8.2f}{'':>9}{floor:>9.2f}")

    shutil.rmtree(formatted)
    pairs = [(token, DAY) for token in products]
    started = time.perf_counter()
    results = steps.format_many(pairs, str(raw), str(formatted), 2)
    failures = [f"{token}: {r}" for token, _, r in results if isinstance(r, Exception)]
    wall = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"\nwhole day, --processes 2: {wall:.2f} s wall, worker peak RSS {children:.0f} MB (upper bound)")
    print(f"failures: {failures or 'none'}")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
