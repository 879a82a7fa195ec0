"""Synthetic upstream files of the gridded products (GLORYS, OSTIA, MULTIOBS SSS, L4 wind, ODYSSEA, SMOS).

Same contract as :mod:`oceantaco.synthetic` (which covers DUACS L4 and Argo): the files copy the structure
of the real products (reference product-formats.md §3-§8: dimension names and order, ``lat/lon``
vs ``latitude/longitude``, dtypes, CF packing with its attribute types, fill values, time encoding, global
attributes, NC_CHAR text attributes, chunking) and hold analytic values, so a test compares a decoded
pipeline output with :func:`analytic_field` instead of a golden file.

Where the reference marks a detail as unverified, the choice made here is the GDS2 / CMEMS-conventional
one and the comment next to it says so. Evidence found beyond the reference:

* SMOS (015_014): a Fortran reader of the CMEMS files (index id 42781441723) reads ``lon``/``lat`` 1-D,
  ``Sea_Surface_Salinity_Rain_Corrected`` as int16 × 0.001 + 30 with missing -32767, ``*_QC`` = 0 as good,
  1388 × 584 cells, names ``CATDS_CSF2Q[AD]_<d>T000000_<d>T235959_334_<v>.nc``; CATDS metadata records give
  the EASE-2 global grid (EPSG:6933); a Python reader of the CATDS originals treats ``Mean_Acq_Time`` as
  days since 2000-01-01 with NaN gaps (index id 14726766636).
* L4 wind: an NRT file name ``cmems_obs-wind_glo_phy_nrt_l4_0.125deg_PT1H_2020070123_R20200701T12_11.nc``
  (index id 35259011123): the hour is a lead time from the 12 UTC run of the day or the day before.
* MULTIOBS SSS: ``dataset-sss-ssd-rep-daily_20201231T1200Z_P20241017T0000Z.nc`` with ``lon``/``lat``
  coordinates (index id 70483266908 / 65919816985).
* OSTIA ``mask``: flag masks 1, 2, 4, 8, 16 = water, land, optional lake, sea ice, optional river; open sea
  with ice is 9 (index id 65919816985).

Writers compute every field block by block (rows of the native chunks) from separable analytic terms, so a
native-resolution day stays fast and bounded in memory.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
import xarray as xr

from oceantaco.catalog import Dataset, load_catalog
from oceantaco.regions import normalize_lon
from oceantaco.synthetic import GRIDDED_PRODUCTS, _land_mask

__all__ = [
    "FILE_VARIABLES",
    "GLORYS_DEPTHS",
    "GRIDDED_PRODUCTS",
    "NATIVE_RESOLUTION",
    "OUT_OF_RANGE",
    "analytic_field",
    "ease2_grid",
    "out_of_range_mask",
    "product_grid",
    "write_glorys",
    "write_multiobs_sss",
    "write_odyssea",
    "write_ostia",
    "write_product_day",
    "write_smos",
    "write_wind_daily_original",
    "write_wind_hourly",
]

# SMOS is EASE-2 25 km (360/1388 ≈ 0.259° in longitude); 0.25 is the catalog's nominal value.
NATIVE_RESOLUTION: dict[str, float] = {
    "glorys": 1.0 / 12.0,
    "l4_sst": 0.05,
    "l4_sss": 0.125,
    "l4_wind": 0.125,
    "l3_sst": 0.1,
    "l3_sss_smos_asc": 0.25,
    "l3_sss_smos_desc": 0.25,
}

# The 50 native GLORYS12V1 levels (m); files hold the first ``n_depths`` of them.
GLORYS_DEPTHS: tuple[float, ...] = (
    0.494025, 1.541375, 2.645669, 3.819495, 5.078224, 6.440614, 7.92956, 9.572997, 11.405, 13.46714,
    15.81007, 18.49556, 21.59882, 25.21141, 29.44473, 34.43415, 40.34405, 47.37369, 55.76429, 65.80727,
    77.85385, 92.32607, 109.7293, 130.666, 155.8507, 186.1256, 222.4752, 266.0403, 318.1274, 380.213,
    453.9377, 541.0889, 643.5668, 763.3331, 902.3393, 1062.44, 1245.291, 1452.251, 1684.284, 1941.893,
    2225.078, 2533.336, 2865.703, 3220.82, 3597.032, 3992.484, 4405.224, 4833.291, 5274.784, 5727.917,
)  # fmt: skip

# Deliberately injected values outside the catalog's valid range (but inside the native packing range),
# one variable per product, written only with ``out_of_range=True`` inside :func:`out_of_range_mask`.
OUT_OF_RANGE: dict[str, tuple[str, float]] = {
    "glorys": ("uo", 8.0),
    "l4_sst": ("analysed_sst", 330.0),
    "l4_sss": ("sos", -1.0),
    "l4_wind": ("eastward_wind", 70.0),
    "l3_sst": ("adjusted_sea_surface_temperature", 50.0),
    "l3_sss_smos_asc": ("Sea_Surface_Salinity", -1.0),
    "l3_sss_smos_desc": ("Sea_Surface_Salinity", -1.0),
}
_OUT_OF_RANGE_BOX = (-30.0, -25.0, -10.0, -5.0)  # lon_min, lon_max, lat_min, lat_max: open ocean

_EPOCH_1950 = dt.date(1950, 1, 1)
_EPOCH_1981 = dt.datetime(1981, 1, 1)
_EPOCH_1990 = dt.datetime(1990, 1, 1)
_EPOCH_2000 = dt.date(2000, 1, 1)
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
_NC_FILL_FLOAT = np.float32(9.969209968386869e36)
_TWO_PI = 2.0 * np.pi


def out_of_range_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cells (broadcast of ``lat`` and ``lon``) where ``out_of_range=True`` writers inject bad values."""
    lon0, lon1, lat0, lat1 = _OUT_OF_RANGE_BOX
    lat = np.asarray(lat, dtype=np.float64)
    lon = normalize_lon(lon)
    return (lon >= lon0) & (lon < lon1) & (lat >= lat0) & (lat < lat1)


# ---------------------------------------------------------------------------------------------------------
# Analytic fields
# ---------------------------------------------------------------------------------------------------------

_DEPTH_VARS = {"thetao", "so", "uo", "vo"}
_HOURLY_TOKENS = {"l4_wind"}
# Every data variable each writer puts in a file (loaders must ignore the ones the catalog does not use).
FILE_VARIABLES: dict[str, tuple[str, ...]] = {
    "glorys": ("zos", "thetao", "so", "uo", "vo"),
    "l4_sst": ("analysed_sst", "analysis_error", "sea_ice_fraction", "mask"),
    "l4_sss": ("sos", "sos_error", "dos", "dos_error", "sea_ice_fraction"),
    "l4_wind": (
        "eastward_wind",
        "northward_wind",
        "eastward_wind_bias",
        "eastward_stress",
        "wind_curl",
        "air_density",
        "number_of_observations",
    ),
    "l3_sst": (
        "adjusted_sea_surface_temperature",
        "sea_surface_temperature",
        "quality_level",
        "sses_bias",
        "sses_standard_deviation",
        "sst_dtime",
        "bias_to_reference_sst",
        "sources_of_sst",
        "or_latitude",
        "or_longitude",
        "or_number_of_pixels",
    ),
    "l3_sss_smos_asc": (
        "Sea_Surface_Salinity",
        "Sea_Surface_Salinity_Error",
        "Sea_Surface_Salinity_QC",
        "Sea_Surface_Salinity_Rain_Corrected",
        "Sea_Surface_Salinity_Rain_Corrected_Error",
        "Mean_Acq_Time",
        "X_Swath",
    ),
}
FILE_VARIABLES["l3_sss_smos_desc"] = FILE_VARIABLES["l3_sss_smos_asc"]


class _Ctx:
    """Broadcastable geometry and time of one evaluation; masks are computed once and shared."""

    def __init__(
        self,
        token: str,
        lat: np.ndarray,
        lon: np.ndarray,
        day: dt.date,
        hour: int | None,
        depth: float | None,
        land: np.ndarray | None = None,
    ) -> None:
        self.token = token
        self.lat = np.asarray(lat, dtype=np.float64)
        self.lon = np.asarray(lon, dtype=np.float64)
        self.theta = np.deg2rad(self.lat)
        self.lam = np.deg2rad(self.lon)
        self.day = day
        self.hour = hour
        self.depth = depth
        self.t = float((day - _EPOCH_1950).days) + (hour or 0) / 24.0
        self.shape = np.broadcast_shapes(self.lat.shape, self.lon.shape)
        if land is not None:
            self.__dict__["land"] = land

    @cached_property
    def land(self) -> np.ndarray:
        return np.broadcast_to(_land_mask(self.lat, self.lon), self.shape)

    @cached_property
    def cos_t(self) -> np.ndarray:
        return np.cos(self.theta)

    @cached_property
    def day_phase(self) -> float:
        """A pseudo-random phase per day, so gaps and swaths move from one day to the next."""
        return _TWO_PI * ((self.day.toordinal() * 0.618034) % 1.0)

    # --- shared physical patterns (separable in lat and lon: trig runs on 1-D factors only) -------------

    @cached_property
    def sst_c(self) -> np.ndarray:
        # Latitude-only and longitude-only factors are combined first: one product and one sum per cell.
        t = self.t
        zonal = 27.0 * self.cos_t**2 - 0.5 + 0.6 * self.cos_t * np.sin(_TWO_PI * t / 365.25)
        return zonal + (1.2 * self.cos_t) * np.sin(2.0 * self.lam - _TWO_PI * t / 20.0)

    @cached_property
    def sss(self) -> np.ndarray:
        zonal = 34.6 + 1.1 * np.cos(2.0 * self.theta) - 0.3 * np.sin(self.theta)
        return zonal + (0.5 * self.cos_t) * np.sin(3.0 * self.lam + _TWO_PI * self.t / 15.0)

    @cached_property
    def ice(self) -> np.ndarray:
        cover = np.clip((np.abs(self.lat) - 62.0) / 14.0, 0.0, 1.0)
        return cover * (0.85 + 0.15 * np.cos(2.0 * self.lam))

    @cached_property
    def wind(self) -> tuple[np.ndarray, np.ndarray]:
        if self.hour is None:
            raise ValueError("l4_wind fields are hourly: pass hour=0..23")
        omega = _TWO_PI * self.hour / 24.0
        fast = _TWO_PI * self.t / 10.0
        u = 6.0 * np.cos(3.0 * self.theta) + self.cos_t * (
            3.0 * np.sin(2.0 * self.lam + omega + fast) + np.sin(omega - self.lam)
        )
        v = np.sin(2.0 * self.theta) * (4.0 * np.cos(3.0 * self.lam - omega))
        v += self.cos_t * (2.0 * np.sin(self.lam + 0.5 * fast + omega))
        return u, v

    @cached_property
    def air_density(self) -> np.ndarray:
        omega = _TWO_PI * (self.hour or 0) / 24.0
        return 1.22 + 0.06 * np.sin(self.theta) ** 2 - 0.01 * np.cos(self.lam - omega)

    @cached_property
    def l3_gap(self) -> np.ndarray:
        """ODYSSEA cloud/swath gaps (about a third of the ocean), different every day."""
        p = self.day_phase
        return np.cos(9.0 * self.lam + p) * np.cos(4.0 * self.theta + 0.5 * p) > 0.3

    @cached_property
    def swath(self) -> np.ndarray:
        """SMOS across-track position in [-1, 1) (half the orbits missing: NaN), asc and desc differ."""
        shift = 0.0 if self.token.endswith("_asc") else 2.1
        s = 14.0 * self.lam + 3.0 * self.theta + (self.day_phase + shift)
        wrapped = (s + np.pi) % _TWO_PI - np.pi
        return np.where(np.abs(wrapped) < np.pi / 2.0, wrapped / (np.pi / 2.0), np.nan)


