"""Read a built dataset back with tacoreader and check it against what it should hold.

Only reader paths that are correct for multi-part datasets are used: SQL on the raw ``level0/1/2`` tables,
joined on ``internal:source_file`` where a catalog spans several parts (tacoreader 2.4.21's flat ``l1``/``l2``
views join parts on row positions only and mix them up).

Checks: the days; the 8 regions of every day in order; per region every slot id and ``available`` in
catalog order; level-0 ``stac:time_start`` (an ISO string starting with the day); level-1
``istac:geometry`` (the tile polygon) and time range; the level-2 metadata columns and their values
(``sha256``, ``data_source``);
the sha256 of payloads read from the byte range the reader reports; a sample of payloads opened with
xarray/h5netcdf; and the size of every container.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import shapely
import tacoreader
import xarray as xr

from oceantaco.catalog import Catalog
from oceantaco.regions import REGION_NAMES, region

logger = logging.getLogger(__name__)

DAY_US = 86_400_000_000
# Level-2 columns every slot carries; the published readers select on id, data_source and variable.
LEVEL2_COLUMNS = (
    "id",
    "available",
    "data_source",
    "variable",
    "sensor",
    "modality",
    "res_deg_lat",
    "res_km_lat",
    "sha256",
    "size_bytes",
    "dataset_id",
    "dataset_version",
    "source_files",
    "istac:crs",
    "istac:geometry",
    "istac:time_start",
    "istac:time_end",
)
_MAX_LISTED_FAILURES = 20
_READ_THREADS = 8
_WINDOW_BYTES = 64 << 20  # payload bytes fetched per read: bounds memory, few requests per part
_VSISUBFILE = re.compile(r"/vsisubfile/(\d+)_(\d+),(.+)")


@dataclass(frozen=True)
class Expected:
    """What a dataset must hold: its days, and the sha256 of every tile by ``<day>/<region>/<slot id>``.

    ``containers`` gives the size of every payload container (a ZIP part, by name) when known.
    """

    days: tuple[str, ...]
    tiles: dict[str, str]
    containers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` read back: counts, and every mismatch found (empty when the dataset is sound)."""

    days: int
    regions: int
    payloads_checked: int
    payloads_opened: int
    placeholders: int
    seconds: float
    failures: tuple[str, ...] = ()

    def summary(self) -> str:
        state = "OK" if not self.failures else f"{len(self.failures)} failure(s)"
        return (
            f"verify {state}: {self.days} day(s), {self.regions} region sample(s), "
            f"{self.payloads_checked} payload(s) checked against their sha256, {self.payloads_opened} opened "
            f"with xarray, {self.placeholders} placeholder slot(s) ({self.seconds:.1f} s)"
        )


