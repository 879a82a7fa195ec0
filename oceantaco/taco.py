"""Package the formatted tiles as the OceanTACO dataset, incrementally and never half-visible.

Two layouts at the output root (a local directory or a bucket prefix):

``zip`` (default): one ``.tacozip`` per calendar month plus a ``.tacocat`` catalog over all of them::

    OceanTACO_2024_01_<digest>.tacozip   a month: DATA/<YYYY_MM_DD>/<REGION>/<slot>; <digest> = its inputs
    .tacocat/level{0,1,2}.parquet        the live catalog; every row names its part (internal:source_file)
    .tacocat/COLLECTION.json
    releases/<id>/.tacocat/...           each release's own catalog, and its manifest.json
    CURRENT                              names the live release

``folder``: the published FOLDER layout, for mirrors of the public dataset::

    COLLECTION.json, METADATA/level{0,1,2}.parquet, DATA/<YYYY_MM_DD>/<REGION>/<id> (+ __meta__ files)
    releases/<id>/..., CURRENT           as above

``tacoreader.load(<root>)`` opens either: for ``zip`` it finds no COLLECTION.json at the root, falls back
to ``<root>/.tacocat`` and resolves ``internal:source_file`` against the root, so parts sit next to it.

Incremental: a part's name carries the digest of everything that goes into it (tile checksums, metadata,
collection fields, layout version), so a build writes only the months whose inputs changed and never
replaces an object a reader may be using. Write-audit-publish: the new catalog is staged under
``releases/<id>/``, verified with tacoreader, and only then made live by one write of ``CURRENT``
(``oceantaco.releases``); then the root catalog is refreshed from it, COLLECTION.json last. A failed verify
leaves the previous release live. Releases and parts no longer among the ``keep_releases`` newest are
deleted. The FOLDER layout is updated in place (its paths are fixed by the published layout): new days are
invisible until the metadata names them, but a re-made tile replaces the old one as it is uploaded.

Hierarchy: day (``YYYY_MM_DD``) → the 8 regions → one slot per catalog product in ``slot_order``. TACO's
position-invariant tree needs the same slot count everywhere, so a missing tile becomes an empty
placeholder ``<stem>.missing`` with ``available = False``, which no reader asks for by id or data source.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
import logging
import struct
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import tacotoolbox
import tacozip
from tacotoolbox.datamodel import Sample, Taco, Tortilla
from tacotoolbox.sample.extensions.istac import ISTAC
from tacotoolbox.taco.datamodel import Extent
from tacozip.config import TACO_HEADER_SIZE

from oceantaco import releases
from oceantaco.catalog import Catalog, Product
from oceantaco.inventory import tile_rows
from oceantaco.regions import REGIONS, region
from oceantaco.storage import Storage
from oceantaco.verify import (
    Expected,
    TacoVerificationError,
    VerifyReport,
    day_id,
    folder_locator,
    open_dataset,
    read_rows,
    slot_key,
    verify,
    zip_locator,
)

logger = logging.getLogger(__name__)

Layout = Literal["zip", "folder"]
LAYOUTS: tuple[Layout, ...] = ("zip", "folder")
PART_PREFIX = "OceanTACO_"
PART_SUFFIX = ".tacozip"
CATALOG_DIR = ".tacocat"
# Part of every input digest: bump it when samples or columns change, so every part is rebuilt.
LAYOUT_VERSION = 2
DATASET_ID = "sea_surface_state_regionalized"
DATASET_VERSION = "0.2.0"
CRS = "EPSG:4326"
DAY_US = 86_400_000_000
DEFAULT_KEEP_RELEASES = 3

_COLLECTION_JSON = "COLLECTION.json"
# zstd 3 instead of tacotoolbox's 19: a year's catalog is written in 0.3 s instead of 2.4 s (every build
# rewrites it) and is ~6 % larger (benchmarks/build.py).
_CATALOG_PARQUET = {"compression": "zstd", "compression_level": 3}
_FOLDER_METADATA = ("METADATA/level0.parquet", "METADATA/level1.parquet", "METADATA/level2.parquet")
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
# Placeholder metadata: available=False, data_source="", every other column (ISTAC too) null. get_schema
# reads no field of the model, so no geometry is needed for it.
_ISTAC_SCHEMA = ISTAC.model_construct().get_schema()
_PLACEHOLDER_METADATA = (
    pa.table(
        {f.name: pa.nulls(1, f.type) for f in (*_FILE_SCHEMA, *_ISTAC_SCHEMA)},
        schema=pa.unify_schemas([_FILE_SCHEMA, _ISTAC_SCHEMA]),
    )
    .set_column(0, "available", pa.array([False]))
    .set_column(1, "data_source", pa.array([""]))
)


# The inventory columns the build reads (converting only these to records is 2x faster).
_PLAN_COLUMNS = (
    "relative_path",
    "timestamp_file",
    "data_source",
    "region",
    "variable",
    "sensor",
    "modality",
    "resolution_deg_lat",
    "resolution_km_lat",
    "sha256",
    "size_bytes",
    "dataset_id",
    "dataset_version",
    "source_files",
    "_istac_spatial_wkb",
    "_istac_time_start",
    "_istac_time_end",
)


class TacoBuildError(RuntimeError):
    """A tile does not match its inventory row, so the dataset would not match its own checksums."""


@dataclass(frozen=True)
class BuildReport:
    """Outcome of ``build_taco``: what was (re)written, the release made live, and its verification."""

    url: str
    layout: Layout
    release: str | None  # the live release after the build
    published: bool  # False: nothing changed, the live release stays
    days: int
    tiles: int
    placeholders: int
    parts_written: tuple[str, ...]
    parts_unchanged: tuple[str, ...]
    tiles_uploaded: int
    objects_deleted: tuple[str, ...]
    seconds: float
    verify: VerifyReport | None
    duplicates_dropped: tuple[str, ...] = ()  # inventory rows left out by the duplicate rule

    def summary(self) -> str:
        lines = [
            f"TACO ({self.layout}) at {self.url}: {self.days} day(s), {self.tiles} tile(s), "
            f"{self.placeholders} placeholder slot(s)",
            (
                f"release {self.release} published"
                if self.published
                else f"nothing changed; release {self.release} stays live"
            )
            + f" ({self.seconds:.1f} s)",
        ]
        if self.layout == "zip":
            lines.append(
                f"parts written {len(self.parts_written)}, unchanged {len(self.parts_unchanged)}; "
                f"objects deleted {len(self.objects_deleted)}"
            )
        else:
            lines.append(f"tiles uploaded {self.tiles_uploaded}; objects deleted {len(self.objects_deleted)}")
        if self.duplicates_dropped:
            lines.append(
                f"duplicates dropped (newest processing time wins): {len(self.duplicates_dropped)}: "
                + ", ".join(self.duplicates_dropped)
            )
        if self.verify is not None:
            lines.append(self.verify.summary())
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

    month: str
    days: tuple[dt.date, ...]
    slots: dict[tuple[dt.date, str], tuple[_Slot, ...]] = field(repr=False)

    def records(self) -> list[list[Any]]:
        """Everything that goes into the part except payload bytes, which the sha256 column stands for."""
        return [
            [day_id(day), name, slot.id, slot.columns, slot.footprint]
            for (day, name), slots in self.slots.items()
            for slot in slots
        ]

    def tiles(self) -> dict[str, str]:
        """sha256 of every tile, by ``<day>/<region>/<slot>``."""
        return {
            slot_key(day_id(day), name, slot.id): slot.row["sha256"]
            for (day, name), slots in self.slots.items()
            for slot in slots
            if slot.row is not None
        }

    def all_slots(self) -> list[tuple[dt.date, str, _Slot]]:
        return [(day, name, slot) for (day, name), slots in self.slots.items() for slot in slots]


@dataclass(frozen=True)
class _Build:
    """What a layout's stage step works from."""

    parts: list[_Part]
    formatted: Storage
    output: Storage
    collection: dict[str, Any]
    previous: dict[str, Any] | None  # the live release's manifest
    workdir: Path
    release: str  # id of the release to stage

    def unpack(self) -> tuple[Any, ...]:
        """The fields in order, without the deep copy ``dataclasses.astuple`` makes."""
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))


