"""Sparse observations -> per-tile statistics on regular lat/lon grids, in one pass and bounded memory.

Used for the L3 along-track SSH (1-D points, ~7 km cells) and the SWOT L3 swaths (2-D pixels, ~2 km cells)::

    chunks (track, lat, lon, values) --located once--> TileAccumulator per hit tile --finish--> TileStatistics

Grid
    Every tile is 90° × 90° and holds ``n_lat × n_lon`` cells whose *edges* sit on the tile edges, so no cell
    straddles two tiles and neighbouring tiles join with ``xr.combine_by_coords`` into one regular grid.
    km -> degrees: 110.574 km per degree of latitude, 111.320 km · cos(45°) per degree of longitude, rounded
    so that 90° holds a whole number of cells (see :func:`tile_grid`).

Statistics of one cell
    - ``<var>``: mean of the finite values of that variable; ``<var>_sem``: sample standard deviation
      (ddof=1) / sqrt(n) over the same values, NaN where there are fewer than two.
    - ``n_obs``: number of observations whose *primary* (first) variable is finite. A NaN in another
      variable only removes the observation from that variable's statistics.
    - ``obs_mean_lon`` / ``obs_mean_lat``: mean position of those ``n_obs`` observations.
    - ``primary_track``: index into ``tracks`` of the track with most of those observations (ties -> the
      smaller track id, so the result does not depend on arrival order); ``is_overlap``: 1 exactly when
      more than one track has such an observation in the cell.
    - Empty cells (n_obs = 0): ``primary_track`` and ``is_overlap`` are -1 and the position is NaN; a
      variable other than the primary may still have a value there.
    - ``tracks``: the caller's ids of the tracks with at least one accepted observation (any variable
      finite) in *this* tile, ascending.

Memory
    Nothing is dense until the caller asks for an output array. Each tile buffers its accepted observations
    as compact rows, sorted by cell per chunk: cell int32, values float32 (offsets from a per-variable
    constant), position within the cell as two int16 fractions (20 B for three variables). When a tile's
    buffer holds more than ``max(buffer_limit, cells already stored)`` observations it is folded into a
    sorted per-cell store (count, mean and M2 per variable, merged with Chan's pairwise formula), so memory
    stays proportional to the touched cells plus ``buffer_limit``. Reductions run over cell ranges of at most
    ``PIECE_OBS`` observations, which bounds their temporaries. A SWOT pass has ~1.5 observations per touched
    2 km cell, so for one day the raw rows are smaller than any per-cell state would be.

Precision
    Values are float32 offsets from a float32 constant per tile and variable (the mean of its first chunk),
    reduced with float64 sums and a two-pass variance (mean first, then squared deviations), so the SEM of
    values like 1000 ± 0.001 keeps float32 resolution of the *deviations*. Folded stores keep float32 means
    and M2 relative to the same constant. Positions are quantised to 1/65534 of a cell (~3 cm at 2 km).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import xarray as xr

from oceantaco.regions import REGIONS, Region, normalize_lon, region

KM_PER_DEG_LAT = 110.574  # WGS84 meridian degree at the equator (it grows to 111.694 km at the poles)
KM_PER_DEG_LON_EQUATOR = 111.320  # WGS84 equatorial circumference / 360
TILE_SPAN_DEG = 90.0
DEFAULT_BUFFER_LIMIT = 1 << 22  # observations buffered per tile before folding (~84 MB at 3 variables)
PIECE_OBS = 1 << 19  # observations reduced at once; bounds the temporaries of finish() to a few 10 MB
MAX_TRACKS_PER_TILE = int(np.iinfo(np.int16).max)  # primary_track is int16
_POSITION_SCALE = 65534.0  # int16 steps per cell: a fraction in [-0.5, 0.5] -> [-32767, 32767]

Chunk = tuple[int, np.ndarray, np.ndarray, Mapping[str, np.ndarray]]


# ---------------------------------------------------------------------------------------------------------
# Grid
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TileGrid:
    """Regular cells of one tile; cell (i, j) spans lat_min + [i, i+1)·lat_step, lon_min + [j, j+1)·lon_step.

    Flat cell index = i * n_lon + j. Row i = n_lat - 1 also holds lat = 90 in northern tiles.
    """

    region: Region
    resolution_km: float
    n_lat: int
    n_lon: int
    reference_lat: float

    @property
    def name(self) -> str:
        return self.region.name

    @property
    def lat_step(self) -> float:
        return TILE_SPAN_DEG / self.n_lat

    @property
    def lon_step(self) -> float:
        return TILE_SPAN_DEG / self.n_lon

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_lat, self.n_lon)

    @property
    def size(self) -> int:
        return self.n_lat * self.n_lon

    @property
    def lat(self) -> np.ndarray:
        """Cell-centre latitudes, ascending."""
        return self.region.lat_min + (np.arange(self.n_lat) + 0.5) * self.lat_step

    @property
    def lon(self) -> np.ndarray:
        """Cell-centre longitudes, ascending."""
        return self.region.lon_min + (np.arange(self.n_lon) + 0.5) * self.lon_step

    @property
    def index_dtype(self) -> type[np.signedinteger]:
        return np.int32 if self.size < np.iinfo(np.int32).max else np.int64

    @property
    def attrs(self) -> dict[str, object]:
        """Grid facts for the tile's global attributes."""
        return {
            "grid_resolution_km": float(self.resolution_km),
            "grid_lat_step_deg": self.lat_step,
            "grid_lon_step_deg": self.lon_step,
            "grid_reference_latitude_deg": self.reference_lat,
            "grid_km_per_deg_lat": KM_PER_DEG_LAT,
            "grid_km_per_deg_lon_at_equator": KM_PER_DEG_LON_EQUATOR,
            "grid_definition": (
                f"{self.n_lat} x {self.n_lon} cells whose edges align with the tile edges; "
                f"lat_step = 90/round(90/(km/{KM_PER_DEG_LAT})), "
                f"lon_step = 90/round(90/(km/({KM_PER_DEG_LON_EQUATOR}*cos({self.reference_lat:g} deg)))); "
                "coordinates are cell centres"
            ),
        }


