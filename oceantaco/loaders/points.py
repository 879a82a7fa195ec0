"""Argo measurements -> good-QC points of the upper ocean, split by region.

Two kinds of input give the same tile variables:

* GDAC core profile files (format 3.1, dimension ``N_PROF``): delayed-mode (D) and adjusted (A) profiles
  use the ``*_ADJUSTED`` values and flags, real-time (R) profiles the raw ones.
* The original pipeline's daily point files ``argo_YYYYMMDD.nc`` (dimension ``N_POINTS``), argopy's
  ERDDAP point table. In argopy's research mode (what the pipeline asked for) the values are already
  merged by data mode and filtered, and DATA_MODE and every QC variable are gone; expert-mode tables still
  carry ``*_ADJUSTED`` columns, chosen by DATA_MODE as for profile files.

The same rules apply to both: a point is kept when its own time falls on the day (UTC), its position is
known, its position/time flags are good, its pressure and temperature are finite with good flags and the
pressure is within the catalog's limit. Salinity is kept where its own flag is good, else NaN (also when
the float or the file has no PSAL). A flag that the input does not hold is not checked, and the tile
stores it as missing; so is DATA_MODE ("") when a point file has none.

Only the variables the rules need are read (:func:`oceantaco.loaders.netcdf.open_netcdf`, which walks a
classic file's header without building the rest), undecoded, and decoded from their own attributes.
Everything runs on whole arrays, never a Python loop per point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from oceantaco.catalog import Product
from oceantaco.encoding import encode_dataset
from oceantaco.loaders import InputError, Tile, register
from oceantaco.loaders.cf import Packing, decode, decode_time
from oceantaco.loaders.netcdf import NetcdfFile, Variable, open_netcdf
from oceantaco.regions import REGIONS, Region, normalize_lon, region_index

PARAMETERS = ("PRES", "TEMP", "PSAL")
POINT_CHUNKS = {"N_POINTS": 65536}
TIME_UNITS = "days since 1950-01-01 00:00:00"
# Names of the same facts in profile files, argopy point tables and CF-style files, in order of preference.
TIME_NAMES = ("JULD", "TIME", "time")
TIME_FLAG_NAMES = ("JULD_QC", "TIME_QC")
LAT_NAMES = ("LATITUDE", "latitude", "lat")
LON_NAMES = ("LONGITUDE", "longitude", "lon")


@dataclass
class _Columns:
    """One input file as per-row arrays (rows: N_PROF or N_POINTS) and per-level ``(rows, levels)`` arrays.

    A point file has one level per row. Flags are float digits (NaN: no digit); ``None`` when absent.
    """

    time: np.ndarray  # datetime64[us], NaT where missing
    lat: np.ndarray
    lon: np.ndarray
    row_flags: list[np.ndarray]  # position and time flags that exist
    data_mode: np.ndarray  # str per row ("" where unknown)
    direction: np.ndarray  # str per row ("" where unknown)
    platform: np.ndarray  # int64 per row (-1 where not a number)
    cycle: np.ndarray  # int64 per row (-1 where missing)
    values: dict[str, np.ndarray]  # parameter -> float64 (rows, levels); absent parameters left out
    flags: dict[str, np.ndarray | None]


# --- reading ----------------------------------------------------------------------------------------------


# --- decoding helpers -------------------------------------------------------------------------------------


def _first(f: NetcdfFile, names: tuple[str, ...]) -> Variable | None:
    return next((f[n] for n in names if n in f), None)


def _texts(var: Variable) -> np.ndarray:
    """Char arrays (joining a trailing STRINGn dimension) or string variables -> stripped str per element."""
    data = var.read()
    if data.dtype.kind == "S" and data.dtype.itemsize == 1 and var.dims and var.dims[-1].startswith("STRING"):
        data = np.ascontiguousarray(data).view(f"S{data.shape[-1]}")[..., 0]
    if data.dtype.kind == "O":
        try:
            data = data.astype("S")
        except (UnicodeEncodeError, ValueError):
            data = data.astype("U")
    if data.dtype.kind == "S":
        data = np.char.decode(data, "ascii", errors="replace")
    return np.char.strip(data.astype("U"))


def _flag_digits(data: np.ndarray) -> np.ndarray:
    """Argo flags as float digits: chars '0'..'9' (GDAC files) or integers (argopy); NaN where no flag."""
    data = np.asarray(data)
    if data.dtype.kind == "S" and data.dtype.itemsize == 1:
        codes = data.view(np.uint8).astype(np.float64) - ord("0")
        codes[(codes < 0) | (codes > 9)] = np.nan
        return codes
    if data.dtype.kind in "iuf":
        return data.astype(np.float64)
    text = np.char.strip(data.astype("U"))
    return np.where(np.char.isdigit(text), text, "nan").astype(np.float64)


def _flags(f: NetcdfFile, name: str) -> np.ndarray | None:
    """Flag digits of variable ``name``, or None when the file has no such flag."""
    if name not in f:
        return None
    var = f[name]
    data = var.read()
    digits = _flag_digits(data)
    if data.dtype.kind in "iuf":  # numeric flags may carry a fill value
        digits[Packing.of(var.attrs).missing_mask(data)] = np.nan
    return digits


def _integers(var: Variable) -> np.ndarray:
    """Integer identifiers (numbers, or digits in text) as int64, -1 where missing or not a number."""
    if var.dtype.kind in "iuf":
        values = decode(var.read(), var.attrs)
        return np.where(np.isfinite(values), values, -1).astype(np.int64)
    text = _texts(var)
    return np.where(np.char.isdigit(text), text, "-1").astype(np.int64)


def _times(var: Variable, name: str) -> np.ndarray:
    """CF times of ``var`` (fill values included) as datetime64[us], NaT where missing."""
    return decode_time(decode(var.read(), var.attrs), var.attrs.get("units"), name=name)


def _choose_adjusted(f: NetcdfFile, param: str, adjusted: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Values and flags a user should read: ``*_ADJUSTED`` where ``adjusted`` (D/A rows), else raw."""
    var = f[param]
    values = decode(var.read(), var.attrs)
    flags = _flags(f, f"{param}_QC")
    if f"{param}_ADJUSTED" in f and adjusted.any():
        adj = f[f"{param}_ADJUSTED"]
        rows = adjusted.reshape((-1,) + (1,) * (values.ndim - 1))
        values = np.where(rows, decode(adj.read(), adj.attrs), values)
        adj_flags = _flags(f, f"{param}_ADJUSTED_QC")
        if flags is not None and adj_flags is not None:
            flags = np.where(rows, adj_flags, flags)
    return values, flags