@dataclass
class _Staged:
    """A release written under ``releases/<id>/`` but not live yet, with what it takes to audit it."""

    manifest: dict[str, Any]
    live_files: dict[str, Path]  # output key -> local file, copied to the live location on publish
    dataset_path: str  # what tacoreader loads to audit the staged release
    base_path: str | None
    locate: Callable[[str], Any]
    hash_containers: set[str] | None  # containers whose payloads are hashed (None: all)
    parts_written: list[str] = field(default_factory=list)
    tiles_uploaded: int = 0


def expected_of(manifest: dict[str, Any]) -> Expected:
    """What a release holds, from its manifest."""
    if manifest["layout"] == "zip":
        parts = manifest["parts"].values()
        days = sorted(day for part in parts for day in part["days"])
        tiles = {key: sha for part in parts for key, sha in part["tiles"].items()}
        containers = {name: part["size"] for name, part in manifest["parts"].items()}
        return Expected(tuple(days), tiles, containers)
    return Expected(tuple(manifest["days"]), dict(manifest["tiles"]))


def expected_from_inventory(inventory: pd.DataFrame, catalog: Catalog) -> Expected:
    """What a dataset built from this inventory holds."""
    parts = _plan(inventory, catalog)
    days = tuple(day_id(day) for part in parts for day in part.days)
    return Expected(days, {key: sha for part in parts for key, sha in part.tiles().items()})