def _glorys(ctx: _Ctx, var: str) -> np.ndarray:
    if var == "zos":
        fast = _TWO_PI * ctx.t / 10.0
        return 0.9 * ctx.cos_t**2 - 0.6 + 0.25 * np.cos(2.0 * ctx.theta) * np.sin(3.0 * ctx.lam - fast)
    d = ctx.depth
    if d is None:
        raise ValueError(f"glorys {var} is 4-D: pass depth= (m)")
    # Every variable changes between neighbouring levels by far more than its packing step.
    if var == "thetao":
        return ctx.sst_c - 1.5 * (1.0 - math.exp(-d / 50.0))
    if var == "so":
        return ctx.sss + 0.3 * (1.0 - math.exp(-d / 40.0))
    # The drift term dominates the level-to-level change of the currents, so no cell has the same value on
    # neighbouring levels even where the decaying pattern and the drift would cancel.
    fast = _TWO_PI * ctx.t / 10.0
    decay, drift = math.exp(-d / 300.0), 1.0 - math.exp(-d / 20.0)
    if var == "uo":
        return 0.6 * np.cos(3.0 * ctx.theta) * np.sin(2.0 * ctx.lam + 0.5 * fast) * decay + 0.3 * drift
    return 0.5 * np.sin(2.0 * ctx.theta) * np.cos(3.0 * ctx.lam - 0.5 * fast) * decay - 0.25 * drift


def _l4_sst(ctx: _Ctx, var: str) -> np.ndarray:
    if var == "analysed_sst":
        return ctx.sst_c + 273.15
    if var == "analysis_error":
        return 0.35 + 0.15 * ctx.cos_t * np.sin(4.0 * ctx.lam + _TWO_PI * ctx.t / 10.0)
    if var == "sea_ice_fraction":
        return ctx.ice
    return np.where(ctx.ice > 0.0, 9.0, 1.0)  # mask: open sea (1) or sea with ice (1 + 8)


def _l4_sss(ctx: _Ctx, var: str) -> np.ndarray:
    if var == "sos":
        return ctx.sss
    if var == "sos_error":
        return 0.2 + 0.1 * ctx.cos_t * np.cos(3.0 * ctx.lam)
    if var == "dos":
        return 1027.5 - 0.2 * (ctx.sst_c - 10.0) + 0.78 * (ctx.sss - 35.0)
    if var == "dos_error":
        return 0.15 + 0.05 * np.sin(ctx.theta) ** 2 + 0.03 * np.cos(2.0 * ctx.lam)
    return ctx.ice


def _l4_wind(ctx: _Ctx, var: str) -> np.ndarray:
    u, v = ctx.wind
    omega = _TWO_PI * (ctx.hour or 0) / 24.0
    if var == "eastward_wind":
        return u
    if var == "northward_wind":
        return v
    if var == "eastward_wind_bias":
        return (0.2 * ctx.cos_t) * np.sin(4.0 * ctx.lam + omega)
    if var == "eastward_stress":
        stress = np.hypot(u, v)  # rho * Cd * |U| * u, in place to spare full-size temporaries
        stress *= u
        stress *= ctx.air_density
        stress *= 1.2e-3
        return stress
    if var == "wind_curl":
        return (2.0e-5 * np.sin(2.0 * ctx.theta)) * np.cos(2.0 * ctx.lam + omega)
    if var == "air_density":
        return ctx.air_density
    # number_of_observations: whole counts 0..5
    count = (2.99 * ctx.cos_t) * np.cos(5.0 * ctx.lam + omega)
    count += 3.0
    return np.floor(count, out=count)


def _l3_sst(ctx: _Ctx, var: str) -> np.ndarray:
    p = ctx.day_phase
    skin = ctx.sst_c - 0.2 + 0.15 * ctx.cos_t * np.cos(4.0 * ctx.lam)
    adjusted = ctx.sst_c + 0.05 * ctx.cos_t * np.sin(5.0 * ctx.lam)
    if var == "adjusted_sea_surface_temperature":
        value = adjusted
    elif var == "sea_surface_temperature":
        value = skin
    elif var == "bias_to_reference_sst":
        value = skin - adjusted
    elif var == "quality_level":
        base = np.where(np.abs(ctx.lat) > 55.0, 3.0, 5.0) - (np.sin(6.0 * ctx.lam + p) > 0.8)
        # GDS2: 0 = no data, so gaps over the ocean carry 0 rather than the fill value.
        return np.where(ctx.l3_gap, 0.0, base)
    elif var == "sses_bias":
        value = -0.1 + 0.08 * np.cos(3.0 * ctx.lam)
    elif var == "sses_standard_deviation":
        value = 0.35 + 0.2 * np.sin(ctx.theta) ** 2
    elif var == "sst_dtime":
        value = 43200.0 + 36000.0 * np.sin(ctx.lam + p)  # seconds after `time`
    elif var == "sources_of_sst":
        value = np.clip(1.0 + np.floor(2.0 * (1.0 + np.sin(ctx.lam + p))), 1.0, 4.0)
    elif var == "or_latitude":
        value = ctx.lat + 0.02 * np.cos(3.0 * ctx.lam)
    elif var == "or_longitude":
        value = normalize_lon(ctx.lon) + 0.02 * np.sin(2.0 * ctx.theta)
    else:  # or_number_of_pixels
        value = np.floor(1.0 + 14.0 * ctx.cos_t**2 * (0.5 + 0.5 * np.cos(2.0 * ctx.lam)))
    return np.where(ctx.l3_gap, np.nan, value)


def _smos(ctx: _Ctx, var: str) -> np.ndarray:
    x = ctx.swath  # NaN outside the swaths
    asc = ctx.token.endswith("_asc")
    sss = ctx.sss + (0.08 if asc else -0.08) * np.cos(ctx.lam) + 0.05 * x
    error = 0.25 + 0.4 * np.sin(ctx.theta) ** 2 + 0.2 * x**2
    if var == "Sea_Surface_Salinity":
        return sss
    if var == "Sea_Surface_Salinity_Error":
        return error
    if var == "Sea_Surface_Salinity_Rain_Corrected":
        return sss + 0.03 + 0.02 * np.cos(2.0 * ctx.lam)
    if var == "Sea_Surface_Salinity_Rain_Corrected_Error":
        return error + 0.05
    if var == "Sea_Surface_Salinity_QC":
        # bit 1: swath edge, bit 3: high latitude; 0 = good (as the CMEMS Fortran reader filters).
        edge = np.where(np.abs(x) > 0.75, 2.0, 0.0)
        return edge + np.where(np.abs(ctx.lat) > 65.0, 8.0, 0.0) + 0.0 * x
    if var == "Mean_Acq_Time":
        # days since 2000-01-01: ascending passes near 06 h, descending near 18 h local solar time
        local = 0.25 if asc else 0.75
        return (ctx.day - _EPOCH_2000).days + local + 0.15 * np.sin(ctx.lam) + 0.02 * x
    return 600.0 * x  # X_Swath, km from the swath centre


_FAMILIES: dict[str, Callable[[_Ctx, str], np.ndarray]] = {
    "glorys": _glorys,
    "l4_sst": _l4_sst,
    "l4_sss": _l4_sss,
    "l4_wind": _l4_wind,
    "l3_sst": _l3_sst,
    "l3_sss_smos_asc": _smos,
    "l3_sss_smos_desc": _smos,
}


def _evaluate(ctx: _Ctx, var: str) -> np.ndarray:
    value = np.broadcast_to(_FAMILIES[ctx.token](ctx, var), ctx.shape)
    if ctx.token == "l4_sst" and var == "mask":
        return np.where(ctx.land, 2.0, value)  # the mask is the one field defined on land (b1 = land)
    return np.where(ctx.land, np.nan, value)


def _check(token: str, var: str, hour: int | None, depth: float | None) -> None:
    if token not in FILE_VARIABLES:
        raise ValueError(f"unknown gridded product {token!r}; expected one of {', '.join(GRIDDED_PRODUCTS)}")
    if var not in FILE_VARIABLES[token]:
        raise ValueError(f"{token} has no variable {var!r}; known: {', '.join(FILE_VARIABLES[token])}")
    if token in _HOURLY_TOKENS and hour is None:
        raise ValueError(f"{token} fields are hourly: pass hour=0..23")
    if hour is not None and not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, got {hour}")
    if depth is not None and not (token == "glorys" and var in _DEPTH_VARS):
        raise ValueError(f"{token} {var} has no depth dimension")


