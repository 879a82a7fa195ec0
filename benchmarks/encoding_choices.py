"""Measure zlib level and chunk size for tile writing: bytes written and seconds, per setting.

Uses the tiles of one native synthetic day (written by ``format_day.py --keep DIR``) of the products given,
re-encoded with each setting. Synthetic fields are smoother than real ones and compress better, so compare
the settings with each other, not the absolute sizes with the published dataset.

    .venv/bin/python benchmarks/encoding_choices.py --raw /tmp/bench-day/raw --products l4_sst,l4_ssh
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

from oceantaco.catalog import load_catalog
from oceantaco.encoding import to_netcdf_bytes
from oceantaco.loaders import get_loader
from oceantaco.providers import get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage

DAY = dt.date(2024, 1, 10)
LEVELS = (1, 4, 9)
CHUNKS = (256, 512, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--products", default="l4_sst,l4_ssh")
    args = parser.parse_args()
    raw = Storage(str(args.raw))
    catalog = load_catalog()
    print(f"{'product':<10}{'level':>6}{'chunk':>7}{'MB':>9}{'seconds':>9}")
    for token in args.products.split(","):
        product = catalog[token]
        keys = get_provider(product.provider, Settings()).raw_inputs(product, DAY, raw)
        tiles = list(get_loader(product).tiles(product, DAY, [Path(raw.full_path(k)) for k in keys]))
        for level in LEVELS:
            for chunk in CHUNKS:
                started, size = time.perf_counter(), 0
                for tile in tiles:
                    encoding = {
                        name: {
                            **enc,
                            "complevel": level,
                            "chunksizes": tuple(min(chunk, n) for n in enc["chunksizes"]),
                        }
                        for name, enc in tile.encoding.items()
                    }
                    size += len(to_netcdf_bytes(tile.dataset, encoding))
                seconds = time.perf_counter() - started
                print(f"{token:<10}{level:>6}{chunk:>7}{size / 1e6:>9.1f}{seconds:>9.2f}")


if __name__ == "__main__":
    main()