@lru_cache(maxsize=64)
def _tile_grid(name: str, resolution_km: float) -> TileGrid:
    if not (resolution_km > 0 and math.isfinite(resolution_km)):
        raise ValueError(f"resolution_km must be a positive number, got {resolution_km!r}")
    reg = region(name)
    reference_lat = abs((reg.lat_min + reg.lat_max) / 2.0)
    lat_deg = resolution_km / KM_PER_DEG_LAT
    lon_deg = resolution_km / (KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(reference_lat)))
    n_lat = max(1, round(TILE_SPAN_DEG / lat_deg))
    n_lon = max(1, round(TILE_SPAN_DEG / lon_deg))
    return TileGrid(reg, float(resolution_km), n_lat, n_lon, reference_lat)


def tile_grid(tile: Region | str, resolution_km: float) -> TileGrid:
    """The grid of one tile at a nominal resolution.

    Latitude step = 90 / round(90 / (km / 110.574)); longitude step = 90 / round(90 / (km / (111.320 ·
    cos φ_ref))), φ_ref = 45° = |centre latitude| of every tile. Why 45°: cells are square in the middle of
    the tile (E-W width = km · cos φ / cos 45°: 1.41× km at the equator, 0.48× at 70°); every tile gets
    the same counts, so the eight grids form one regular global grid; and the sizes stay close to the
    published tiles, which used the tile's mean latitude too (2 km: 4976 × 3542 here vs 5001 × 3549;
    7 km: 1422 × 1012 vs 1429 × 1014). An equatorial reference would give 2 km tiles 41 % more cells, all
    narrower than 2 km. The constants are spherical approximations of WGS84 degree lengths.
    """
    name = tile if isinstance(tile, str) else tile.name
    return _tile_grid(name, float(resolution_km))


