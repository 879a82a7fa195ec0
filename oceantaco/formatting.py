"""The format step for one (product, day): raw files -> encoded regional tiles + an inventory fragment.

Tiles are written first and the fragment last, so a fragment always describes tiles that exist. A day
whose raw inputs (names and sizes) are unchanged and whose tiles are all present is skipped without
reading anything; identical tile bytes are never re-uploaded either way.

Bad input fails only its (product, day): the fragment then holds one ``failed`` row with the reason, the
damaged raw file is moved to ``<raw>/quarantine/<key>`` with a JSON sidecar (so the next download fetches
a fresh copy and the bad bytes stay for inspection), and ``FormatFailure`` is raised for the run report.
A day without raw files, or whose files hold no valid observation (sparse products), is recorded as
``no_input`` / ``no_data``; a day in the future is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import re
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from oceantaco import __version__
from oceantaco.catalog import Product
from oceantaco.inventory import TILE_STATUS, DayOutcome, TileRecord, read_fragment, write_fragment
from oceantaco.loaders import InputError, Tile, get_loader
from oceantaco.loaders.netcdf import unreadable
from oceantaco.providers import get_provider
from oceantaco.settings import Settings
from oceantaco.storage import Storage

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.32
QUARANTINE = "quarantine"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FormatResult:
    product: str
    day: dt.date
    status: Literal["formatted", "unchanged", "no_input"]
    tiles_written: int = 0
    tiles_unchanged: int = 0
    tiles_removed: int = 0
    values_out_of_range: int = 0
    reason: str | None = None  # why no tile (no input, no data) or what was accepted (values set to fill)


class FormatFailure(Exception):
    """A (product, day) that could not be formatted, already recorded in its inventory fragment.

    Made of plain arguments, so it pickles between worker processes and into Prefect's result store.
    """

    def __init__(self, reason: str, error_type: str, quarantined: tuple[str, ...] = ()) -> None:
        super().__init__(reason, error_type, quarantined)

    @property
    def reason(self) -> str:
        return self.args[0]

    @property
    def error_type(self) -> str:
        """The type of the original error (``InputError``, ``OSError``...)."""
        return self.args[1]

    @property
    def quarantined(self) -> tuple[str, ...]:
        """Raw keys moved under ``quarantine/``, as keys of the raw root."""
        return tuple(self.args[2])

    def __str__(self) -> str:
        return self.reason


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


def _out_of_range_note(n_values: int) -> str | None:
    return f"{n_values} value(s) outside the catalog's valid range set to fill" if n_values else None


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
        reason=_out_of_range_note(tile.n_out_of_range),
    )


def _is_current(formatted: Storage, fragment: pd.DataFrame | None, fingerprint: str) -> bool:
    """Whether the fragment describes these inputs: its tiles all present, or "no data" in the same files.

    A failed day is never current: it is tried again (its damaged file is in quarantine by then).
    """
    if fragment is None or fragment.empty or not (fragment["input_fingerprint"] == fingerprint).all():
        return False
    if set(fragment["status"]) == {"no_data"}:
        return True
    return set(fragment["status"]) == {TILE_STATUS} and all(
        formatted.size(key) == size
        for key, size in zip(fragment["relative_path"], fragment["size_bytes"], strict=True)
    )


def _tile_paths(fragment: pd.DataFrame | None) -> set[str]:
    if fragment is None:
        return set()
    return set(fragment.loc[fragment["status"] == TILE_STATUS, "relative_path"])


def _outcome(
    product: Product, day: dt.date, status: str, reason: str, inputs: list[str], prov: Provenance | None
) -> DayOutcome:
    return DayOutcome(
        day=day,
        data_source=product.data_source,
        variable=product.variable,
        sensor=product.sensor,
        modality=product.modality,
        output_id=product.output_id,
        status=status,
        reason=reason,
        processed_at=dt.datetime.now(dt.UTC),
        software_version=__version__,
        source_files=[k.rsplit("/", 1)[-1] for k in inputs] or None,
        product_id=prov.product_id if prov else None,
        dataset_id=prov.dataset_id if prov else None,
        dataset_version=prov.dataset_version if prov else None,
        input_fingerprint=prov.fingerprint if prov else None,
        satellite_pass=product.satellite_pass,
    )


def _record_outcome(formatted: Storage, product: Product, day: dt.date, outcome: DayOutcome) -> None:
    """Write the day's outcome row, unless the fragment already says the same (a re-run rewrites nothing)."""
    previous = read_fragment(formatted, product, day)
    if previous is not None and len(previous) == 1:
        row = previous.iloc[0]
        recorded = [None if pd.isna(row[c]) else row[c] for c in ("status", "reason", "input_fingerprint")]
        if recorded == [outcome.status, outcome.reason, outcome.input_fingerprint]:
            return
    write_fragment(formatted, product, day, [outcome])


