"""Regular lat/lon grids: GLORYS and the Copernicus Marine L3/L4 products, including hourly wind.

A day is read once: each needed variable as its stored (packed) 2-D array in file order, plus the two
axes sorted to ascending latitude and [-180, 180) longitude. Each tile then takes its block, decodes it
with the variable's own CF attributes, converts units when the catalog's differ, and packs it with the
catalog's encoding. Products whose catalog variables carry a ``statistic`` combine every time step of the
day's files (24 hourly wind fields) into running per-cell accumulators instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from oceantaco.catalog import Product, VariableEncoding
from oceantaco.encoding import encode_dataset
from oceantaco.loaders import InputError, Tile, day_bounds_us, register
from oceantaco.loaders.cf import Packing, convert_units, decode
from oceantaco.loaders.netcdf import NetcdfFile, Variable, open_netcdf
from oceantaco.regions import REGIONS, normalize_lon

_COORD_NAMES = {"latitude": "lat", "longitude": "lon"}
# 256 is as small and as fast as 512 or 1024 at zlib level 1 (benchmarks/encoding_choices.py)
TILE_CHUNKS = {"lat": 256, "lon": 256}
Selector = slice | np.ndarray


@dataclass(frozen=True)
class Axis:
    """A coordinate sorted ascending, with the file index of every sorted position (duplicates dropped)."""

    values: np.ndarray
    file_index: np.ndarray

    @classmethod
    def from_file(cls, values: np.ndarray) -> Axis:
        if np.isnan(values).any():
            raise InputError("coordinate holds missing values")
        unique, first = np.unique(values, return_index=True)
        return cls(unique, first)

    def select(self, start: int, stop: int) -> Selector:
        """File-order selector of sorted positions [start, stop): a slice when contiguous, else indices."""
        index = self.file_index[start:stop]
        step = np.diff(index)
        if index.size > 1 and (np.all(step == 1) or np.all(step == -1)):
            end = index[-1] + step[0]
            return slice(int(index[0]), None if end < 0 else int(end), int(step[0]))
        return index if index.size > 1 else slice(int(index[0]), int(index[0]) + 1)


class Field:
    """One output variable of a day: physical float64 values for any block of the file-order grid."""

    def block(self, rows: Selector, cols: Selector) -> np.ndarray:
        raise NotImplementedError

    def has_values(self) -> bool:
        """Whether any cell holds a value (not fill, missing or NaN)."""
        raise NotImplementedError


def _take(data: np.ndarray, rows: Selector, cols: Selector) -> np.ndarray:
    return data[rows][:, cols] if isinstance(rows, np.ndarray) else data[rows, cols]


@dataclass
class StoredField(Field):
    """A variable as the file stores it, decoded block by block."""

    data: np.ndarray
    attrs: Mapping
    target_units: str
    name: str

    def block(self, rows: Selector, cols: Selector) -> np.ndarray:
        values = decode(_take(self.data, rows, cols), self.attrs)
        return convert_units(values, self.attrs.get("units"), self.target_units, name=self.name)

    def has_values(self) -> bool:
        packing = Packing.of(self.attrs)
        return not packing.missing_mask(packing.stored(self.data)).all()


class Accumulator:
    """Running per-cell count, sum, sum of squares, min and max of one variable over time steps.

    Works on the stored values (packed integers) and applies the packing once at the end: the decoding is
    affine, so the statistics of decoded values follow from those of stored ones, at a fraction of the cost
    of decoding every hourly field.
    """

    def __init__(self, shape: tuple[int, int], dtype: np.dtype, attrs: Mapping, target_units: str) -> None:
        self.packing = Packing.of(attrs)
        self.units = attrs.get("units")
        self.target_units = target_units
        self.dtype = np.dtype(dtype)
        # Sums of small integers stay exact and fast in integer arithmetic; anything else sums in float64.
        self.small_int = self.dtype.kind in "iu" and self.dtype.itemsize <= 2
        self.count = np.zeros(shape, np.int16)
        self.total = np.zeros(shape, np.int32 if self.small_int else np.float64)
        self.squares = np.zeros(shape, np.int64 if self.small_int else np.float64)
        limits = np.iinfo(self.dtype) if self.dtype.kind in "iu" else np.finfo(self.dtype)
        self.largest, self.smallest = self.dtype.type(limits.max), self.dtype.type(limits.min)
        self.low = np.full(shape, self.largest, self.dtype)
        self.high = np.full(shape, self.smallest, self.dtype)

    def matches(self, dtype: np.dtype, attrs: Mapping) -> bool:
        same_packing = Packing.of(attrs) == self.packing and attrs.get("units") == self.units
        return np.dtype(dtype) == self.dtype and same_packing

    def add(self, raw: np.ndarray) -> int:
        """Add one time step; returns how many of its cells hold a value."""
        data = self.packing.stored(raw)
        valid = ~self.packing.missing_mask(data)
        self.count += valid
        clean = np.where(valid, data, self.dtype.type(0))
        wide = clean.astype(np.int32 if self.small_int else np.float64)
        self.total += wide
        wide *= wide
        self.squares += wide
        np.minimum(self.low, np.where(valid, data, self.largest), out=self.low)
        np.maximum(self.high, np.where(valid, data, self.smallest), out=self.high)
        return int(np.count_nonzero(valid))

    def physical(self, stored: np.ndarray) -> np.ndarray:
        values = stored * self.packing.scale + self.packing.offset
        return convert_units(values, self.units, self.target_units, name="hourly statistics")

    def statistic(self, name: str, rows: Selector, cols: Selector) -> np.ndarray:
        count = _take(self.count, rows, cols).astype(np.float64)
        count[count == 0] = np.nan
        if name in ("min", "max"):
            # A negative scale swaps which stored extreme is the physical minimum.
            low_stored = (name == "min") == (self.packing.scale > 0)
            extreme = self.physical(
                _take(self.low if low_stored else self.high, rows, cols).astype(np.float64)
            )
            extreme[np.isnan(count)] = np.nan
            return extreme
        mean = _take(self.total, rows, cols) / count
        if name == "mean":
            return self.physical(mean)
        # Population standard deviation (ddof = 0); unit conversions here are offsets, which leave it as is.
        variance = np.maximum(_take(self.squares, rows, cols) / count - mean * mean, 0.0)
        return np.sqrt(variance) * abs(self.packing.scale)


@dataclass
class StatisticField(Field):
    accumulator: Accumulator
    statistic: str

    def block(self, rows: Selector, cols: Selector) -> np.ndarray:
        return self.accumulator.statistic(self.statistic, rows, cols)

    def has_values(self) -> bool:
        return bool(self.accumulator.count.any())


@dataclass
class GridDay:
    lat: Axis
    lon: Axis
    fields: dict[str, Field]
    variable_attrs: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, object] = field(default_factory=dict)
    n_time_steps: int | None = None


@contextmanager
def _open(path: Path) -> Iterator[NetcdfFile]:
    """The file's variables, undecoded (stored values and their attributes), with ``lat``/``lon`` names."""
    with open_netcdf(path, _COORD_NAMES) as ds:
        if "lat" not in ds or "lon" not in ds:
            raise InputError(f"{path.name}: no lat/lon coordinates")
        yield ds


