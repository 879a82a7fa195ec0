"""Package the formatted tiles as the OceanTACO dataset: one ``.tacozip`` per month plus a ``.tacocat``.

Layout at the output root (a local directory or a bucket prefix)::

    OceanTACO_2024_01.tacozip       one part per calendar month: DATA/<YYYY_MM_DD>/<REGION>/<slot>
    OceanTACO_2024_02.tacozip
    .tacocat/level{0,1,2}.parquet   catalog over all parts; every row names its part (internal:source_file)
    .tacocat/COLLECTION.json
    build-manifest.json             what each part was built from, written last

``tacoreader.load(<root>)`` finds no COLLECTION.json at the root and falls back to ``<root>/.tacocat``. It
resolves ``internal:source_file`` against the catalog's parent directory, so parts sit next to
``.tacocat/``. The reference is relative, so the same layout opens from a directory and from a bucket
prefix (``s3://bucket/prefix``; tacoreader reads buckets with obstore, configured by AWS_* variables).

Hierarchy: day (``YYYY_MM_DD``) → the 8 regions → one slot per catalog product in ``slot_order``. TACO's
position-invariant tree needs the same slot count everywhere, so a missing tile becomes an empty
placeholder ``<stem>.missing`` with ``available = False``, which no reader asks for by id or data source.

tacoreader 2.4.21 joins the flat views (``l1``/``l2``, unfiltered ``flatten()``) of multi-part datasets on
row positions only, mixing up parts. ``verify_taco`` therefore reads with SQL on the raw ``level*`` tables
joined on ``internal:source_file``; readers should use that, ``read()`` or filter-then-flatten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import re
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import tacoreader
import tacotoolbox
import tacozip
import xarray as xr
from tacotoolbox.datamodel import Sample, Taco, Tortilla
from tacotoolbox.sample.extensions.istac import ISTAC
from tacotoolbox.taco.datamodel import Extent
from tacozip.config import TACO_HEADER_SIZE

from oceantaco.catalog import Catalog, Product
from oceantaco.regions import REGION_NAMES, REGIONS, region
from oceantaco.storage import Storage

logger = logging.getLogger(__name__)

PART_PREFIX = "OceanTACO_"
PART_SUFFIX = ".tacozip"
CATALOG_DIR = ".tacocat"
MANIFEST_KEY = "build-manifest.json"
# Part of every input digest: bump it when samples or columns change, so every part is rebuilt.
LAYOUT_VERSION = 1
DATASET_ID = "sea_surface_state_regionalized"
DATASET_VERSION = "0.2.0"
CRS = "EPSG:4326"
DAY_US = 86_400_000_000

_COLLECTION_JSON = "COLLECTION.json"
_PROVIDERS = {
    "cmems": {
        "name": "Copernicus Marine Service",
        "roles": ["producer"],
        "url": "https://marine.copernicus.eu",
    },
    "aviso": {"name": "AVISO+", "roles": ["producer"], "url": "https://www.aviso.altimetry.fr"},
    "argo_gdac": {"name": "Argo GDAC", "roles": ["producer"], "url": "https://argo.ucsd.edu"},
}

# Level-2 columns of tiles and placeholders alike. Explicit Arrow types keep the schema identical whatever
# a month's availability; a placeholder has available=False, data_source="" and nulls elsewhere.
_FILE_SCHEMA = pa.schema(
    [
        ("available", pa.bool_()),
        ("data_source", pa.string()),
        ("variable", pa.string()),
        ("sensor", pa.string()),
        ("modality", pa.string()),
        ("res_deg_lat", pa.float64()),
        ("res_km_lat", pa.float64()),
        ("sha256", pa.string()),
        ("size_bytes", pa.int64()),
        ("dataset_id", pa.string()),
        ("dataset_version", pa.string()),
        ("source_files", pa.string()),  # upstream file names, joined with ","
    ]
)
# The ISTAC columns, all null, for placeholders (get_schema reads no field, so no geometry is needed).
_ISTAC_SCHEMA = ISTAC.model_construct().get_schema()
_NULL_ISTAC = pa.table({f.name: pa.nulls(1, f.type) for f in _ISTAC_SCHEMA}, schema=_ISTAC_SCHEMA)

# Day → region → slot rows of every part. Joining on internal:source_file keeps each part's rows together.
_ROWS_SQL = """
SELECT d.id AS day, r.id AS region, f.id AS slot, f.available AS available, f."internal:gdal_vsi" AS vsi
FROM level0 d
JOIN level1 r ON r."internal:parent_id" = d."internal:current_id"
             AND r."internal:source_file" = d."internal:source_file"
