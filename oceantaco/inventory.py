"""The parquet inventory: one row per formatted tile, plus one row per (product, day) that produced none.

The format step writes one small fragment per (day, product) next to the tiles, so parallel tasks never
rewrite the same object (GCS limits rewrites of one object name to about one per second). Compaction
merges fragments into ``file_inventory.parquet``. The schema is a superset of the original pipeline's,
plus integrity (sha256, size) and provenance (upstream files, dataset id and version).

``status`` says what a row is: ``ok`` for a tile (``reason`` then holds notes such as values set to fill
for being out of range), or, for a (product, day) without tiles, ``failed`` (bad input: ``reason`` names
the file and what is wrong with it), ``no_input`` (no raw file) or ``no_data`` (raw files without a valid
observation, legitimate for sparse products). Those rows have no ``relative_path``; readers of tiles get
only ``ok`` rows (``read_inventory``), the format step's bookkeeping reads them all.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import random
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from oceantaco.catalog import Product
from oceantaco.storage import Storage

INVENTORY_NAME = "file_inventory.parquet"
FRAGMENT_SUFFIX = ".inventory.parquet"
# Parquet metadata of the inventory: {fragment key: version} of the fragments it was merged from.
MERGED_FROM_KEY = b"oceantaco:merged_from"
MAX_MERGE_ROUNDS = 20

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
        # what the row is (see the module docstring) and why; null in inventories made before: tiles
        ("status", pa.string()),
        ("reason", pa.string()),
    ]
)
TILE_STATUS = "ok"
DAY_STATUSES = ("failed", "no_input", "no_data")  # a (product, day) that produced no tile
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
    reason: str | None = None  # notes on an accepted tile, e.g. values set to fill

    def row(self) -> dict:
        values = asdict(self)
        day = pd.Timestamp(values.pop("day"))
        return {
            **values,
            "status": TILE_STATUS,
            "timestamp_file": day,
            "timestamp_data": day,
            "filename": self.relative_path.rsplit("/", 1)[-1],
            "_istac_spatial_wkb": values.pop("spatial_wkb"),
            "_istac_time_start": values.pop("time_start_us"),
            "_istac_time_end": values.pop("time_end_us"),
            "intersects": True,
            "date_str": f"{self.day:%Y%m%d}",
        }


@dataclass
class DayOutcome:
    """Inventory row of a (product, day) that produced no tile: its status, why, and what it was made from."""

    day: dt.date
    data_source: str
    variable: str
    sensor: str
    modality: str
    output_id: str
    status: str  # one of DAY_STATUSES
    reason: str
    processed_at: dt.datetime
    software_version: str
    source_files: list[str] | None = None
    product_id: str | None = None
    dataset_id: str | None = None
    dataset_version: str | None = None
    input_fingerprint: str | None = None
    satellite_pass: str | None = None

    def row(self) -> dict:
        values = asdict(self)
        day = pd.Timestamp(values.pop("day"))
        return {**values, "timestamp_file": day, "timestamp_data": day, "date_str": f"{self.day:%Y%m%d}"}


def to_table(records: Iterable[TileRecord | DayOutcome]) -> pa.Table:
    rows = [r.row() for r in records]
    columns = {name: [row.get(name) for row in rows] for name in SCHEMA.names}
    return pa.table(columns, schema=SCHEMA)


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def fragment_key(product: Product, day: dt.date) -> str:
    return f"{product.data_source}/{product.data_source}_{day:%Y%m%d}{FRAGMENT_SUFFIX}"


def write_fragment(
    formatted: Storage, product: Product, day: dt.date, records: list[TileRecord] | list[DayOutcome]
) -> str:
    """Write the (day, product) fragment atomically: its tiles, or one ``DayOutcome`` saying why none."""
    key = fragment_key(product, day)
    formatted.write_bytes(key, _parquet_bytes(to_table(records)))
    return key


def read_fragment(formatted: Storage, product: Product, day: dt.date) -> pd.DataFrame | None:
    key = fragment_key(product, day)
    if not formatted.exists(key):
        return None
    return _read(formatted, key)


def _read(storage: Storage, key: str) -> pd.DataFrame:
    return _frame(storage.read_bytes(key))


def _frame(data: bytes) -> pd.DataFrame:
    """A parquet inventory or fragment in ``SCHEMA``; rows written before ``status`` existed are tiles."""
    frame = pq.read_table(io.BytesIO(data), schema=SCHEMA).to_pandas()
    frame["status"] = frame["status"].fillna(TILE_STATUS)
    return frame


def tile_rows(inventory: pd.DataFrame) -> pd.DataFrame:
    """The rows that describe a tile (``status`` ok); a frame without the column holds only tiles."""
    if "status" not in inventory:
        return inventory
    return inventory[inventory["status"].fillna(TILE_STATUS) == TILE_STATUS].reset_index(drop=True)


def read_inventory(storage: Storage, key: str = INVENTORY_NAME, *, tiles_only: bool = True) -> pd.DataFrame:
    """Read the inventory in ``SCHEMA``; columns an older inventory lacks (e.g. ``processed_at``) are null.

    Only tile rows unless ``tiles_only`` is false: then also the failed / no-input / no-data rows.
    """
    if not storage.exists(key):
        raise FileNotFoundError(f"no inventory at {storage.url_of(key)}; run the format step first")
    frame = _read(storage, key)
    return tile_rows(frame) if tiles_only else frame


def _fragment_pair(key: str) -> tuple[str, str]:
    """(data_source, YYYYMMDD) of a fragment key, as ``fragment_key`` builds it."""
    name = key.rsplit("/", 1)[-1].removesuffix(FRAGMENT_SUFFIX)
    source, day = name.rsplit("_", 1)
    return source, day


def _read_merged(formatted: Storage, key: str) -> tuple[pd.DataFrame | None, dict[str, str]]:
    """The stored inventory (every row) and the fragment versions it was merged from (empty if unknown)."""
    if not formatted.exists(key):
        return None, {}
    data = formatted.read_bytes(key)
    sources = json.loads((pq.read_schema(io.BytesIO(data)).metadata or {}).get(MERGED_FROM_KEY, b"{}"))
    return _frame(data), sources


def _write_merged(formatted: Storage, key: str, frame: pd.DataFrame, sources: dict[str, str]) -> pd.DataFrame:
    frame = frame.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
    table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
    table = table.replace_schema_metadata({MERGED_FROM_KEY: json.dumps(sources, sort_keys=True)})
    formatted.write_bytes(key, _parquet_bytes(table))
    return frame


def _fragments(formatted: Storage, keys: Iterable[str]) -> pd.DataFrame:
    frames = []
    for key in keys:
        with contextlib.suppress(FileNotFoundError):  # removed since it was listed: no rows of its own
            frames.append(_read(formatted, key))
    return pd.concat(frames, ignore_index=True) if frames else SCHEMA.empty_table().to_pandas()


def compact(
    formatted: Storage,
    products: list[Product],
    days: list[dt.date],
    *,
    inventory_key: str = INVENTORY_NAME,
    update_existing: bool = True,
) -> pd.DataFrame:
    """Merge fragments into the inventory and write it atomically; returns every row it holds.

    With ``update_existing`` the inventory becomes the stored one with every fragment that changed since
    it was merged (this run's and any other run's) put in place of the rows of its (day, product); rows
    without a fragment are kept. Without it the inventory holds only the fragments of ``products`` ×
    ``days``.

    Concurrent runs on one root: the inventory records the version of each fragment it was merged from
    (parquet metadata). After writing, a compaction lists the fragments again and merges once more if the
    stored inventory misses any version (another run wrote a fragment, or overwrote the inventory with an
    older view), until the stored inventory covers every fragment. So however two format runs interleave,
    the last compaction to finish leaves every row of both, once; no lock is needed on any backend.
    """
    if not update_existing:
        listed = formatted.versions(suffix=FRAGMENT_SUFFIX)  # listed before reading: see _merge_round
        own = [fragment_key(p, d) for p in products for d in days]
        # Every listed fragment counts as merged: the others were left out on purpose, and a later
        # updating run must not bring them back unless they change.
        return _write_merged(formatted, inventory_key, _fragments(formatted, own), listed)
    for _ in range(MAX_MERGE_ROUNDS):
        merged = _merge_round(formatted, inventory_key)
        if merged is not None:
            return merged
        time.sleep(random.uniform(0.05, 0.5))  # another run is merging too: let one of us finish first
    raise RuntimeError(
        f"{formatted.url_of(inventory_key)}: still missing fragments after {MAX_MERGE_ROUNDS} merges; "
        "fragments are being rewritten faster than the inventory can be merged"
    )


def _merge_round(formatted: Storage, key: str) -> pd.DataFrame | None:
    """The stored inventory if it covers every fragment; else merge what it misses, write, return None.

    Versions are listed before anything is read: a fragment replaced in between is then read newer than
    its recorded version, so the next round merges it again, never the other way round (a lost update).
    """
    listed = formatted.versions(suffix=FRAGMENT_SUFFIX)
    stored, merged_from = _read_merged(formatted, key)
    changed = [k for k, version in listed.items() if merged_from.get(k) != version]
    removed = [k for k in merged_from if k not in listed]
    if stored is not None and not changed and not removed:
        return stored.sort_values(SORT_KEYS, kind="stable").reset_index(drop=True)
    frame = stored if stored is not None else SCHEMA.empty_table().to_pandas()
    replaced = {_fragment_pair(k) for k in changed + removed}
    keep = [pair not in replaced for pair in zip(frame["data_source"], frame["date_str"], strict=True)]
    frame = pd.concat([frame[keep], _fragments(formatted, changed)], ignore_index=True)
    _write_merged(formatted, key, frame, listed)
    return None