def build_taco(
    inventory: pd.DataFrame,
    formatted: Storage,
    output: Storage,
    catalog: Catalog,
    *,
    layout: Layout = "zip",
    keep_releases: int = DEFAULT_KEEP_RELEASES,
    scratch_dir: Path | None = None,
    verify: bool = True,
) -> BuildReport:
    """Build or update the dataset at ``output`` from the inventoried tiles: write, audit, publish.

    Only what changed is written (months for ``zip``, tiles for ``folder``). With ``verify`` the staged
    release is read back with tacoreader before it goes live; a failure raises ``TacoVerificationError``
    and leaves the previous release live. When nothing changed, no release is made (and with ``verify``
    the live one is checked, without re-hashing payloads that were checked when they were published).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if keep_releases < 1:
        raise ValueError(f"keep_releases must be at least 1, got {keep_releases}")
    started = time.monotonic()
    collection = _collection(catalog)
    parts = _plan(tile_rows(inventory), catalog)  # failed / empty days have no tile to pack
    current = releases.read_current(output)
    previous = releases.read_manifest(output, current.release) if current else None
    if previous is not None and previous["layout"] != layout:
        raise ValueError(
            f"{output.url} holds a {previous['layout']!r} dataset; "
            "build it with that layout or use another output"
        )
    stage = _stage_zip if layout == "zip" else _stage_folder
    with tempfile.TemporaryDirectory(dir=scratch_dir, prefix="oceantaco-taco-") as tmp:
        release = releases.new_release_id()
        staged = stage(_Build(parts, formatted, output, collection, previous, Path(tmp), release))
        if staged is None:
            assert current is not None and previous is not None  # nothing to compare with otherwise
            report = verify_release(output, catalog, previous, payloads=False) if verify else None
            return _report(output, layout, parts, current.release, False, previous, None, (), started, report)
        report = None
        if verify:
            report = _audit(output, staged, catalog)
        published = releases.publish(output, release, current, keep_releases)
        for key, path in sorted(staged.live_files.items(), key=lambda item: _live_order(item[0])):
            output.put_file(path, key)
    deleted = releases.collect_garbage(output, published, _payload_keys(output, layout))
    return _report(output, layout, parts, release, True, staged.manifest, staged, deleted, started, report)


def verify_output(
    output: Storage, catalog: Catalog, *, inventory: pd.DataFrame | None = None, payloads: bool = True
) -> VerifyReport:
    """Verify the live release at ``output`` (``oceantaco verify``): everything, including every payload.

    Expected contents come from the release's manifest, or from ``inventory`` when given.
    """
    current = releases.read_current(output)
    if current is None:
        raise FileNotFoundError(f"{output.url_of(releases.CURRENT_KEY)}: no published release to verify")
    manifest = releases.read_manifest(output, current.release)
    expected = None if inventory is None else expected_from_inventory(inventory, catalog)
    return verify_release(output, catalog, manifest, payloads=payloads, expected=expected)


def verify_release(
    output: Storage,
    catalog: Catalog,
    manifest: dict[str, Any],
    *,
    payloads: bool,
    expected: Expected | None = None,
) -> VerifyReport:
    """Verify the live dataset (what ``tacoreader.load(<output>)`` opens) against a release manifest.

    The live catalog files must be the release's own. With ``payloads`` every tile is hashed; without,
    only structure, metadata and container sizes are checked.
    """
    started = time.monotonic()
    stale = [key for key in _checked_live_keys(manifest) if not _holds(output, key, manifest["live"][key])]
    zip_layout = manifest["layout"] == "zip"
    staged = _Staged(
        manifest=manifest,
        live_files={},
        dataset_path=output.url,
        base_path=None,
        locate=zip_locator(manifest["parts"]) if zip_layout else folder_locator,
        hash_containers=None if payloads else set(),
    )
    try:
        report = _audit(output, staged, catalog, expected=expected, started=started)
    except TacoVerificationError as exc:
        failures = exc.report.failures
        if not stale:
            raise
    else:
        if not stale:
            return report
        failures = ()
    problems = tuple(f"{key} is not the one release {manifest['release']} published" for key in stale)
    raise TacoVerificationError(
        output.url,
        VerifyReport(0, 0, 0, 0, 0, time.monotonic() - started, problems + tuple(failures)),
    )


def read_slots(output: Storage) -> list[dict[str, Any]]:
    """Every (day, region, slot, available, vsi) of the live dataset, read the multi-part-safe way."""
    rows = read_rows(open_dataset(output.url))
    keys = ("day", "region", "available", "vsi")
    return [{key: row[key] for key in keys} | {"slot": row["id"]} for row in rows]


def _audit(
    output: Storage,
    staged: _Staged,
    catalog: Catalog,
    *,
    expected: Expected | None = None,
    started: float | None = None,
) -> VerifyReport:
    """Read a (staged or live) release with tacoreader and verify it; raises ``TacoVerificationError``."""
    started = time.monotonic() if started is None else started
    expected = expected or expected_of(staged.manifest)
    try:
        rows = read_rows(open_dataset(staged.dataset_path, staged.base_path))
    except Exception as exc:
        failure = f"tacoreader cannot read {staged.dataset_path}: {exc}"
        report = VerifyReport(0, 0, 0, 0, 0, time.monotonic() - started, (failure,))
        raise TacoVerificationError(output.url, report) from exc

    def read(key: str, offset: int, size: int | None) -> bytes:
        return output.read_bytes(key) if size is None else output.read_range(key, offset, size)

    return verify(
        output.url,
        rows,
        expected,
        catalog,
        staged.locate,
        read,
        container_size=output.size,
        hash_containers=staged.hash_containers,
        started=started,
    )


def _report(
    output: Storage,
    layout: Layout,
    parts: list[_Part],
    release: str,
    published: bool,
    manifest: dict[str, Any],
    staged: _Staged | None,
    deleted: tuple[str, ...] | list[str],
    started: float,
    verified: VerifyReport | None,
) -> BuildReport:
    all_slots = [slot for part in parts for _, _, slot in part.all_slots()]
    tiles = sum(slot.row is not None for slot in all_slots)
    written = tuple(staged.parts_written) if staged else ()
    names = tuple(manifest.get("parts", {}))
    report = BuildReport(
        url=output.url,
        layout=layout,
        release=release,
        published=published,
        days=sum(len(part.days) for part in parts),
        tiles=tiles,
        placeholders=len(all_slots) - tiles,
        parts_written=written,
        parts_unchanged=tuple(name for name in names if name not in written),
        tiles_uploaded=staged.tiles_uploaded if staged else 0,
        objects_deleted=tuple(deleted),
        seconds=time.monotonic() - started,
        verify=verified,
    )
    logger.info("%s", report.summary())
    return report


# DOS time 00:00:00 and date 1980-01-01, the earliest a zip entry can carry.
_DOS_EPOCH = struct.pack("<HH", 0, (1 << 5) | 1)
_CENTRAL_HEADER = struct.Struct("<4s8x4s12xHHH12x")  # 46 bytes: signature, time+date, name/extra/comment


def freeze_zip_times(path: Path) -> None:
    """Set every entry's modification time to 1980-01-01 00:00, in place.

    tacozip stamps each entry with the time its file was written, so two builds of the same inputs made
    different bytes under the same part name. A part now depends on its contents only: a build re-run
    after a crash, or on another machine, writes the identical object. Only the fixed-size time fields
    of the local and central headers change; no offset moves, so the TACO header stays valid.
    """
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
        central_directory = archive.start_dir
    with open(path, "r+b") as f:
        for entry in entries:
            f.seek(entry.header_offset + 10)  # local file header: version(2) flags(2) method(2) time date
            f.write(_DOS_EPOCH)
        position = central_directory
        for _ in entries:
            f.seek(position)
            signature, _stamp, name, extra, comment = _CENTRAL_HEADER.unpack(f.read(_CENTRAL_HEADER.size))
            if signature != b"PK\x01\x02":
                raise ValueError(f"{path}: unexpected zip central directory at byte {position}")
            f.seek(position + 12)
            f.write(_DOS_EPOCH)
            position += _CENTRAL_HEADER.size + name + extra + comment


def _stage_zip(build: _Build) -> _Staged | None:
    """Write the months whose inputs changed as new parts, and stage a catalog over all parts."""
    parts, formatted, output, collection, previous, workdir, release = build.unpack()
    old_parts: dict[str, dict[str, Any]] = previous["parts"] if previous else {}
    local = workdir / "parts"
    local.mkdir()
    empty = workdir / "empty"
    empty.touch()
    entries: dict[str, dict[str, Any]] = {}
    written: list[str] = []
    for part in parts:
        digest = _digest([LAYOUT_VERSION, collection, part.records()])
        name = f"{PART_PREFIX}{part.month}_{digest[:16]}{PART_SUFFIX}"
        if name in old_parts:
            entries[name] = old_parts[name]
            continue
        size = output.size(name)
        if size is None:
            path = _write_taco(part.days, part.slots, local / name, "zip", collection, formatted, empty)
            freeze_zip_times(path)
            result = output.put_file(path, name)
            sha256, size = result.sha256, result.size
            logger.info("wrote %s (%d days, %d bytes)", output.url_of(name), len(part.days), size)
        else:
            # Left by a build that stopped before publishing; uploads are atomic, and the audit hashes it.
            sha256 = output.sha256(name)
        written.append(name)
        entries[name] = {
            "month": part.month,
            "inputs_digest": digest,
            "sha256": sha256,
            "size": size,
            "days": [day_id(day) for day in part.days],
            "tiles": part.tiles(),
        }
    catalog_digest = _digest(
        [LAYOUT_VERSION, collection, sorted((n, e["sha256"]) for n, e in entries.items())]
    )
    if (
        previous is not None
        and previous["catalog_digest"] == catalog_digest
        and _live_intact(output, previous)
    ):
        return None
    catalog_dir = _write_catalog(list(entries), entries, output, workdir)
    live = {f"{CATALOG_DIR}/{path.name}": path for path in catalog_dir.iterdir()}
    for key, path in sorted(live.items(), key=lambda item: _live_order(item[0])):
        output.put_file(path, releases.release_key(release, key))
    manifest = _manifest(release, "zip", catalog_digest, live, objects=sorted(entries), parts=entries)
    releases.write_manifest(output, release, manifest)
    staged = _Staged(
        manifest=manifest,
        live_files=live,
        dataset_path=output.url_of(releases.release_key(release, CATALOG_DIR)),
        base_path=output.url,
        locate=zip_locator(entries),
        hash_containers=set(written),
    )
    staged.parts_written = written
    return staged


def _stage_folder(build: _Build) -> _Staged | None:
    """Upload new and changed tiles to ``DATA/``, and stage the FOLDER metadata of the whole dataset."""
    parts, formatted, output, collection, previous, workdir, release = build.unpack()
    catalog_digest = _digest([LAYOUT_VERSION, "folder", collection, [part.records() for part in parts]])
    if (
        previous is not None
        and previous["catalog_digest"] == catalog_digest
        and _live_intact(output, previous)
    ):
        return None
    old_tiles: dict[str, str] = previous["tiles"] if previous else {}
    old_objects = set(previous["objects"]) if previous else set()
    empty = workdir / "empty"
    empty.touch()
    uploaded: list[str] = []
    objects: list[str] = []
    tiles: dict[str, str] = {}
    for part in parts:
        for day, name, slot in part.all_slots():
            key = f"DATA/{day_id(day)}/{name}/{slot.id}"
            objects.append(key)
            if slot.row is None:
                if key not in old_objects:
                    output.write_bytes(key, b"")
                continue
            sha256 = slot.row["sha256"]
            tiles[slot_key(day_id(day), name, slot.id)] = sha256
            if old_tiles.get(slot_key(day_id(day), name, slot.id)) == sha256 and key in old_objects:
                continue
            with formatted.local_copy(slot.row["relative_path"]) as path:
                _check_tile(formatted, slot.row, path)
                output.put_file(path, key)
            uploaded.append(key)
    days = [day for part in parts for day in part.days]
    slots = {key: value for part in parts for key, value in part.slots.items()}
    tree = _write_taco(tuple(days), slots, workdir / "tree", "folder", collection, None, empty)
    live = {_COLLECTION_JSON: tree / _COLLECTION_JSON} | {key: tree / key for key in _FOLDER_METADATA}
    old_live: dict[str, str] = previous["live"] if previous else {}
    for path in sorted((tree / "DATA").rglob("__meta__")):
        key = path.relative_to(tree).as_posix()
        objects.append(key)
        live[key] = path
    for key in (_COLLECTION_JSON, *_FOLDER_METADATA):
        output.put_file(live[key], releases.release_key(release, key))
    manifest = _manifest(
        release,
        "folder",
        catalog_digest,
        live,
        objects=sorted(objects),
        days=[day_id(d) for d in days],
        tiles=tiles,
    )
    releases.write_manifest(output, release, manifest)
    # __meta__ files that did not change are not uploaded again.
    changed = {
        k: p for k, p in live.items() if not k.endswith("__meta__") or old_live.get(k) != manifest["live"][k]
    }
    staged = _Staged(
        manifest=manifest,
        live_files=changed,
        dataset_path=str(tree),
        base_path=None,
        locate=folder_locator,
        hash_containers=set(uploaded),
    )
    staged.tiles_uploaded = len(uploaded)
    return staged


def _manifest(
    release: str,
    layout: Layout,
    catalog_digest: str,
    live: dict[str, Path],
    objects: list[str],
    **contents: Any,
) -> dict[str, Any]:
    return {
        "release": release,
        "layout": layout,
        "layout_version": LAYOUT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "catalog_digest": catalog_digest,
        "live": {key: _sha256_file(path) for key, path in live.items()},
        "objects": objects,
        **contents,
    }


def _live_order(key: str) -> tuple[bool, bool, str]:
    """COLLECTION.json last: tacoreader's remote cache re-reads a catalog only when it changes."""
    name = key.rsplit("/", 1)[-1]
    return name == _COLLECTION_JSON, key.startswith("METADATA/") or key.startswith(CATALOG_DIR), key