JOIN level2 f ON f."internal:parent_id" = r."internal:current_id"
             AND f."internal:source_file" = r."internal:source_file"
ORDER BY d.id, r."internal:current_id", f."internal:current_id"
"""
_VSISUBFILE = re.compile(r"/vsisubfile/(\d+)_(\d+),(.+)")
_MAX_LISTED_FAILURES = 20
_READ_THREADS = 8


class TacoBuildError(RuntimeError):
    """A tile does not match its inventory row, so the dataset would not match its own checksums."""


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_taco`` read back: counts, and every mismatch found (empty when the dataset is sound)."""

    days: int
    regions: int
    payloads_checked: int
    payloads_opened: int
    placeholders: int
    seconds: float
    failures: tuple[str, ...] = ()


class TacoVerificationError(RuntimeError):
    """The dataset read back with tacoreader differs from the inventory it was built from."""

    def __init__(self, url: str, report: VerifyReport) -> None:
        self.report = report
        listed = "\n  ".join(report.failures[:_MAX_LISTED_FAILURES])
        more = len(report.failures) - _MAX_LISTED_FAILURES
        super().__init__(
            f"{url}: {len(report.failures)} verification failure(s):\n  {listed}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )


@dataclass(frozen=True)
class BuildReport:
    """Outcome of ``build_taco``: which parts were (re)written, and the verification if it ran."""

    url: str
    days: int
    tiles: int
    placeholders: int
    parts_written: tuple[str, ...]
    parts_unchanged: tuple[str, ...]
    parts_deleted: tuple[str, ...]
    catalog_written: bool
    seconds: float
    verify: VerifyReport | None

    def summary(self) -> str:
        lines = [
            f"TACO at {self.url}: {self.days} day(s), {self.tiles} tile(s), "
            f"{self.placeholders} placeholder slot(s)",
            f"parts written {len(self.parts_written)}, unchanged {len(self.parts_unchanged)}, "
            f"deleted {len(self.parts_deleted)}; "
            f"catalog {'written' if self.catalog_written else 'unchanged'} ({self.seconds:.1f} s)",
        ]
        if self.verify is not None:
            lines.append(
                f"verified: {self.verify.payloads_checked} payload(s) match their sha256, "
                f"{self.verify.payloads_opened} opened with xarray ({self.verify.seconds:.1f} s)"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class _Slot:
    """One level-2 sample: a product's tile in one region on one day, or its placeholder."""

    product: Product
    row: dict[str, Any] | None  # inventory row; None when the tile is missing

    @property
    def id(self) -> str:
        return self.product.output_id if self.row is not None else self.product.placeholder_id

    @property
    def columns(self) -> dict[str, Any]:
        """Values of ``_FILE_SCHEMA``."""
        row = self.row
        if row is None:
            return dict.fromkeys(_FILE_SCHEMA.names) | {"available": False, "data_source": ""}
        sources = row["source_files"]
        return {
            "available": True,
            "data_source": row["data_source"],
            "variable": row["variable"],
            "sensor": row["sensor"],
            "modality": row["modality"],
            "res_deg_lat": None if pd.isna(row["resolution_deg_lat"]) else float(row["resolution_deg_lat"]),
            "res_km_lat": None if pd.isna(row["resolution_km_lat"]) else float(row["resolution_km_lat"]),
            "sha256": row["sha256"],
            "size_bytes": int(row["size_bytes"]),
            "dataset_id": row["dataset_id"],
            "dataset_version": row["dataset_version"],
            "source_files": ",".join(sources) if sources is not None else "",
        }

    @property
    def footprint(self) -> tuple[bytes, int, int] | None:
        """(WKB geometry, start µs, end µs) of the tile, as the inventory recorded it."""
        if self.row is None:
            return None
        row = self.row
        return row["_istac_spatial_wkb"], int(row["_istac_time_start"]), int(row["_istac_time_end"])


@dataclass(frozen=True)
class _Part:
    """One month of the dataset: its days and, per (day, region), the slots in catalog order."""

    name: str
    days: tuple[dt.date, ...]
    slots: dict[tuple[dt.date, str], tuple[_Slot, ...]] = field(repr=False)

    def records(self) -> list[list[Any]]:
        """Everything that goes into the part except payload bytes, which the sha256 column stands for."""
        return [
            [_day_id(day), name, slot.id, slot.columns, slot.footprint]
            for (day, name), slots in self.slots.items()
            for slot in slots
        ]

    def tiles(self) -> dict[str, str]:
        """sha256 of every tile, by ``<day>/<region>/<slot>``."""
        return {
            f"{_day_id(day)}/{name}/{slot.id}": slot.row["sha256"]
            for (day, name), slots in self.slots.items()
            for slot in slots
            if slot.row is not None
        }


def build_taco(
    inventory: pd.DataFrame,
    formatted: Storage,
    output: Storage,
    catalog: Catalog,
    *,
    scratch_dir: Path | None = None,
    verify: bool = True,
) -> BuildReport:
    """Build or update the monthly parts and the catalog at ``output`` from the inventoried tiles.

    A part is rebuilt only when its inputs (tile checksums, metadata, collection fields, layout) changed
    or the stored part is missing, and the catalog only when some part changed. The manifest goes last,
    so an interrupted build is redone on the next run. Months no longer in the inventory are deleted.
    """
    started = time.monotonic()
    collection = _collection(catalog)
    parts = _plan(inventory, catalog)
    previous = _read_manifest(output)
    previous_parts: dict[str, dict[str, Any]] = previous.get("parts", {})
    entries: dict[str, dict[str, Any]] = {}
    written: list[str] = []
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix="oceantaco-taco-") as tmp:
        workdir = Path(tmp)
        (workdir / "parts").mkdir()
        empty = workdir / "empty"
        empty.touch()
        for part in parts:
            digest = _digest([LAYOUT_VERSION, collection, part.records()])
            old = previous_parts.get(part.name, {})
            if old.get("inputs_digest") == digest and output.size(part.name) == old.get("size"):
                entries[part.name] = old
                continue
            path = _write_part(part, formatted, workdir / "parts", empty, collection)
            result = output.put_file(path, part.name)
            logger.info("wrote %s (%d days, %d bytes)", output.url_of(part.name), len(part.days), result.size)
            written.append(part.name)
            entries[part.name] = {
                "inputs_digest": digest,
                "sha256": result.sha256,
                "size": result.size,
                "days": [_day_id(day) for day in part.days],
                "tiles": part.tiles(),
            }
        catalog_entry: dict[str, Any] = previous.get("catalog", {})
        catalog_digest = _digest([LAYOUT_VERSION, collection, [[n, e["sha256"]] for n, e in entries.items()]])
        stored = catalog_entry.get("files", {})
        catalog_written = not (
            catalog_entry.get("inputs_digest") == catalog_digest
            and stored
            and all(map(output.exists, stored))
        )
        if catalog_written:
            catalog_entry = {
                "inputs_digest": catalog_digest,
                "files": _write_catalog(parts, entries, output, workdir),
            }
    deleted = sorted(set(previous_parts) - set(entries))
    manifest = {"layout_version": LAYOUT_VERSION, "parts": entries, "catalog": catalog_entry}
    output.write_bytes(MANIFEST_KEY, json.dumps(manifest, indent=1, sort_keys=True).encode())
    for name in deleted:
        output.delete(name)
        logger.info("deleted %s: its month is no longer in the inventory", output.url_of(name))
    all_slots = [slot for part in parts for slots in part.slots.values() for slot in slots]
    tiles = sum(slot.row is not None for slot in all_slots)
    report = BuildReport(
        url=output.url,
        days=sum(len(part.days) for part in parts),
        tiles=tiles,
        placeholders=len(all_slots) - tiles,
        parts_written=tuple(written),
        parts_unchanged=tuple(name for name in entries if name not in written),
        parts_deleted=tuple(deleted),
        catalog_written=catalog_written,
        seconds=time.monotonic() - started,
        verify=None,
    )
    logger.info(
        "TACO at %s: %d parts written, %d unchanged, %d deleted, catalog %s (%.1f s)",
        output.url,
        len(written),
        len(report.parts_unchanged),
        len(deleted),
        "written" if catalog_written else "unchanged",
        report.seconds,
    )
    if verify:
        report = dataclasses.replace(report, verify=verify_taco(output, inventory, catalog))
    return report


def read_slots(output: Storage) -> list[dict[str, Any]]:
    """Every (day, region, slot, available, vsi) row of the dataset, read the multi-part-safe way."""
    # A build in this process may have replaced files tacoreader cached (COLLECTION.json, catalog levels).
    tacoreader.clear_cache()
    with tacoreader.load(output.url, cache=False) as dataset:
        return dataset.sql(_ROWS_SQL).to_pylist()


def verify_taco(output: Storage, inventory: pd.DataFrame, catalog: Catalog) -> VerifyReport:
    """Read the dataset back with tacoreader and check it against the inventory it was built from.

    Checks days, the 8 regions per day in order, slot ids and ``available`` per region in catalog order,
    and the sha256 of every payload (bytes fetched from the ``/vsisubfile/`` location the reader gives).
    The first payload of each product is also opened with xarray. Raises ``TacoVerificationError``.
    """
    started = time.monotonic()
    parts = _plan(inventory, catalog)
    try:
        rows = read_slots(output)
    except Exception as exc:
        failure = f"tacoreader cannot read it: {exc}"
        report = VerifyReport(0, 0, 0, 0, 0, time.monotonic() - started, (failure,))
        raise TacoVerificationError(output.url, report) from exc

    got: dict[str, dict[str, list[tuple[str, bool]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        got[row["day"]][row["region"]].append((row["slot"], row["available"]))
    failures = _check_structure(got, parts)
    checked, opened, payload_failures = _check_payloads(rows, parts, output)
    failures += payload_failures
    report = VerifyReport(
        days=len(got),
        regions=sum(len(regions) for regions in got.values()),
        payloads_checked=checked,
        payloads_opened=opened,
        placeholders=sum(not row["available"] for row in rows),
        seconds=time.monotonic() - started,
        failures=tuple(failures),
    )
    if failures:
        raise TacoVerificationError(output.url, report)
    logger.info(
        "verified %s: %d days, %d payloads (%.1f s)", output.url, report.days, checked, report.seconds
    )
    return report


def _check_structure(got: dict[str, dict[str, list[tuple[str, bool]]]], parts: list[_Part]) -> list[str]:
    """Days, regions in order, and (slot id, available) per region in catalog order."""
    failures = []
    want_days = [_day_id(day) for part in parts for day in part.days]
    if list(got) != want_days:
        failures.append(
            f"days: expected {want_days[0]}..{want_days[-1]} ({len(want_days)}), found {list(got)}"
        )
    for day, regions in got.items():
        if list(regions) != list(REGION_NAMES):
            failures.append(f"{day}: regions {list(regions)}, expected {list(REGION_NAMES)}")
    for part in parts:
        for (day, name), slots in part.slots.items():
            want = [(slot.id, slot.row is not None) for slot in slots]
            found = got.get(_day_id(day), {}).get(name, [])
            if found != want:
                failures.append(f"{_day_id(day)}/{name}: slots {found}, expected {want}")
    return failures


def _check_payloads(
    rows: list[dict[str, Any]], parts: list[_Part], output: Storage
) -> tuple[int, int, list[str]]:
    """(checked, opened, failures) for every available payload at the location the reader reports.

    Range reads run in a few threads: on an object store each one is a request.
    """
    want_sha = {
        (_day_id(day), name, slot.id): slot.row["sha256"]
        for part in parts
        for (day, name), slots in part.slots.items()
        for slot in slots
        if slot.row is not None
    }
    part_names = {part.name for part in parts}
    failures: list[str] = []
    jobs: list[tuple[str, str, int, int, str, bool]] = []  # where, part, offset, size, sha256, open it
    first_of_product: set[str] = set()
    for row in rows:
        key = (row["day"], row["region"], row["slot"])
        if not row["available"] or key not in want_sha:
            continue  # reported by _check_structure
        match = _VSISUBFILE.fullmatch(row["vsi"] or "")
        part = match.group(3).rsplit("/", 1)[-1] if match else None
        if match is None or part not in part_names:
            failures.append(f"{'/'.join(key)}: unexpected payload location {row['vsi']!r}")
            continue
        open_it = row["slot"] not in first_of_product
        first_of_product.add(row["slot"])
        jobs.append(("/".join(key), part, int(match.group(1)), int(match.group(2)), want_sha[key], open_it))

    def check(job: tuple[str, str, int, int, str, bool]) -> str | None:
        where, part, offset, size, sha256, open_it = job
        data = output.read_range(part, offset, size)
        if hashlib.sha256(data).hexdigest() != sha256:
            return f"{where}: payload sha256 differs from the inventory ({part} at offset {offset})"
        if open_it:
            try:
                xr.open_dataset(io.BytesIO(data), engine="h5netcdf").close()
            except Exception as exc:
                return f"{where}: xarray cannot open the payload: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
        problems = list(pool.map(check, jobs))
    failures += [problem for problem in problems if problem is not None]
    opened = sum(job[5] and problem is None for job, problem in zip(jobs, problems, strict=True))
    return len(jobs), opened, failures


def _collection(catalog: Catalog) -> dict[str, Any]:
    """Collection fields of every part (``Taco`` keyword arguments; extent is set separately)."""
    providers = sorted({product.provider for product in catalog.ordered()})
    return {
        "id": DATASET_ID,
        "dataset_version": DATASET_VERSION,
        "title": "OceanTACO: daily sea surface state in eight regional tiles",
        "description": (
            "Daily sea surface state (model reanalysis, L4 and L3 satellite products, SWOT and Argo) "
            "regridded into eight 90x90 degree regional NetCDF tiles per day. Hierarchy: day -> region "
            "-> one slot per product; a missing tile is an empty '<product>.missing' slot with "
            "available = false."
        ),
        "licenses": ["CC-BY-4.0"],
        "providers": [_PROVIDERS[p] for p in providers] + [{"name": "OceanTACO", "roles": ["processor"]}],
        "keywords": ["ocean", "sea surface", "ssh", "sst", "sss", "swot", "glorys", "argo"],
        "tasks": ["regression", "generative"],
    }


def _plan(inventory: pd.DataFrame, catalog: Catalog) -> list[_Part]:
    """Monthly parts with one slot per product in every region of every inventoried day."""
    products = {product.data_source: product for product in catalog.ordered()}
    tiles: dict[tuple[dt.date, str, str], dict[str, Any]] = {}
    for row in inventory.to_dict("records"):
        product = products.get(row["data_source"])
        if product is None:
            raise ValueError(
                f"{row['relative_path']}: data_source {row['data_source']!r} is not in the catalog"
            )
        key = (pd.Timestamp(row["timestamp_file"]).date(), region(row["region"]).name, product.token)
        if key in tiles:
            raise ValueError(
                f"two inventory rows for one slot: {tiles[key]['relative_path']}, {row['relative_path']}"
            )
        tiles[key] = row
    if not tiles:
        raise ValueError("the inventory lists no tiles; there is nothing to package")
    months: dict[str, list[dt.date]] = defaultdict(list)
    for day in sorted({day for day, _, _ in tiles}):
        months[f"{day:%Y_%m}"].append(day)
    return [
        _Part(
            name=f"{PART_PREFIX}{month}{PART_SUFFIX}",
            days=tuple(days),
            slots={
                (day, reg.name): tuple(
                    _Slot(p, tiles.get((day, reg.name, p.token))) for p in catalog.ordered()
                )
                for day in days
                for reg in REGIONS
            },
        )
        for month, days in months.items()
    ]


def _write_part(part: _Part, formatted: Storage, dest: Path, empty: Path, collection: dict[str, Any]) -> Path:
    """Write one month as a local ``.tacozip`` in dest (tacotoolbox cannot write to object stores)."""
    with ExitStack() as stack:
        days = []
        for day in part.days:
            start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
            regions = []
            for reg in REGIONS:
                files = [_file_sample(slot, formatted, stack, empty) for slot in part.slots[(day, reg.name)]]
                sample = Sample(id=reg.name, path=Tortilla(samples=files))
                sample.extend_with(
                    ISTAC(crs=CRS, geometry=reg.polygon_wkb, time_start=start, time_end=start + DAY_US - 1)
                )
                regions.append(sample)
            sample = Sample(id=_day_id(day), path=Tortilla(samples=regions))
            # An ISO string, as published: readers compare it to 'YYYY-MM-DD' as text.
            sample.extend_with({"stac:time_start": f"{day.isoformat()}T00:00:00+00:00"})
            days.append(sample)
        taco = Taco(tortilla=Tortilla(samples=days), **collection)
        # Taco recomputes the extent from level-1 centroids on construction, so set the real one after it.
        taco.extent = Extent(
            spatial=[
                min(r.lon_min for r in REGIONS),
                min(r.lat_min for r in REGIONS),
                max(r.lon_max for r in REGIONS),
                max(r.lat_max for r in REGIONS),
            ],
            temporal=[
                f"{part.days[0].isoformat()}T00:00:00Z",
                f"{part.days[-1].isoformat()}T23:59:59.999999Z",
            ],
        )
        # split_size=None: never let tacotoolbox split a month into parts on its own.
        (path,) = tacotoolbox.create(
            taco, dest / part.name, output_format="zip", split_size=None, consolidate=False
        )
    return Path(path)


def _file_sample(slot: _Slot, formatted: Storage, stack: ExitStack, empty: Path) -> Sample:
    """Level-2 sample of a slot; a tile's bytes must still match the sha256 its inventory row records."""
    columns = pa.table({name: [value] for name, value in slot.columns.items()}, schema=_FILE_SCHEMA)
    if slot.row is None:
        sample = Sample(id=slot.id, path=empty)
        sample.extend_with(columns)
        sample.extend_with(_NULL_ISTAC)
        return sample
    key = slot.row["relative_path"]
    path = stack.enter_context(formatted.local_copy(key))
    with path.open("rb") as f:
        actual = hashlib.file_digest(f, "sha256").hexdigest()
    if actual != slot.row["sha256"]:
        raise TacoBuildError(
            f"{formatted.url_of(key)}: sha256 {actual} differs from the inventory's {slot.row['sha256']}; "
            "the tile changed after the inventory was written (re-run format or compaction)"
        )
    geometry, time_start, time_end = slot.footprint
    sample = Sample(id=slot.id, path=path)
    sample.extend_with(columns)
    sample.extend_with(
        ISTAC(crs=CRS, geometry=geometry, time_start=time_start, time_end=time_end, sample_id=slot.id)
    )
    return sample


def _write_catalog(
    parts: list[_Part], entries: dict[str, dict[str, Any]], output: Storage, workdir: Path
) -> dict[str, dict[str, Any]]:
    """Rebuild ``.tacocat`` over all parts and upload it; returns sha256/size per uploaded key.

    Parts not rebuilt in this run are stood in for by metadata-only replicas. ``validate_schema`` is off
    because it compares each part's first-day slot ids (``argo.nc`` vs ``argo.missing``); the columns are
    the same by construction (``_FILE_SCHEMA``) and ``verify_taco`` checks every slot.
    """
    local = workdir / "parts"
    inputs = [
        local / part.name if (local / part.name).exists() else _metadata_replica(output, part.name, local)
        for part in parts
    ]
    tacotoolbox.create_tacocat(inputs, workdir, validate_schema=False)
    catalog_dir = workdir / CATALOG_DIR
    collection_path = catalog_dir / _COLLECTION_JSON
    collection = json.loads(collection_path.read_text())
    # Remote readers cache the catalog until COLLECTION.json's ETag changes, and a rebuilt part can change
    # offsets without changing anything else here: the part checksums make the file change with them.
    collection["oceantaco:parts"] = [
        {"file": part.name, "sha256": entries[part.name]["sha256"], "size": entries[part.name]["size"]}
        for part in parts
    ]
    collection_path.write_text(json.dumps(collection, indent=1))
    files: dict[str, dict[str, Any]] = {}
    # COLLECTION.json last: it is what readers check to see whether the catalog changed.
    for path in sorted(catalog_dir.iterdir(), key=lambda p: (p.name == _COLLECTION_JSON, p.name)):
        result = output.put_file(path, f"{CATALOG_DIR}/{path.name}")
        files[result.key] = {"sha256": result.sha256, "size": result.size}
    return files


def _metadata_replica(output: Storage, name: str, dest: Path) -> Path:
    """Local stand-in for a stored part: header and metadata entries at their offsets, sparse elsewhere.

    ``create_tacocat`` reads only those, so the catalog is rebuilt without downloading any payload.
    """
    size = output.size(name)
    if size is None:
        raise FileNotFoundError(f"{output.url_of(name)} is in the manifest but not in storage")
    header = output.read_range(name, 0, TACO_HEADER_SIZE)
    path = dest / name
    with path.open("wb") as f:
        f.truncate(size)
        f.write(header)
        for offset, length in tacozip.read_header(header):
            f.seek(offset)
            f.write(output.read_range(name, offset, length))
    return path


def _read_manifest(output: Storage) -> dict[str, Any]:
    """The previous build's manifest; an unreadable one only costs a full rebuild."""
    if not output.exists(MANIFEST_KEY):
        return {}
    try:
        return json.loads(output.read_bytes(MANIFEST_KEY))
    except ValueError:
        logger.warning("ignoring unreadable %s; every part is rebuilt", output.url_of(MANIFEST_KEY))
        return {}


def _digest(value: Any) -> str:
    """sha256 of a canonical JSON rendering (bytes as hex)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=bytes.hex)
    return hashlib.sha256(text.encode()).hexdigest()


def _day_id(day: dt.date) -> str:
    return f"{day:%Y_%m_%d}"
