"""The original pipeline's daily Argo point files (``argo/argo_YYYYMMDD.nc``) from synthetic profiles.

The original download step fetched Argo with argopy (``DataFetcher(src="erddap", mode="research")``), one
``region([...,0,100,start,end]).to_xarray()`` per box, concatenated the boxes along ``N_POINTS``, added a
``time`` coordinate from ``TIME``, dropped the ``Fetched_*`` attributes, split the table by UTC date and wrote
each day with xarray's default encoding (NetCDF4). What such a file holds, as argopy builds it:

* The Ifremer ERDDAP ``ArgoFloats`` table has one row per measured level: ``data_mode``, ``latitude``,
  ``longitude``, ``position_qc``, ``time``, ``time_qc``, ``direction``, ``platform_number``,
  ``cycle_number``, ``config_mission_number``, ``vertical_sampling_scheme`` and, for PRES/TEMP/PSAL, the
  value, ``_qc``, ``_adjusted``, ``_adjusted_qc`` and ``_adjusted_error``. The request asks for the box's
  raw ``pres`` range and orders rows by ``time,pres``.
* argopy renames ``row`` to ``N_POINTS``, upper-cases the names, makes LATITUDE, LONGITUDE, TIME and
  N_POINTS coordinates and casts types: PLATFORM_NUMBER, CYCLE_NUMBER and every ``*_QC`` become integers
  (a blank flag becomes 0), DATA_MODE and DIRECTION strings. Variables get Argo attributes plus
  ``casted = 1``; the global attributes become DATA_ID, DOI and the ``Fetched_*`` set.
* The user mode then post-processes the points:

  - ``expert``: nothing more (raw and adjusted columns side by side).
  - ``standard``: values merged by data mode (PARAM <- PARAM_ADJUSTED for 'A'/'D' profiles, the adjusted
    error becomes PARAM_ERROR), points whose QC flags are not all 1 or 2 dropped, non-standard variables
    dropped.
  - ``research``: position and time QC 1 only, values merged, delayed mode ('D') only, PRES/TEMP/PSAL QC
    1 only, pressure error < 20 dbar; then DATA_MODE and every QC variable are dropped. What is left is
    CYCLE_NUMBER, DIRECTION, PLATFORM_NUMBER, PRES, PRES_ERROR, PSAL, PSAL_ERROR, TEMP, TEMP_ERROR.

ERDDAP serves a PSAL column for every float, NaN (flag blank) where a float has no conductivity sensor, so
research mode drops the points of such floats altogether; expert and standard keep them with PSAL NaN.
Every profile given is written; :func:`primary_profiles` keeps the primary samplings only, for a caller
who wants the table of a server built from the GDAC's multi-profile files (which hold no others).

Values come from :class:`oceantaco.synthetic.ArgoProfile`, so a point file and the GDAC profile files
written from the same profiles describe the same measurements (exactly so in ``expert`` mode).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr

from oceantaco.synthetic import ArgoProfile

ArgopyMode = Literal["research", "standard", "expert"]
PARAMS = ("PRES", "TEMP", "PSAL")
# What the original pipeline requested: the 0-100 dbar layer of every box.
BOX_MAX_PRESSURE_DBAR = 100.0
# ERDDAP tabledap times, kept by xarray through concat and split, so the written files use them too.
ERDDAP_TIME_ENCODING = {
    "units": "seconds since 1970-01-01T00:00:00Z",
    "calendar": "standard",
    "dtype": "float64",
}
RESEARCH_MAX_PRES_ERROR = 20.0
_COORDS = ("LATITUDE", "LONGITUDE", "TIME")

_STANDARD_VARIABLES = frozenset(
    {
        "DATA_MODE",
        "POSITION_QC",
        "DIRECTION",
        "PLATFORM_NUMBER",
        "CYCLE_NUMBER",
        "TIME_QC",
        *PARAMS,
        *(f"{p}_QC" for p in PARAMS),
        *(f"{p}_ERROR" for p in PARAMS),
        *(f"{p}_ADJUSTED{s}" for p in PARAMS for s in ("", "_QC", "_ERROR")),
    }
)
_PARAM_ATTRS = {
    "PRES": {
        "long_name": "Sea Pressure",
        "standard_name": "sea_water_pressure",
        "units": "decibar",
        "valid_min": 0.0,
        "valid_max": 12000.0,
        "resolution": 0.1,
        "axis": "Z",
    },
    "TEMP": {
        "long_name": "SEA TEMPERATURE IN SITU ITS-90 SCALE",
        "standard_name": "sea_water_temperature",
        "units": "degree_Celsius",
        "valid_min": -2.0,
        "valid_max": 40.0,
        "resolution": 0.001,
    },
    "PSAL": {
        "long_name": "PRACTICAL SALINITY",
        "standard_name": "sea_water_salinity",
        "units": "psu",
        "valid_min": 0.0,
        "valid_max": 43.0,
        "resolution": 0.001,
    },
}
_OTHER_ATTRS = {
    "CYCLE_NUMBER": {
        "long_name": "Float cycle number",
        "conventions": "0..N, 0 : launch cycle (if exists), 1 : first complete cycle",
    },
    "DIRECTION": {
        "long_name": "Direction of the station profiles",
        "conventions": "A: ascending profiles, D: descending profiles",
    },
    "PLATFORM_NUMBER": {
        "long_name": "Float unique identifier",
        "conventions": "WMO float identifier : A9IIIII",
    },
    "DATA_MODE": {
        "long_name": "Delayed mode or real time data",
        "conventions": "R : real time; D : delayed mode; A : real time with adjustment",
    },
    "CONFIG_MISSION_NUMBER": {"long_name": "Unique number denoting the missions performed by the float"},
    "VERTICAL_SAMPLING_SCHEME": {"long_name": "Vertical sampling scheme"},
    "LATITUDE": {
        "long_name": "Latitude of the station, best estimate",
        "standard_name": "latitude",
        "axis": "Y",
        "valid_min": -90.0,
        "valid_max": 90.0,
    },
    "LONGITUDE": {
        "long_name": "Longitude of the station, best estimate",
        "standard_name": "longitude",
        "axis": "X",
        "valid_min": -180.0,
        "valid_max": 180.0,
    },
    "TIME": {"long_name": "Julian day (UTC) of the station", "standard_name": "time", "axis": "T"},
}


def primary_profiles(profiles: Iterable[ArgoProfile]) -> list[ArgoProfile]:
    """The primary-sampling profiles, the only ones ERDDAP's ``ArgoFloats`` table holds."""
    return [p for p in profiles if p.vertical_sampling_scheme.startswith("Primary sampling")]