def _locate(
    grid: TileGrid, lat: np.ndarray, lon: np.ndarray, lat_min: np.ndarray | float, lon_min: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Row, column and int16 position in the cell of points known to lie in the tile at (lat_min, lon_min).

    Clipping puts lat = 90 into the last row and absorbs rounding at the upper edges; points below the
    origin never reach here, so truncation is floor. The position is (x - centre) / step in [-0.5, 0.5]
    scaled to int16: relative to the centre the mean cannot wrap (a cell never crosses the antimeridian)
    and has the same resolution (1/65534 of a cell) everywhere on the globe.
    """
    out = []
    with np.errstate(invalid="ignore"):  # NaN positions of points the caller discards
        for x, origin, n in ((lat, lat_min, grid.n_lat), (lon, lon_min, grid.n_lon)):
            t = (x - origin) * (n / TILE_SPAN_DEG)
            index = t.astype(np.int32)
            np.clip(index, 0, n - 1, out=index)
            t -= index
            t -= 0.5
            np.clip(t, -0.5, 0.5, out=t)
            t *= _POSITION_SCALE
            out += [index, np.rint(t).astype(np.int16)]
    return out[0], out[2], out[1], out[3]


def cell_index(grid: TileGrid, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Flat cell index (row * n_lon + col, int64) of every point, -1 where the point is outside the tile.

    Tile membership follows ``Region.contains`` exactly (half-open, lat = 90 in northern tiles, any
    longitude convention), so a point on a tile edge gets a cell in exactly one tile.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = normalize_lon(lon)
    inside = grid.region.contains(lon, lat)
    rows, cols, _, _ = _locate(grid, lat, lon, grid.region.lat_min, grid.region.lon_min)
    return np.where(inside, rows.astype(np.int64) * grid.n_lon + cols, -1)


def _band_table() -> np.ndarray:
    """REGIONS index by (lat band south/north, 90° lon band from -180), derived from REGIONS itself."""
    table = np.full((2, 4), -1, np.int8)
    for i, reg in enumerate(REGIONS):
        lat_band, lon_band = int(reg.lat_min >= 0), int((reg.lon_min + 180.0) // 90.0)
        expected = (-90.0 + 90.0 * lat_band, -180.0 + 90.0 * lon_band)
        spans = (reg.lat_max - reg.lat_min, reg.lon_max - reg.lon_min)
        if (reg.lat_min, reg.lon_min) != expected or spans != (TILE_SPAN_DEG, TILE_SPAN_DEG):
            raise RuntimeError(f"binning assumes 2 x 4 tiles of 90°; {reg} does not fit")
        table[lat_band, lon_band] = i
    if (table < 0).any():
        raise RuntimeError("binning assumes REGIONS covers the globe with 2 x 4 tiles")
    return table.ravel()


_BAND_TABLE = _band_table()
_REGION_LAT_MIN = np.array([r.lat_min for r in REGIONS], dtype=np.float64)
_REGION_LON_MIN = np.array([r.lon_min for r in REGIONS], dtype=np.float64)


def _route(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """``region_index`` for longitudes already normalised to [-180, 180), in one pass instead of nine.

    Same rules as ``Region.contains`` (half-open bands, lat = 90 in the north, -1 for non-finite or
    |lat| > 90); ``region_index`` normalises the longitudes once per tile, which cost ~60 ms per SWOT pass.
    """
    band = (lat >= 0.0).astype(np.int8) * 4
    band += lon >= -90.0
    band += lon >= 0.0
    band += lon >= 90.0
    where = _BAND_TABLE[band]
    where[~((lat >= -90.0) & (lat <= 90.0) & (lon == lon))] = -1
    return where


# ---------------------------------------------------------------------------------------------------------
# Reductions (on observations sorted by cell; nothing dense)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Block:
    """Accepted observations of one chunk in one tile, sorted by cell."""

    track: int  # tile-local track number
    cells: np.ndarray
    values: list[np.ndarray]  # float32 offsets from the accumulator's per-variable constant, NaN = missing
    qlat: np.ndarray  # int16 position within the cell, see _locate
    qlon: np.ndarray

    def between(self, lo: int, hi: int) -> _Block:
        a, b = np.searchsorted(self.cells, (lo, hi))
        return _Block(
            self.track, self.cells[a:b], [x[a:b] for x in self.values], self.qlat[a:b], self.qlon[a:b]
        )


@dataclass
class _Reduced:
    """Per-cell state, sorted by cell, plus the primary-valid count of every (cell, track) pair."""

    cells: np.ndarray
    n: np.ndarray  # (n_var, n_cell) int32
    mean: np.ndarray  # (n_var, n_cell) relative to the per-variable constant, 0 where n = 0
    m2: np.ndarray  # (n_var, n_cell) sum of squared deviations from the mean
    pos: np.ndarray  # (2, n_cell) mean (lat, lon) position in the cell in steps, 0 where n_obs = 0
    pair_cell: np.ndarray  # sorted by (cell, track)
    pair_track: np.ndarray  # tile-local track numbers
    pair_count: np.ndarray

    @property
    def size(self) -> int:
        return int(self.cells.size)

    def compact(self) -> _Reduced:
        """float32 moments for the long-lived store (offsets from the per-variable constant are small)."""
        return _Reduced(
            self.cells,
            self.n,
            self.mean.astype(np.float32),
            self.m2.astype(np.float32),
            self.pos.astype(np.float32),
            self.pair_cell,
            self.pair_track,
            self.pair_count,
        )

    def between(self, lo: int, hi: int) -> _Reduced:
        a, b = np.searchsorted(self.cells, (lo, hi))
        pa, pb = np.searchsorted(self.pair_cell, (lo, hi))
        return _Reduced(
            self.cells[a:b],
            self.n[:, a:b],
            self.mean[:, a:b],
            self.m2[:, a:b],
            self.pos[:, a:b],
            self.pair_cell[pa:pb],
            self.pair_track[pa:pb],
            self.pair_count[pa:pb],
        )

    @staticmethod
    def concat(parts: list[_Reduced]) -> _Reduced:
        """Join parts covering ascending, disjoint cell ranges."""
        return _Reduced(
            np.concatenate([p.cells for p in parts]),
            *(np.concatenate([getattr(p, f) for p in parts], axis=1) for f in ("n", "mean", "m2", "pos")),
            *(
                np.concatenate([getattr(p, f) for p in parts])
                for f in ("pair_cell", "pair_track", "pair_count")
            ),
        )


def _segment_starts(sorted_keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(0, np.intp)
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def _reduce_sorted(
    cells: np.ndarray,
    tracks: np.ndarray | int,
    values: Sequence[np.ndarray],
    qlat: np.ndarray,
    qlon: np.ndarray,
) -> _Reduced:
    """Observations sorted by (cell, track) -> per-cell moments and per-(cell, track) primary counts."""
    size = cells.size
    starts = _segment_starts(cells)
    counts = np.diff(starts, append=size).astype(np.int32)
    seg = np.repeat(np.arange(starts.size, dtype=np.int32), counts)
    n = np.empty((len(values), starts.size), np.int32)
    mean = np.empty((len(values), starts.size))
    m2 = np.empty((len(values), starts.size))
    valid0: np.ndarray | None = None
    for v, x in enumerate(values):
        valid = np.isfinite(x)
        all_valid = bool(valid.all())
        xz = x if all_valid else np.where(valid, x, np.float32(0))
        n[v] = counts if all_valid else np.add.reduceat(valid, starts, dtype=np.int32)
        mean[v] = np.add.reduceat(xz, starts, dtype=np.float64) / np.maximum(n[v], 1)
        # Two-pass variance: deviations from the cell mean, so no cancellation between large sums.
        dev = xz - mean[v][seg]
        if not all_valid:
            dev *= valid
        dev *= dev
        m2[v] = np.add.reduceat(dev, starts)
        if v == 0:
            valid0 = None if all_valid else valid
    n0 = np.maximum(n[0], 1)
    pos = np.empty((2, starts.size))
    for axis, q in enumerate((qlat, qlon)):
        qz = q if valid0 is None else np.where(valid0, q, np.int16(0))
        pos[axis] = np.add.reduceat(qz, starts, dtype=np.int64) / n0
    pos /= _POSITION_SCALE
    if isinstance(tracks, np.ndarray):
        pstarts = np.flatnonzero(
            np.concatenate(([True], (cells[1:] != cells[:-1]) | (tracks[1:] != tracks[:-1])))
        )
        count = (
            np.diff(pstarts, append=size).astype(np.int32)
            if valid0 is None
            else np.add.reduceat(valid0, pstarts, dtype=np.int32)
        )
        keep = count > 0
        pair_cell, pair_track, pair_count = cells[pstarts][keep], tracks[pstarts][keep], count[keep]
    else:
        keep = n[0] > 0
        pair_cell, pair_count = cells[starts][keep], n[0][keep]
        pair_track = np.full(pair_cell.size, tracks, np.int32)
    return _Reduced(cells[starts], n, mean, m2, pos, pair_cell, pair_track, pair_count)


def _reduce_blocks(blocks: list[_Block], n_tracks: int) -> _Reduced:
    if len(blocks) == 1:
        b = blocks[0]
        return _reduce_sorted(b.cells, b.track, b.values, b.qlat, b.qlon)
    lengths = [b.cells.size for b in blocks]
    tracks = np.repeat(np.array([b.track for b in blocks], np.int32), lengths)
    key = np.concatenate([b.cells for b in blocks]).astype(np.int64)
    key *= n_tracks
    key += tracks
    # Every block is sorted by cell already, so a stable sort (timsort) only merges runs: ~10x faster
    # than sorting from scratch.
    order = np.argsort(key, kind="stable")
    del key
    return _reduce_sorted(
        np.concatenate([b.cells for b in blocks])[order],
        tracks[order],
        [np.concatenate([b.values[v] for b in blocks])[order] for v in range(len(blocks[0].values))],
        np.concatenate([b.qlat for b in blocks])[order],
        np.concatenate([b.qlon for b in blocks])[order],
    )


def _merge(a: _Reduced, b: _Reduced, n_tracks: int) -> _Reduced:
    """Combine two per-cell states (Chan et al.'s pairwise update, vectorised over cells)."""
    if a.size == 0 or b.size == 0:
        return b if a.size == 0 else a
    cells = np.concatenate([a.cells, b.cells])
    order = np.argsort(cells, kind="stable")
    cells = cells[order]
    starts = _segment_starts(cells)
    seg = np.repeat(np.arange(starts.size, dtype=np.int32), np.diff(starts, append=cells.size))

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(a, name), getattr(b, name)], axis=1)[:, order]

    n_all = joined("n")
    mean_all = joined("mean").astype(np.float64)
    n = np.add.reduceat(n_all, starts, axis=1, dtype=np.int32)
    mean = np.add.reduceat(n_all * mean_all, starts, axis=1) / np.maximum(n, 1)
    spread = n_all * (mean_all - mean[:, seg]) ** 2
    m2 = np.add.reduceat(joined("m2").astype(np.float64), starts, axis=1)
    m2 += np.add.reduceat(spread, starts, axis=1)
    pos = np.add.reduceat(n_all[0] * joined("pos").astype(np.float64), starts, axis=1) / np.maximum(n[0], 1)

    pair_cell = np.concatenate([a.pair_cell, b.pair_cell])
    pair_track = np.concatenate([a.pair_track, b.pair_track])
    key = pair_cell.astype(np.int64) * n_tracks + pair_track
    porder = np.argsort(key, kind="stable")
    pstarts = _segment_starts(key[porder])
    pair_count = np.add.reduceat(np.concatenate([a.pair_count, b.pair_count])[porder], pstarts)
    first = porder[pstarts]
    return _Reduced(cells[starts], n, mean, m2, pos, pair_cell[first], pair_track[first], pair_count)