def _axes(ds: NetcdfFile, path: Path) -> tuple[Axis, Axis]:
    try:
        lat = Axis.from_file(decode(ds["lat"].read(), ds["lat"].attrs))
        lon = Axis.from_file(normalize_lon(decode(ds["lon"].read(), ds["lon"].attrs)))
    except InputError as exc:
        raise InputError(f"{path.name}: {exc}") from None
    return lat, lon


def _level(ds: NetcdfFile, var: Variable, name: str, spec: VariableEncoding, product: Product, path: Path):
    """Index along ``depth`` for ``spec.depth_m`` and the level's depth, or a reason it is not there."""
    depths = decode(ds["depth"].read(), ds["depth"].attrs) if "depth" in ds else None
    if spec.depth_m is None or depths is None:
        if var.sizes["depth"] != 1:
            raise InputError(f"{path.name}: {name} has {var.sizes['depth']} depth levels and no target depth")
        return 0, None if depths is None else float(depths[0]), None
    index = int(np.nanargmin(np.abs(depths - spec.depth_m)))
    tolerance = product.depth_tolerance_m if product.depth_tolerance_m is not None else np.inf
    if abs(depths[index] - spec.depth_m) > tolerance:
        levels = ", ".join(f"{d:g}" for d in depths)
        return None, None, f"no depth level within {tolerance:g} m of {spec.depth_m:g} m (levels: {levels})"
    return index, float(depths[index]), None


