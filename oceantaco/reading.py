"""Read a built OceanTACO dataset back: one tile, or a bounding box over a range of days.

``open_tile(url, day, region, product)`` navigates the hierarchy (``read(day).read(region).read(id)``);
``open_bbox(url, start, end, bbox=..., product=...)`` selects the way the published OceanTACO reader does:
``filter_datetime`` then ``filter_bbox(level=1)`` then ``flatten()``, rows picked by their level-2 id. Both
stay on reader paths that are correct for multi-part datasets (see :mod:`oceantaco.taco`); the flat
``l1``/``l2`` views and an unfiltered ``flatten()`` are never used.

tacoreader only reports where a payload is: ``/vsisubfile/<offset>_<size>,<container>``, the container
being a local path, ``/vsis3/bucket/key``, ``/vsigs/bucket/key``, ``/vsiaz/...`` or ``/vsicurl/<url>``.
:func:`open_payload` turns that into a read-only, seekable file object over exactly those bytes, which
``xr.open_dataset(..., engine="h5netcdf")`` reads lazily: only the HDF5 metadata and the chunks a
computation touches are fetched. Local containers are read with plain seeks; remote ones with fsspec range
requests (s3fs, gcsfs, http) through a small block cache confined to the payload (a payload of up to
4 MiB is fetched in one request). Remote access is configured by the libraries' standard environment
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_ALLOW_HTTP for tacoreader's obstore, STORAGE_EMULATOR_HOST, ...);
``storage_options`` reach fsspec only, tacoreader takes none.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import logging
import os
import posixpath
import re
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from oceantaco.catalog import load_catalog
from oceantaco.regions import region as lookup_region

if TYPE_CHECKING:
    from tacoreader import TacoDataset

logger = logging.getLogger(__name__)

__all__ = [
    "PayloadLocation",
    "TileNotFoundError",
    "ensure_duckdb_spatial",
    "open_bbox",
    "open_payload",
    "open_tile",
    "parse_vsi",
]

_VSISUBFILE = re.compile(r"/vsisubfile/(\d+)_(\d+),(.+)", re.DOTALL)
# GDAL prefixes tacoreader writes for remote containers, and the fsspec protocol of each.
_VSI_PROTOCOLS = {"/vsis3/": "s3://", "/vsigs/": "gs://", "/vsiaz/": "az://", "/vsioss/": "oss://"}
_VSICURL = "/vsicurl/"
# Remote payloads up to this size are fetched whole, in one request; bigger ones in cached blocks.
_WHOLE_PAYLOAD_BYTES = 4 << 20
_BLOCK_BYTES = 1 << 20
_MAX_CACHED_BLOCKS = 32  # at most 32 MiB of cached blocks per open remote payload
# Dimensions of gridded tiles; any other dimension (``track`` of binned products) holds a per-tile table.
_GRID_DIMS = frozenset({"lat", "lon", "time"})
_TRACK_DIM = "track"
_TRACK_IDS = "track_ids"
_TRACK_INDEX = "primary_track"  # per-cell index into track_ids
_SPATIAL_EXTENSION = "spatial.duckdb_extension"
_SPATIAL_PACKAGE = "duckdb-ext-spatial"


class TileNotFoundError(LookupError):
    """No tile there: the day or region is not in the dataset, or the product's slot is a placeholder."""


# ---- payload locations and byte ranges ----------------------------------------------------------------


@dataclass(frozen=True)
class PayloadLocation:
    """Where a payload's bytes are: ``size`` bytes at ``offset`` in ``container`` (local path or URL)."""

    container: str
    offset: int
    size: int

    @property
    def is_local(self) -> bool:
        return "://" not in self.container