def _piece_edges(blocks: list[_Block], store: _Reduced | None, grid_size: int) -> np.ndarray:
    """Cell-range edges that split the work into pieces of about PIECE_OBS observations/stored cells."""
    total = sum(b.cells.size for b in blocks) + (0 if store is None else store.size)
    n_pieces = -(-total // PIECE_OBS)
    if n_pieces <= 1:
        return np.array([0, grid_size])
    stride = 16
    sample = np.concatenate(
        [b.cells[::stride] for b in blocks] + ([] if store is None else [store.cells[::stride]])
    )
    sample.sort()
    inner = np.unique(sample[(np.arange(1, n_pieces) * sample.size) // n_pieces])
    return np.concatenate(([0], inner, [grid_size]))


# ---------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------

_FILL: dict[str, object] = {"n_obs": 0, "primary_track": -1, "is_overlap": -1}
_RESERVED = ("n_obs", "obs_mean_lon", "obs_mean_lat", "primary_track", "is_overlap")
_INT_DTYPES = {"n_obs": np.int32, "primary_track": np.int16, "is_overlap": np.int8}


def _names(variables: Sequence[str]) -> tuple[str, ...]:
    return (*variables, *(f"{v}_sem" for v in variables), *_RESERVED)


def _dtype(name: str) -> type[np.number]:
    return _INT_DTYPES.get(name, np.float32)


@dataclass(frozen=True)
class TileStatistics:
    """Statistics of one tile, stored for its non-empty cells and made dense on request.

    Outputs (definitions in the module docstring): ``<var>``, ``<var>_sem`` (float32, NaN = empty),
    ``n_obs`` (int32, 0 = empty), ``obs_mean_lon``, ``obs_mean_lat`` (float32, NaN = empty),
    ``primary_track`` (int16 index into ``tracks``, -1 = empty), ``is_overlap`` (int8 0/1, -1 = empty).

    A dense SWOT tile (17.6 M cells × 39 B for three variables) is ~690 MB, so dense arrays are built per
    call and not cached: ``stats.dense(name)`` / ``stats[name]`` return one new (n_lat, n_lon) array, and
    :meth:`to_dataset` builds all of them for one tile.
    """

    grid: TileGrid
    variables: tuple[str, ...]
    cells: np.ndarray  # ascending flat indices of the cells with any finite value
    cell_values: dict[str, np.ndarray] = field(repr=False)  # output name -> values aligned with cells
    tracks: np.ndarray  # caller track ids with an accepted observation in this tile, ascending

    @property
    def n_tracks(self) -> int:
        return int(self.tracks.size)

    @property
    def names(self) -> tuple[str, ...]:
        return _names(self.variables)

    def dense(self, name: str) -> np.ndarray:
        """One output as a new (n_lat, n_lon) array, with the fill value where the cell is empty."""
        sparse = self.cell_values[name]
        out = np.full(self.grid.size, _FILL.get(name, np.nan), dtype=sparse.dtype)
        out[self.cells] = sparse
        return out.reshape(self.grid.shape)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.dense(name)

    def to_dataset(self) -> xr.Dataset:
        """All outputs on (lat, lon) cell-centre coordinates, with the grid's attributes."""
        coords = {
            "lat": ("lat", self.grid.lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", self.grid.lon, {"units": "degrees_east", "standard_name": "longitude"}),
        }
        data = {name: (("lat", "lon"), self.dense(name)) for name in self.names}
        return xr.Dataset(data, coords=coords, attrs={**self.grid.attrs, "n_tracks": self.n_tracks})


def _statistics(
    red: _Reduced, grid: TileGrid, variables: Sequence[str], offsets: Sequence[float], track_rank: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-cell outputs of one reduced piece (see TileStatistics)."""
    out: dict[str, np.ndarray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):  # empty cells; masked just below
        for v, name in enumerate(variables):
            n = red.n[v]
            out[name] = np.where(n > 0, offsets[v] + red.mean[v], np.nan).astype(np.float32)
            sem = np.sqrt(red.m2[v] / ((n - 1.0) * n))
            out[f"{name}_sem"] = np.where(n >= 2, sem, np.nan).astype(np.float32)
    n0 = red.n[0]
    has_obs = n0 > 0
    out["n_obs"] = n0.astype(np.int32)
    rows, cols = np.divmod(red.cells, grid.n_lon)
    lon = grid.region.lon_min + (cols + 0.5 + red.pos[1]) * grid.lon_step
    lat = grid.region.lat_min + (rows + 0.5 + red.pos[0]) * grid.lat_step
    out["obs_mean_lon"] = np.where(has_obs, lon, np.nan).astype(np.float32)
    out["obs_mean_lat"] = np.where(has_obs, lat, np.nan).astype(np.float32)

    primary = np.full(red.size, -1, np.int16)
    overlap = np.full(red.size, -1, np.int8)
    if red.pair_cell.size:
        track = track_rank[red.pair_track]
        pstarts = _segment_starts(red.pair_cell)
        n_pairs = np.diff(pstarts, append=red.pair_cell.size)
        best = track[pstarts]
        multi = n_pairs > 1
        if multi.any():
            # Few cells have several tracks: rank only their pairs by (cell, -count, track id).
            idx = np.flatnonzero(np.repeat(multi, n_pairs))
            order = np.lexsort((track[idx], -red.pair_count[idx], red.pair_cell[idx]))
            first = _segment_starts(red.pair_cell[idx][order])
            best[multi] = track[idx][order][first]
        # The pair cells are exactly the cells with n_obs > 0, both ascending.
        primary[has_obs] = best
        overlap[has_obs] = multi
    out["primary_track"], out["is_overlap"] = primary, overlap
    return out


# ---------------------------------------------------------------------------------------------------------
# Accumulation
# ---------------------------------------------------------------------------------------------------------


def _float_values(values: Mapping[str, np.ndarray], variables: Sequence[str], size: int) -> list[np.ndarray]:
    missing = [v for v in variables if v not in values]
    if missing:
        raise ValueError(f"values lack variables {missing}")
    out = []
    for v in variables:
        x = np.asarray(values[v])
        if x.size != size:
            raise ValueError(f"{v}: {x.size} values for {size} positions")
        out.append((x if x.dtype.kind == "f" else x.astype(np.float64)).reshape(-1))
    return out


def _positions(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lat = np.asarray(lat, dtype=np.float64).reshape(-1)
    lon = normalize_lon(lon).reshape(-1)
    if lat.size != lon.size:
        raise ValueError(f"{lat.size} latitudes for {lon.size} longitudes")
    return lat, lon


class TileAccumulator:
    """One-pass statistics of one tile: feed chunks with :meth:`add`, then call :meth:`finish` once.

    ``track`` is the caller's integer id of the pass/track/file a chunk came from (a track may arrive in
    several chunks); the caller keeps the metadata list and maps ``TileStatistics.tracks`` back to it.
    """

    def __init__(
        self, grid: TileGrid, variables: Sequence[str], *, buffer_limit: int = DEFAULT_BUFFER_LIMIT
    ) -> None:
        self.grid = grid
        self.variables = tuple(variables)
        if not self.variables:
            raise ValueError("at least one variable is needed")
        clash = set(self.variables) & {*_RESERVED, *(f"{v}_sem" for v in self.variables)}
        if clash or len(set(self.variables)) != len(self.variables):
            raise ValueError(f"variable names repeat or clash with output names: {sorted(clash)}")
        self.buffer_limit = int(buffer_limit)
        self.n_added = 0  # observations accepted so far
        self._offsets: list[float | None] = [None] * len(self.variables)
        self._track_of: dict[int, int] = {}  # caller id -> tile-local number, in arrival order
        self._blocks: list[_Block] = []
        self._n_buffered = 0
        self._store: _Reduced | None = None
        self._finished = False

    def add(self, track: int, lat: np.ndarray, lon: np.ndarray, values: Mapping[str, np.ndarray]) -> int:
        """Add observations (any shape, any longitude convention); returns how many were accepted.

        Points outside the tile, with non-finite positions, or without any finite value are ignored.
        """
        lat, lon = _positions(lat, lon)
        vals = _float_values(values, self.variables, lat.size)
        keep = self.grid.region.contains(lon, lat) & np.logical_or.reduce([np.isfinite(x) for x in vals])
        lat, lon, vals = lat[keep], lon[keep], [x[keep] for x in vals]
        region = self.grid.region
        rows, cols, qlat, qlon = _locate(self.grid, lat, lon, region.lat_min, region.lon_min)
        cells = rows.astype(self.grid.index_dtype) * self.grid.n_lon + cols
        order = np.argsort(cells, kind="stable")
        self._add_sorted(track, cells[order], [x[order] for x in vals], qlat[order], qlon[order])
        return int(order.size)

    def _add_sorted(
        self, track: int, cells: np.ndarray, values: list[np.ndarray], qlat: np.ndarray, qlon: np.ndarray
    ) -> None:
        """Buffer accepted observations already sorted by cell (also the router's entry point)."""
        if self._finished:
            raise RuntimeError("finish() was already called on this accumulator")
        if cells.size == 0:
            return
        local = self._track_of.setdefault(int(track), len(self._track_of))
        residuals = [self._residual(v, x) for v, x in enumerate(values)]
        self._blocks.append(_Block(local, cells, residuals, qlat, qlon))
        self._n_buffered += cells.size
        self.n_added += cells.size
        if self._n_buffered > max(self.buffer_limit, 0 if self._store is None else self._store.size):
            self._store = _Reduced.concat([red.compact() for red in self._reduce_pieces()])

    def _residual(self, v: int, x: np.ndarray) -> np.ndarray:
        offset = self._offsets[v]
        if offset is None:
            finite = x[np.isfinite(x)]
            if finite.size == 0:
                return x.astype(np.float32)  # all NaN: no constant needed yet
            # float32-representable, so float32 inputs subtract it without rounding the constant
            offset = self._offsets[v] = float(np.float32(finite.mean(dtype=np.float64)))
        if x.dtype == np.float32:
            return x - np.float32(offset)
        return (x.astype(np.float64, copy=False) - offset).astype(np.float32)

    def _reduce_pieces(self) -> Iterator[_Reduced]:
        """Empty the buffer and the store into per-cell states over ascending cell ranges."""
        blocks, store, n_tracks = self._blocks, self._store, len(self._track_of)
        self._blocks, self._n_buffered, self._store = [], 0, None
        edges = _piece_edges(blocks, store, self.grid.size)
        for lo, hi in itertools.pairwise(edges):
            parts = [part for b in blocks if (part := b.between(lo, hi)).cells.size]
            reduced = _reduce_blocks(parts, n_tracks) if parts else None
            stored = None if store is None else store.between(lo, hi)
            if reduced is None or stored is None:
                reduced = reduced if stored is None else stored
            else:
                reduced = _merge(stored, reduced, n_tracks)
            if reduced is not None and reduced.size:
                yield reduced

    def finish(self) -> TileStatistics:
        """Reduce everything into the tile's statistics; the accumulator is emptied and closed."""
        if self._finished:
            raise RuntimeError("finish() was already called on this accumulator")
        if len(self._track_of) > MAX_TRACKS_PER_TILE:
            raise ValueError(f"{len(self._track_of)} tracks in one tile; primary_track (int16) holds 32767")
        caller_ids = np.fromiter(self._track_of, dtype=np.int64, count=len(self._track_of))
        tracks = np.sort(caller_ids)
        track_rank = np.searchsorted(tracks, caller_ids).astype(np.int16)  # local number -> output index
        offsets = [0.0 if o is None else o for o in self._offsets]
        cells, pieces = [], []
        for red in self._reduce_pieces():
            cells.append(red.cells)
            pieces.append(_statistics(red, self.grid, self.variables, offsets, track_rank))
        self._finished = True
        if pieces:
            values = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}
            flat = np.concatenate(cells)
        else:
            values = {name: np.zeros(0, _dtype(name)) for name in _names(self.variables)}
            flat = np.zeros(0, self.grid.index_dtype)
        return TileStatistics(self.grid, self.variables, flat, values, tracks)


# ---------------------------------------------------------------------------------------------------------
# Routing to the eight tiles
# ---------------------------------------------------------------------------------------------------------


class TileBinner:
    """Locates each chunk once for all tiles and feeds per-tile accumulators, created on first hit."""

    def __init__(
        self, resolution_km: float, variables: Sequence[str], *, buffer_limit: int = DEFAULT_BUFFER_LIMIT
    ) -> None:
        self.resolution_km = float(resolution_km)
        self.variables = tuple(variables)
        self.buffer_limit = buffer_limit
        # All tiles share one cell layout (90° spans, same reference latitude), so one grid's numbers
        # locate points in any tile.
        self._layout = tile_grid(REGIONS[0], resolution_km)
        self._accumulators: dict[int, TileAccumulator] = {}

    @property
    def regions(self) -> list[str]:
        """Names of the tiles hit so far."""
        return [REGIONS[i].name for i in sorted(self._accumulators)]

    def add(self, track: int, lat: np.ndarray, lon: np.ndarray, values: Mapping[str, np.ndarray]) -> int:
        """Route one chunk (any shape, any longitude convention); returns the observations accepted."""
        lat, lon = _positions(lat, lon)
        vals = _float_values(values, self.variables, lat.size)
        grid = self._layout
        tile_size = grid.size

        where = _route(lat, lon).astype(np.int64)
        accepted = (where >= 0) & np.logical_or.reduce([np.isfinite(x) for x in vals])
        rows, cols, qlat, qlon = _locate(grid, lat, lon, _REGION_LAT_MIN[where], _REGION_LON_MIN[where])
        # One key orders by tile, then cell; rejected points sort past the end and are cut off.
        key = where * tile_size
        key += rows.astype(np.int64) * grid.n_lon
        key += cols
        key[~accepted] = len(REGIONS) * tile_size
        order = np.argsort(key, kind="stable")[: int(np.count_nonzero(accepted))]
        key, qlat, qlon, vals = key[order], qlat[order], qlon[order], [x[order] for x in vals]
        bounds = np.searchsorted(key, np.arange(len(REGIONS) + 1, dtype=np.int64) * tile_size)
        for r in np.flatnonzero(np.diff(bounds)):
            a, b = int(bounds[r]), int(bounds[r + 1])
            acc = self._accumulators.get(r)
            if acc is None:
                grid_r = tile_grid(REGIONS[r], self.resolution_km)
                acc = self._accumulators[r] = TileAccumulator(
                    grid_r, self.variables, buffer_limit=self.buffer_limit
                )
            cells = (key[a:b] - r * tile_size).astype(grid.index_dtype)
            acc._add_sorted(track, cells, [x[a:b] for x in vals], qlat[a:b], qlon[a:b])
        return int(order.size)

    def finish_iter(self) -> Iterator[tuple[str, TileStatistics]]:
        """Finish the tiles one at a time (REGIONS order), releasing each tile's buffer as it goes."""
        for r in sorted(self._accumulators):
            acc = self._accumulators.pop(r)
            yield REGIONS[r].name, acc.finish()

    def finish(self) -> dict[str, TileStatistics]:
        return dict(self.finish_iter())


def bin_observations(
    chunks: Iterable[Chunk],
    resolution_km: float,
    variables: Sequence[str],
    *,
    buffer_limit: int = DEFAULT_BUFFER_LIMIT,
) -> dict[str, TileStatistics]:
    """Bin ``(track, lat, lon, values)`` chunks into every tile they hit (tiles without data are absent).

    ``variables`` names the value arrays to bin; the first is the primary one that defines ``n_obs``.
    To write tiles as they finish (lower peak memory), use :class:`TileBinner` and ``finish_iter()``.
    """
    binner = TileBinner(resolution_km, variables, buffer_limit=buffer_limit)
    for track, lat, lon, values in chunks:
        binner.add(track, lat, lon, values)
    return binner.finish()
