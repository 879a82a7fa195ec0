"""The parquet inventory: one row per formatted tile.

The format step writes one small fragment per (day, product) next to the tiles, so parallel tasks never
rewrite the same object (GCS limits rewrites of one object name to about one per second). Compaction
merges fragments into ``file_inventory.parquet``. The schema is a superset of the original pipeline's,
plus integrity (sha256, size) and provenance (upstream files, dataset id and version).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from oceantaco.catalog import Product
from oceantaco.storage import Storage

INVENTORY_NAME = "file_inventory.parquet"
FRAGMENT_SUFFIX = ".inventory.parquet"

SCHEMA = pa.schema(
    [
        # --- columns of the original pipeline (anchor study §3.6) ---
        ("relative_path", pa.string()),
        ("timestamp_file", pa.timestamp("us")),
        ("timestamp_data", pa.timestamp("us")),
        ("data_source", pa.string()),
        ("variable", pa.string()),
        ("filename", pa.string()),
        ("_istac_spatial_wkb", pa.binary()),
        ("_istac_time_start", pa.int64()),
        ("_istac_time_end", pa.int64()),
        ("sensor", pa.string()),
        ("region", pa.string()),
        ("bbox", pa.list_(pa.float64())),
        ("intersects", pa.bool_()),
        ("resolution_deg_lat", pa.float64()),
        ("resolution_deg_lon", pa.float64()),
        ("resolution_km_lat", pa.float64()),
        ("resolution_km_lon", pa.float64()),
        ("gridded", pa.bool_()),
        ("n_tracks", pa.int64()),
        ("n_profiles", pa.int64()),
        ("satellite_pass", pa.string()),
        ("date_str", pa.string()),
        # --- additions: identity, integrity, provenance, bookkeeping ---
        ("output_id", pa.string()),
        ("modality", pa.string()),
        ("sha256", pa.string()),
        ("size_bytes", pa.int64()),
        ("n_points", pa.int64()),
        ("n_out_of_range", pa.int64()),
        ("n_time_steps", pa.int64()),
        ("source_files", pa.list_(pa.string())),
        ("product_id", pa.string()),
        ("dataset_id", pa.string()),
        ("dataset_version", pa.string()),
        ("software_version", pa.string()),
        ("input_fingerprint", pa.string()),
        # when the tile was written: "newest processing time wins" when two rows claim one slot
        ("processed_at", pa.timestamp("us", tz="UTC")),
    ]
)
SORT_KEYS = ["timestamp_file", "data_source", "region"]


@dataclass
class TileRecord:
    """Inventory row of one written tile."""

    relative_path: str
    day: dt.date
    data_source: str
    variable: str
    sensor: str
    modality: str
    output_id: str
    region: str
    spatial_wkb: bytes
    time_start_us: int
    time_end_us: int
    bbox: list[float]
    sha256: str
    size_bytes: int
    source_files: list[str]
    product_id: str
    dataset_id: str
    dataset_version: str
    software_version: str
    input_fingerprint: str
    resolution_deg_lat: float | None = None
    resolution_deg_lon: float | None = None
    resolution_km_lat: float | None = None
    resolution_km_lon: float | None = None
    gridded: bool | None = None
    n_tracks: int | None = None
    n_profiles: int | None = None
    n_points: int | None = None
    n_out_of_range: int = 0
    n_time_steps: int | None = None
    satellite_pass: str | None = None
    processed_at: dt.datetime | None = None  # UTC; None in rows made before the column existed

    def row(self) -> dict:
        values = asdict(self)
        day = pd.Timestamp(values.pop("day"))
        return {
            **values,
            "timestamp_file": day,
            "timestamp_data": day,
            "filename": self.relative_path.rsplit("/", 1)[-1],
            "_istac_spatial_wkb": values.pop("spatial_wkb"),
            "_istac_time_start": values.pop("time_start_us"),
            "_istac_time_end": values.pop("time_end_us"),
            "intersects": True,
            "date_str": f"{self.day:%Y%m%d}",
        }


def to_table(records: Iterable[TileRecord]) -> pa.Table:
    rows = [r.row() for r in records]
    columns = {name: [row.get(name) for row in rows] for name in SCHEMA.names}
    return pa.table(columns, schema=SCHEMA)


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def fragment_key(product: Product, day: dt.date) -> str:
    return f"{product.data_source}/{product.data_source}_{day:%Y%m%d}{FRAGMENT_SUFFIX}"


def write_fragment(formatted: Storage, product: Product, day: dt.date, records: list[TileRecord]) -> str:
    """Write the (day, product) fragment atomically; an empty fragment records "processed, no tiles"."""
    key = fragment_key(product, day)
    formatted.write_bytes(key, _parquet_bytes(to_table(records)))
    return key


def read_fragment(formatted: Storage, product: Product, day: dt.date) -> pd.DataFrame | None:
    key = fragment_key(product, day)
    if not formatted.exists(key):
        return None
    return pq.read_table(io.BytesIO(formatted.read_bytes(key)), schema=SCHEMA).to_pandas()


def read_inventory(storage: Storage, key: str = INVENTORY_NAME) -> pd.DataFrame:
    """Read the inventory in ``SCHEMA``; columns an older inventory lacks (e.g. ``processed_at``) are null."""
    if not storage.exists(key):
        raise FileNotFoundError(f"no inventory at {storage.url_of(key)}; run the format step first")
    return pq.read_table(io.BytesIO(storage.read_bytes(key)), schema=SCHEMA).to_pandas()


def compact(
    formatted: Storage,
    products: list[Product],
    days: list[dt.date],
    *,
    inventory_key: str = INVENTORY_NAME,
    update_existing: bool = True,
) -> pd.DataFrame:
    """Merge the fragments of ``products`` × ``days`` into the inventory and write it atomically.

    With ``update_existing`` the rows of other days/products already in the inventory are kept and exactly
    the re-made (day, product) pairs are replaced; without it the inventory holds only this run's rows.
    """
    fragments = [
        frame for p in products for d in days if (frame := read_fragment(formatted, p, d)) is not None
    ]
    new = pd.concat(fragments, ignore_index=True) if fragments else SCHEMA.empty_table().to_pandas()
    if update_existing and formatted.exists(inventory_key):
        old = read_inventory(formatted, inventory_key)
        remade = {(f"{d:%Y%m%d}", p.data_source) for p in products for d in days}
        keep = [(ds, src) not in remade for ds, src in zip(old["date_str"], old["data_source"], strict=True)]
        new = pd.concat([old[keep], new], ignore_index=True)
    new = new.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(new, schema=SCHEMA, preserve_index=False)
    formatted.write_bytes(inventory_key, _parquet_bytes(table))
    return new