def _columns(f: NetcdfFile, name: str, *, levels: bool) -> _Columns:
    """The facts the rules need, from a profile file (``levels``) or a point file (one level per row)."""
    missing = [label for label, var in (("PRES", "PRES"), ("TEMP", "TEMP")) if var not in f]
    time_var, lat_var, lon_var = _first(f, TIME_NAMES), _first(f, LAT_NAMES), _first(f, LON_NAMES)
    missing += [
        label
        for label, var in (("time", time_var), ("latitude", lat_var), ("longitude", lon_var))
        if var is None
    ]
    if missing:
        raise InputError(f"{name}: not an Argo profile or point file ({', '.join(missing)} missing)")
    time = _times(time_var, name)
    rows = time.size
    mode = _texts(f["DATA_MODE"]) if "DATA_MODE" in f else np.full(rows, "")
    direction = _texts(f["DIRECTION"]) if "DIRECTION" in f else np.full(rows, "")
    adjusted = np.isin(mode, ("D", "A"))
    values, flags = {}, {}
    for param in PARAMETERS:
        if param in f:
            v, q = _choose_adjusted(f, param, adjusted)
            values[param], flags[param] = (
                (v, q) if levels else (v[:, None], None if q is None else q[:, None])
            )
    row_flags = [
        q for q in (_flags(f, "POSITION_QC"), *(_flags(f, n) for n in TIME_FLAG_NAMES)) if q is not None
    ]
    return _Columns(
        time=time,
        lat=decode(lat_var.read(), lat_var.attrs),
        lon=decode(lon_var.read(), lon_var.attrs),
        row_flags=row_flags,
        data_mode=mode,
        direction=direction,
        platform=_integers(f["PLATFORM_NUMBER"]) if "PLATFORM_NUMBER" in f else np.full(rows, -1),
        cycle=_integers(f["CYCLE_NUMBER"]) if "CYCLE_NUMBER" in f else np.full(rows, -1),
        values=values,
        flags=flags,
    )


# --- the rules ---------------------------------------------------------------------------------------------