def parse_vsi(vsi: str) -> PayloadLocation:
    """Parse tacoreader's ``/vsisubfile/<offset>_<size>,<container>`` into a location fsspec can read.

    ``/vsis3/b/k`` becomes ``s3://b/k`` (``/vsigs/`` → ``gs://``, ``/vsiaz/`` → ``az://``), ``/vsicurl/<url>``
    becomes ``<url>``; anything else is a local path.
    """
    match = _VSISUBFILE.fullmatch(vsi)
    if match is None:
        raise ValueError(f"not a /vsisubfile/<offset>_<size>,<container> location: {vsi!r}")
    offset, size, container = int(match.group(1)), int(match.group(2)), match.group(3)
    if container.startswith(_VSICURL):
        container = container[len(_VSICURL) :]
    else:
        for prefix, protocol in _VSI_PROTOCOLS.items():
            if container.startswith(prefix):
                container = protocol + container[len(prefix) :]
                break
        else:
            if container.startswith("/vsi"):
                raise ValueError(f"unsupported GDAL virtual file system in {vsi!r}")
    return PayloadLocation(container, offset, size)


class _PayloadFile(io.RawIOBase):
    """Read-only, seekable view of one payload: position 0 is its first byte, EOF its last.

    ``fetch(start, stop)`` returns payload bytes ``[start, stop)``. With ``block_size`` > 0, reads go through
    an LRU cache of payload-aligned blocks (missing neighbours fetched in one request); reads spanning more
    than the cache go straight to ``fetch``. Thread-safe; ``close()`` also releases the source.
    """

    def __init__(
        self,
        fetch: Callable[[int, int], bytes],
        size: int,
        *,
        block_size: int = 0,
        max_blocks: int = _MAX_CACHED_BLOCKS,
        release: Callable[[], None] | None = None,
        label: str = "",
    ) -> None:
        super().__init__()
        self._fetch = fetch
        self._size = size
        self._block = block_size
        self._max_blocks = max_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._release = release
        self._pos = 0
        self._lock = threading.Lock()
        self._label = label

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        self._checkClosed()
        view = memoryview(buffer).cast("B")
        with self._lock:
            start = self._pos
            stop = min(start + len(view), self._size)
            if stop <= start:
                return 0
            data = self._read(start, stop)
            view[: len(data)] = data
            self._pos = start + len(data)
            return len(data)

    def readall(self) -> bytes:
        self._checkClosed()
        with self._lock:
            start = self._pos
            if start >= self._size:
                return b""
            data = self._read(start, self._size)
            self._pos = start + len(data)
            return data

    def close(self) -> None:
        if not self.closed:
            self._blocks.clear()
            try:
                if self._release is not None:
                    self._release()
            finally:
                super().close()

    def _read(self, start: int, stop: int) -> bytes:
        if not self._block:
            return self._checked(start, stop, self._fetch(start, stop))
        first, last = start // self._block, (stop - 1) // self._block
        if last - first + 1 > self._max_blocks:
            return self._checked(start, stop, self._fetch(start, stop))
        missing = [i for i in range(first, last + 1) if i not in self._blocks]
        if missing:
            lo, hi = missing[0] * self._block, min((missing[-1] + 1) * self._block, self._size)
            data = self._checked(lo, hi, self._fetch(lo, hi))
            for i in range(missing[0], missing[-1] + 1):
                a = i * self._block - lo
                self._blocks[i] = data[a : a + self._block]
        for i in range(first, last + 1):
            self._blocks.move_to_end(i)
        out = b"".join(self._blocks[i] for i in range(first, last + 1))
        while len(self._blocks) > self._max_blocks:
            self._blocks.popitem(last=False)
        return out[start - first * self._block : stop - first * self._block]

    def _checked(self, start: int, stop: int, data: bytes) -> bytes:
        if len(data) != stop - start:
            raise OSError(
                f"{self._label}: short read, {len(data)} of {stop - start} bytes at payload offset {start}"
            )
        return data


