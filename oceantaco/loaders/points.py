"""Argo core profile files (GDAC format 3.1) -> good-QC points of the upper ocean, split by region.

Delayed-mode (D) and adjusted (A) profiles use the ``*_ADJUSTED`` values and flags; real-time (R) profiles
the raw ones. A level is kept when its pressure and temperature are good and the pressure is within the
catalog's limit; salinity is kept where its own flag is good (and is absent on floats without PSAL).
Everything runs on whole (N_PROF, N_LEVELS) arrays, never a Python loop per point.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from oceantaco.catalog import Product
from oceantaco.encoding import encode_dataset
from oceantaco.loaders import InputError, Tile, netcdf_engine, register
from oceantaco.regions import REGIONS, Region, normalize_lon, region_index

PARAMETERS = ("PRES", "TEMP", "PSAL")
POINT_CHUNKS = {"N_POINTS": 65536}
TIME_UNITS = "days since 1950-01-01 00:00:00"


def _chars(var: xr.DataArray) -> np.ndarray:
    """Blank-padded char array -> stripped str per element, joining a trailing STRINGn dimension."""
    data = np.asarray(var.values)
    if data.dtype == object:  # CF masking turned blank fill characters into NaN
        data = np.array([c if isinstance(c, bytes) else b" " for c in data.ravel()], "S1").reshape(data.shape)
    if var.dims and var.dims[-1].startswith("STRING"):
        rows = data.reshape(-1, data.shape[-1])
        data = np.array([b"".join(row) for row in rows]).reshape(data.shape[:-1])
    return np.char.strip(np.char.decode(data, "ascii", errors="replace"))


def _qc_ok(qc: np.ndarray, good: tuple[str, ...]) -> np.ndarray:
    return np.isin(np.char.decode(np.asarray(qc).astype("S1"), "ascii", errors="replace"), good)


def _qc_digits(qc: np.ndarray) -> np.ndarray:
    """Argo flag characters -> integers (NaN where not a digit)."""
    text = np.char.decode(np.asarray(qc).astype("S1"), "ascii", errors="replace")
    return np.where(np.char.isdigit(text), text, "nan").astype(np.float64)


def read_profiles(path: Path, product: Product, day: dt.date) -> dict[str, np.ndarray]:
    """Good points of one profile file whose profile time falls on ``day`` (UTC), as 1-D arrays."""
    good = product.good_qc
    with xr.open_dataset(
        path, engine=netcdf_engine(path), concat_characters=False, decode_timedelta=False
    ) as ds:
        if "TEMP" not in ds.variables or "PRES" not in ds.variables:
            raise InputError(f"{path.name}: not an Argo core profile file (no PRES/TEMP)")
        n_prof, n_levels = ds.sizes["N_PROF"], ds.sizes["N_LEVELS"]
        mode = _chars(ds["DATA_MODE"]) if "DATA_MODE" in ds else np.full(n_prof, "R")
        adjusted = np.isin(mode, ("D", "A"))[:, None]
        values, flags = {}, {}
        for param in PARAMETERS:
            if param not in ds.variables:
                continue
            raw, raw_qc = ds[param].values, ds[f"{param}_QC"].values
            if f"{param}_ADJUSTED" in ds.variables:
                adj, adj_qc = ds[f"{param}_ADJUSTED"].values, ds[f"{param}_ADJUSTED_QC"].values
                values[param] = np.where(adjusted, adj, raw).astype(np.float64)
                flags[param] = np.where(adjusted, adj_qc, raw_qc)
            else:
                values[param], flags[param] = raw.astype(np.float64), raw_qc
        times = ds["JULD"].values.astype("datetime64[us]")
        lat = ds["LATITUDE"].values.astype(np.float64)
        lon = ds["LONGITUDE"].values.astype(np.float64)
        profile_ok = (
            (times.astype("datetime64[D]") == np.datetime64(day, "D"))
            & np.isfinite(lat)
            & np.isfinite(lon)
            & _qc_ok(ds["POSITION_QC"].values, good)
            & _qc_ok(ds["JULD_QC"].values, good)
        )
        platform = np.array([int(p) if p.isdigit() else -1 for p in _chars(ds["PLATFORM_NUMBER"])])
        cycle = ds["CYCLE_NUMBER"].values.astype(np.int64)

    keep = (
        profile_ok[:, None]
        & np.isfinite(values["PRES"])
        & (values["PRES"] <= product.max_pressure_dbar)
        & _qc_ok(flags["PRES"], good)
        & np.isfinite(values["TEMP"])
        & _qc_ok(flags["TEMP"], good)
    )
    prof_idx = np.broadcast_to(np.arange(n_prof)[:, None], (n_prof, n_levels))[keep]
    points: dict[str, np.ndarray] = {
        "lat": lat[prof_idx],
        "lon": normalize_lon(lon[prof_idx]),
        "time": times[prof_idx],
        "PLATFORM_NUMBER": platform[prof_idx],
        "CYCLE_NUMBER": cycle[prof_idx],
        "DATA_MODE": mode[prof_idx],
    }
    for param in PARAMETERS:
        if param in values:
            ok = _qc_ok(flags[param], good) & np.isfinite(values[param])
            points[param] = np.where(ok, values[param], np.nan)[keep]
            points[f"{param}_QC"] = np.where(ok, _qc_digits(flags[param]), np.nan)[keep]
        else:
            points[param] = np.full(prof_idx.size, np.nan)
            points[f"{param}_QC"] = np.full(prof_idx.size, np.nan)
    return points


@register
class ArgoPointsLoader:
    tiling = "points"

    def tiles(self, product: Product, day: dt.date, paths: list[Path]) -> Iterator[Tile]:
        parts = [read_profiles(p, product, day) for p in paths]
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
        micros = pts["time"].astype("datetime64[us]").astype(np.int64)
        profiles = np.unique(np.stack([pts["PLATFORM_NUMBER"], pts["CYCLE_NUMBER"]]), axis=1).shape[1]
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
            n_profiles=int(profiles),
        )