def _plane(var: Variable, fixed: dict[str, int], name: str, path: Path, *, time_steps: bool) -> np.ndarray:
    """The (lat, lon) plane, or (time, lat, lon) when stepping; other dims must be fixed or length 1."""
    if "lat" not in var.dims or "lon" not in var.dims:
        raise InputError(f"{path.name}: {name} has dims {var.dims}, expected lat and lon among them")
    index = {}
    for dim, size in var.sizes.items():
        if dim in ("lat", "lon") or (time_steps and dim == "time"):
            continue
        if dim in fixed:
            index[dim] = fixed[dim]
        elif size == 1:
            index[dim] = 0
        else:
            raise InputError(f"{path.name}: {name} has dims {var.dims}; {dim} must have length 1")
    kept = [d for d in var.dims if d not in index]
    order = [d for d in ("time", "lat", "lon") if d in kept]
    return np.transpose(var.read(index), [kept.index(d) for d in order])


def _check_required(ds: NetcdfFile, product: Product, path: Path, names: list[str]) -> None:
    missing = [n for n in names if (product.variables[n].source or n) not in ds]
    if missing:
        raise InputError(f"{path.name}: main variable(s) {', '.join(missing)} missing")


def _all_fill(path: Path, name: str) -> InputError:
    # Gridded products are global daily fields (L4 analyses, models, L3 daily composites): a main variable
    # without a single value is a broken file, never a real day, and must not become tiles of fill.
    return InputError(f"{path.name}: main variable {name} holds only fill values (no valid cell)")


def read_day(path: Path, product: Product, *, names: list[str] | None = None) -> GridDay:
    """One file holding one time step: every catalog variable present, stored and ready to cut into tiles."""
    with _open(path) as ds:
        return _read_stored(ds, path, product, names)


def _read_stored(ds: NetcdfFile, path: Path, product: Product, names: list[str] | None) -> GridDay:
    names = names or list(product.variables)
    _check_required(ds, product, path, [n for n in product.required_variables() if n in names])
    lat, lon = _axes(ds, path)
    day = GridDay(lat, lon, {})
    omitted = {}
    for name in names:
        spec = product.variables[name]
        source = spec.source or name
        if source not in ds:
            continue
        var = ds[source]
        fixed = {}
        if "depth" in var.dims:
            index, depth, reason = _level(ds, var, name, spec, product, path)
            if reason:
                if spec.required:
                    raise InputError(f"{path.name}: {name}: {reason}")
                omitted[name] = reason
                continue
            fixed["depth"] = index
            if depth is not None:
                day.variable_attrs[name] = {"depth": depth, "depth_units": "m"}
        plane = _plane(var, fixed, name, path, time_steps=False)
        day.fields[name] = StoredField(plane, var.attrs, spec.units, f"{path.name}: {name}")
    if omitted:
        day.notes["omitted_variables"] = "; ".join(f"{k}: {v}" for k, v in omitted.items())
    for name in product.required_variables():
        if name in day.fields and not day.fields[name].has_values():
            raise _all_fill(path, name)
    return day


def aggregate_days(paths: list[Path], product: Product) -> GridDay:
    """Per-cell statistics over every time step of ``paths`` (hourly files of one day)."""
    statistics = {n: s for n, s in product.variables.items() if s.statistic}
    units = {s.source or n: s.units for n, s in statistics.items()}
    accumulators: dict[str, Accumulator] = {}
    axes = None
    steps = 0
    for path in paths:
        with _open(path) as ds:
            axes, file_steps = _accumulate(ds, path, product, units, axes, accumulators)
        steps += file_steps
    assert axes is not None
    fields = {
        n: StatisticField(accumulators[s.source or n], s.statistic or "mean") for n, s in statistics.items()
    }
    return GridDay(axes[0], axes[1], fields, notes={"n_time_steps": steps}, n_time_steps=steps)