def analytic_field(
    token: str,
    var: str,
    lat: np.ndarray,
    lon: np.ndarray,
    day: dt.date,
    *,
    hour: int | None = None,
    depth: float | None = None,
) -> np.ndarray:
    """Physical value (float64) of variable ``var`` of product ``token`` at ``lat``/``lon`` on ``day``.

    ``var`` is the upstream name (``analysed_sst``, ``thetao``, ``eastward_wind``...); every variable the
    writers put in a file is known, not only the catalog's. Units are the catalog's output units where the
    catalog lists the variable (l4_sst ``analysed_sst`` in kelvin, glorys ``thetao`` in °C, and **l3_sst
    temperatures in °C although the file stores kelvin**) and the file's units otherwise (``sst_dtime`` in s,
    SMOS ``Mean_Acq_Time`` in days since 2000-01-01, ``X_Swath`` in km).

    ``lat``/``lon`` broadcast (``lat[:, None], lon[None, :]`` for a grid). NaN on land (the DUACS land mask
    of :mod:`oceantaco.synthetic`) and where the product has no data (ODYSSEA gaps, SMOS missing swaths),
    except OSTIA ``mask`` (2 = land) and ODYSSEA ``quality_level`` (0 = no data in gaps). Longitudes enter
    only through whole wave numbers, so any convention names the same value. l4_wind needs ``hour`` (the
    fields move with the hour); glorys 4-D variables need ``depth`` (m) and change between levels by far
    more than a packing step. Values stay inside the catalog's valid range; only ``out_of_range=True``
    writers put other values in the file (see :data:`OUT_OF_RANGE`).
    """
    _check(token, var, hour, depth)
    return _evaluate(_Ctx(token, lat, lon, day, hour, depth), var)


# ---------------------------------------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------------------------------------


def _steps(extent: float, resolution: float) -> int:
    """Whole steps of ``resolution`` in ``extent``; a step that does not divide it leaves a strip out."""
    n = math.floor(extent / resolution + 1e-6)
    if n < 1:
        raise ValueError(f"resolution {resolution} is larger than the {extent}° extent")
    return n


def _centred(lo: float, extent: float, resolution: float) -> np.ndarray:
    return (lo + (np.arange(_steps(extent, resolution)) + 0.5) * resolution).astype(np.float32)


# EASE-2 global (EPSG:6933): WGS84, Lambert cylindrical equal-area with true scale at ±30°, 25 km cells.
_EASE2_A = 6378137.0
_EASE2_E2 = 0.0066943799901413165
_EASE2_CELL = 25025.26000
_EASE2_ROWS, _EASE2_COLS = 584, 1388


def _authalic_q(sin_phi: float | np.ndarray) -> np.ndarray:
    e = math.sqrt(_EASE2_E2)
    s = np.asarray(sin_phi, dtype=np.float64)
    return (1.0 - _EASE2_E2) * (
        s / (1.0 - _EASE2_E2 * s**2) - np.log((1.0 - e * s) / (1.0 + e * s)) / (2.0 * e)
    )


def ease2_grid(n_lat: int = _EASE2_ROWS, n_lon: int = _EASE2_COLS) -> tuple[np.ndarray, np.ndarray]:
    """Float32 cell-centre latitudes (north first, irregular) and longitudes of an EASE-2 global grid.

    ``n_lat × n_lon`` rescales the 584 × 1388 25 km grid over the same extent (about ±84°); rows are
    equally spaced in the equal-area y coordinate, so latitude steps shrink towards the poles. Rows run
    from north to south as in the EASE-2 definition (the order of the CMEMS files is unverified).
    """
    if n_lat < 2 or n_lon < 2:
        raise ValueError("an EASE-2 grid needs at least 2 × 2 cells")
    k0 = math.cos(math.radians(30.0)) / math.sqrt(1.0 - _EASE2_E2 * math.sin(math.radians(30.0)) ** 2)
    y_max = _EASE2_ROWS / 2 * _EASE2_CELL
    y = y_max - (np.arange(n_lat) + 0.5) * (2.0 * y_max / n_lat)
    beta = np.arcsin(2.0 * k0 * y / _EASE2_A / _authalic_q(1.0))  # authalic latitude
    e2 = _EASE2_E2
    phi = (
        beta
        + (e2 / 3.0 + 31.0 * e2**2 / 180.0 + 517.0 * e2**3 / 5040.0) * np.sin(2.0 * beta)
        + (23.0 * e2**2 / 360.0 + 251.0 * e2**3 / 3780.0) * np.sin(4.0 * beta)
        + (761.0 * e2**3 / 45360.0) * np.sin(6.0 * beta)
    )
    lon = -180.0 + (np.arange(n_lon) + 0.5) * (360.0 / n_lon)
    return np.rad2deg(phi).astype(np.float32), lon.astype(np.float32)


def _smos_shape(resolution: float | None) -> tuple[int, int]:
    if resolution is None:
        return _EASE2_ROWS, _EASE2_COLS
    n_lon = _steps(360.0, resolution)
    return max(2, round(_EASE2_ROWS * n_lon / _EASE2_COLS)), n_lon