def _flags(text: str | None, n: int) -> np.ndarray:
    """Argo flag characters -> argopy's integers (blank or absent -> 0)."""
    if text is None:
        return np.zeros(n, dtype=np.int64)
    return np.array([int(c) if c.isdigit() else 0 for c in text], dtype=np.int64)


def _column(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, np.nan, np.float32) if values is None else np.asarray(values, dtype=np.float32)


def _expert_columns(profiles: Sequence[ArgoProfile]) -> dict[str, np.ndarray]:
    """One entry per measured level of every profile, as ERDDAP rows after argopy's casts."""
    parts: dict[str, list[np.ndarray]] = {}

    def add(name: str, values: np.ndarray) -> None:
        parts.setdefault(name, []).append(values)

    for p in profiles:
        n = p.n_levels
        add("PLATFORM_NUMBER", np.full(n, int(p.platform_number), np.int64))
        add("CYCLE_NUMBER", np.full(n, p.cycle_number, np.int64))
        add("CONFIG_MISSION_NUMBER", np.ones(n, np.int64))
        add("DATA_MODE", np.full(n, p.data_mode, "<U1"))
        add("DIRECTION", np.full(n, p.direction, "<U1"))
        add("VERTICAL_SAMPLING_SCHEME", np.full(n, p.vertical_sampling_scheme, object))
        add("POSITION_QC", np.full(n, int(p.position_qc) if p.position_qc.isdigit() else 0, np.int64))
        add("TIME_QC", np.full(n, int(p.juld_qc) if p.juld_qc.isdigit() else 0, np.int64))
        add("LATITUDE", np.full(n, p.latitude, np.float64))
        add("LONGITUDE", np.full(n, p.longitude, np.float64))
        add("TIME", np.full(n, np.datetime64(p.juld, "ns")))
        for param in PARAMS:
            add(param, _column(p.values(param), n))
            add(f"{param}_QC", _flags(p.qc(param), n))
            add(f"{param}_ADJUSTED", _column(p.values(param, adjusted=True), n))
            add(f"{param}_ADJUSTED_QC", _flags(p.qc(param, adjusted=True), n))
            add(f"{param}_ADJUSTED_ERROR", _column(p.adjusted_error(param), n))
    columns = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    columns["VERTICAL_SAMPLING_SCHEME"] = columns["VERTICAL_SAMPLING_SCHEME"].astype(str)
    return columns