def open_payload(
    vsi: str | PayloadLocation, *, storage_options: Mapping[str, Any] | None = None
) -> io.RawIOBase:
    """A read-only, seekable file object over exactly one payload's bytes (nothing outside is read).

    ``vsi`` is tacoreader's ``/vsisubfile/...`` string or a parsed :class:`PayloadLocation`. Local
    containers are read with seeks on one open file, remote ones with fsspec range requests
    (``storage_options`` go to fsspec). Close it when done; a dataset opened over it keeps it alive.
    """
    loc = vsi if isinstance(vsi, PayloadLocation) else parse_vsi(vsi)
    if loc.is_local:
        source = open(loc.container, "rb")  # noqa: SIM115 - released by _PayloadFile.close
        lock = threading.Lock()

        def fetch_local(start: int, stop: int) -> bytes:
            with lock:
                source.seek(loc.offset + start)
                return source.read(stop - start)

        return _PayloadFile(fetch_local, loc.size, release=source.close, label=loc.container)

    # Storage sets gcsfs's environment before gcsfs is first imported, and reads ranges with cat_file.
    from oceantaco.storage import Storage

    parent, key = posixpath.split(loc.container)
    storage = Storage(parent, **dict(storage_options or {}))

    def fetch_remote(start: int, stop: int) -> bytes:
        return storage.read_range(key, loc.offset + start, stop - start)

    block = loc.size if loc.size <= _WHOLE_PAYLOAD_BYTES else _BLOCK_BYTES
    return _PayloadFile(fetch_remote, loc.size, block_size=block, label=loc.container)


def _open_netcdf(vsi: str, storage_options: Mapping[str, Any] | None, **open_kwargs: Any) -> xr.Dataset:
    """Lazily open the NetCDF payload at ``vsi``; closing the dataset also closes the payload file."""
    payload = open_payload(vsi, storage_options=storage_options)
    try:
        ds = xr.open_dataset(payload, engine="h5netcdf", **open_kwargs)
    except BaseException:
        payload.close()
        raise
    ds.encoding["source"] = vsi
    # xarray does not close file objects it was given; chain our close to the backend's, if reachable.
    backend_close = getattr(ds, "_close", None)
    if backend_close is not None:

        def close() -> None:
            try:
                backend_close()
            finally:
                payload.close()

        ds.set_close(close)
    return ds


# ---- arguments --------------------------------------------------------------------------------------------


def _as_date(value: Any) -> dt.date:
    """A day from a date, datetime (aware ones in UTC), ISO string (``2024-01-31``, ``2024_01_31``) or
    numpy/pandas timestamp."""
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.date.fromisoformat(text.replace("_", "-"))
        except ValueError:
            return _as_date(dt.datetime.fromisoformat(text))
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError(f"not a date: {value!r}")
    return _as_date(stamp.to_pydatetime())


def _slot_ids(product: str) -> tuple[str, str]:
    """(output id, placeholder id) of a catalog token or output id; unknown ``*.nc`` ids pass through."""
    try:
        (found,) = load_catalog().resolve([product])
    except KeyError:
        if product.endswith(".nc"):
            return product, product.removesuffix(".nc") + ".missing"
        known = ", ".join(load_catalog().slot_order)
        raise ValueError(f"unknown product {product!r}; known: {known} (or any '<id>.nc')") from None
    except ValueError:
        names = ", ".join(p.token for p in load_catalog().resolve([product]))
        raise ValueError(f"{product!r} names several products ({names}); pick one") from None
    return found.output_id, found.placeholder_id


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        lon_min, lat_min, lon_max, lat_max = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise ValueError(f"bbox must be (lon_min, lat_min, lon_max, lat_max), got {bbox!r}") from None
    box = (lon_min, lat_min, lon_max, lat_max)
    if not all(np.isfinite(box)):
        raise ValueError(f"bbox {box} is not finite")
    if not (-90.0 <= lat_min <= lat_max <= 90.0):
        raise ValueError(f"bbox {box}: need -90 <= lat_min <= lat_max <= 90")
    if not (-180.0 <= lon_min <= lon_max <= 180.0):
        raise ValueError(
            f"bbox {box}: need -180 <= lon_min <= lon_max <= 180 (tiles use [-180, 180)); "
            "split a box that crosses the antimeridian into two calls"
        )
    return box


