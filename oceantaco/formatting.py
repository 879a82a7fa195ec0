"""The format step for one (product, day): raw files -> encoded regional tiles + an inventory fragment.

Tiles are written first and the fragment last, so a fragment always describes tiles that exist. A day
whose raw inputs (names and sizes) are unchanged and whose tiles are all present is skipped without
reading anything; identical tile bytes are never re-uploaded either way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from oceantaco import __version__
from oceantaco.catalog import Product
from oceantaco.inventory import TileRecord, read_fragment, write_fragment
from oceantaco.loaders import Tile, get_loader
from oceantaco.providers import get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.32


@dataclass(frozen=True)
class FormatResult:
    product: str
    day: dt.date
    status: Literal["formatted", "unchanged", "no_input"]
    tiles_written: int = 0
    tiles_unchanged: int = 0
    tiles_removed: int = 0
    values_out_of_range: int = 0


@dataclass(frozen=True)
class Provenance:
    product_id: str
    dataset_id: str
    dataset_version: str
    source_files: list[str]
    fingerprint: str


def provenance(product: Product, day: dt.date, inputs: list[str], raw: Storage) -> Provenance:
    dataset = product.dataset_for(day)
    found = re.search(re.escape(dataset.dataset_id) + r"_(\d{6})/", inputs[0])
    digest = hashlib.sha256()
    for key in inputs:
        digest.update(f"{key}\0{raw.size(key)}\n".encode())
    return Provenance(
        product_id=dataset.product_id,
        dataset_id=dataset.dataset_id,
        dataset_version=found.group(1) if found else "",
        source_files=[k.rsplit("/", 1)[-1] for k in inputs],
        fingerprint=digest.hexdigest(),
    )


def _tile_attrs(product: Product, day: dt.date, prov: Provenance) -> dict:
    """Global attributes shared by all tiles of a (product, day).

    Nothing region-specific goes here: readers join neighbouring tiles with ``xr.combine_by_coords``,
    whose default refuses conflicting global attributes. The region is in the file name, the
    coordinates and the inventory.
    """
    return {
        "Conventions": "CF-1.8",
        "title": f"OceanTACO {product.output_id} {day.isoformat()}",
        "product": product.token,
        "date": day.isoformat(),
        "tile_rule": "lon_min <= lon < lon_max, lat_min <= lat < lat_max (lat = 90 in northern tiles)",
        "source_product_id": prov.product_id,
        "source_dataset_id": prov.dataset_id,
        "source_dataset_version": prov.dataset_version,
        "source_files": " ".join(prov.source_files),
        "software": f"oceantaco {__version__}",
    }


def _record(
    product: Product,
    day: dt.date,
    tile: Tile,
    key: str,
    sha256: str,
    size: int,
    prov: Provenance,
    processed_at: dt.datetime,
) -> TileRecord:
    deg_lat, deg_lon = tile.resolution_deg or (None, None)
    mean_lat = (tile.bbox[1] + tile.bbox[3]) / 2
    return TileRecord(
        relative_path=key,
        day=day,
        data_source=product.data_source,
        variable=product.variable,
        sensor=product.sensor,
        modality=product.modality,
        output_id=product.output_id,
        region=tile.region.name,
        spatial_wkb=tile.region.polygon_wkb,
        time_start_us=tile.time_range_us[0],
        time_end_us=tile.time_range_us[1],
        bbox=tile.bbox,
        sha256=sha256,
        size_bytes=size,
        source_files=prov.source_files,
        product_id=prov.product_id,
        dataset_id=prov.dataset_id,
        dataset_version=prov.dataset_version,
        software_version=__version__,
        input_fingerprint=prov.fingerprint,
        resolution_deg_lat=deg_lat,
        resolution_deg_lon=deg_lon,
        resolution_km_lat=deg_lat * KM_PER_DEG_LAT if deg_lat else None,
        resolution_km_lon=(
            deg_lon * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(mean_lat)) if deg_lon else None
        ),
        gridded=product.tiling != "points",
        n_points=tile.n_points,
        n_profiles=tile.n_profiles,
        n_out_of_range=tile.n_out_of_range,
        n_time_steps=tile.n_time_steps,
        n_tracks=tile.n_tracks,
        satellite_pass=product.satellite_pass,
        processed_at=processed_at,
    )


def _is_current(formatted: Storage, fragment: pd.DataFrame | None, fingerprint: str) -> bool:
    if fragment is None or fragment.empty:
        return False
    return bool((fragment["input_fingerprint"] == fingerprint).all()) and all(
        formatted.size(key) == size
        for key, size in zip(fragment["relative_path"], fragment["size_bytes"], strict=True)
    )


def format_product_day(
    product: Product,
    day: dt.date,
    raw: Storage,
    formatted: Storage,
    settings: Settings,
    *,
    force: bool = False,
) -> FormatResult:
    """Format one product for one day; raises on bad input so the caller can record the failure."""
    inputs = get_provider(product.provider, settings).raw_inputs(product, day, raw)
    if not inputs:
        return FormatResult(product.token, day, "no_input")
    prov = provenance(product, day, inputs, raw)
    previous = read_fragment(formatted, product, day)
    if not force and _is_current(formatted, previous, prov.fingerprint):
        return FormatResult(product.token, day, "unchanged")

    records, written = [], 0
    # One processing time for the whole (product, day): its tiles are written together, and a later run's
    # rows for the same slot must compare newer (duplicates.resolve keeps the newest).
    processed_at = dt.datetime.now(dt.UTC)
    with ExitStack() as stack:
        paths = [stack.enter_context(raw.local_copy(key)) for key in inputs]
        for tile in get_loader(product).tiles(product, day, paths):
            key = product.tile_key(tile.region.name, day)
            result = formatted.write_bytes(key, tile.to_bytes(_tile_attrs(product, day, prov)))
            written += result.written
            records.append(_record(product, day, tile, key, result.sha256, result.size, prov, processed_at))
    stale = set() if previous is None else set(previous["relative_path"]) - {r.relative_path for r in records}
    write_fragment(formatted, product, day, records)
    for key in sorted(stale):
        formatted.delete(key)
    return FormatResult(
        product.token,
        day,
        "formatted",
        tiles_written=written,
        tiles_unchanged=len(records) - written,
        tiles_removed=len(stale),
        values_out_of_range=sum(r.n_out_of_range for r in records),
    )