def _good(flags: np.ndarray | None, good: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Flag in ``good``; True everywhere when the input holds no such flag."""
    return np.ones(shape, dtype=bool) if flags is None else np.isin(flags, good)


def _points(c: _Columns, product: Product, day: dt.date) -> dict[str, np.ndarray]:
    """Kept points of one file as 1-D arrays (see the module docstring for the rules)."""
    good = np.array([float(g) for g in product.good_qc])
    rows = c.time.size
    row_ok = (
        (c.time.astype("datetime64[D]") == np.datetime64(day, "D")) & np.isfinite(c.lat) & np.isfinite(c.lon)
    )
    for flags in c.row_flags:
        row_ok &= np.isin(flags, good)
    pres, temp = c.values["PRES"], c.values["TEMP"]
    with np.errstate(invalid="ignore"):
        keep = (
            row_ok[:, None]
            & np.isfinite(pres)
            & (pres <= product.max_pressure_dbar)
            & _good(c.flags["PRES"], good, pres.shape)
            & np.isfinite(temp)
            & _good(c.flags["TEMP"], good, temp.shape)
        )
    row = np.broadcast_to(np.arange(rows)[:, None], keep.shape)[keep]
    points: dict[str, np.ndarray] = {
        "lat": c.lat[row],
        "lon": normalize_lon(c.lon[row]),
        "time": c.time[row],
        "PLATFORM_NUMBER": c.platform[row],
        "CYCLE_NUMBER": c.cycle[row],
        "DATA_MODE": c.data_mode[row],
        "DIRECTION": c.direction[row],
    }
    for param in PARAMETERS:
        if param not in c.values:
            points[param] = points[f"{param}_QC"] = np.full(row.size, np.nan)
            continue
        values, flags = c.values[param], c.flags[param]
        ok = _good(flags, good, values.shape) & np.isfinite(values)
        points[param] = np.where(ok, values, np.nan)[keep]
        points[f"{param}_QC"] = (
            np.full(row.size, np.nan) if flags is None else np.where(ok, flags, np.nan)[keep]
        )
    return points


def read_points(path: Path, product: Product, day: dt.date) -> dict[str, np.ndarray]:
    """Good points of one Argo profile file or point file whose own time falls on ``day`` (UTC)."""
    with open_netcdf(path) as f:
        dims = {d for name in ("TEMP", "PRES") if name in f for d in f[name].dims}
        if "N_PROF" in dims:
            columns = _columns(f, path.name, levels=True)
        elif "N_POINTS" in dims:
            columns = _columns(f, path.name, levels=False)
        else:
            raise InputError(
                f"{path.name}: neither an Argo profile file (N_PROF) nor a point file (N_POINTS)"
            )
    return _points(columns, product, day)


def count_profiles(platform: np.ndarray, cycle: np.ndarray, direction: np.ndarray) -> int:
    """Distinct (float, cycle, direction): the N_PROF samplings of one cycle are one profile."""
    if platform.size == 0:
        return 0
    codes = np.unique(direction, return_inverse=True)[1]
    return int(np.unique(np.stack([platform, cycle, codes.astype(np.int64)]), axis=1).shape[1])


@register
class ArgoPointsLoader:
    tiling = "points"

    def tiles(self, product: Product, day: dt.date, paths: list[Path]) -> Iterator[Tile]:
        parts = [read_points(p, product, day) for p in paths]
        if not parts:
            return
        points = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        which = region_index(points["lon"], points["lat"])
        for index, region in enumerate(REGIONS):
            sel = which == index
            if not sel.any():
                continue
            yield self._tile(product, region, {k: v[sel] for k, v in points.items()})

    @staticmethod
    def _tile(product: Product, region: Region, pts: dict[str, np.ndarray]) -> Tile:
        dims = ("N_POINTS",)
        numeric = {name: (dims, pts[name]) for name in product.variables}
        coords = {
            "lon": xr.Variable(dims, pts["lon"], {"units": "degrees_east", "standard_name": "longitude"}),
            "lat": xr.Variable(dims, pts["lat"], {"units": "degrees_north", "standard_name": "latitude"}),
            "time": xr.Variable(dims, pts["time"].astype("datetime64[ns]"), {"standard_name": "time"}),
        }
        dataset, encoding, out_of_range = encode_dataset(
            numeric, product.variables, coords=coords, attrs={}, chunks=POINT_CHUNKS
        )
        dataset["DATA_MODE"] = xr.Variable(dims, pts["DATA_MODE"].astype(object), {"long_name": "Data mode"})
        n_chunk = min(POINT_CHUNKS["N_POINTS"], pts["lon"].size)
        for name in ("lon", "lat"):
            encoding[name] = {"dtype": "float64", "zlib": True, "complevel": 1, "chunksizes": (n_chunk,)}
        encoding["time"] = {"units": TIME_UNITS, "calendar": "standard", "dtype": "float64"}
        micros = pts["time"].astype(np.int64)
        return Tile(
            region=region,
            dataset=dataset,
            encoding=encoding,
            bbox=[
                float(pts["lon"].min()),
                float(pts["lat"].min()),
                float(pts["lon"].max()),
                float(pts["lat"].max()),
            ],
            time_range_us=(int(micros.min()), int(micros.max())),
            n_out_of_range=out_of_range,
            n_points=int(pts["lon"].size),
            n_profiles=count_profiles(pts["PLATFORM_NUMBER"], pts["CYCLE_NUMBER"], pts["DIRECTION"]),
        )