def _refuse_future(day: dt.date) -> None:
    today = dt.datetime.now(dt.UTC).date()
    if day > today:
        raise InputError(f"{day} is in the future (today is {today} UTC): no upstream file can hold it yet")


def _refuse_ambiguous_names(product: Product, day: dt.date, inputs: list[str]) -> None:
    """A raw file whose name matches the patterns of two days: which day it holds is unknown.

    Only patterns that place ``{date}`` are checked (Argo profile files carry no date in their name). A
    SWOT pass crossing midnight serves both days by its times, but its name matches only its start day.
    """
    for key in inputs:
        name = key.rsplit("/", 1)[-1]
        matched = set()
        for digits in set(re.findall(r"(?=(\d{8}))", name)):
            try:
                candidate = dt.datetime.strptime(digits, "%Y%m%d").date()
            except ValueError:
                continue
            datasets = product.datasets_for(candidate)
            if any("{date}" in d.pattern and d.file_regex(candidate).match(name) for d in datasets):
                matched.add(candidate)
        if len(matched) > 1:
            listed = ", ".join(str(d) for d in sorted(matched))
            raise InputError(
                f"{name}: the file name matches the pattern of several days ({listed}); "
                f"it is used for none of them (formatting {day})"
            )


def _damaged_inputs(raw: Storage, inputs: list[str], exc: Exception) -> dict[str, str]:
    """The raw keys an error is the fault of, with what is wrong with each.

    Those the error names; else (HDF5 errors on a corrupt data chunk name no file) those that cannot be read
    in full. A vanished file (``FileNotFoundError``) is nobody's damage, nor is a refusal without inputs.
    """
    if isinstance(exc, FileNotFoundError) or not inputs:
        return {}
    if isinstance(exc, InputError):
        named = {k: str(exc) for k in inputs if k.rsplit("/", 1)[-1] in str(exc)}
        if named:
            return named
    damaged = {}
    for key in inputs:
        try:
            with raw.local_copy(key) as path:
                problem = unreadable(path)
        except FileNotFoundError:
            continue
        if problem is not None:
            damaged[key] = problem
    return damaged


def quarantine(raw: Storage, key: str, reason: str, product: Product, day: dt.date) -> str | None:
    """Move ``key`` to ``quarantine/<key>`` with a ``.json`` sidecar saying why; the quarantined key.

    Copy, sidecar, then delete: a crash in between leaves the file in both places, never in neither. None
    when the file is already gone (another day's task quarantined a file both days read).
    """
    dest = f"{QUARANTINE}/{key}"
    try:
        copied = raw.copy_from(raw, key, dest)
    except FileNotFoundError:
        return None
    sidecar = {
        "original_key": key,
        "reason": reason,
        "product": product.token,
        "day": day.isoformat(),
        "sha256": copied.sha256,
        "size_bytes": copied.size,
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
        "software_version": __version__,
    }
    raw.write_bytes(f"{dest}.json", json.dumps(sidecar, indent=2).encode())
    raw.delete(key)
    logger.warning("%s %s: quarantined %s: %s", product.token, day, raw.url_of(key), reason)
    return dest