def _accumulate(
    ds: NetcdfFile,
    path: Path,
    product: Product,
    units: dict[str, str],
    axes: tuple[Axis, Axis] | None,
    accumulators: dict[str, Accumulator],
) -> tuple[tuple[Axis, Axis], int]:
    """Add every time step of one file; returns the day's axes and the file's number of time steps."""
    _check_required(ds, product, path, product.required_variables())
    file_axes = _axes(ds, path)
    if axes is None:
        axes = file_axes
    elif not all(np.array_equal(a.values, b.values) for a, b in zip(axes, file_axes, strict=True)):
        raise InputError(f"{path.name}: grid differs from the day's other files")
    file_steps = 0
    required = {product.variables[n].source or n for n in product.required_variables()}
    for source, target_units in units.items():
        if source not in ds:
            raise InputError(f"{path.name}: {source} missing")
        var = ds[source]
        plane = _plane(var, {}, source, path, time_steps=True)
        if source not in accumulators:
            shape = (axes[0].values.size, axes[1].values.size)
            accumulators[source] = Accumulator(shape, var.dtype, var.attrs, target_units)
        elif not accumulators[source].matches(var.dtype, var.attrs):
            raise InputError(f"{path.name}: {source} is stored differently from the day's other files")
        stored = plane if "time" in var.dims else plane[None]
        file_steps = stored.shape[0]
        valid = sum(accumulators[source].add(step) for step in stored)
        if source in required and not valid:
            raise _all_fill(path, source)
    return axes, file_steps


def _is_daily_input(product: Product, path: Path, day: dt.date) -> bool:
    return path.name == product.daily_input_name(day)


def grid_day(product: Product, day: dt.date, paths: list[Path]) -> GridDay:
    """The day's fields, from one daily file or from the time steps of several files."""
    if not paths:
        raise InputError(f"{product.token} {day}: no raw file")
    aggregating = any(s.statistic for s in product.variables.values())
    if aggregating and len(paths) == 1 and _is_daily_input(product, paths[0], day):
        # The original pipeline's daily mean: only the means exist, and how many hours made them is unknown.
        means = [n for n, s in product.variables.items() if s.statistic in (None, "mean")]
        grid = read_day(paths[0], product, names=means)
        grid.notes["input_aggregation"] = "daily mean file of the original pipeline (hour count unknown)"
        return grid
    if aggregating:
        return aggregate_days(paths, product)
    if len(paths) != 1:
        raise InputError(f"{product.token} {day}: expected one raw file, got {len(paths)}")
    return read_day(paths[0], product)


def grid_step(coord: np.ndarray) -> float | None:
    return float((coord[-1] - coord[0]) / (coord.size - 1)) if coord.size > 1 else None


def _bounds(mask: np.ndarray) -> tuple[int, int] | None:
    found = np.flatnonzero(mask)
    return (int(found[0]), int(found[-1]) + 1) if found.size else None


@register
class GridLoader:
    tiling = "grid"

    def tiles(self, product: Product, day: dt.date, paths: list[Path]) -> Iterator[Tile]:
        grid = grid_day(product, day, paths)
        for region in REGIONS:
            rows, cols = _bounds(region.lat_mask(grid.lat.values)), _bounds(region.lon_mask(grid.lon.values))
            if rows is None or cols is None:
                continue
            yield self._tile(product, day, grid, region, rows, cols)

    @staticmethod
    def _tile(product: Product, day: dt.date, grid: GridDay, region, rows, cols) -> Tile:
        tile_lat = grid.lat.values[rows[0] : rows[1]]
        tile_lon = grid.lon.values[cols[0] : cols[1]]
        row_sel, col_sel = grid.lat.select(*rows), grid.lon.select(*cols)
        coords = {
            "lat": xr.Variable("lat", tile_lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": xr.Variable("lon", tile_lon, {"units": "degrees_east", "standard_name": "longitude"}),
        }
        dataset, encoding, out_of_range = encode_dataset(
            {name: (("lat", "lon"), f.block(row_sel, col_sel)) for name, f in grid.fields.items()},
            product.variables,
            coords=coords,
            attrs=dict(grid.notes),
            chunks=TILE_CHUNKS,
            variable_attrs=grid.variable_attrs,
        )
        return Tile(
            region=region,
            dataset=dataset,
            encoding=encoding,
            bbox=[float(tile_lon[0]), float(tile_lat[0]), float(tile_lon[-1]), float(tile_lat[-1])],
            time_range_us=day_bounds_us(day),
            n_out_of_range=out_of_range,
            resolution_deg=(grid_step(tile_lat), grid_step(tile_lon)),
            n_time_steps=grid.n_time_steps,
        )