def _merge_by_data_mode(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """argopy's ``datamode.merge``: adjusted values, flags and errors for 'A'/'D', raw ones for 'R'."""
    adjusted = np.isin(columns["DATA_MODE"], ("A", "D"))
    merged = {k: v for k, v in columns.items() if "_ADJUSTED" not in k}
    for param in PARAMS:
        merged[param] = np.where(adjusted, columns[f"{param}_ADJUSTED"], columns[param])
        merged[f"{param}_QC"] = np.where(adjusted, columns[f"{param}_ADJUSTED_QC"], columns[f"{param}_QC"])
        merged[f"{param}_ERROR"] = np.where(adjusted, columns[f"{param}_ADJUSTED_ERROR"], np.float32(np.nan))
    return merged


def _select(columns: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[keep] for name, values in columns.items()}


def argo_point_table(
    profiles: Sequence[ArgoProfile],
    *,
    mode: ArgopyMode = "research",
    max_pressure_dbar: float | None = BOX_MAX_PRESSURE_DBAR,
) -> xr.Dataset:
    """The point dataset argopy's erddap fetcher returns for ``profiles``, plus the pipeline's ``time``.

    ``max_pressure_dbar`` is the box's pressure limit, applied to the raw ``PRES`` as the ERDDAP request
    does (``None``: every level). History and ``Fetched_*`` attributes are left out, as the pipeline did.
    """
    columns = _expert_columns(profiles)
    with np.errstate(invalid="ignore"):
        if max_pressure_dbar is not None:
            columns = _select(columns, (columns["PRES"] >= 0.0) & (columns["PRES"] <= max_pressure_dbar))
        columns = _select(columns, np.lexsort((columns["PRES"], columns["TIME"])))
        if mode == "standard":
            columns = _merge_by_data_mode(columns)
            flags = [v for k, v in columns.items() if k.endswith("_QC")]
            columns = _select(columns, np.logical_and.reduce([np.isin(f, (1, 2)) for f in flags]))
            columns = {k: v for k, v in columns.items() if k in _STANDARD_VARIABLES or k in _COORDS}
        elif mode == "research":
            columns = _select(columns, (columns["POSITION_QC"] == 1) & (columns["TIME_QC"] == 1))
            columns = _merge_by_data_mode(columns)
            good = (columns["DATA_MODE"] == "D") & (columns["PRES_ERROR"] < RESEARCH_MAX_PRES_ERROR)
            for param in PARAMS:
                good &= columns[f"{param}_QC"] == 1
            columns = _select(columns, good)
            columns = {
                k: v
                for k, v in columns.items()
                if (k in _STANDARD_VARIABLES and k != "DATA_MODE" and "QC" not in k) or k in _COORDS
            }
        elif mode != "expert":
            raise ValueError(f"unknown argopy user mode {mode!r}")
    return _dataset(columns)


def _dataset(columns: dict[str, np.ndarray]) -> xr.Dataset:
    n = columns["TIME"].size
    data_vars = {}
    for name in sorted(k for k in columns if k not in _COORDS):
        base = name.removesuffix("_ERROR").removesuffix("_ADJUSTED")
        if name.endswith("_QC"):
            attrs = {
                "long_name": f"Global quality flag of {name} profile",
                "conventions": "Argo reference table 2a",
            }
        elif base in _PARAM_ATTRS:
            attrs = dict(_PARAM_ATTRS[base])
            if name.endswith("_ERROR"):
                attrs["long_name"] = f"ERROR IN {attrs['long_name']}"
        else:
            attrs = dict(_OTHER_ATTRS.get(name, {}))
        data_vars[name] = xr.Variable(("N_POINTS",), columns[name], {**attrs, "casted": 1})
    coords = {
        "N_POINTS": np.arange(n, dtype=np.int64),
        **{c: xr.Variable(("N_POINTS",), columns[c], {**_OTHER_ATTRS[c], "casted": 1}) for c in _COORDS},
    }
    ds = xr.Dataset(
        data_vars, coords=coords, attrs={"DATA_ID": "ARGO", "DOI": "http://doi.org/10.17882/42182"}
    )
    return ds.assign_coords(time=ds["TIME"])


def write_point_table(path: Path | str, table: xr.Dataset, *, time_encoding: dict | None = None) -> Path:
    """Write a point table as the pipeline did (xarray, default encoding; h5netcdf stands in for netCDF4).

    ``time_encoding`` replaces the ERDDAP time encoding of TIME and ``time`` (e.g. ``{}`` for xarray's own).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = ERDDAP_TIME_ENCODING if time_encoding is None else time_encoding
    table.to_netcdf(
        path, engine="h5netcdf", encoding={k: dict(encoding) for k in ("TIME", "time") if k in table}
    )
    return path


def write_argo_points(
    path: Path | str,
    profiles: Sequence[ArgoProfile],
    *,
    mode: ArgopyMode = "research",
    max_pressure_dbar: float | None = BOX_MAX_PRESSURE_DBAR,
) -> Path:
    """One point file holding the points of ``profiles`` (whatever their days), as argopy gives them."""
    return write_point_table(path, argo_point_table(profiles, mode=mode, max_pressure_dbar=max_pressure_dbar))


def point_file_name(day: dt.date) -> str:
    """``argo_YYYYMMDD.nc``, the name the original download step gave each day."""
    return f"argo_{day:%Y%m%d}.nc"


def write_argo_point_days(
    folder: Path | str,
    profiles: Sequence[ArgoProfile],
    *,
    mode: ArgopyMode = "research",
    max_pressure_dbar: float | None = BOX_MAX_PRESSURE_DBAR,
) -> dict[dt.date, Path]:
    """The original download step: the points of ``profiles`` split by UTC date, one file per day."""
    by_day: dict[dt.date, list[ArgoProfile]] = {}
    for p in profiles:
        by_day.setdefault(p.juld.date(), []).append(p)
    return {
        day: write_argo_points(
            Path(folder) / point_file_name(day), day_profiles, mode=mode, max_pressure_dbar=max_pressure_dbar
        )
        for day, day_profiles in sorted(by_day.items())
    }