class TacoVerificationError(RuntimeError):
    """The dataset read back with tacoreader differs from what it should hold."""

    def __init__(self, url: str, report: VerifyReport) -> None:
        self.report = report
        listed = "\n  ".join(report.failures[:_MAX_LISTED_FAILURES])
        more = len(report.failures) - _MAX_LISTED_FAILURES
        super().__init__(
            f"{url}: {len(report.failures)} verification failure(s):\n  {listed}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )


@dataclass(frozen=True)
class Payload:
    """Where a payload's bytes are: an object key of the output, and the byte range inside it."""

    key: str
    offset: int
    size: int | None  # None: the whole object


# Reads one payload (or a byte range of it) from the output; verify is independent of the storage backend.
ReadRange = Callable[[str, int, int | None], bytes]


def day_id(day: dt.date) -> str:
    return f"{day:%Y_%m_%d}"


def slot_key(day: str, region_name: str, slot: str) -> str:
    return f"{day}/{region_name}/{slot}"


def open_dataset(path: str, base_path: str | None = None) -> Any:
    """tacoreader.load without its caches: this process may have just replaced the files they hold."""
    tacoreader.clear_cache()
    return tacoreader.load(path, base_path=base_path, cache=False)


def read_rows(dataset: Any) -> list[dict[str, Any]]:
    """One row per level-2 sample with its day and region columns, in storage order."""
    level2 = set(dataset.sql("SELECT * FROM level2 LIMIT 0").column_names)
    multi_part = "internal:source_file" in level2
    same_part = 'AND {a}."internal:source_file" = {b}."internal:source_file"' if multi_part else ""
    picked = ", ".join(f'f."{c}" AS "{c}"' for c in LEVEL2_COLUMNS if c in level2)
    sql = f"""
    SELECT d.id AS day, d."stac:time_start" AS day_time_start,
           r.id AS region, r."istac:geometry" AS region_geometry,
           r."istac:time_start" AS region_time_start, r."istac:time_end" AS region_time_end,
           {picked}, f."internal:gdal_vsi" AS vsi
    FROM level0 d
    JOIN level1 r ON r."internal:parent_id" = d."internal:current_id" {same_part.format(a="r", b="d")}
    JOIN level2 f ON f."internal:parent_id" = r."internal:current_id" {same_part.format(a="f", b="r")}
    ORDER BY d.id, r."internal:current_id", f."internal:current_id"
    """
    rows = dataset.sql(sql).to_pylist()
    missing = [c for c in LEVEL2_COLUMNS if c not in level2]
    for row in rows:
        row["_missing_columns"] = missing
    return rows


def verify(
    url: str,
    rows: list[dict[str, Any]],
    expected: Expected,
    catalog: Catalog,
    locate: Callable[[str], Payload | None],
    read: ReadRange,
    *,
    container_size: Callable[[str], int | None] | None = None,
    hash_containers: Iterable[str] | None = None,
    started: float | None = None,
) -> VerifyReport:
    """Check rows read with ``read_rows`` against ``expected``; raises ``TacoVerificationError``.

    ``locate`` maps a reader location (``internal:gdal_vsi``) to a payload of the output, or None if it
    points elsewhere. Payload bytes are hashed for every tile whose container is in ``hash_containers``
    (all when None); every container's size is checked through ``container_size``. The first payload of
    each product, and of each container, is also opened with xarray.
    """
    started = time.monotonic() if started is None else started
    by_day: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_day[row["day"]][row["region"]].append(row)
    failures = _check_structure(by_day, expected, catalog)
    if rows and rows[0]["_missing_columns"]:
        failures.append(f"level 2 lacks the column(s) {rows[0]['_missing_columns']}")
    failures += _check_metadata(by_day, expected, catalog)
    if container_size is not None:
        for name, size in sorted(expected.containers.items()):
            found = container_size(name)
            if found != size:
                failures.append(f"{name}: size {found}, expected {size}")
    checked, opened, payload_failures = _check_payloads(rows, expected, locate, read, hash_containers)
    failures += payload_failures
    report = VerifyReport(
        days=len(by_day),
        regions=sum(len(regions) for regions in by_day.values()),
        payloads_checked=checked,
        payloads_opened=opened,
        placeholders=sum(not row["available"] for row in rows),
        seconds=time.monotonic() - started,
        failures=tuple(failures),
    )
    if failures:
        raise TacoVerificationError(url, report)
    logger.info("verified %s: %s", url, report.summary())
    return report


def _expected_slots(
    day: str, region_name: str, expected: Expected, catalog: Catalog
) -> list[tuple[str, bool]]:
    slots = []
    for product in catalog.ordered():
        available = slot_key(day, region_name, product.output_id) in expected.tiles
        slots.append((product.output_id, True) if available else (product.placeholder_id, False))
    return slots


def _check_structure(
    by_day: dict[str, dict[str, list[dict[str, Any]]]], expected: Expected, catalog: Catalog
) -> list[str]:
    failures = []
    if list(by_day) != list(expected.days):
        want = f"{expected.days[0]}..{expected.days[-1]} ({len(expected.days)})" if expected.days else "none"
        failures.append(f"days: expected {want}, found {list(by_day)}")
    for day in expected.days:
        regions = by_day.get(day, {})
        if regions and list(regions) != list(REGION_NAMES):
            failures.append(f"{day}: regions {list(regions)}, expected {list(REGION_NAMES)}")
        for name in REGION_NAMES:
            found = [(row["id"], row["available"]) for row in regions.get(name, [])]
            want = _expected_slots(day, name, expected, catalog)
            if regions and found != want:
                failures.append(f"{day}/{name}: slots {found}, expected {want}")
    return failures


def _check_metadata(
    by_day: dict[str, dict[str, list[dict[str, Any]]]], expected: Expected, catalog: Catalog
) -> list[str]:
    """Level-0 times, level-1 footprints and level-2 values the published readers select on."""
    failures = []
    sources = {product.output_id: product.data_source for product in catalog.ordered()}
    for day, regions in by_day.items():
        start = int(dt.datetime.strptime(day, "%Y_%m_%d").replace(tzinfo=dt.UTC).timestamp()) * 1_000_000
        iso_day = f"{day[:4]}-{day[5:7]}-{day[8:10]}"
        for name, files in regions.items():
            first = files[0]
            if not str(first["day_time_start"] or "").startswith(iso_day):
                failures.append(f"{day}: stac:time_start {first['day_time_start']!r} is not on {iso_day}")
            where = f"{day}/{name}"
            if name in REGION_NAMES:
                geometry = first["region_geometry"]
                bounds = tuple(shapely.from_wkb(geometry).bounds) if geometry else None
                if bounds != region(name).bounds:
                    failures.append(
                        f"{where}: istac:geometry bounds {bounds}, expected {region(name).bounds}"
                    )
            times = (_us(first["region_time_start"]), _us(first["region_time_end"]))
            if times != (start, start + DAY_US - 1):
                failures.append(f"{where}: istac time range {times} is not the day")
            for row in files:
                failures += _check_file_row(where, row, expected, sources)
    return failures


def _check_file_row(
    where: str, row: dict[str, Any], expected: Expected, sources: dict[str, str]
) -> list[str]:
    slot = f"{where}/{row['id']}"
    if not row["available"]:
        if row.get("data_source") or row.get("sha256"):
            return [f"{slot}: a placeholder must have an empty data_source and no sha256"]
        return []
    problems = []
    want_sha = expected.tiles.get(slot)
    if row.get("sha256") != want_sha:
        problems.append(f"{slot}: sha256 column {row.get('sha256')}, expected {want_sha}")
    if row.get("data_source") != sources.get(row["id"]):
        problems.append(
            f"{slot}: data_source {row.get('data_source')!r}, expected {sources.get(row['id'])!r}"
        )
    if not row.get("istac:geometry"):
        problems.append(f"{slot}: no istac:geometry")
    return problems


def _us(value: Any) -> int | None:
    """istac times come back as naive UTC datetimes (timestamp[us]); compare them as µs."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return round(value.timestamp() * 1_000_000)
    return int(value)


def _check_payloads(
    rows: list[dict[str, Any]],
    expected: Expected,
    locate: Callable[[str], Payload | None],
    read: ReadRange,
    hash_containers: Iterable[str] | None,
) -> tuple[int, int, list[str]]:
    """(checked, opened, failures). Reads are grouped into windows and run in a few threads."""
    selected = None if hash_containers is None else set(hash_containers)
    failures: list[str] = []
    jobs: list[tuple[str, Payload, str, bool]] = []
    first_seen: set[str] = set()
    for row in rows:
        slot = slot_key(row["day"], row["region"], row["id"])
        want = expected.tiles.get(slot)
        if not row["available"] or want is None:
            continue  # reported by the structure check
        payload = locate(row["vsi"] or "")
        if payload is None:
            failures.append(f"{slot}: unexpected payload location {row['vsi']!r}")
            continue
        if selected is not None and payload.key not in selected:
            continue
        # The first tile of each product, and of each part: a part written wrong would show there.
        seen = {row["id"], payload.key} if payload.size is not None else {row["id"]}
        open_it = not seen <= first_seen
        first_seen |= seen
        jobs.append((slot, payload, want, open_it))

    def check(window: list[tuple[str, Payload, str, bool]]) -> list[tuple[bool, str | None]]:
        """(opened, problem) per job of a window: one read covers all of its payloads."""
        first = window[0][1]
        try:
            if first.size is None:
                data, start = read(first.key, 0, None), 0
            else:
                start = first.offset
                data = read(first.key, start, window[-1][1].offset + window[-1][1].size - start)
        except FileNotFoundError:
            return [
                (False, f"{slot}: payload object {payload.key} is missing") for slot, payload, _, _ in window
            ]
        return [_check_one(job, data, start) for job in window]

    with ThreadPoolExecutor(max_workers=_READ_THREADS) as pool:
        results = [result for window in pool.map(check, _windows(jobs)) for result in window]
    failures += [problem for _, problem in results if problem is not None]
    return len(results), sum(opened for opened, _ in results), failures


def _check_one(job: tuple[str, Payload, str, bool], data: bytes, start: int) -> tuple[bool, str | None]:
    slot, payload, want, open_it = job
    begin = payload.offset - start
    view = memoryview(data)[begin : begin + payload.size] if payload.size is not None else memoryview(data)
    if hashlib.sha256(view).hexdigest() != want:
        return (
            False,
            f"{slot}: payload sha256 differs from the expected one ({payload.key} at {payload.offset})",
        )
    if not open_it:
        return False, None
    try:
        xr.open_dataset(io.BytesIO(view), engine="h5netcdf").close()
    except Exception as exc:
        return False, f"{slot}: xarray cannot open the payload: {exc}"
    return True, None


def _windows(jobs: list[tuple[str, Payload, str, bool]]) -> list[list[tuple[str, Payload, str, bool]]]:
    """Group byte ranges of one object into reads of up to _WINDOW_BYTES (one request per window on a
    bucket, instead of one per tile); whole objects are a window each."""
    windows: list[list[tuple[str, Payload, str, bool]]] = []
    by_key: dict[str, list[tuple[str, Payload, str, bool]]] = defaultdict(list)
    for job in jobs:
        by_key[job[1].key].append(job)
    for key_jobs in by_key.values():
        if key_jobs[0][1].size is None:
            windows += [[job] for job in key_jobs]
            continue
        current: list[tuple[str, Payload, str, bool]] = []
        for job in sorted(key_jobs, key=lambda job: job[1].offset):
            payload = job[1]
            if current and payload.offset + payload.size - current[0][1].offset > _WINDOW_BYTES:
                windows.append(current)
                current = []
            current.append(job)
        windows.append(current)
    return windows


def zip_locator(part_names: Iterable[str]) -> Callable[[str], Payload | None]:
    """Locations ``/vsisubfile/<offset>_<size>,<...>/<part>`` inside the known parts."""
    names = set(part_names)

    def locate(vsi: str) -> Payload | None:
        match = _VSISUBFILE.fullmatch(vsi)
        if match is None:
            return None
        part = match.group(3).rsplit("/", 1)[-1]
        return Payload(part, int(match.group(1)), int(match.group(2))) if part in names else None

    return locate


def folder_locator(vsi: str) -> Payload | None:
    """A FOLDER payload ``<root>/DATA/<day>/<region>/<file>`` (local, /vsis3/... roots) as an output key."""
    parts = vsi.split("/")
    if len(parts) < 4 or parts[-4] != "DATA":
        return None
    return Payload("/".join(parts[-4:]), 0, None)