def product_grid(token: str, resolution: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Float32 latitudes and longitudes a writer uses for ``token`` (native when ``resolution`` is None).

    GLORYS: -80..90 inclusive (the lat = 90 row exists) × -180..<180 on cell corners; ODYSSEA: ±80 band of
    cell centres; OSTIA, MULTIOBS SSS and wind: global cell centres; SMOS: :func:`ease2_grid`.
    """
    if token in ("l3_sss_smos_asc", "l3_sss_smos_desc"):
        return ease2_grid(*_smos_shape(resolution))
    if token not in NATIVE_RESOLUTION:
        raise ValueError(f"unknown gridded product {token!r}; expected one of {', '.join(GRIDDED_PRODUCTS)}")
    res = NATIVE_RESOLUTION[token] if resolution is None else resolution
    if token == "glorys":
        lat = -80.0 + np.arange(_steps(170.0, res) + 1) * res
        lon = -180.0 + np.arange(_steps(360.0, res)) * res
        return lat.astype(np.float32), lon.astype(np.float32)
    if token == "l3_sst":
        return _centred(-80.0, 160.0, res), _centred(-180.0, 360.0, res)
    return _centred(-90.0, 180.0, res), _centred(-180.0, 360.0, res)


# ---------------------------------------------------------------------------------------------------------
# Writing: variable specs, CF packing and block-wise output through h5netcdf
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    """One data variable as stored: dtype, CF packing (attribute dtype as in the real file), attributes."""

    name: str
    dims: tuple[str, ...]
    dtype: str
    attrs: dict[str, Any]
    fill: float | None = None
    scale: float | None = None
    offset: float | None = None
    attr_type: type = np.float64
    chunks: tuple[int, ...] | None = None
    file_offset: float = 0.0  # added to the analytic value before packing (°C analytic -> K file)

    def packing_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.offset is not None:
            attrs["add_offset"] = self.attr_type(self.offset)
        if self.scale is not None:
            attrs["scale_factor"] = self.attr_type(self.scale)
        return attrs

    def pack(self, physical: np.ndarray) -> np.ndarray:
        """Stored values: CF inverse with the attribute values exactly as a reader will see them."""
        # One float64 work array, updated in place: at native resolution memory traffic is the cost.
        value = np.array(physical, dtype=np.float64)
        offset = float(self.attr_type(self.offset or 0.0)) - self.file_offset
        scale = float(self.attr_type(self.scale if self.scale is not None else 1.0))
        if offset:
            value -= offset
        if scale != 1.0:
            value /= scale
        missing = np.isnan(value)
        if np.dtype(self.dtype).kind == "i":
            np.rint(value, out=value)
            value[missing] = self.fill
            return value.astype(self.dtype)
        out = value.astype(self.dtype)
        if self.fill is not None and not np.isnan(self.fill):
            out[missing] = self.fill
        return out


def _put_attr(obj: h5py.HLObject, name: str, value: Any) -> None:
    """Attribute through the low-level API (the high-level one costs ~4x more, which shows on the small
    hourly files of a test mirror); text becomes fixed-length NC_CHAR, numbers 1-element arrays like
    netCDF-C's, except ``_Netcdf4Dimid`` which netCDF-C stores as a scalar."""
    if isinstance(value, str):
        value = np.bytes_(value.encode("ascii"))
    arr = np.asarray(value)
    if arr.dtype.kind != "S" and arr.ndim == 0 and name != "_Netcdf4Dimid":
        arr = arr.reshape(1)
    if arr.dtype.kind == "S" and arr.itemsize == 0:
        arr = np.asarray(b"", dtype="S1")
    space = h5py.h5s.create_simple(arr.shape) if arr.shape else h5py.h5s.create(h5py.h5s.SCALAR)
    attr = h5py.h5a.create(obj.id, name.encode("ascii"), h5py.h5t.py_create(arr.dtype), space)
    attr.write(np.ascontiguousarray(arr))


class _Writer:
    """A NetCDF4 file written with h5py in the layout netCDF-C (and h5netcdf) produce: dimension scales named
    after their coordinate variable with ``_Netcdf4Dimid``, ``DIMENSION_LIST`` on every variable,
    ``_Netcdf4Coordinates``, ``_FillValue`` both as attribute and HDF5 fill value, tracked creation order
    and NC_CHAR text. h5netcdf itself looks dimensions up through HDF5 on every call, which made the 24
    small hourly wind files of a coarse test mirror cost ~0.1 s each; this writes them about 5x faster.
    Coordinate variables must be created before the variables that use them.
    """

    def __init__(self, path: Path | str, dims: dict[str, int]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sizes = dict(dims)
        self.dimids = {name: i for i, name in enumerate(dims)}
        self.scales: dict[str, h5py.Dataset] = {}
        self.file = h5py.File(self.path, "w", track_order=True)
        _put_attr(
            self.file, "_NCProperties", f"version=2,oceantaco-synthetic,hdf5={h5py.version.hdf5_version}"
        )

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def create(self, var: _Var) -> h5py.Dataset:
        kw: dict[str, Any] = {}
        if var.chunks is not None:
            sizes = [self.sizes[d] for d in var.dims]
            kw["chunks"] = tuple(max(1, min(c, s)) for c, s in zip(var.chunks, sizes, strict=True))
            kw.update(_COMPRESSION)
        if var.fill is not None:
            kw["fillvalue"] = np.array(var.fill, dtype=var.dtype)
        shape = tuple(self.sizes[d] for d in var.dims)
        h5var = self.file.create_dataset(var.name, shape=shape, dtype=var.dtype, track_order=True, **kw)
        is_coord = var.dims == (var.name,)
        if is_coord:
            h5var.make_scale(var.name)
            self.scales[var.name] = h5var
            _put_attr(h5var, "_Netcdf4Dimid", np.int32(self.dimids[var.name]))
        _put_attr(h5var, "_Netcdf4Coordinates", np.array([self.dimids[d] for d in var.dims], dtype=np.int32))
        if var.fill is not None:
            _put_attr(h5var, "_FillValue", np.array([var.fill], dtype=var.dtype))
        for key, value in {**var.attrs, **var.packing_attrs()}.items():
            _put_attr(h5var, key, value)
        if not is_coord:
            for i, dim in enumerate(var.dims):
                h5py.h5ds.attach_scale(h5var.id, self.scales[dim].id, i)
        return h5var

    def coord(self, name: str, values: np.ndarray, attrs: dict[str, Any], fill: float | None = None) -> None:
        var = _Var(name, (name,), values.dtype.str.lstrip("<>="), attrs, fill=fill, chunks=(values.size,))
        self.create(var)[...] = values

    def set_globals(self, attrs: dict[str, Any]) -> None:
        for key, value in attrs.items():
            _put_attr(self.file, key, value)

    def write_blocks(
        self,
        variables: Sequence[_Var],
        lat_dim: str,
        block_rows: int,
        fields: Callable[[np.ndarray], dict[str, Any]],
    ) -> None:
        """Create ``variables`` and fill them block by block of latitude rows, aligned with the chunks so
        each chunk is compressed once. ``fields(rows)`` maps each name to the physical array of the block,
        or (depth variables) to a callable yielding one such array per level: levels are packed one at a
        time so that only the int16 block, never a float64 one, holds all levels."""
        h5vars = {v.name: self.create(v) for v in variables}
        n_lat = self.sizes[lat_dim]
        for start in range(0, n_lat, block_rows):
            rows = slice(start, min(start + block_rows, n_lat))
            values = fields(np.arange(rows.start, rows.stop))
            for var in variables:
                index = tuple(rows if d == lat_dim else (0 if d == "time" else slice(None)) for d in var.dims)
                value = values.pop(var.name)
                if callable(value):
                    packed = np.stack([var.pack(level) for level in value()])
                else:
                    packed = var.pack(value)
                del value
                h5vars[var.name][index] = packed


def _inject(token: str, values: dict[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Put the product's out-of-range value into the box (in place); returns the box mask."""
    var, bad = OUT_OF_RANGE[token]
    box = np.broadcast_to(out_of_range_mask(lat, lon), values[var].shape[-2:])
    values[var] = np.where(box, bad, values[var])
    return box


def _analytic_rows(
    token: str,
    variables: Sequence[_Var],
    lat: np.ndarray,
    lon: np.ndarray,
    day: dt.date,
    *,
    hour: int | None = None,
    out_of_range: bool = False,
    flag_in_box: tuple[str, float] | None = None,
) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """The ``fields(rows)`` callback of ``_Writer.write_blocks`` for a 2-D product: analytic values of
    ``variables`` on those latitude rows, with the out-of-range box injected when asked (and
    ``flag_in_box`` = (quality variable, value) marking the injected cells as good, so they are kept)."""
    lon64 = lon.astype(np.float64)[None, :]

    def fields(rows: np.ndarray) -> dict[str, np.ndarray]:
        ctx = _Ctx(token, lat[rows].astype(np.float64)[:, None], lon64, day, hour, None)
        out = {v.name: _evaluate(ctx, v.name) for v in variables}
        if out_of_range:
            box = _inject(token, out, ctx.lat, ctx.lon)
            if flag_in_box is not None:
                name, value = flag_in_box
                out[name] = np.where(box, value, out[name])
        return out

    return fields


def _iso(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%dT%H:%M:%SZ}"


def _gds(when: dt.datetime) -> str:
    return f"{when:%Y%m%dT%H%M%SZ}"


# ---------------------------------------------------------------------------------------------------------
# GLORYS12V1 daily mean (GLOBAL_MULTIYEAR_PHY_001_030), structure of the real sample (§7)
# ---------------------------------------------------------------------------------------------------------

_GLORYS_CHUNKS_4D = (1, 7, 341, 720)
_GLORYS_CHUNKS_3D = (1, 681, 1440)


def _glorys_bulletin(day: dt.date) -> dt.date:
    """The weekly (Wednesday) bulletin after the day: the real sample of 2020-12-31 says 2021-01-06."""
    return day + dt.timedelta(days=(2 - day.weekday() - 1) % 7 + 1)


def _glorys_var(name: str, long_name: str, standard_name: str, units: str, unit_long: str, span: float,
                offset: float, four_d: bool) -> _Var:  # fmt: skip
    # Real scale factors are float32 values of span/32767 stored as float64 (zos 10 m -> 3.0518509e-4).
    scale = float(np.float32(span / 32767.0))
    return _Var(
        name,
        ("time", "depth", "latitude", "longitude") if four_d else ("time", "latitude", "longitude"),
        "int16",
        {
            "long_name": long_name,
            "standard_name": standard_name,
            "units": units,
            "unit_long": unit_long,
            "cell_methods": "area: mean",
        },
        fill=-32767,
        scale=scale,
        offset=offset,
        chunks=_GLORYS_CHUNKS_4D if four_d else _GLORYS_CHUNKS_3D,
    )


_GLORYS_VARS = (
    _glorys_var("zos", "Sea surface height", "sea_surface_height_above_geoid", "m", "Meters",
                10.0, 0.0, False),
    _glorys_var("thetao", "Temperature", "sea_water_potential_temperature", "degrees_C", "Degrees Celsius",
                24.0, 21.0, True),
    _glorys_var("so", "Salinity", "sea_water_salinity", "1e-3", "Practical Salinity Unit", 50.0,
                -float(np.float32(50.0 / 32767.0)), True),
    _glorys_var("uo", "Eastward velocity", "eastward_sea_water_velocity", "m s-1", "Meters per second",
                20.0, 0.0, True),
    _glorys_var("vo", "Northward velocity", "northward_sea_water_velocity", "m s-1", "Meters per second",
                20.0, 0.0, True),
)  # fmt: skip


def write_glorys(
    path: Path | str,
    day: dt.date,
    *,
    resolution: float = 1.0 / 12.0,
    n_depths: int = 11,
    production_date: dt.date | None = None,
    out_of_range: bool = False,
) -> Path:
    """One GLORYS12V1 daily-mean file: ``zos(time, latitude, longitude)`` and ``thetao, so, uo, vo(time,
    depth, latitude, longitude)``, int16 with the real per-variable packing, time = 12:00 of the day in
    float64 hours since 1950, latitude -80..90 *including* 90, depth = the first ``n_depths`` native levels.

    ``production_date`` is the bulletin date of the global attributes (default: the Wednesday after).
    """
    if not 1 <= n_depths <= len(GLORYS_DEPTHS):
        raise ValueError(f"n_depths must be 1..{len(GLORYS_DEPTHS)}")
    bulletin = production_date or _glorys_bulletin(day)
    lat, lon = product_grid("glorys", resolution)
    depths = np.array(GLORYS_DEPTHS[:n_depths], dtype=np.float32)
    hours = float((day - _EPOCH_1950).days * 24 + 12)
    with _Writer(path, {"time": 1, "latitude": lat.size, "longitude": lon.size, "depth": depths.size}) as w:
        w.coord("time", np.array([hours]), {
            "long_name": "Time (hours since 1950-01-01)", "standard_name": "time", "axis": "T",
            "valid_min": np.float64(hours), "valid_max": np.float64(hours),
            "units": "hours since 1950-01-01", "calendar": "gregorian",
        }, fill=np.nan)  # fmt: skip
        for name, values, units, unit_long, axis in (
            ("latitude", lat, "degrees_north", "Degrees North", "Y"),
            ("longitude", lon, "degrees_east", "Degrees East", "X"),
        ):
            w.coord(name, values, {
                "valid_min": np.float32(values[0]), "valid_max": np.float32(values[-1]),
                "step": np.float32(values[1] - values[0]), "units": units, "unit_long": unit_long,
                "long_name": name.capitalize(), "standard_name": name, "axis": axis,
            }, fill=np.nan)  # fmt: skip
        w.coord("depth", depths, {
            "unit_long": "Meters", "long_name": "Depth", "valid_max": np.float32(depths[-1]), "axis": "Z",
            "standard_name": "depth", "units": "m", "valid_min": np.float32(depths[0]), "positive": "down",
        }, fill=np.nan)  # fmt: skip
        w.set_globals(_glorys_globals(day, bulletin, lat, lon, depths))

        lon64 = lon.astype(np.float64)[None, :]

        def fields(rows: np.ndarray) -> dict[str, np.ndarray]:
            lat64 = lat[rows].astype(np.float64)[:, None]
            ctx = _Ctx("glorys", lat64, lon64, day, None, None)
            box = out_of_range_mask(lat64, lon64) if out_of_range else None

            def levels(name: str) -> Callable[[], Iterable[np.ndarray]]:
                def each() -> Iterable[np.ndarray]:
                    for d in depths:
                        ctx.depth = float(d)  # the cached surface patterns and land mask serve every level
                        value = _evaluate(ctx, name)
                        if box is not None and name == OUT_OF_RANGE["glorys"][0]:
                            value = np.where(box, OUT_OF_RANGE["glorys"][1], value)
                        yield value

                return each

            return {
                "zos": _evaluate(ctx, "zos"),
                **{name: levels(name) for name in ("thetao", "so", "uo", "vo")},
            }

        w.write_blocks(_GLORYS_VARS, "latitude", _GLORYS_CHUNKS_4D[2], fields)
    return w.path


def _glorys_globals(
    day: dt.date, bulletin: dt.date, lat: np.ndarray, lon: np.ndarray, depths: np.ndarray
) -> dict[str, Any]:
    return {
        "title": "daily mean fields from Global Ocean Physics Analysis and Forecast updated Daily",
        "easting": "longitude",
        "northing": "latitude",
        "source": "MERCATOR GLORYS12V1",
        "institution": "MERCATOR OCEAN",
        "references": "http://www.mercator-ocean.fr",
        "comment": "CMEMS product",
        "Conventions": "CF-1.4",
        "domain_name": "GL12",
        "field_type": "mean",
        "field_date": f"{day:%Y-%m-%d} 00:00:00",
        "field_julian_date": np.float32((day - _EPOCH_1950).days),
        "julian_day_unit": "days since 1950-01-01 00:00:00",
        "forecast_range": "",
        "forecast_type": "",
        "bulletin_date": f"{bulletin:%Y-%m-%d} 00:00:00",
        "bulletin_type": "operational",
        "longitude_min": np.float32(lon[0]),
        "longitude_max": np.float32(lon[-1]),
        "latitude_min": np.float32(lat[0]),
        "latitude_max": np.float32(lat[-1]),
        "z_min": np.float32(depths[0]),
        "z_max": np.float32(depths[-1]),
        "history": f"{bulletin:%Y/%m/%d} 21:54:07 MERCATOR OCEAN Netcdf creation (oceantaco synthetic)",
    }


# ---------------------------------------------------------------------------------------------------------
# GHRSST GDS2 files: OSTIA L4 (§3) and ODYSSEA L3S (§4)
# ---------------------------------------------------------------------------------------------------------

# Unverified for OSTIA: the GOS analog stores one chunk per variable at deflate 9; these tiles keep reads
# of a region cheap and zlib level 1 keeps the writer fast (decompression speed barely depends on level).
_OSTIA_CHUNKS = (1, 1200, 2400)
_ODYSSEA_CHUNKS = (1, 800, 1800)


def _ghrsst_time(w: _Writer, when: dt.datetime, long_name: str, comment: str) -> None:
    seconds = int((when - _EPOCH_1981).total_seconds())
    w.coord("time", np.array([seconds], dtype=np.int32), {
        "long_name": long_name, "standard_name": "time", "axis": "T", "calendar": "Gregorian",
        "units": "seconds since 1981-01-01 00:00:00", "comment": comment,
    })  # fmt: skip


def _ghrsst_latlon(w: _Writer, lat: np.ndarray, lon: np.ndarray, fill: float | None) -> None:
    for name, values, units, axis, lo, hi in (
        ("lat", lat, "degrees_north", "Y", -90.0, 90.0),
        ("lon", lon, "degrees_east", "X", -180.0, 180.0),
    ):
        attrs = {
            "long_name": "latitude" if name == "lat" else "longitude",
            "standard_name": "latitude" if name == "lat" else "longitude",
            "axis": axis,
            "units": units,
            "comment": "geographical coordinates, WGS84 projection",
            "valid_min": np.float32(lo),
            "valid_max": np.float32(hi),
        }
        w.coord(name, values, attrs, fill=fill)


def _ghrsst_globals(
    *,
    title: str,
    summary: str,
    gds_id: str,
    institution: str,
    start: dt.datetime,
    stop: dt.datetime,
    lat: np.ndarray,
    lon: np.ndarray,
    resolution: float,
    level: str,
    source: str,
    platform: str,
    sensor: str,
) -> dict[str, Any]:
    """The GDS2 global attribute set of the real GOS L4 file, with this product's content."""
    return {
        "Conventions": "CF-1.4",
        "title": title,
        "summary": summary,
        "references": "GHRSST Data Specification (GDS) version 2",
        "institution": institution,
        "history": "oceantaco synthetic",
        "comment": "WARNING Some applications are unable to properly handle signed byte values. If values "
        "are encountered > 127, please subtract 256 from this reported value",
        "license": "GHRSST protocol describes data use as free and open.",
        "id": gds_id,
        "DSD_entry_id": gds_id,
        "naming_authority": "org.ghrsst",
        "product_version": "2.0",
        "uuid": f"00000000-0000-0000-0000-{start:%Y%m%d%H%M}",
        "gds_version_id": "2.0",
        "netcdf_version_id": "4.9.2",
        "software_version": "oceantaco-synthetic",
        "date_created": _gds(stop + dt.timedelta(hours=12)),
        "file_quality_level": np.int32(3),
        "spatial_resolution": f"{resolution:g} degree",
        "start_time": _gds(start),
        "time_coverage_start": _gds(start),
        "stop_time": _gds(stop),
        "time_coverage_end": _gds(stop),
        "northernmost_latitude": np.float32(lat.max() + resolution / 2),
        "southernmost_latitude": np.float32(lat.min() - resolution / 2),
        "easternmost_longitude": np.float32(lon.max() + resolution / 2),
        "westernmost_longitude": np.float32(lon.min() - resolution / 2),
        "Scaling_Equation": "(scale_factor*data) + add_offset",
        "source": source,
        "platform": platform,
        "sensor": sensor,
        "Metadata_Conventions": "Unidata Dataset Discovery v1.0",
        "metadata_link": "http://podaac.jpl.nasa.gov/ws/metadata/dataset/?format=iso&shortName=" + gds_id,
        "keywords": "Oceans > Ocean Temperature > Sea Surface Temperature",
        "keywords_vocabulary": "NASA Global Change Master Directory (GCMD) Science Keywords",
        "standard_name_vocabulary": "NetCDF Climate and Forecast (CF) Metadata Convention",
        "geospatial_lat_units": "degrees_north",
        "geospatial_lat_resolution": np.float32(resolution),
        "geospatial_lon_units": "degrees_east",
        "geospatial_lon_resolution": np.float32(resolution),
        "acknowledgment": "Please acknowledge the use of these data with the following statement: Generated "
        "by the Copernicus Marine Service.",
        "creator_name": institution,
        "creator_email": "servicedesk.cmems@mercator-ocean.eu",
        "creator_url": "http://marine.copernicus.eu/",
        "project": "Group for High Resolution Sea Surface Temperature",
        "publisher_name": "The GHRSST Project Office",
        "publisher_url": "http://www.ghrsst.org",
        "publisher_email": "ghrsst-po@nceo.ac.uk",
        "processing_level": level,
        "cdm_data_type": "grid",
    }


def _kelvin_var(name: str, long_name: str, standard_name: str, chunks: tuple[int, ...], **extra: Any) -> _Var:
    return _Var(
        name,
        ("time", "lat", "lon"),
        "int16",
        {
            "long_name": long_name,
            "standard_name": standard_name,
            "units": "kelvin",
            "valid_min": np.int16(-300),
            "valid_max": np.int16(4500),
            **extra.pop("attrs", {}),
        },
        fill=-32768,
        scale=0.01,
        offset=273.15,
        attr_type=np.float32,
        chunks=chunks,
        **extra,
    )


def _ostia_vars() -> tuple[_Var, ...]:
    c = _OSTIA_CHUNKS
    source = "AVHRR_SST_METOP_B-OSISAF-L2P-v1.0, VIIRS_NPP-OSPO-L2P-v2.61, AMSR2-REMSS-L2P-v8a, OSISAF_ICE"
    return (
        _kelvin_var("analysed_sst", "analysed sea surface temperature", "sea_surface_foundation_temperature",
                    c, attrs={"source": source, "comment": " OSTIA foundation SST", "type": "foundation"}),
        _Var("analysis_error", ("time", "lat", "lon"), "int16", {
            "long_name": "estimated error standard deviation of analysed_sst", "units": "kelvin",
            "valid_min": np.int16(0), "valid_max": np.int16(32767), "source": source,
            "comment": " OSTIA foundation SST analysis standard deviation error",
        }, fill=-32768, scale=0.01, offset=0.0, attr_type=np.float32, chunks=c),
        _Var("mask", ("time", "lat", "lon"), "int8", {
            "long_name": "land sea ice lake bit mask", "units": "1",
            "valid_min": np.int8(1), "valid_max": np.int8(31),
            "flag_masks": np.array([1, 2, 4, 8, 16], dtype=np.int8),
            "flag_meanings": "water land optional_lake_surface sea_ice optional_river_surface",
            "source": "NAVOCEANO_landmask_v1.0 EUMETSAT_OSI-SAF_icemask ARCLake_lakemask",
            "comment": "Land/ open ocean/ sea ice /lake mask",
        }, fill=-128, chunks=c),
        _Var("sea_ice_fraction", ("time", "lat", "lon"), "int8", {
            "long_name": "sea ice area fraction", "standard_name": "sea_ice_area_fraction", "units": "1",
            "valid_min": np.int8(0), "valid_max": np.int8(100), "source": "EUMETSAT OSI-SAF",
            "comment": " Sea ice area fraction",
        }, fill=-128, scale=0.01, offset=0.0, attr_type=np.float32, chunks=c),
    )  # fmt: skip


def write_ostia(
    path: Path | str,
    day: dt.date,
    *,
    resolution: float = 0.05,
    rep: bool = True,
    out_of_range: bool = False,
) -> Path:
    """One OSTIA L4 GDS2 file: ``analysed_sst`` (int16 × 0.01 + 273.15 K), ``analysis_error``, ``mask`` and
    ``sea_ice_fraction`` on ``(time, lat, lon)``, time int32 s since 1981 at 12:00, float32 1-D lat/lon.

    ``rep`` picks the reprocessed (``OSTIA-UKMO-L4-GLOB-REP-v2.0``) or the NRT (``-GLOB-v2.0``) identity.
    """
    lat, lon = product_grid("l4_sst", resolution)
    start = dt.datetime.combine(day, dt.time())
    with _Writer(path, {"time": 1, "lat": lat.size, "lon": lon.size}) as w:
        _ghrsst_time(w, start + dt.timedelta(hours=12), "reference time of sst field",
                     "Nominal time of analysed fields")  # fmt: skip
        _ghrsst_latlon(w, lat, lon, fill=None)
        label = "REP" if rep else "NRT"
        attrs = _ghrsst_globals(
            title=f"Global SST & Sea Ice Analysis, L4 OSTIA, 0.05 deg daily ({label})",
            summary="A merged, multi-sensor L4 Foundation SST product",
            gds_id="OSTIA-UKMO-L4-GLOB-REP-v2.0" if rep else "OSTIA-UKMO-L4-GLOB-v2.0",
            institution="UKMO", start=start, stop=start + dt.timedelta(days=1), lat=lat, lon=lon,
            resolution=resolution, level="L4", source="UKMO-OSTIA", platform="Aqua, MetOpB, NPP",
            sensor="AMSR2, AVHRR, VIIRS",
        )  # fmt: skip
        w.set_globals({**attrs, "DSD_entry_id": "UKMO-L4HRfnd-GLOB-OSTIA"})
        fields = _analytic_rows("l4_sst", _ostia_vars(), lat, lon, day, out_of_range=out_of_range)
        w.write_blocks(_ostia_vars(), "lat", _OSTIA_CHUNKS[1], fields)
    return w.path


def _odyssea_vars() -> tuple[_Var, ...]:
    c, dims = _ODYSSEA_CHUNKS, ("time", "lat", "lon")
    sources = "AVHRR_SST_METOP_B AVHRR_SST_METOP_C VIIRS_NPP SLSTRA"
    return (
        _kelvin_var("adjusted_sea_surface_temperature", "adjusted sea surface temperature",
                    "sea_surface_foundation_temperature", c, file_offset=273.15,
                    attrs={"comment": "bias corrected foundation temperature", "source": "ODYSSEA"}),
        _kelvin_var("sea_surface_temperature", "sea surface foundation temperature",
                    "sea_surface_foundation_temperature", c, file_offset=273.15,
                    attrs={"comment": "foundation temperature from merged sensors", "source": "ODYSSEA"}),
        _Var("quality_level", dims, "int8", {
            "long_name": "quality level of SST pixel", "valid_min": np.int8(0), "valid_max": np.int8(5),
            "flag_values": np.arange(6, dtype=np.int8),
            "flag_meanings": "no_data bad_data worst_quality low_quality acceptable_quality best_quality",
            "comment": "These are the overall quality indicators and are used for all GHRSST SSTs",
        }, fill=-128, chunks=c),
        _Var("sses_bias", dims, "int8", {
            "long_name": "SSES bias error based on confidence flags", "units": "kelvin",
            "valid_min": np.int8(-127), "valid_max": np.int8(127),
        }, fill=-128, scale=0.01, offset=0.0, attr_type=np.float32, chunks=c),
        _Var("sses_standard_deviation", dims, "int8", {
            "long_name": "SSES standard deviation error based on confidence flags", "units": "kelvin",
            "valid_min": np.int8(-127), "valid_max": np.int8(127),
        }, fill=-128, scale=0.01, offset=1.0, attr_type=np.float32, chunks=c),
        _Var("sst_dtime", dims, "int32", {
            "long_name": "time difference from reference time", "units": "seconds",
            "valid_min": np.int32(-2147483647), "valid_max": np.int32(2147483647),
            "comment": "time plus sst_dtime gives seconds after 00:00:00 UTC January 1, 1981",
        }, fill=-2147483648, scale=1.0, offset=0.0, attr_type=np.float32, chunks=c),
        _Var("bias_to_reference_sst", dims, "int16", {
            "long_name": "bias to reference SST", "units": "kelvin",
            "valid_min": np.int16(-32767), "valid_max": np.int16(32767),
            "comment": "sea_surface_temperature minus adjusted_sea_surface_temperature",
        }, fill=-32768, scale=0.01, offset=0.0, attr_type=np.float32, chunks=c),
        _Var("sources_of_sst", dims, "int8", {
            "long_name": "sources of SST", "flag_values": np.array([1, 2, 3, 4], dtype=np.int8),
            "flag_meanings": sources, "valid_min": np.int8(1), "valid_max": np.int8(4),
        }, fill=-128, chunks=c),
        _Var("or_latitude", dims, "int16", {
            "long_name": "original latitude of the SST value", "units": "degrees_north",
            "binning_method": "mean", "valid_range": np.array([-9000, 9000], dtype=np.int16),
        }, fill=-32768, scale=0.01, offset=0.0, attr_type=np.float32, chunks=c),
        _Var("or_longitude", dims, "int16", {
            "long_name": "original longitude of the SST value", "units": "degrees_east",
            "binning_method": "mean", "valid_range": np.array([-18000, 18000], dtype=np.int16),
        }, fill=-32768, scale=0.01, offset=0.0, attr_type=np.float32, chunks=c),
        _Var("or_number_of_pixels", dims, "int16", {
            "long_name": "number of original pixels in the L3S cell", "units": "1",
            "binning_method": "sum", "valid_range": np.array([0, 32767], dtype=np.int16),
        }, fill=-32768, chunks=c),
    )  # fmt: skip


def write_odyssea(
    path: Path | str,
    day: dt.date,
    *,
    resolution: float = 0.1,
    out_of_range: bool = False,
) -> Path:
    """One ODYSSEA L3S GDS2 file on the ±80° band: gappy int16 SSTs (kelvin in the file, °C analytic),
    ``quality_level`` 0..5 (0 in gaps), SSES, ``sst_dtime``, sources and the ``or_*`` binning fields.

    Time is 00:00 of the day, as the ``YYYYMMDD000000`` file name says (the GOS L4 analog does the same).
    """
    lat, lon = product_grid("l3_sst", resolution)
    start = dt.datetime.combine(day, dt.time())
    variables = _odyssea_vars()
    with _Writer(path, {"time": 1, "lat": lat.size, "lon": lon.size}) as w:
        _ghrsst_time(w, start, "reference time of sst file", "reference time of the L3S day")
        # Reference §4: lat/lon carry a _FillValue in the real file (its value is unverified: netCDF default).
        _ghrsst_latlon(w, lat, lon, fill=float(_NC_FILL_FLOAT))
        w.set_globals(_ghrsst_globals(
            title="ODYSSEA Global Sea Surface Temperature Gridded Level 3 Daily Multi-Sensor Observations",
            summary="Daily multi-sensor merged L3S foundation SST (ODYSSEA)",
            gds_id="ODYSSEA-IFR-L3S-GLO_MY_010-v2.1", institution="Ifremer", start=start,
            stop=start + dt.timedelta(days=1), lat=lat, lon=lon, resolution=resolution, level="L3S",
            source="AVHRR_SST_METOP_B-OSISAF-L2P, VIIRS_NPP-OSPO-L2P, SLSTRA-MAR-L2P", platform="MetOpB, NPP",
            sensor="AVHRR, VIIRS, SLSTR",
        ))  # fmt: skip
        fields = _analytic_rows(
            "l3_sst", variables, lat, lon, day, out_of_range=out_of_range, flag_in_box=("quality_level", 5.0)
        )
        w.write_blocks(variables, "lat", _ODYSSEA_CHUNKS[1], fields)
    return w.path


# ---------------------------------------------------------------------------------------------------------
# MULTIOBS L4 SSS (§5)
# ---------------------------------------------------------------------------------------------------------

_SSS_CHUNKS = (1, 1, 720, 1440)  # unverified; one chunk per quadrant of the 0.125° grid


def _sss_vars(packed: bool) -> tuple[_Var, ...]:
    dims = ("time", "depth", "lat", "lon")
    # (name, long name, standard name, units, scale, offset) of the int16 form; the packing itself is
    # unverified (reference §5), so loaders must decode from the attributes (float32 form: packed=False).
    table = (
        ("sos", "Sea surface salinity", "sea_surface_salinity", "1e-3", 0.001, 20.0),
        ("sos_error", "Sea surface salinity error", None, "1e-3", 0.0001, 0.0),
        ("dos", "Sea surface density", "sea_surface_density", "kg m-3", 0.001, 1025.0),
        ("dos_error", "Sea surface density error", None, "kg m-3", 0.0001, 0.0),
        ("sea_ice_fraction", "Sea ice area fraction", "sea_ice_area_fraction", "1", 0.0001, 0.0),
    )
    out = []
    for name, long_name, standard_name, units, scale, offset in table:
        attrs: dict[str, Any] = {"long_name": long_name, "units": units}
        if standard_name:
            attrs["standard_name"] = standard_name
        if packed:
            out.append(_Var(name, dims, "int16", attrs, fill=-32767, scale=scale, offset=offset,
                            chunks=_SSS_CHUNKS))  # fmt: skip
        else:
            out.append(_Var(name, dims, "float32", attrs, fill=float(_NC_FILL_FLOAT), chunks=_SSS_CHUNKS))
    return tuple(out)


def write_multiobs_sss(
    path: Path | str,
    day: dt.date,
    *,
    resolution: float = 0.125,
    packed: bool = True,
    out_of_range: bool = False,
) -> Path:
    """One MULTIOBS L4 SSS day: ``sos, sos_error, dos, dos_error, sea_ice_fraction(time, depth, lat, lon)``
    with ``depth`` = [0 m], time = 12:00 (float64 days since 1950); int16 packed or float32 with a finite
    (netCDF default) ``_FillValue``."""
    lat, lon = product_grid("l4_sss", resolution)
    variables = _sss_vars(packed)
    with _Writer(path, {"time": 1, "depth": 1, "lat": lat.size, "lon": lon.size}) as w:
        w.coord("time", np.array([(day - _EPOCH_1950).days + 0.5]), {
            "long_name": "Time", "standard_name": "time", "axis": "T", "calendar": "gregorian",
            "units": "days since 1950-01-01 00:00:00",
        })  # fmt: skip
        w.coord("depth", np.array([0.0], dtype=np.float32), {
            "long_name": "Depth", "standard_name": "depth", "axis": "Z", "units": "m", "positive": "down",
        })  # fmt: skip
        for name, values, units, axis in (
            ("lat", lat, "degrees_north", "Y"),
            ("lon", lon, "degrees_east", "X"),
        ):
            w.coord(name, values, {
                "long_name": "Latitude" if name == "lat" else "Longitude",
                "standard_name": "latitude" if name == "lat" else "longitude", "axis": axis, "units": units,
                "valid_min": np.float32(values[0]), "valid_max": np.float32(values[-1]),
            })  # fmt: skip
        created = day + dt.timedelta(days=21)
        w.set_globals({
            "Conventions": "CF-1.6",
            "title": "Multi Observation Global Ocean Sea Surface Salinity and Sea Surface Density",
            "institution": "CNR-ISMAR",
            "source": "SMOS, SMAP, in situ (Argo, moorings, drifters)",
            "product": "MULTIOBS_GLO_PHY_S_SURFACE_MYNRT_015_013",
            "history": f"{created:%Y-%m-%d} created (oceantaco synthetic)",
            "references": "http://marine.copernicus.eu",
            "comment": "daily L4 sea surface salinity and density",
            "time_coverage_start": _iso(dt.datetime.combine(day, dt.time())),
            "time_coverage_end": _iso(dt.datetime.combine(day, dt.time()) + dt.timedelta(days=1)),
            "geospatial_lat_min": np.float32(lat[0]), "geospatial_lat_max": np.float32(lat[-1]),
            "geospatial_lon_min": np.float32(lon[0]), "geospatial_lon_max": np.float32(lon[-1]),
        })  # fmt: skip
        fields = _analytic_rows("l4_sss", variables, lat, lon, day, out_of_range=out_of_range)
        w.write_blocks(variables, "lat", _SSS_CHUNKS[2], fields)
    return w.path


# ---------------------------------------------------------------------------------------------------------
# L4 wind, hourly (§8), and the daily file the original post-processing wrote
# ---------------------------------------------------------------------------------------------------------

# The original post-processing opened the hourly files with dask chunks {time: 1, lat: 720, lon: 1440},
# most likely the files' own chunks; packing and time encoding are unverified: int16 × 0.01 m s-1 and
# seconds since 1990 follow the KNMI scatterometer products the L4 is built from.
_WIND_CHUNKS = (1, 720, 1440)
_WIND_SPECS: dict[str, tuple[str, str | None, str, float, float]] = {
    # name: (long name, standard name, units, scale, offset)
    "eastward_wind": ("Stress-equivalent wind eastward component", "eastward_wind", "m s-1", 0.01, 0.0),
    "northward_wind": ("Stress-equivalent wind northward component", "northward_wind", "m s-1", 0.01, 0.0),
    "eastward_wind_bias": ("Eastward wind bias (scatterometer minus model)", None, "m s-1", 0.01, 0.0),
    "eastward_stress": ("Surface downward eastward stress", "surface_downward_eastward_stress", "N m-2",
                        0.0001, 0.0),
    "wind_curl": ("Wind curl", "atmosphere_relative_vorticity", "s-1", 1.0e-8, 0.0),
    "air_density": ("Air density at 10 m", "air_density", "kg m-3", 0.0001, 1.2),
    "number_of_observations": ("Number of scatterometer observations", None, "1", 1.0, 0.0),
}  # fmt: skip


def _wind_vars() -> tuple[_Var, ...]:
    out = []
    for name, (long_name, standard_name, units, scale, offset) in _WIND_SPECS.items():
        attrs: dict[str, Any] = {"long_name": long_name, "units": units}
        if standard_name:
            attrs["standard_name"] = standard_name
        if name == "number_of_observations":
            out.append(_Var(name, ("time", "lat", "lon"), "int16", attrs, fill=-32767, chunks=_WIND_CHUNKS))
            continue
        out.append(_Var(name, ("time", "lat", "lon"), "int16", attrs, fill=-32767, scale=scale, offset=offset,
                        attr_type=np.float32, chunks=_WIND_CHUNKS))  # fmt: skip
    return tuple(out)


def _wind_coords(w: _Writer, lat: np.ndarray, lon: np.ndarray, when: dt.datetime) -> None:
    seconds = int((when - _EPOCH_1990).total_seconds())
    w.coord("time", np.array([seconds], dtype=np.int32), {
        "long_name": "Time", "standard_name": "time", "axis": "T", "calendar": "gregorian",
        "units": "seconds since 1990-01-01 00:00:00",
    })  # fmt: skip
    for name, values, units, axis in (("lat", lat, "degrees_north", "Y"), ("lon", lon, "degrees_east", "X")):
        w.coord(name, values, {
            "long_name": "latitude" if name == "lat" else "longitude",
            "standard_name": "latitude" if name == "lat" else "longitude", "axis": axis, "units": units,
            "valid_min": np.float32(values[0]), "valid_max": np.float32(values[-1]),
        })  # fmt: skip


def _wind_globals(day: dt.date, hour: int, lat: np.ndarray, lon: np.ndarray, resolution: float) -> dict:
    when = dt.datetime.combine(day, dt.time(hour))
    return {
        "Conventions": "CF-1.6",
        "title": "Global Ocean Hourly Reprocessed Sea Surface Wind and Stress from Scatterometer and Model",
        "institution": "KNMI",
        "source": "scatterometer observations corrected with ERA5 model winds",
        "product": "WIND_GLO_PHY_L4_MY_012_006",
        "history": "oceantaco synthetic",
        "references": "http://marine.copernicus.eu",
        "time_coverage_start": _iso(when - dt.timedelta(minutes=30)),
        "time_coverage_end": _iso(when + dt.timedelta(minutes=30)),
        "geospatial_lat_min": np.float32(lat[0]),
        "geospatial_lat_max": np.float32(lat[-1]),
        "geospatial_lon_min": np.float32(lon[0]),
        "geospatial_lon_max": np.float32(lon[-1]),
        "geospatial_lat_resolution": np.float32(resolution),
        "geospatial_lon_resolution": np.float32(resolution),
    }


def write_wind_hourly(
    path: Path | str,
    day: dt.date,
    hour: int,
    *,
    resolution: float = 0.125,
    out_of_range: bool = False,
) -> Path:
    """One hourly L4 wind file (one time step at ``day`` ``hour``:00) on ``(time, lat, lon)``: the two wind
    components plus bias, stress, curl, air density and observation counts that loaders must ignore."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0..23, got {hour}")
    lat, lon = product_grid("l4_wind", resolution)
    variables = _wind_vars()
    with _Writer(path, {"time": 1, "lat": lat.size, "lon": lon.size}) as w:
        _wind_coords(w, lat, lon, dt.datetime.combine(day, dt.time(hour)))
        w.set_globals(_wind_globals(day, hour, lat, lon, resolution))
        fields = _analytic_rows("l4_wind", variables, lat, lon, day, hour=hour, out_of_range=out_of_range)
        w.write_blocks(variables, "lat", _WIND_CHUNKS[1], fields)
    return w.path


def write_wind_daily_original(
    path: Path | str,
    day: dt.date,
    *,
    resolution: float = 0.125,
    hours: Iterable[int] = range(24),
    out_of_range: bool = False,
) -> Path:
    """The daily file of the original pipeline's ``postprocess_wind.py``: ``open_mfdataset`` of the hourly
    files then ``resample(time="1D").mean()`` of ``eastward_wind`` and ``northward_wind`` only, written by
    xarray with its default encoding (float32 with NaN fill, no compression, time = the day at 00:00).

    The mean is taken over the *decoded hourly files* (int16 × float32 scale -> float32), as the original
    did, so it differs from the mean of :func:`analytic_field` by at most half a packing step.
    """
    lat, lon = product_grid("l4_wind", resolution)
    hours = list(hours)
    if not hours:
        raise ValueError("need at least one hour")
    by_name = {v.name: v for v in _wind_vars()}
    lat64, lon64 = lat.astype(np.float64)[:, None], lon.astype(np.float64)[None, :]
    land = np.broadcast_to(_land_mask(lat64, lon64), (lat.size, lon.size))
    means = {}
    for name in ("eastward_wind", "northward_wind"):
        spec = by_name[name]
        total = np.zeros((lat.size, lon.size), dtype=np.float32)
        for hour in hours:
            physical = _evaluate(_Ctx("l4_wind", lat64, lon64, day, hour, None, land), name)
            if out_of_range and name == OUT_OF_RANGE["l4_wind"][0]:
                physical = np.where(out_of_range_mask(lat64, lon64), OUT_OF_RANGE["l4_wind"][1], physical)
            packed = spec.pack(physical)
            decoded = packed.astype(np.float32) * np.float32(spec.scale)
            decoded[packed == spec.fill] = np.nan
            total += decoded
        means[name] = (total / np.float32(len(hours)))[None]
    hourly_coord_attrs = {
        "lat": {"long_name": "latitude", "standard_name": "latitude", "axis": "Y", "units": "degrees_north",
                "valid_min": np.float32(lat[0]), "valid_max": np.float32(lat[-1])},
        "lon": {"long_name": "longitude", "standard_name": "longitude", "axis": "X", "units": "degrees_east",
                "valid_min": np.float32(lon[0]), "valid_max": np.float32(lon[-1])},
    }  # fmt: skip
    ds = xr.Dataset(
        {name: (("time", "lat", "lon"), values) for name, values in means.items()},
        coords={
            "lat": ("lat", lat, hourly_coord_attrs["lat"]),
            "lon": ("lon", lon, hourly_coord_attrs["lon"]),
            "time": ("time", np.array([np.datetime64(day, "ns")])),
        },
        attrs=_wind_globals(day, hours[0], lat, lon, resolution),  # attrs=ds.attrs: the first hourly file's
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path, engine="h5netcdf")
    return path


# ---------------------------------------------------------------------------------------------------------
# SMOS L3 SSS CATDS (MULTIOBS_GLO_PHY_SSS_L3_MYNRT_015_014), §6
# ---------------------------------------------------------------------------------------------------------


def _smos_vars(n_lat: int, n_lon: int) -> tuple[_Var, ...]:
    dims, chunks = ("time", "lat", "lon"), (1, n_lat, n_lon)
    sss = {"units": "1e-3", "standard_name": "sea_surface_salinity"}
    return (
        _Var("Sea_Surface_Salinity", dims, "int16", {"long_name": "Sea Surface Salinity", **sss},
             fill=-32767, scale=0.001, offset=30.0, chunks=chunks),
        _Var("Sea_Surface_Salinity_Error", dims, "int16",
             {"long_name": "Sea Surface Salinity theoretical error", "units": "1e-3"},
             fill=-32767, scale=0.001, offset=0.0, chunks=chunks),
        _Var("Sea_Surface_Salinity_QC", dims, "int16", {
            "long_name": "Sea Surface Salinity quality control flags", "units": "1",
            "flag_masks": np.array([1, 2, 4, 8], dtype=np.int16),
            "flag_meanings": "land_contamination swath_edge ice_contamination high_latitude",
            "comment": "0 = good",
        }, fill=-32767, chunks=chunks),
        _Var("Sea_Surface_Salinity_Rain_Corrected", dims, "int16",
             {"long_name": "Sea Surface Salinity corrected for rain freshening", **sss},
             fill=-32767, scale=0.001, offset=30.0, chunks=chunks),
        _Var("Sea_Surface_Salinity_Rain_Corrected_Error", dims, "int16",
             {"long_name": "Sea Surface Salinity corrected for rain theoretical error", "units": "1e-3"},
             fill=-32767, scale=0.001, offset=0.0, chunks=chunks),
        _Var("Mean_Acq_Time", dims, "float32", {
            "long_name": "Mean acquisition time of the measurements",
            "units": "days since 2000-01-01 00:00:00",
        }, fill=np.nan, chunks=chunks),
        _Var("X_Swath", dims, "float32",
             {"long_name": "Mean distance to the swath centre", "units": "km"}, fill=np.nan, chunks=chunks),
    )  # fmt: skip


def write_smos(
    path: Path | str,
    day: dt.date,
    *,
    direction: Literal["asc", "desc"],
    n_lat: int = _EASE2_ROWS,
    n_lon: int = _EASE2_COLS,
    out_of_range: bool = False,
) -> Path:
    """One SMOS L3 CATDS day of ascending or descending passes on an EASE-2 grid (1-D irregular ``lat``,
    north first; regular ``lon``): int16 SSS × 0.001 + 30 with fill -32767 (as a CMEMS reader decodes
    them), errors, QC flags, rain-corrected SSS, ``Mean_Acq_Time`` and ``X_Swath``; half the swaths are
    missing and asc/desc cover different halves. Time is 12:00 of the day (unverified)."""
    if direction not in ("asc", "desc"):
        raise ValueError(f"direction must be 'asc' or 'desc', got {direction!r}")
    token = f"l3_sss_smos_{direction}"
    lat, lon = ease2_grid(n_lat, n_lon)
    variables = _smos_vars(lat.size, lon.size)
    start = dt.datetime.combine(day, dt.time())
    with _Writer(path, {"time": 1, "lat": lat.size, "lon": lon.size}) as w:
        w.coord("time", np.array([(day - _EPOCH_2000).days + 0.5]), {
            "long_name": "time", "standard_name": "time", "axis": "T", "calendar": "gregorian",
            "units": "days since 2000-01-01 00:00:00",
        })  # fmt: skip
        for name, values, units, axis in (
            ("lat", lat, "degrees_north", "Y"),
            ("lon", lon, "degrees_east", "X"),
        ):
            w.coord(name, values, {
                "long_name": "latitude" if name == "lat" else "longitude",
                "standard_name": "latitude" if name == "lat" else "longitude", "axis": axis, "units": units,
            })  # fmt: skip
        w.set_globals({
            "Conventions": "CF-1.6",
            "title": "SMOS L3 debiased daily valid ocean salinity (CATDS-PDC L3OS 2Q)",
            "institution": "CATDS (CNES, IFREMER, LOCEAN, ACRI)",
            "source": "SMOS MIRAS L-band radiometer",
            "product": "MULTIOBS_GLO_PHY_SSS_L3_MYNRT_015_014",
            "orbit_direction": "ascending" if direction == "asc" else "descending",
            "grid": "EASE-Grid 2.0 Global 25 km (EPSG:6933)",
            "history": "oceantaco synthetic",
            "time_coverage_start": _iso(start),
            "time_coverage_end": _iso(start + dt.timedelta(days=1) - dt.timedelta(seconds=1)),
            "geospatial_lat_min": np.float32(lat.min()), "geospatial_lat_max": np.float32(lat.max()),
            "geospatial_lon_min": np.float32(lon.min()), "geospatial_lon_max": np.float32(lon.max()),
        })  # fmt: skip
        qc_in_box = ("Sea_Surface_Salinity_QC", 0.0)
        fields = _analytic_rows(
            token, variables, lat, lon, day, out_of_range=out_of_range, flag_in_box=qc_in_box
        )
        w.write_blocks(variables, "lat", lat.size, fields)
    return w.path


# ---------------------------------------------------------------------------------------------------------
# A product day in a Copernicus Marine native tree
# ---------------------------------------------------------------------------------------------------------

# Version suffixes of the dataset folders: GLORYS _202311, wind _202211 and SMOS _202411 are what the
# original loaders hard-code; the others follow the layer names seen in public catalogues (unverified).
_DATASET_VERSIONS: dict[str, str] = {
    "cmems_mod_glo_phy_my_0.083deg_P1D-m": "202311",
    "cmems_mod_glo_phy_myint_0.083deg_P1D-m": "202311",
    "METOFFICE-GLO-SST-L4-REP-OBS-SST": "202003",
    "METOFFICE-GLO-SST-L4-NRT-OBS-SST-V2": "202211",
    "cmems_obs-mob_glo_phy-sss_my_multi_P1D": "202311",
    "cmems_obs-mob_glo_phy-sss_nrt_multi_P1D": "202311",
    "cmems_obs-wind_glo_phy_my_l4_0.125deg_PT1H": "202211",
    "cmems_obs-wind_glo_phy_my_l4_0.25deg_PT1H": "202211",
    "cmems_obs-sst_glo_phy_my_l3s_P1D-m": "202311",
    "cmems_obs-mob_glo_phy-sss_mynrt_smos-asc_P1D": "202411",
    "cmems_obs-mob_glo_phy-sss_mynrt_smos-des_P1D": "202411",
}
_DEFAULT_VERSION = "202311"
_SSS_MY_PRODUCTION = dt.date(2024, 10, 17)  # P20241017 of a real MY file name


def _wind_name(dataset: Dataset, day: dt.date, hour: int) -> str:
    """Hours 12..23 come from the day's 12 UTC run (lead hour - 12), 0..11 from the previous day's."""
    run = day if hour >= 12 else day - dt.timedelta(days=1)
    lead = (hour - 12) % 24
    return f"{dataset.dataset_id}_{day:%Y%m%d}{hour:02d}_R{run:%Y%m%d}T12_{lead:02d}.nc"


def _file_name(token: str, dataset: Dataset, day: dt.date) -> str:
    d = f"{day:%Y%m%d}"
    if token == "glorys":
        return f"mercatorglorys12v1_gl12_mean_{d}_R{_glorys_bulletin(day):%Y%m%d}.nc"
    if token == "l4_sst":
        rep = "" if dataset.dataset_family == "nrt" else "_REP"
        return f"{d}120000-UKMO-L4_GHRSST-SSTfnd-OSTIA-GLOB{rep}-v02.0-fv02.0.nc"
    if token == "l4_sss":
        if dataset.dataset_family != "nrt":
            return f"dataset-sss-ssd-rep-daily_{d}T1200Z_P{_SSS_MY_PRODUCTION:%Y%m%d}T0000Z.nc"
        return f"dataset-sss-ssd-nrt-daily_{d}T1200Z_P{day + dt.timedelta(days=21):%Y%m%d}T0000Z.nc"
    if token == "l3_sst":
        return f"{d}000000-IFR-L3S_GHRSST-SSTfnd-ODYSSEA-GLO_MY_010-v02.1-fv01.0.nc"
    letter = "A" if token.endswith("_asc") else "D"
    return f"CATDS_CSF2Q{letter}_{d}T000000_{d}T235959_334_3.nc"


def write_product_day(
    cmems_root: Path | str,
    token: str,
    day: dt.date,
    *,
    resolution: float | None = None,
    out_of_range: bool = False,
) -> list[Path]:
    """Write ``day``'s native files of gridded product ``token`` into a Copernicus Marine native tree:
    ``<cmems_root>/<PRODUCT_ID>/<DATASET_ID>_<version>/YYYY/MM/<file>`` (SMOS: ``.../YYYY/<file>``), the
    dataset being the catalog's for the day. Wind writes its 24 hourly files. ``resolution`` None is the
    native grid (0.25° for the legacy wind dataset); otherwise that grid step (SMOS rescales its EASE-2
    grid to about that longitude step). Every file name is checked against the catalog's regex."""
    if token not in GRIDDED_PRODUCTS:
        raise ValueError(f"unknown gridded product {token!r}; expected one of {', '.join(GRIDDED_PRODUCTS)}")
    dataset = load_catalog()[token].dataset_for(day)
    folder = Path(cmems_root) / dataset.product_id
    folder /= f"{dataset.dataset_id}_{_DATASET_VERSIONS.get(dataset.dataset_id, _DEFAULT_VERSION)}"
    folder /= f"{day:%Y}" if token.startswith("l3_sss_smos") else f"{day:%Y}/{day:%m}"
    regex = dataset.file_regex(day)

    def target(name: str) -> Path:
        if not regex.match(name):
            raise AssertionError(
                f"{token}: file name {name!r} does not match the catalog pattern {regex.pattern}"
            )
        return folder / name

    oor = {"out_of_range": out_of_range}
    if token == "l4_wind":
        res = resolution or (0.25 if "0.25deg" in dataset.dataset_id else NATIVE_RESOLUTION["l4_wind"])
        return [
            write_wind_hourly(target(_wind_name(dataset, day, hour)), day, hour, resolution=res, **oor)
            for hour in range(24)
        ]
    path = target(_file_name(token, dataset, day))
    res = resolution or NATIVE_RESOLUTION[token]
    if token == "glorys":
        return [write_glorys(path, day, resolution=res, **oor)]
    if token == "l4_sst":
        return [write_ostia(path, day, resolution=res, rep=dataset.dataset_family != "nrt", **oor)]
    if token == "l4_sss":
        return [write_multiobs_sss(path, day, resolution=res, **oor)]
    if token == "l3_sst":
        return [write_odyssea(path, day, resolution=res, **oor)]
    n_lat, n_lon = _smos_shape(resolution)
    direction: Literal["asc", "desc"] = "asc" if token.endswith("_asc") else "desc"
    return [write_smos(path, day, direction=direction, n_lat=n_lat, n_lon=n_lon, **oor)]