def _column(frame: Any, name: str) -> list[Any]:
    """One column of a tacoreader frame as a list, whatever its backend (pyarrow, pandas, polars)."""
    column = frame[name]
    for method in ("to_pylist", "to_list", "tolist"):
        if hasattr(column, method):
            return list(getattr(column, method)())
    return list(column)


@contextlib.contextmanager
def _dataset(dataset_url: str | os.PathLike[str] | TacoDataset) -> Iterator[TacoDataset]:
    """The TacoDataset itself, or one loaded from a local directory / bucket URL (closed afterwards)."""
    if not isinstance(dataset_url, str | os.PathLike):
        yield dataset_url  # an already loaded TacoDataset: the caller owns it
        return
    import tacoreader

    # tacoreader's load runs INSTALL spatial, a download attempt unless the extension is installed.
    try:
        ensure_duckdb_spatial()
    except Exception as exc:  # navigation does not need it; open_bbox calls it again and raises
        logger.debug("DuckDB spatial extension unavailable: %s", exc)
    with tacoreader.load(os.fspath(dataset_url), backend="pyarrow") as taco:
        yield taco


def _describe(dataset_url: Any) -> str:
    return os.fspath(dataset_url) if isinstance(dataset_url, str | os.PathLike) else "dataset"


# ---- one tile ---------------------------------------------------------------------------------------------


def open_tile(
    dataset_url: str | os.PathLike[str] | TacoDataset,
    date: dt.date | dt.datetime | str,
    region: str,
    product: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    **open_kwargs: Any,
) -> xr.Dataset:
    """Open one tile of a built dataset lazily: ``open_tile("s3://b/taco", "2024-01-31", "NORTH_ATLANTIC",
    "l4_ssh")``.

    Args:
        dataset_url: local directory or bucket URL (``s3://``, ``gs://``, ``https://``) of the dataset, or
            a TacoDataset already loaded with ``tacoreader.load`` (saves a load per call).
        date: ``datetime.date``/``datetime`` or ISO string.
        region: one of the 8 region names (``NORTH_ATLANTIC``, ...).
        product: catalog token (``l4_ssh``) or output id (``l4_ssh.nc``).
        storage_options: fsspec options for the byte-range reads.
        open_kwargs: passed to ``xr.open_dataset`` (``chunks={}`` for dask, ``decode_times``, ...).

    The payload is found by navigation, ``read(day).read(region).read(id)``, and read lazily from its
    byte range; closing the dataset releases the file. Raises :class:`TileNotFoundError` (a
    ``LookupError``) when the day or region is not in the dataset or the slot is a placeholder, and
    ``ValueError`` for an unknown region or product name.
    """
    day = _as_date(date)
    name = lookup_region(region).name
    output_id, placeholder_id = _slot_ids(product)
    with _dataset(dataset_url) as taco:
        vsi = _locate(taco, day, name, output_id, placeholder_id, _describe(dataset_url))
    return _open_netcdf(vsi, storage_options, **open_kwargs)


def _locate(
    taco: TacoDataset, day: dt.date, name: str, output_id: str, placeholder_id: str, where: str
) -> str:
    day_id = f"{day:%Y_%m_%d}"
    days = _column(taco.data, "id")
    if day_id not in days:
        held = f"{len(days)} days, {min(days)}..{max(days)}" if days else "no days"
        raise TileNotFoundError(f"{where}: day {day} ({day_id}) is not in the dataset ({held})")
    regions = taco.read(day_id)
    if name not in _column(regions, "id"):
        raise TileNotFoundError(f"{where}: region {name} is not in day {day_id}")
    files = regions.read(name)
    ids = _column(files, "id")
    available = _column(files, "available") if "available" in files.columns else [True] * len(ids)
    if output_id in ids and available[ids.index(output_id)] is not False:
        return files.read(output_id)
    if placeholder_id in ids or output_id in ids:
        raise TileNotFoundError(
            f"{where}: no {output_id} tile in {name} on {day}: its slot is a placeholder (available = false)"
        )
    raise TileNotFoundError(f"{where}: {day_id}/{name} has no {output_id} slot (slots: {', '.join(ids)})")