def _fail(
    product: Product,
    day: dt.date,
    raw: Storage,
    formatted: Storage,
    inputs: list[str],
    prov: Provenance | None,
    exc: Exception,
) -> FormatFailure:
    """Quarantine the damaged inputs and record the failed day; the exception to raise."""
    reason = str(exc) or type(exc).__name__
    damaged = _damaged_inputs(raw, inputs, exc)
    if damaged and not any(key.rsplit("/", 1)[-1] in reason for key in damaged):
        reason = "; ".join(damaged.values())  # the probe's message names the file the error did not
    moved = [dest for key in damaged if (dest := quarantine(raw, key, reason, product, day)) is not None]
    if moved:
        reason += f" (quarantined for inspection: {', '.join(raw.url_of(d) for d in moved)})"
    try:
        write_fragment(formatted, product, day, [_outcome(product, day, "failed", reason, inputs, prov)])
    except Exception as record_error:  # the run report still names the failure
        logger.error("%s %s: failure not recorded in the inventory: %s", product.token, day, record_error)
    return FormatFailure(reason, type(exc).__name__, tuple(moved))


def format_product_day(
    product: Product,
    day: dt.date,
    raw: Storage,
    formatted: Storage,
    settings: Settings,
    *,
    force: bool = False,
) -> FormatResult:
    """Format one product for one day; bad input raises ``FormatFailure`` once recorded and quarantined."""
    inputs: list[str] = []
    prov: Provenance | None = None
    try:
        _refuse_future(day)
        inputs = get_provider(product.provider, settings).raw_inputs(product, day, raw)
        if not inputs:
            return _no_input(product, day, raw, formatted)
        _refuse_ambiguous_names(product, day, inputs)
        prov = provenance(product, day, inputs, raw)
        return _format(product, day, raw, formatted, inputs, prov, force=force)
    except Exception as exc:
        raise _fail(product, day, raw, formatted, inputs, prov, exc) from exc


def _no_input(product: Product, day: dt.date, raw: Storage, formatted: Storage) -> FormatResult:
    """No raw file: recorded as ``no_input``, unless tiles of an earlier run exist (raw files cleaned up)."""
    reason = f"no raw file for {day} under {raw.url_of(product.raw_dir)}"
    if _tile_paths(read_fragment(formatted, product, day)):
        return FormatResult(product.token, day, "no_input", reason=f"{reason}; the earlier tiles stay listed")
    _record_outcome(formatted, product, day, _outcome(product, day, "no_input", reason, [], None))
    return FormatResult(product.token, day, "no_input", reason=reason)


def _format(
    product: Product,
    day: dt.date,
    raw: Storage,
    formatted: Storage,
    inputs: list[str],
    prov: Provenance,
    *,
    force: bool,
) -> FormatResult:
    previous = read_fragment(formatted, product, day)
    if not force and _is_current(formatted, previous, prov.fingerprint):
        assert previous is not None  # a current fragment exists
        out_of_range = int(previous["n_out_of_range"].fillna(0).sum())
        no_data = previous.loc[previous["status"] == "no_data", "reason"].tolist()
        return FormatResult(
            product.token,
            day,
            "unchanged",
            tiles_unchanged=len(_tile_paths(previous)),
            values_out_of_range=out_of_range,
            reason=no_data[0] if no_data else _out_of_range_note(out_of_range),
        )

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
    stale = _tile_paths(previous) - {r.relative_path for r in records}
    out_of_range = sum(r.n_out_of_range for r in records)
    reason = None
    if not records:
        # Legitimate for sparse products (no pass, no float that day); gridded loaders refuse empty fields.
        reason = f"the day's {len(inputs)} raw file(s) hold no valid observation in any region"
        write_fragment(formatted, product, day, [_outcome(product, day, "no_data", reason, inputs, prov)])
    else:
        write_fragment(formatted, product, day, records)
        reason = _out_of_range_note(out_of_range)
    for key in sorted(stale):
        formatted.delete(key)
    return FormatResult(
        product.token,
        day,
        "formatted",
        tiles_written=written,
        tiles_unchanged=len(records) - written,
        tiles_removed=len(stale),
        values_out_of_range=out_of_range,
        reason=reason,
    )