def _checked_live_keys(manifest: dict[str, Any]) -> list[str]:
    """Live catalog files worth checking on every build (a FOLDER's thousands of __meta__ files are not)."""
    return [key for key in manifest["live"] if not key.endswith("__meta__")]


def _live_intact(output: Storage, manifest: dict[str, Any]) -> bool:
    return all(_holds(output, key, manifest["live"][key]) for key in _checked_live_keys(manifest))


def _holds(output: Storage, key: str, sha256: str) -> bool:
    return output.exists(key) and output.sha256(key) == sha256


def _payload_keys(output: Storage, layout: Layout) -> list[str]:
    """The payload objects of the layout now in storage: root-level parts, or everything under DATA/."""
    if layout == "zip":
        return [k for k in output.list(suffix=PART_SUFFIX) if "/" not in k and k.startswith(PART_PREFIX)]
    return output.list("DATA")


def _sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_tile(formatted: Storage, row: dict[str, Any], path: Path) -> None:
    """A tile's bytes must still match the sha256 its inventory row records."""
    actual = _sha256_file(path)
    if actual != row["sha256"]:
        raise TacoBuildError(
            f"{formatted.url_of(row['relative_path'])}: sha256 {actual} differs from the inventory's "
            f"{row['sha256']}; the tile changed after the inventory was written (re-run format or compaction)"
        )


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
    for row in inventory[list(_PLAN_COLUMNS)].to_dict("records"):
        product = products.get(row["data_source"])
        if product is None:
            raise ValueError(
                f"{row['relative_path']}: data_source {row['data_source']!r} is not in the catalog"
            )
        key = (pd.Timestamp(row["timestamp_file"]).date(), region(row["region"]).name, product.token)
        if key in tiles:
            raise ValueError(
                f"two inventory rows for one slot: {tiles[key]['relative_path']}, {row['relative_path']} "
                "(resolve duplicates first)"
            )
        tiles[key] = row
    if not tiles:
        raise ValueError("the inventory lists no tiles; there is nothing to package")
    months: dict[str, list[dt.date]] = defaultdict(list)
    for day in sorted({day for day, _, _ in tiles}):
        months[f"{day:%Y_%m}"].append(day)
    return [
        _Part(
            month=month,
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


def _write_taco(
    days: tuple[dt.date, ...],
    slots: dict[tuple[dt.date, str], tuple[_Slot, ...]],
    dest: Path,
    output_format: Layout,
    collection: dict[str, Any],
    formatted: Storage | None,
    empty: Path,
) -> Path:
    """Write days as a local ``.tacozip`` or FOLDER tree at dest (tacotoolbox cannot write to buckets).

    Without ``formatted`` every tile is stood in for by the empty file: FOLDER metadata records paths,
    not sizes, so the tree's metadata is right while the tiles themselves go straight to the bucket.
    """
    with ExitStack() as stack:
        day_samples = []
        for day in days:
            start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()) * 1_000_000
            regions = []
            for reg in REGIONS:
                files = [_file_sample(slot, formatted, stack, empty) for slot in slots[(day, reg.name)]]
                sample = Sample(id=reg.name, path=Tortilla(samples=files))
                sample.extend_with(_istac_table(reg.polygon_wkb, start, start + DAY_US - 1))
                regions.append(sample)
            sample = Sample(id=day_id(day), path=Tortilla(samples=regions))
            # An ISO string, as published: readers compare it to 'YYYY-MM-DD' as text.
            sample.extend_with({"stac:time_start": f"{day.isoformat()}T00:00:00+00:00"})
            day_samples.append(sample)
        taco = Taco(tortilla=Tortilla(samples=day_samples), **collection)
        # Taco recomputes the extent from level-1 centroids on construction, so set the real one after it.
        taco.extent = Extent(
            spatial=[
                min(r.lon_min for r in REGIONS),
                min(r.lat_min for r in REGIONS),
                max(r.lon_max for r in REGIONS),
                max(r.lat_max for r in REGIONS),
            ],
            temporal=[f"{days[0].isoformat()}T00:00:00Z", f"{days[-1].isoformat()}T23:59:59.999999Z"],
        )
        # split_size=None: never let tacotoolbox split a month into parts on its own.
        (path,) = tacotoolbox.create(
            taco, dest, output_format=output_format, split_size=None, consolidate=False
        )
    return Path(path)


def _file_sample(slot: _Slot, formatted: Storage | None, stack: ExitStack, empty: Path) -> Sample:
    """Level-2 sample of a slot: the tile (checked against its sha256), its stand-in, or a placeholder."""
    if slot.row is None:
        sample = Sample(id=slot.id, path=empty)
        sample.extend_with(_PLACEHOLDER_METADATA)
        return sample
    path = empty
    if formatted is not None:
        path = stack.enter_context(formatted.local_copy(slot.row["relative_path"]))
        _check_tile(formatted, slot.row, path)
    columns = pa.table({name: [value] for name, value in slot.columns.items()}, schema=_FILE_SCHEMA)
    sample = Sample(id=slot.id, path=path)
    sample.extend_with(_with_columns(columns, _istac_table(*slot.footprint)))
    return sample


@functools.lru_cache(maxsize=1024)
def _istac_table(geometry: bytes, time_start: int, time_end: int) -> pa.Table:
    """tacotoolbox's ISTAC columns of a footprint. The tiles of a region and day share one, and computing
    its centroid (pyproj, shapely) for every sample cost a third of the per-sample time."""
    istac = ISTAC(crs=CRS, geometry=geometry, time_start=time_start, time_end=time_end)
    return istac(Sample(id="footprint", path=b""))


def _with_columns(table: pa.Table, more: pa.Table) -> pa.Table:
    """One single-row table with the columns of both (one ``extend_with`` instead of two)."""
    return pa.Table.from_arrays(
        table.columns + more.columns, schema=pa.unify_schemas([table.schema, more.schema])
    )


def _write_catalog(
    names: list[str], entries: dict[str, dict[str, Any]], output: Storage, workdir: Path
) -> Path:
    """Build ``.tacocat`` over all parts in workdir; returns its directory.

    Parts not written in this run are stood in for by metadata-only replicas. ``validate_schema`` is off
    because it compares each part's first-day slot ids (``argo.nc`` vs ``argo.missing``); the columns are
    the same by construction (``_FILE_SCHEMA``) and the audit checks every slot.
    """
    local = workdir / "parts"
    inputs = [
        local / name if (local / name).exists() else _metadata_replica(output, name, local) for name in names
    ]
    tacotoolbox.create_tacocat(inputs, workdir, parquet_kwargs=_CATALOG_PARQUET, validate_schema=False)
    catalog_dir = workdir / CATALOG_DIR
    collection_path = catalog_dir / _COLLECTION_JSON
    collection = json.loads(collection_path.read_text())
    # Remote readers cache the catalog until COLLECTION.json's ETag changes, and a rebuilt part can change
    # offsets without changing anything else here: the part checksums make the file change with them.
    collection["oceantaco:parts"] = [
        {"file": name, "sha256": entries[name]["sha256"], "size": entries[name]["size"]} for name in names
    ]
    collection_path.write_text(json.dumps(collection, indent=1))
    return catalog_dir


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


def _digest(value: Any) -> str:
    """sha256 of a canonical JSON rendering (bytes as hex)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=bytes.hex)
    return hashlib.sha256(text.encode()).hexdigest()