# ---- bounding box over days -------------------------------------------------------------------------------


def open_bbox(
    dataset_url: str | os.PathLike[str] | TacoDataset,
    start: dt.date | dt.datetime | str,
    end: dt.date | dt.datetime | str | None = None,
    *,
    bbox: Sequence[float],
    product: str,
    tracks: Literal["merge", "drop"] = "merge",
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """One product inside ``bbox = (lon_min, lat_min, lon_max, lat_max)`` from ``start`` to ``end``
    (inclusive; ``end`` defaults to ``start``), combined over the region tiles it touches.

    Selection, as the published OceanTACO reader does it: ``tacoreader.load(url)`` →
    ``filter_datetime("start/end")`` → ``filter_bbox(..., level=1)`` → ``flatten()``, rows whose level-2
    id is the product's output id (placeholders never match). Each selected tile is opened lazily from its
    byte range and cropped *before* anything is read, so only the HDF5 chunks inside the box are fetched;
    the result is loaded into memory and every payload file is closed. The bbox is inclusive on both ends,
    in degrees with longitudes in [-180, 180] (no antimeridian crossing).

    Layout of the result, by what the tiles hold:

    * Gridded tiles (``lat``/``lon`` dimensions): each tile is cropped to ``lat_min <= lat <= lat_max``
      and ``lon_min <= lon <= lon_max``, a day's tiles are joined with ``xr.combine_by_coords`` (outer
      join, ``xr.merge`` as a fallback: where a tile of the box is missing that day the cells are NaN),
      and the days concatenated along
      ``time`` (a new dimension at 00:00 UTC of each day, or the tiles' own ``time``). Days with no tile
      of the product in the box are left out, so ``time`` lists exactly the days found.
    * Binned sparse tiles (``l3_ssh``, ``l3_swot``) also hold a per-tile track table on a ``track``
      dimension (``track_ids``, ``track_times``, ``track_platforms``) that ``primary_track`` indexes.
      With ``tracks="merge"`` (default) a day's tables become one table of the distinct track ids (in order
      of first appearance, tiles in region-name order) and ``primary_track`` is renumbered into it, so
      ``track_ids[time, primary_track]`` still names each cell's track; days shorter than the longest
      table are padded with "" (strings) or NaN. ``tracks="drop"`` drops the tables and ``primary_track``.
    * Point tables (Argo: one ``N_POINTS`` dimension with ``lat``/``lon``/``time`` coordinates): each
      tile's points are kept where their own ``lat``/``lon`` fall inside the box, and all tiles and days
      are concatenated along the point dimension; every point keeps its own ``time`` (no new dimension).

    Global attributes that differ between tiles or days are dropped. Raises :class:`TileNotFoundError`
    when no tile of the product intersects the box in the date range (or, for grids, no grid point lies
    inside it), ``ValueError`` for a malformed bbox, date range or product name. Needs DuckDB's spatial
    extension, installed on first use by :func:`ensure_duckdb_spatial`.
    """
    if tracks not in ("merge", "drop"):
        raise ValueError(f"tracks must be 'merge' or 'drop', got {tracks!r}")
    box = _check_bbox(bbox)
    first = _as_date(start)
    last = first if end is None else _as_date(end)
    if last < first:
        raise ValueError(f"end {last} is before start {first}")
    output_id, _ = _slot_ids(product)
    where = _describe(dataset_url)
    ensure_duckdb_spatial()
    with _dataset(dataset_url) as taco:
        flat = (
            taco.filter_datetime(f"{first.isoformat()}/{last.isoformat()}")
            .filter_bbox(*box, level=1)
            .flatten()
        )
        rows = _selected(flat, output_id)
    if not rows:
        raise TileNotFoundError(f"{where}: no {output_id} tile intersects {box} from {first} to {last}")
    by_day: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in rows:
        by_day[row["l0:id"]].append((row["l1:id"], row["gdal_vsi"]))

    days: list[tuple[dt.date, list[xr.Dataset]]] = []
    for day_id in sorted(by_day):
        day = dt.datetime.strptime(day_id, "%Y_%m_%d").date()
        tiles = [_read_cropped(vsi, box, storage_options) for _, vsi in sorted(by_day[day_id])]
        days.append((day, [tile for tile in tiles if tile is not None]))
    logger.debug("open_bbox %s %s: %d tile(s) over %d day(s)", where, output_id, len(rows), len(days))

    layouts = {_layout(tile) for _, tiles in days for tile in tiles}
    if layouts == {"points"}:
        return _concat_points([tile for _, tiles in days for tile in tiles])
    if layouts != {"grid"}:
        if not layouts:
            raise TileNotFoundError(f"{where}: no {output_id} grid point lies inside {box} ({first}..{last})")
        raise ValueError(f"{where}: {output_id} tiles mix gridded and point layouts")
    return _concat_grid_days([(day, tiles) for day, tiles in days if tiles], tracks)


def _selected(flat: Any, output_id: str) -> list[dict[str, Any]]:
    """(l0:id, l1:id, gdal_vsi) of the flattened rows whose level-2 id is ``output_id``, as dicts."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(flat, pa.Table):  # a TacoDataset loaded by the caller with another backend
        flat = (
            flat.to_arrow() if hasattr(flat, "to_arrow") else pa.Table.from_pandas(flat, preserve_index=False)
        )
    keep = pc.equal(flat["l2:id"], output_id)
    if "l2:available" in flat.column_names:
        keep = pc.and_(keep, pc.fill_null(flat["l2:available"], True))
    return flat.filter(keep).select(["l0:id", "l1:id", "gdal_vsi"]).to_pylist()


def _layout(ds: xr.Dataset) -> Literal["grid", "points"]:
    if "lat" in ds.dims and "lon" in ds.dims:
        return "grid"
    if (
        "lat" in ds.variables
        and "lon" in ds.variables
        and ds["lat"].ndim == 1
        and ds["lat"].dims == ds["lon"].dims
    ):
        return "points"
    raise ValueError(f"{ds.encoding.get('source', 'tile')}: neither a lat/lon grid nor a point table")


def _read_cropped(
    vsi: str, box: tuple[float, float, float, float], storage_options: Mapping[str, Any] | None
) -> xr.Dataset | None:
    """The tile's part inside the box, loaded; None for a grid tile with no grid point inside."""
    lon_min, lat_min, lon_max, lat_max = box
    with _open_netcdf(vsi, storage_options) as ds:
        if _layout(ds) == "grid":
            lat, lon = ds["lat"].values, ds["lon"].values
            ilat = np.flatnonzero((lat >= lat_min) & (lat <= lat_max))
            ilon = np.flatnonzero((lon >= lon_min) & (lon <= lon_max))
            if ilat.size == 0 or ilon.size == 0:
                return None
            cropped = ds.isel(lat=ilat, lon=ilon)
        else:
            lat, lon = ds["lat"].values, ds["lon"].values
            inside = (lat >= lat_min) & (lat <= lat_max) & (lon >= lon_min) & (lon <= lon_max)
            cropped = ds.isel({ds["lat"].dims[0]: np.flatnonzero(inside)})
        return cropped.load()


def _concat_points(tiles: list[xr.Dataset]) -> xr.Dataset:
    (dim,) = tiles[0]["lat"].dims
    if len(tiles) == 1:
        return tiles[0]
    return xr.concat(
        tiles,
        dim=dim,
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    )


def _table_names(ds: xr.Dataset) -> list[str]:
    """Variables on a dimension other than lat/lon/time: per-tile tables such as the track table."""
    return [str(name) for name, var in ds.variables.items() if not set(var.dims) <= _GRID_DIMS]


def _combine_day(tiles: list[xr.Dataset]) -> xr.Dataset:
    if len(tiles) == 1:
        return tiles[0]
    try:
        return xr.combine_by_coords(
            tiles,
            compat="no_conflicts",
            data_vars="all",
            coords="different",
            join="outer",
            combine_attrs="drop_conflicts",
        )
    except ValueError:
        # Not a full hypercube (a tile of the box is missing that day): outer-join what is there.
        return xr.merge(tiles, compat="no_conflicts", join="outer", combine_attrs="drop_conflicts")


def _merge_tracks(tiles: list[xr.Dataset]) -> tuple[list[xr.Dataset], dict[str, xr.Variable]]:
    """Tiles without their track tables (primary_track renumbered) and the day's merged table."""
    union: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    template: dict[str, xr.Variable] = {}
    grids = []
    for ds in tiles:
        names = _table_names(ds)
        if not names:
            grids.append(ds)
            continue
        if _TRACK_IDS not in names or any(ds[n].dims != (_TRACK_DIM,) for n in names):
            raise ValueError(
                f"{ds.encoding.get('source', 'tile')}: per-tile tables {names} are not one-dimensional "
                f"on '{_TRACK_DIM}' with '{_TRACK_IDS}'; use tracks='drop'"
            )
        values = {n: ds[n].values for n in names}
        lut = np.empty(ds.sizes[_TRACK_DIM], dtype=np.int64)
        for i, track_id in enumerate(values[_TRACK_IDS]):
            key = str(track_id)
            if key not in union:
                union[key] = len(rows)
                rows.append({n: values[n][i] for n in names})
            lut[i] = union[key]
        for n in names:
            template.setdefault(n, ds[n].variable)
        grid = ds.drop_vars(names)
        if _TRACK_INDEX in grid:
            grid[_TRACK_INDEX] = grid[_TRACK_INDEX].copy(data=_renumber(grid[_TRACK_INDEX].values, lut))
        grids.append(grid)
    table = {
        n: xr.Variable(
            (_TRACK_DIM,), _fill_array([row.get(n) for row in rows], var.dtype, len(rows)), var.attrs
        )
        for n, var in template.items()
    }
    return grids, table


def _renumber(index: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map tile-local track indices through ``lut``; negative or NaN (empty cell) entries stay as they are."""
    out = index.copy()
    valid = np.isfinite(index) & (index >= 0) if index.dtype.kind == "f" else index >= 0
    out[valid] = lut[index[valid].astype(np.int64)]
    return out


def _fill_array(values: list[Any], dtype: np.dtype, length: int) -> np.ndarray:
    """``values`` padded to ``length`` with "" (strings), NaN (floats) or -1 (integers)."""
    kind = np.dtype(dtype).kind
    if kind in "OUS":
        out = np.full(length, "", dtype=object)
    elif kind in "iu":
        out = np.full(length, -1, dtype=dtype)
    else:
        out = np.full(length, np.nan, dtype=np.result_type(dtype, np.float32))
    for i, value in enumerate(values):
        if value is not None:
            out[i] = value
    return out


def _concat_grid_days(days: list[tuple[dt.date, list[xr.Dataset]]], tracks: str) -> xr.Dataset:
    combined: list[xr.Dataset] = []
    tables: list[dict[str, xr.Variable]] = []
    for day, tiles in days:
        if tracks == "drop":
            grids = [ds.drop_vars([*_table_names(ds), _TRACK_INDEX], errors="ignore") for ds in tiles]
            table: dict[str, xr.Variable] = {}
        else:
            grids, table = _merge_tracks(tiles)
        ds = _combine_day(grids)
        if "time" not in ds.dims:
            ds = ds.expand_dims(time=[np.datetime64(day.isoformat(), "ns")])
        combined.append(ds)
        tables.append(table)
    if any(tables):
        # One track table per day, padded to the longest, with a time dimension like every data variable.
        names = {n: var for table in tables for n, var in table.items()}
        length = max((next(iter(t.values())).size for t in tables if t), default=0)
        for i, table in enumerate(tables):
            n_time = combined[i].sizes["time"]
            for n, var in names.items():
                values = table[n].values if n in table else np.array([], dtype=var.dtype)
                padded = _fill_array(list(values), var.dtype, length)
                combined[i][n] = (("time", _TRACK_DIM), np.tile(padded, (n_time, 1)), var.attrs)
    if len(combined) == 1:
        return combined[0]
    return xr.concat(
        combined,
        dim="time",
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="drop_conflicts",
    )


# ---- DuckDB spatial extension -----------------------------------------------------------------------------

_spatial_lock = threading.Lock()
_spatial_path: str | None = None


def ensure_duckdb_spatial() -> str:
    """Install DuckDB's spatial extension from the ``duckdb-ext-spatial`` wheel, once per machine.

    ``filter_bbox`` needs ``ST_Intersects``; tacoreader runs ``INSTALL spatial; LOAD spatial`` on every
    load, which downloads the extension unless it is already in DuckDB's extension directory
    (``~/.duckdb/extensions/<version>/<platform>``). This installs it there from the wheel's file (found in
    the installed distribution for this DuckDB version and platform), so that step works offline. Checked
    once per process; returns the installed extension's path. Raises ``RuntimeError`` when the wheel has no
    extension for this DuckDB.
    """
    global _spatial_path
    with _spatial_lock:
        if _spatial_path is not None:
            return _spatial_path
        import duckdb

        with duckdb.connect(":memory:") as con:
            loads = _spatial_loads(con)
            if not loads:
                source = _wheel_extension(con)
                con.execute(f"FORCE INSTALL '{str(source).replace(chr(39), chr(39) * 2)}'")
                logger.info("installed DuckDB's spatial extension from %s", source)
        if not loads:
            with duckdb.connect(":memory:") as con:
                con.execute("LOAD spatial")  # raises if the installed file is unusable
        with duckdb.connect(":memory:") as con:
            (path,) = con.execute(
                "SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'spatial'"
            ).fetchone()
        _spatial_path = str(path)
        return _spatial_path


def _spatial_loads(con: Any) -> bool:
    """True when the spatial extension is installed and loads."""
    import duckdb

    row = con.execute("SELECT installed FROM duckdb_extensions() WHERE extension_name = 'spatial'").fetchone()
    if not row or not row[0]:
        return False
    try:
        con.execute("LOAD spatial")
    except duckdb.Error as exc:
        logger.warning("DuckDB's installed spatial extension does not load (%s); reinstalling it", exc)
        return False
    return True


def _wheel_extension(con: Any) -> Path:
    """The ``spatial.duckdb_extension`` file of the installed duckdb-ext-spatial for this DuckDB build."""
    import importlib.metadata

    import duckdb

    version = f"v{duckdb.__version__}"
    (platform,) = con.execute("PRAGMA platform").fetchone()
    try:
        dist = importlib.metadata.distribution(_SPATIAL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"DuckDB's spatial extension is not installed and {_SPATIAL_PACKAGE} is missing: "
            f"pip install '{_SPATIAL_PACKAGE}=={duckdb.__version__}.*'"
        ) from None
    files = [f for f in dist.files or () if f.name == _SPATIAL_EXTENSION]
    for file in files:
        if version in file.parts and platform in file.parts:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    shipped = ", ".join("/".join(f.parts[-3:-1]) for f in files) or "none"
    raise RuntimeError(
        f"{_SPATIAL_PACKAGE} {dist.version} has no spatial extension for DuckDB {version} on {platform} "
        f"(it ships: {shipped})"
    )
