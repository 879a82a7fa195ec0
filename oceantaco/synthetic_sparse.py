"""Synthetic upstream files of the sparse satellite products: DUACS L3 along-track SLA and SWOT KaRIn swaths.

Same contract as :mod:`oceantaco.synthetic`: the **structure is copied from real files**
(reference product-formats.md §1, §9a, §9b, and the real along-track and SWOT samples):
dimension and variable names, dtypes, CF packing with per-variable scale factors, fill conventions (int16
``32767`` for DUACS L3, int32 ``-2147483647`` for SWOT L3, ``+2147483647``/``4294967295`` for SWOT L2), the
0..360 longitude convention, time encodings, ``coordinates`` attributes and NC_CHAR text attributes. The
**values are analytic** (:func:`analytic_sla`, :func:`analytic_swot`), so the format step (binning onto the
per-tile grids) can be checked against exact expectations instead of golden files.

Geometry is a plausible circular repeat orbit per satellite (inclination, repeat period, passes per cycle),
with SWOT anchored on the real sample: cycle 26 pass 165 starts at 2024-12-29T16:58:06.880 and crosses the
equator near 37.16°E as the real file does. A half orbit (pass) starts at its southern (odd, ascending) or
northern (even, descending) turning point; DUACS L3 files hold one UTC day, so the first and last pass of
a file are cut at midnight; SWOT files hold one pass, so some cross midnight.

What a loader must get right, and what these files exercise:

* L3 along-track: 1 Hz with data gaps, no points over land (``synthetic._land_mask``), a few fill values
  in ``sla_*``/``lwe`` and more in ``mdt``; ``sla_filtered`` is int16 × 0.0001 but ``sla_unfiltered``
  int16 × 0.001.
* SWOT L3 Basic: invalid pixels are already fill; the nadir gap (|cross-track| < 10 km) is fill except the
  nadir column on the lines where the nadir altimeter measured (``i_num_line``/``i_num_pixel``).
* SWOT L3 Expert: ``quality_flag`` (uint8, 0 good) marks bad pixels that still carry **garbage values**
  (|value| > 1.5 m, never produced by the analytic fields), so a loader ignoring the flag is caught.
* SWOT L2 Basic: latitude/longitude are fill in the nadir gap and on a few missing lines;
  ``ssha_karin_qual`` is a uint32 bit mask and flagged pixels carry garbage too.

Observation times and positions are only *exactly* known after the round trip through the file (float
days/seconds decode to nanoseconds with rounding), so :func:`read_truth` decodes a written file with plain
xarray CF decoding and returns the 1-D points a correct loader keeps.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import re
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from oceantaco.catalog import Dataset, load_catalog
from oceantaco.synthetic import Timeliness, _char_attrs, _land_mask

__all__ = [
    "ALONGTRACK_SATELLITES",
    "L2_SWOT_LINES",
    "L3_SWOT_LINES",
    "SWOT_PIXELS",
    "AlongTrackPass",
    "SwotKind",
    "alongtrack_day",
    "alongtrack_file_name",
    "analytic_sla",
    "analytic_swot",
    "read_truth",
    "swot_day",
    "swot_file_name",
    "swot_pass_end",
    "swot_pass_start",
    "write_alongtrack",
    "write_sparse_day",
    "write_swot_pass",
]

SwotKind = Literal["Basic", "Expert", "L2Basic"]

DUACS_EPOCH = np.datetime64("1950-01-01T00:00:00", "us")
SWOT_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_DAY_US = 86_400_000_000
_CF_VOCABULARY = "NetCDF Climate and Forecast (CF) Metadata Convention Standard Name Table v37"
_EARTH_RADIUS_KM = 6371.0

L3_SWOT_LINES = 9860
L2_SWOT_LINES = 9866
SWOT_PIXELS = 69
_SWATH_HALF_KM = 68.0  # cross_track_distance runs -68..68 km in 2 km steps
_NADIR_GAP_KM = 10.0  # KaRIn measures 10..60 km either side of nadir
_SWATH_EDGE_KM = 60.0
_NADIR_STEP_S = 1.0197  # nadir altimeter 1-Hz spacing, sets how often i_num_line points at a line

# Bad pixels: |garbage| is above anything the analytic fields reach (|value| < 1.5 m) but inside ±6.5 m,
# so a loader that ignores the flag is not rescued by a plausibility range check.
_GARBAGE_MIN_M, _GARBAGE_MAX_M = 2.0, 6.0

# ---------------------------------------------------------------------------------------------------------
# Analytic fields
# ---------------------------------------------------------------------------------------------------------


def _days_since_1950(when: np.ndarray | dt.datetime) -> np.ndarray:
    t = np.asarray(_as_us(when) if isinstance(when, dt.datetime) else when)
    if t.dtype.kind != "M":
        raise TypeError(f"`when` must be datetime64 or datetime, not {t.dtype}")
    return (t - DUACS_EPOCH) / np.timedelta64(1, "D")


def _broadcast(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    return tuple(np.broadcast_arrays(*arrays))


def analytic_sla(lat: np.ndarray, lon: np.ndarray, when: np.ndarray | dt.datetime) -> np.ndarray:
    """Physical sea level anomaly (m, float64) at ``lat``/``lon`` and instant(s) ``when``.

    Inputs broadcast against each other. Smooth in space (largest wave number 17 in longitude, so 2 km and
    7 km cells both see gradients) and varying continuously in time (a 10-day westward drift, a 3-day
    eddy term and a seasonal offset). Whole longitudinal wave numbers make the value independent of the
    longitude convention; |value| < 0.9 m. Not masked over land: sparse products drop land points
    themselves. Also the SWOT ``ssha_filtered`` field.
    """
    theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    theta, lam, t = _broadcast(theta, lam, _days_since_1950(when))
    fast = 2.0 * np.pi * t / 10.0
    return (
        0.4 * np.sin(3.0 * lam - fast) * np.cos(2.0 * theta)
        + 0.25 * np.cos(5.0 * lam + 0.5 * fast) * np.cos(theta)
        + 0.12 * np.sin(17.0 * lam + 2.0 * np.pi * t / 3.0) * np.cos(13.0 * theta)
        + 0.1 * np.sin(2.0 * np.pi * t / 365.25)
    )


SWOT_VARIABLES: tuple[str, ...] = ("ssha_filtered", "ssha_unfiltered", "mdt")


def analytic_swot(var: str, lat: np.ndarray, lon: np.ndarray, when: np.ndarray | dt.datetime) -> np.ndarray:
    """Physical value (m, float64) of a SWOT variable: ``ssha_filtered`` (= :func:`analytic_sla`),
    ``ssha_unfiltered`` (adds a deterministic short-scale ripple standing for KaRIn noise, |.| < 2 cm) or
    ``mdt`` (time independent, broadcast to the shape of ``when`` too). The along-track files use the same
    fields for ``sla_unfiltered`` and ``mdt``. Whole wave numbers in longitude; |value| < 1.5 m."""
    if var == "ssha_filtered":
        return analytic_sla(lat, lon, when)
    if var == "ssha_unfiltered":
        return analytic_sla(lat, lon, when) + _ripple(lat, lon, when)
    if var == "mdt":
        theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
        lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
        theta, lam, _ = _broadcast(theta, lam, _days_since_1950(when))
        return (
            np.cos(theta) ** 2
            - 0.45
            + 0.15 * np.sin(2.0 * lam) * np.cos(theta)
            + 0.05 * np.cos(7.0 * lam) * np.sin(3.0 * theta)
        )
    raise ValueError(f"unknown SWOT variable {var!r}; expected one of {', '.join(SWOT_VARIABLES)}")


def _ripple(lat: np.ndarray, lon: np.ndarray, when: np.ndarray | dt.datetime) -> np.ndarray:
    """``ssha_unfiltered - ssha_filtered``: a short-scale term (wave numbers 157/113) standing for noise."""
    theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    return 0.02 * np.sin(157.0 * lam + 2.0 * np.pi * _days_since_1950(when)) * np.cos(113.0 * theta)


def _aux(var: str, lat: np.ndarray, lon: np.ndarray, when: np.ndarray) -> np.ndarray:
    """Corrections and ancillary fields nobody bins: smooth, bounded, cheap, and inside each packing."""
    theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    theta, lam, t = _broadcast(theta, lam, _days_since_1950(when))
    fast = 2.0 * np.pi * t / 10.0
    m2 = 2.0 * np.pi * 1.932 * t  # semi-diurnal tide
    if var == "dac":
        return 0.08 * np.sin(2.0 * lam + fast) * np.cos(theta) + 0.02
    if var == "lwe":
        return 0.015 * np.cos(lam + 0.3 * fast) * np.sin(theta)
    if var == "ocean_tide":
        return 0.9 * np.cos(theta) * np.sin(2.0 * lam - m2)
    if var in ("internal_tide", "internal_tide_hret"):
        return 0.02 * np.sin(11.0 * lam - m2) * np.cos(5.0 * theta)
    if var == "mss":
        return 60.0 * np.sin(2.0 * theta) * np.cos(lam) + 20.0 * np.cos(3.0 * lam) * np.cos(theta)
    if var == "calibration":
        return 0.03 * np.sin(4.0 * lam + fast)
    if var == "sigma0":
        return 15.0 + 5.0 * np.sin(3.0 * lam) * np.cos(2.0 * theta)
    if var == "height_cor_xover":
        return 0.01 * np.sin(lam + fast)
    if var == "ssh_karin_uncert":
        return 0.03 + 0.01 * np.cos(theta)
    if var.startswith(("ugos", "vgos")):
        k = 2.0 if var.startswith("u") else 3.0
        anomaly = 0.5 * np.cos(3.0 * theta) * np.sin(k * lam + fast)
        return anomaly + (0.2 * np.cos(theta) if "a_" not in var else 0.0)
    raise ValueError(f"no auxiliary field {var!r}")


# ---------------------------------------------------------------------------------------------------------
# Orbits
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Orbit:
    """A circular repeat orbit. Pass ``anchor_pass`` (odd, ascending) of ``anchor_cycle`` starts at its
    southern turning point at ``anchor`` and crosses the equator at ``equator_lon``. In one repeat period the
    Earth turns ``nodal_days`` times under the (precessing) orbit plane, so ground tracks repeat exactly."""

    platform: str
    inclination_deg: float
    repeat_days: float
    nodal_days: int
    passes_per_cycle: int
    anchor: np.datetime64
    anchor_cycle: int
    anchor_pass: int
    equator_lon: float
    step_s: float  # along-track spacing of the 1-Hz product

    @property
    def pass_seconds(self) -> float:
        return self.repeat_days * 86400.0 / self.passes_per_cycle

    @property
    def _earth_rate(self) -> float:
        return 2.0 * np.pi * self.nodal_days / (self.repeat_days * 86400.0)

    def pass_index(self, cycle: int, pass_number: int) -> int:
        return (cycle - self.anchor_cycle) * self.passes_per_cycle + pass_number - self.anchor_pass

    def cycle_pass(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = np.asarray(index, dtype=np.int64) + (self.anchor_pass - 1)
        return self.anchor_cycle + n // self.passes_per_cycle, n % self.passes_per_cycle + 1

    def pass_start(self, index: np.ndarray | int) -> np.ndarray:
        offset = np.rint(np.asarray(index, dtype=np.float64) * self.pass_seconds * 1e6).astype(np.int64)
        return self.anchor + offset.astype("timedelta64[us]")

    def seconds(self, times: np.ndarray) -> np.ndarray:
        return (np.asarray(times, dtype="datetime64[us]") - self.anchor) / np.timedelta64(1, "s")

    def state(self, seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Earth-fixed unit position and ground-track direction (unit, not speed), both shaped (3, ...)."""
        rate = np.pi / self.pass_seconds  # argument of latitude advances by pi per pass
        omega = self._earth_rate
        u = -0.5 * np.pi + rate * seconds
        node = np.deg2rad(self.equator_lon) + omega * (0.5 * self.pass_seconds - seconds)
        inc = np.deg2rad(self.inclination_deg)
        cu, su, cn, sn, ci, si = np.cos(u), np.sin(u), np.cos(node), np.sin(node), np.cos(inc), np.sin(inc)
        x = cu * cn - su * ci * sn
        y = cu * sn + su * ci * cn
        z = su * si
        vx = rate * (-su * cn - cu * ci * sn) + omega * y
        vy = rate * (-su * sn + cu * ci * cn) - omega * x
        vz = rate * cu * si
        norm = np.sqrt(vx * vx + vy * vy + vz * vz)
        return np.stack([x, y, z]), np.stack([vx / norm, vy / norm, vz / norm])


def _t(text: str) -> np.datetime64:
    return np.datetime64(text, "us")


# Jason-class 1-Hz points are 1.0786 s apart in the real Jason-1 sample; the other missions use 1 s.
_ORBITS: dict[str, _Orbit] = {
    "s3a": _Orbit("Sentinel-3A", 98.65, 27.0, 27, 770, _t("2016-03-01T00:41:12"), 2, 1, 97.3, 1.0),
    "s3b": _Orbit("Sentinel-3B", 98.65, 27.0, 27, 770, _t("2018-11-27T11:05:30"), 19, 1, 237.4, 1.0),
    "c2n": _Orbit("Cryosat-2", 92.0, 369.0, 369, 10688, _t("2010-07-16T02:14:00"), 1, 1, 12.6, 1.0),
    "alg": _Orbit("SARAL-DP/AltiKa", 98.54, 35.0, 35, 1002, _t("2013-03-14T05:20:40"), 1, 1, 51.2, 1.0),
    "al": _Orbit("SARAL-DP/AltiKa", 98.54, 35.0, 35, 1002, _t("2013-03-14T05:20:40"), 1, 1, 51.2, 1.0),
    "j3n": _Orbit(
        "Jason-3 Interleaved", 66.04, 9.9156, 10, 254, _t("2016-02-12T10:03:21"), 1, 1, 3.57, 1.0786
    ),
    "s6a": _Orbit("Sentinel-6A", 66.04, 9.9156, 10, 254, _t("2020-12-01T07:48:02"), 4, 1, 0.0, 1.0786),
    "h2b": _Orbit("HY-2B", 99.34, 14.0, 14, 386, _t("2018-10-25T16:27:45"), 1, 1, 170.8, 1.0),
}
ALONGTRACK_SATELLITES: tuple[str, ...] = tuple(_ORBITS)

# 21-day science orbit (20.86455 d, 292 revolutions); anchored on the real v2.0.1 sample file.
_SWOT = _Orbit("SWOT", 77.6, 20.86455, 21, 584, _t("2024-12-29T16:58:06.880"), 26, 165, 37.158, 0.3131)


def _orbit(satellite: str) -> _Orbit:
    try:
        return _ORBITS[satellite]
    except KeyError:
        known = ", ".join(ALONGTRACK_SATELLITES)
        raise ValueError(f"unknown along-track satellite {satellite!r}; expected one of {known}") from None


def _unit_to_latlon(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed int32 latitude and 0..360 longitude (× 1e-6): the stored positions are the truth."""
    lat = np.rint(np.rad2deg(np.arcsin(np.clip(z, -1.0, 1.0))) * 1e6).astype(np.int32)
    lon = np.rint(np.rad2deg(np.arctan2(y, x)) * 1e6).astype(np.int64) % 360_000_000
    return lat, lon.astype(np.int32)


def _decoded(packed: np.ndarray, scale: float) -> np.ndarray:
    """What CF decoding gives: a float64 copy multiplied by the scale factor (not divided by 1/scale)."""
    out = packed.astype(np.float64)
    out *= np.float64(scale)
    return out


# ---------------------------------------------------------------------------------------------------------
# Writing helpers
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    """One variable in its on-disk form: packed data and attributes, with ``_FillValue`` typed like it."""

    dims: tuple[str, ...]
    data: np.ndarray
    attrs: dict[str, Any]
    vlen_attrs: dict[str, str] | None = None  # kept as NC_STRING, as in the real file (non-ASCII text)
    encoding: dict[str, Any] | None = None


def _packed(
    physical: np.ndarray,
    dtype: str,
    scale: float | None,
    fill: float | None,
    missing: np.ndarray | None = None,
) -> np.ndarray:
    value = np.asarray(physical, dtype=np.float64)
    if scale is not None:
        value = value / scale
    packed = np.rint(value).astype(dtype)
    if missing is not None and fill is not None:
        packed[np.broadcast_to(missing, packed.shape)] = np.array(fill, dtype=dtype)
    return packed


def _packing_attrs(
    dtype: str, scale: float | None, fill: float | None, offset: bool = False
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if fill is not None:
        attrs["_FillValue"] = np.array(fill, dtype=dtype)[()]
    if offset:
        attrs["add_offset"] = np.float64(0.0)
    if scale is not None:
        attrs["scale_factor"] = np.float64(scale)
    return attrs


def _write(path: Path, variables: dict[str, _Var], attrs: dict[str, Any], complevel: int) -> Path:
    """NETCDF4 via h5netcdf, one chunk per variable like the real files, text attributes as NC_CHAR."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = xr.Dataset({name: (v.dims, v.data, _char_attrs(v.attrs)) for name, v in variables.items()})
    ds.attrs = _char_attrs(attrs)
    for name, v in variables.items():
        var = ds[name]
        if v.vlen_attrs:
            var.attrs.update(v.vlen_attrs)
        encoding: dict[str, Any] = {"zlib": True, "complevel": complevel, "shuffle": True}
        if v.data.size:
            encoding["chunksizes"] = v.data.shape
        if "_FillValue" not in v.attrs:
            encoding["_FillValue"] = None  # xarray would add NaN to floats; the real files have none
        encoding.update(v.encoding or {})
        var.encoding = encoding
    ds.to_netcdf(path, engine="h5netcdf")
    return path


def _iso(when: np.datetime64) -> str:
    return f"{np.datetime_as_string(np.datetime64(when, 's'))}Z"


def _duration(start: np.datetime64, end: np.datetime64) -> str:
    """Duration the way the DUACS L3 sample spells it ("P24H17M35.44591S": hours, no T, 5 decimals)."""
    seconds = (end - start) / np.timedelta64(1, "s")
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    return f"P{int(hours)}H{int(minutes)}M{secs:.5f}S"


def _to_datetime(when: np.datetime64) -> dt.datetime:
    return dt.datetime.fromisoformat(str(np.datetime64(when, "us")))


def _as_us(when: dt.datetime | np.datetime64) -> np.datetime64:
    if isinstance(when, dt.datetime) and when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return np.datetime64(when, "us")


# ---------------------------------------------------------------------------------------------------------
# DUACS L3 along-track (SEALEVEL_GLO_PHY_L3_MY_008_062 / NRT_008_044), structure of the real sample (§1)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlongTrackPass:
    """The points of one pass (DUACS ``track``) that fall in the file's day.

    ``lat``/``lon`` are the stored values (int32 × 1e-6 decoded; lon 0..360); ``times`` are the instants the
    values were computed at (the file's float days decode to them within 1 µs). ``start``/``end`` are the
    nominal pass limits, which may lie outside the day (the first and last pass cross midnight).
    ``sla_fill`` marks points whose ``sla_filtered``, ``sla_unfiltered`` and ``lwe`` are fill, ``mdt_fill``
    those whose ``mdt`` is.
    """

    satellite: str
    cycle: int
    track: int
    start: np.datetime64
    end: np.datetime64
    times: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    sla_fill: np.ndarray
    mdt_fill: np.ndarray

    @property
    def size(self) -> int:
        return int(self.times.size)

    def physical(self, var: str) -> np.ndarray:
        """Analytic value of a file variable at the pass's points, before packing and fill."""
        if var == "sla_filtered":
            return analytic_sla(self.lat, self.lon, self.times)
        if var == "sla_unfiltered":
            return analytic_swot("ssha_unfiltered", self.lat, self.lon, self.times)
        if var == "mdt":
            return analytic_swot("mdt", self.lat, self.lon, self.times)
        return _aux(var, self.lat, self.lon, self.times)


# name: (dtype, scale, fill, long_name, standard_name, comment); fills and scales as in the real sample.
_L3_CORRECTION = (
    "The sla in this file is already corrected for the {v}; the uncorrected sla can be computed as follows: "
    "[uncorrected sla]=[sla from product]{sign}[{v}]; see the product user manual for details"
)
_L3_SLA_COMMENT = (
    "The sea level anomaly is the sea surface height above mean sea surface height; the uncorrected sla can "
    "be computed as follows: [uncorrected sla]=[sla from product]+[dac]+[ocean_tide]-[lwe]; see the product "
    "user manual for details"
)
_L3_VARS: dict[str, tuple[str, float, int, str, str | None, str]] = {
    "dac": (
        "int16",
        1e-4,
        32767,
        "Dynamic Atmospheric Correction",
        None,
        _L3_CORRECTION.format(v="dac", sign="+"),
    ),
    "internal_tide": (
        "int16",
        1e-3,
        32767,
        "Internal tide correction",
        None,
        _L3_CORRECTION.format(v="internal_tide", sign="+"),
    ),
    "lwe": ("int16", 1e-3, 32767, "Long wavelength error", None, _L3_CORRECTION.format(v="lwe", sign="-")),
    "mdt": (
        "int16",
        1e-3,
        32767,
        "Mean dynamic topography",
        "sea_surface_height_above_geoid",
        "The mean dynamic topography is the sea surface height above geoid; it is used to compute the "
        "absolute dynamic tyopography adt=sla+mdt",
    ),
    "ocean_tide": (
        "int32",
        1e-4,
        2147483647,
        "Ocean tide model",
        None,
        _L3_CORRECTION.format(v="ocean_tide", sign="+"),
    ),
    "sla_filtered": (
        "int16",
        1e-4,
        32767,
        "Sea level anomaly filtered not-subsampled with dac, ocean_tide and lwe correction applied",
        "sea_surface_height_above_sea_level",
        _L3_SLA_COMMENT,
    ),
    "sla_unfiltered": (
        "int16",
        1e-3,
        32767,
        "Sea level anomaly not-filtered not-subsampled with dac, ocean_tide and lwe correction applied",
        "sea_surface_height_above_sea_level",
        _L3_SLA_COMMENT,
    ),
}
L3_SSH_VARIABLES: tuple[str, ...] = tuple(_L3_VARS)


def _step_for(n_points: int, ocean_native: int, native_step: float) -> float:
    """Keep the 1-Hz spacing when data gaps can take 3-35 % of the ocean points (the default 50 000 points
    of a day do: the synthetic continents are smaller than the real ones, so gaps make up the difference);
    otherwise stretch or squeeze it, so tiny test files still span the whole day and big ones are not
    mostly gaps."""
    if n_points > 0.97 * ocean_native:
        return native_step * 0.97 * ocean_native / n_points
    if n_points < 0.65 * ocean_native:
        return native_step * 0.65 * ocean_native / n_points
    return native_step


def _day_samples(
    orbit: _Orbit, day_start: np.datetime64, step: float, phase: float
) -> tuple[np.ndarray, ...]:
    offsets = np.rint((phase + np.arange(math.ceil((86400.0 - phase) / step)) * step) * 1e6).astype(np.int64)
    times = day_start + offsets[offsets < _DAY_US].astype("timedelta64[us]")
    pos, _ = orbit.state(orbit.seconds(times))
    lat, lon = _unit_to_latlon(*pos)
    ocean = ~_land_mask(_decoded(lat, 1e-6), _decoded(lon, 1e-6))
    return times[ocean], lat[ocean], lon[ocean]


def _gap_mask(n_total: int, n_keep: int, rng: np.random.Generator) -> np.ndarray:
    """Keep-mask of ``n_total`` points with ``n_total - n_keep`` removed as contiguous data gaps of random
    length (tracker losses, rain cells, calibration), placed without overlap."""
    drop = n_total - n_keep
    keep = np.ones(n_total, dtype=bool)
    if drop <= 0:
        return keep
    n_gaps = int(min(drop, max(1, drop // 80)))
    lengths = 1 + rng.multinomial(drop - n_gaps, np.full(n_gaps, 1.0 / n_gaps))
    slots = np.sort(rng.integers(0, n_keep + 1, n_gaps))
    starts = slots + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    marker = np.zeros(n_total + 1, dtype=np.int64)
    np.add.at(marker, starts, 1)
    np.add.at(marker, starts + lengths, -1)
    keep[np.cumsum(marker)[:n_total] > 0] = False
    return keep


def _fill_mask(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if n >= 100:  # at least one fill in any non-trivial file, so loaders always meet one
        mask[rng.choice(n, size=max(1, round(fraction * n)), replace=False)] = True
    return mask


def alongtrack_day(
    satellite: str, day: dt.date, *, n_points: int = 50_000, seed: int = 0
) -> list[AlongTrackPass]:
    """The ocean points of ``satellite`` on UTC ``day``, split per pass, in time order: exactly ``n_points``.

    Points follow the satellite's repeat ground track at its 1-Hz spacing (squeezed or stretched when
    ``n_points`` asks for much more or fewer points than a day holds, see :func:`_step_for`), with a random
    phase, land removed, contiguous data gaps and ~0.03 % (sla) / ~0.15 % (mdt) fill values, as the real
    sample has. The first and last pass cross the day's midnights (only their in-day part is kept).
    """
    if n_points < 1:
        raise ValueError("n_points must be at least 1")
    orbit = _orbit(satellite)
    rng = np.random.default_rng([seed, zlib.crc32(satellite.encode()), day.toordinal()])
    day_start = np.datetime64(day, "us")
    phase = float(rng.uniform(0.0, orbit.step_s))
    native = _day_samples(orbit, day_start, orbit.step_s, phase)
    step = _step_for(n_points, native[0].size, orbit.step_s)
    times, lat, lon = (
        native if step == orbit.step_s else _day_samples(orbit, day_start, step, phase * step / orbit.step_s)
    )
    for _ in range(8):  # the ocean fraction shifts a little with the step; shrink until enough points
        if times.size >= n_points:
            break
        step *= times.size / (n_points / 0.97) if times.size else 0.5
        times, lat, lon = _day_samples(orbit, day_start, step, phase * step / orbit.step_s)
    else:
        raise ValueError(f"{satellite}: cannot place {n_points} ocean points in one day")
    keep = _gap_mask(times.size, n_points, rng)
    times, lat, lon = times[keep], lat[keep], lon[keep]
    sla_fill = _fill_mask(n_points, 0.0003, rng)
    mdt_fill = _fill_mask(n_points, 0.0015, rng)

    index = np.floor(orbit.seconds(times) / orbit.pass_seconds).astype(np.int64)
    cycles, tracks = orbit.cycle_pass(index)
    bounds = np.flatnonzero(np.diff(index)) + 1
    passes = []
    for sl in np.split(np.arange(n_points), bounds):
        k = int(index[sl[0]])
        passes.append(
            AlongTrackPass(
                satellite=satellite,
                cycle=int(cycles[sl[0]]),
                track=int(tracks[sl[0]]),
                start=orbit.pass_start(k),
                end=orbit.pass_start(k + 1),
                times=times[sl],
                lat=_decoded(lat[sl], 1e-6),
                lon=_decoded(lon[sl], 1e-6),
                sla_fill=sla_fill[sl],
                mdt_fill=mdt_fill[sl],
            )
        )
    return passes


def alongtrack_file_name(
    satellite: str, day: dt.date, production_date: dt.date, timeliness: Timeliness = "dt"
) -> str:
    """``{dt|nrt}_global_{sat}_phy_l3_1hz_<day>_<production>.nc`` as CMEMS names the files."""
    return f"{timeliness}_global_{satellite}_phy_l3_1hz_{day:%Y%m%d}_{production_date:%Y%m%d}.nc"


def _alongtrack_globals(
    orbit: _Orbit,
    production_date: dt.date,
    timeliness: Timeliness,
    times: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
) -> dict[str, Any]:
    created = f"{production_date:%Y-%m-%d}T00:00:00Z"
    label, long_label = ("DT", "Delayed-Time") if timeliness == "dt" else ("NRT", "Near-Real-Time")
    platform = orbit.platform
    return {
        "Conventions": "CF-1.6",
        "Metadata_Conventions": "Unidata Dataset Discovery v1.0",
        "cdm_data_type": "Swath",
        "comment": "Sea surface height measured by altimeters referenced to the [1993, 2012] period; with "
        "additional corrections; the proposed sla is already corrected for dac, ocean_tide and lwe; "
        "[uncorrected sla]=[sla from product]+[dac]+[ocean_tide]-[lwe]",
        "contact": "servicedesk.cmems@mercator-ocean.eu",
        "creator_email": "servicedesk.cmems@mercator-ocean.eu",
        "creator_name": "CMEMS - Sea Level Thematic Assembly Center",
        "creator_url": "http://marine.copernicus.eu",
        "date_created": created,
        "date_issued": created,
        "date_modified": created,
        "geospatial_lat_max": np.float64(lat.max()),
        "geospatial_lat_min": np.float64(lat.min()),
        "geospatial_lat_resolution": np.float64(np.median(np.abs(np.diff(lat)))) if lat.size > 1 else 0.0,
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_max": np.float64(lon.max()),
        "geospatial_lon_min": np.float64(lon.min()),
        "geospatial_lon_resolution": np.float64(np.median(np.abs(np.diff(lon)))) if lon.size > 1 else 0.0,
        "geospatial_lon_units": "degrees_east",
        "geospatial_vertical_max": np.float64(0.0),
        "geospatial_vertical_min": np.float64(0.0),
        "geospatial_vertical_positive": "down",
        "geospatial_vertical_resolution": "point",
        "geospatial_vertical_units": "m",
        "history": f"{created}: Creation (oceantaco synthetic)",
        "institution": "CLS, CNES",
        "keywords": "Oceans > Ocean Topography > Sea Surface Height",
        "keywords_vocabulary": "NetCDF COARDS Climate and Forecast Standard Names",
        "license": "http://marine.copernicus.eu/web/27-service-commitments-and-licence.php",
        "platform": platform,
        "processing_level": "L3",
        "product_version": "2024",
        "project": "COPERNICUS MARINE ENVIRONMENT MONITORING SERVICE (CMEMS)",
        "references": "http://marine.copernicus.eu",
        "software_version": "oceantaco-synthetic",
        "source": f"{platform} measurements",
        "ssalto_duacs_comment": "The reference mission used for the altimeter inter-calibration processing "
        "is Topex/Poseidon between 1993-01-01 and 2002-04-23, Jason-1 between 2002-04-24 and 2008-10-18, "
        "OSTM/Jason-2 between 2008-10-19 and 2016-06-25, Jason-3 between 2016-06-25 and 2022-02-09, "
        "Sentinel-6A since 2022-02-10.",
        "standard_name_vocabulary": _CF_VOCABULARY,
        "summary": f"SSALTO/DUACS {long_label} Level-3 sea surface height measured by {platform} altimetry "
        "observations over Global Ocean.",
        "time_coverage_duration": _duration(times[0], times[-1]),
        "time_coverage_end": _iso(times[-1]),
        "time_coverage_resolution": "P1S",
        "time_coverage_start": _iso(times[0]),
        "title": f"{label} {platform} Global Ocean Along track SSALTO/DUACS Sea Surface Height L3 product",
    }


def write_alongtrack(
    path: Path | str,
    satellite: str,
    day: dt.date,
    *,
    production_date: dt.date,
    n_points: int = 50_000,
    seed: int = 0,
    timeliness: Timeliness = "dt",
) -> Path:
    """Write one DUACS L3 1-Hz file (one satellite, one UTC day) as the real product stores it (§1).

    Single dimension ``time`` (fixed size), ``time`` float64 days since 1950-01-01, ``longitude``/``latitude``
    int32 × 1e-6 (lon 0..360) with ``add_offset`` 0 and no ``_FillValue``, ``cycle``/``track`` int16,
    ``sla_filtered``/``dac`` int16 × 0.0001, ``sla_unfiltered``/``lwe``/``mdt``/``internal_tide``
    int16 × 0.001 (fill 32767), ``ocean_tide`` int32 × 0.0001 (fill 2147483647); every data variable says
    ``coordinates = "longitude latitude"``; zlib level 1 + shuffle, one chunk. The points are
    :func:`alongtrack_day`'s; the caller picks the file name (see :func:`alongtrack_file_name`).
    """
    orbit = _orbit(satellite)
    passes = alongtrack_day(satellite, day, n_points=n_points, seed=seed)
    times = np.concatenate([p.times for p in passes])
    lat = np.concatenate([p.lat for p in passes])
    lon = np.concatenate([p.lon for p in passes])
    sla_fill = np.concatenate([p.sla_fill for p in passes])
    mdt_fill = np.concatenate([p.mdt_fill for p in passes])
    sizes = [p.size for p in passes]
    days = (times - DUACS_EPOCH) / np.timedelta64(1, "D")

    def coord(name: str, values: np.ndarray, long_name: str, units: str) -> _Var:
        attrs = {
            **_packing_attrs("int32", 1e-6, None, offset=True),
            "long_name": long_name,
            "standard_name": name,
            "units": units,
        }
        return _Var(("time",), np.rint(values * 1e6).astype(np.int32), attrs)

    variables: dict[str, _Var] = {
        "time": _Var(
            ("time",),
            days,
            {
                "axis": "T",
                "calendar": "gregorian",
                "long_name": "Time of measurement",
                "standard_name": "time",
                "units": "days since 1950-01-01 00:00:00",
            },
        ),
        "longitude": coord("longitude", lon, "Longitude of measurement", "degrees_east"),
        "latitude": coord("latitude", lat, "Latitude of measurement", "degrees_north"),
    }
    for name, long_name, values in (
        ("cycle", "Cycle the measurement belongs to", np.repeat([p.cycle for p in passes], sizes)),
        ("track", "Track in cycle the measurement belongs to", np.repeat([p.track for p in passes], sizes)),
    ):
        variables[name] = _Var(
            ("time",),
            values.astype(np.int16),
            {"coordinates": "longitude latitude", "long_name": long_name, "units": "1"},
        )
    missing = {"sla_filtered": sla_fill, "sla_unfiltered": sla_fill, "lwe": sla_fill, "mdt": mdt_fill}
    physical = {
        "sla_filtered": analytic_sla(lat, lon, times),
        "sla_unfiltered": analytic_swot("ssha_unfiltered", lat, lon, times),
        "mdt": analytic_swot("mdt", lat, lon, times),
    }
    for name, (dtype, scale, fill, long_name, standard_name, comment) in _L3_VARS.items():
        values = physical[name] if name in physical else _aux(name, lat, lon, times)
        attrs = {
            **_packing_attrs(dtype, scale, fill, offset=True),
            "comment": comment,
            "coordinates": "longitude latitude",
            "long_name": long_name,
            **({"standard_name": standard_name} if standard_name else {}),
            "units": "m",
        }
        variables[name] = _Var(("time",), _packed(values, dtype, scale, fill, missing.get(name)), attrs)

    globals_ = _alongtrack_globals(orbit, production_date, timeliness, times, lat, lon)
    return _write(Path(path), variables, globals_, complevel=1)


# ---------------------------------------------------------------------------------------------------------
# SWOT KaRIn L3 LR SSH (v2.0.1 Basic / Expert) and L2 LR SSH Basic (§9a, §9b)
# ---------------------------------------------------------------------------------------------------------

_L3_FLAG_VALUES = (0, 3, 5, 10, 18, 19, 20, 30, 50, 70, 100, 101, 102)
_L3_FLAG_MEANINGS = (
    "good eclipse local_outliers bad_quality_coast ocean_unsure ice_unsure ice soft_outliers extremes "
    "mission_event bad_swath_extremities not_on_sea no_data"
)
_FLAG_EDGE, _FLAG_LAND, _FLAG_NO_DATA, _FLAG_ICE = 100, 101, 102, 20
_RANDOM_BAD_FLAGS = np.array([3, 5, 30, 50], dtype=np.uint8)

_L2_QUAL_MEANINGS = (
    "suspect_large_ssh_delta suspect_large_ssh_std suspect_large_ssh_window_std suspect_beam_used "
    "suspect_less_than_nine_beams suspect_ssb_out_of_range suspect_pixel_used suspect_num_pt_avg "
    "suspect_karin_telem suspect_orbit_control suspect_sc_event_flag suspect_tvp_qual "
    "suspect_volumetric_corr "
    "degraded_ssb_not_computable degraded_media_delays_missing degraded_beam_used degraded_large_attitude "
    "degraded_karin_ifft_overflow bad_karin_telem bad_very_large_attitude bad_tide_corrections_missing "
    "bad_ssb_missing bad_radiometer_corr_missing bad_outside_of_range degraded bad_not_usable"
)
_L2_QUAL_MASKS = np.array(
    [
        1,
        2,
        4,
        8,
        16,
        64,
        128,
        256,
        512,
        1024,
        2048,
        4096,
        8192,
        32768,
        65536,
        131072,
        262144,
        524288,
        16777216,
        33554432,
        67108864,
        134217728,
        268435456,
        536870912,
        1073741824,
        2147483648,
    ],
    dtype=np.uint32,
)
_L2_DEGRADED, _L2_NOT_USABLE = np.uint32(1073741824), np.uint32(2147483648)
_L2_QUAL_FILL = np.uint32(4294967295)
_L2_INT_FILL = 2147483647
_L3_INT_FILL = -2147483647


def _native_lines(kind: SwotKind) -> int:
    return L2_SWOT_LINES if kind == "L2Basic" else L3_SWOT_LINES


def _check_kind(kind: str) -> None:
    if kind not in ("Basic", "Expert", "L2Basic"):
        raise ValueError(f"unknown SWOT kind {kind!r}; expected Basic, Expert or L2Basic")


def _line_step_s(kind: SwotKind, n_lines: int) -> float:
    """Line spacing: 9860 L3 lines span one half orbit (0.313 s apart); L2 keeps that spacing for its 9866
    lines. Fewer lines (tests) still span the whole pass, just coarser."""
    return _SWOT.pass_seconds / L3_SWOT_LINES * _native_lines(kind) / n_lines


def swot_pass_start(cycle: int, pass_number: int) -> dt.datetime:
    """Nominal start (first line, southern or northern turning point) of a SWOT science-orbit pass."""
    return _to_datetime(_SWOT.pass_start(_SWOT.pass_index(cycle, pass_number)))


def swot_pass_end(start: dt.datetime, kind: SwotKind = "Basic", n_lines: int | None = None) -> dt.datetime:
    """Time of the last line of a pass written with ``kind`` and ``n_lines`` (default: the native count)."""
    _check_kind(kind)
    n = n_lines or _native_lines(kind)
    last = round((n - 1) * _line_step_s(kind, n) * 1e6)
    return _to_datetime(_as_us(start) + np.timedelta64(last, "us"))


def swot_file_name(
    kind: SwotKind,
    cycle: int,
    pass_number: int,
    start: dt.datetime | np.datetime64,
    end: dt.datetime | np.datetime64,
) -> str:
    """Upstream file name: ``SWOT_L3_LR_SSH_{Basic|Expert}_CCC_PPP_<start>_<end>_v2.0.1.nc`` or
    ``SWOT_L2_LR_SSH_Basic_CCC_PPP_<start>_<end>_PIC2_01.nc`` (times truncated to the second)."""
    _check_kind(kind)
    stamps = "_".join(_to_datetime(_as_us(t)).strftime("%Y%m%dT%H%M%S") for t in (start, end))
    if kind == "L2Basic":
        return f"SWOT_L2_LR_SSH_Basic_{cycle:03d}_{pass_number:03d}_{stamps}_PIC2_01.nc"
    return f"SWOT_L3_LR_SSH_{kind}_{cycle:03d}_{pass_number:03d}_{stamps}_v2.0.1.nc"


@dataclass
class _Swath:
    """Geometry, time and pixel classes of one pass, shared by the three kinds."""

    times: np.ndarray  # (n_lines,) datetime64[us]
    lat: np.ndarray  # packed int32 (n_lines, n_pixels)
    lon: np.ndarray
    xtd: np.ndarray  # (n_pixels,) km
    land: np.ndarray
    nadir_lines: np.ndarray  # lines with a nadir measurement (over ocean)
    centre: int
    equator_time: np.datetime64
    equator_lon: float

    @property
    def lat_deg(self) -> np.ndarray:
        return _decoded(self.lat, 1e-6)

    @property
    def lon_deg(self) -> np.ndarray:
        return _decoded(self.lon, 1e-6)


def _swath(
    cycle: int, pass_number: int, start: np.datetime64, kind: SwotKind, n_lines: int, n_pixels: int
) -> _Swath:
    step = _line_step_s(kind, n_lines)
    tau = np.arange(n_lines) * step
    times = start + np.rint(tau * 1e6).astype(np.int64).astype("timedelta64[us]")
    # Geometry follows (cycle, pass) on the nominal orbit; the stamps follow `start`.
    index = _SWOT.pass_index(cycle, pass_number)
    pos, direction = _SWOT.state(index * _SWOT.pass_seconds + tau)
    right = np.cross(direction, pos, axis=0)  # unit: direction is perpendicular to position
    xtd = np.linspace(-_SWATH_HALF_KM, _SWATH_HALF_KM, n_pixels)
    angle = xtd / _EARTH_RADIUS_KM
    ca, sa = np.cos(angle)[None, :], np.sin(angle)[None, :]
    x, y, z = (pos[i][:, None] * ca + right[i][:, None] * sa for i in range(3))
    lat, lon = _unit_to_latlon(x, y, z)
    land = _land_mask(_decoded(lat, 1e-6), _decoded(lon, 1e-6))
    centre = n_pixels // 2
    nadir_step = _NADIR_STEP_S / (_SWOT.pass_seconds / L3_SWOT_LINES)
    nadir = np.unique(np.rint(np.arange(0.0, n_lines - 0.5, nadir_step)).astype(np.int64))
    nadir = nadir[~land[nadir, centre]]
    eq_pos, _ = _SWOT.state(np.array((index + 0.5) * _SWOT.pass_seconds))
    return _Swath(
        times=times,
        lat=lat,
        lon=lon,
        xtd=xtd,
        land=land,
        nadir_lines=nadir,
        centre=centre,
        equator_time=start + np.timedelta64(round(0.5 * _SWOT.pass_seconds * 1e6), "us"),
        equator_lon=float(np.rad2deg(np.arctan2(eq_pos[1], eq_pos[0])) % 360.0),
    )


def _l3_flags(sw: _Swath, rng: np.random.Generator) -> np.ndarray:
    """L3 ``quality_flag``: 102 no_data in the nadir gap (bar nadir measurements), 101 over land, 100 beyond
    60 km, 20 ice poleward of 74°, a few random outliers; 0 elsewhere. Drawn for every kind alike, so Basic
    and Expert of one pass keep the same good pixels."""
    n_lines, n_pixels = sw.lat.shape
    bad = rng.random((n_lines, n_pixels)) < 0.03
    bad_flag = rng.choice(_RANDOM_BAD_FLAGS, size=(n_lines, n_pixels))
    flag = np.where(bad, bad_flag, np.uint8(0)).astype(np.uint8)
    flag[np.abs(sw.lat_deg) > 74.0] = _FLAG_ICE
    flag[:, np.abs(sw.xtd) > _SWATH_EDGE_KM] = _FLAG_EDGE
    flag[sw.land] = _FLAG_LAND
    gap = np.zeros((n_lines, n_pixels), dtype=bool)
    gap[:, np.abs(sw.xtd) < _NADIR_GAP_KM] = True
    gap[sw.nadir_lines, sw.centre] = False
    flag[gap] = _FLAG_NO_DATA
    flag[sw.nadir_lines, sw.centre] = 0  # nadir points already exclude land
    return flag


def _garbage(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(_GARBAGE_MIN_M, _GARBAGE_MAX_M, shape) * rng.choice([-1.0, 1.0], shape)


def _l3_var(
    physical: np.ndarray,
    missing: np.ndarray,
    attrs: dict[str, Any],
    dtype: str = "int32",
    fill: int = _L3_INT_FILL,
) -> _Var:
    return _Var(
        ("num_lines", "num_pixels"),
        _packed(physical, dtype, 1e-4, fill, missing),
        {**_packing_attrs(dtype, 1e-4, fill), **attrs},
    )


_SSHA_FILTERED_ATTRS = {
    "comment": "Height of the sea surface anomaly with all corrections applied and with calibration, data "
    "selection and noise reduction (using Unet model) applied; see the product user manual for details.\n",
    "coordinates": "longitude latitude",
    "long_name": "sea surface height anomaly calibrated, edited and filtered",
    "standard_name": "sea_surface_height_above_reference_ellipsoid",
    "units": "m",
}
_SSHA_FILTERED_DISCLAIMER = (
    "Experimental algorithm. This parameter is the noise-mitigated counterpart of the "
    "\u2018ssha_unfiltered\u2019 variable. The noise was mitigated through a machine-learning algorithm "
    "(Treboutte et al., 2024). Caution "
    "is advised because the algorithm validation is still ongoing: some of the ocean features less than 50km "
    "in wavelength may also be affected by the de-noising algorithm\n"
)
_SSHA_UNFILTERED_ATTRS = {
    "comment": "Height of the sea surface anomaly with all corrections applied and with calibration and data "
    "selection applied; It is equivalent to the Sea Level Anomaly (SLA) distribued in the nadir DUACS "
    "products; see the product user manual for details.\n",
    "coordinates": "longitude latitude",
    "long_name": "sea surface height anomaly calibrated and edited",
    "standard_name": "sea_surface_height_above_reference_ellipsoid",
    "units": "m",
}
_MDT_ATTRS = {
    "comment": "The mean dynamic topography is the sea surface height above geoid; it is used to compute the "
    "absolute dynamic topography adt=ssha+mdt. A -5cm bias is added to the MDT for consistency with DUACS "
    "nadir products.\n",
    "coordinates": "longitude latitude",
    "long_name": "mean dynamic topography",
    "source": "HYBRID-CNES-CLS22-CMEMS2020 (https://doi.org/10.24400/527896/a01-2024.010)",
    "standard_name": "mean_dynamic_topography_cnes_cls",
    "units": "m",
}
_CORRECTED = (
    "The ssha in this file is already corrected for the {v}; the uncorrected ssha can be computed as "
    "follows: [uncorrected ssha]=[ssha from product]+[{v}]; see the product user manual for details.\n"
)
_EAST, _NORTH = (
    "surface_geostrophic_eastward_sea_water_velocity",
    "surface_geostrophic_northward_sea_water_velocity",
)
_ANOMALY = "_assuming_sea_level_for_geoid"
_FROM_MDT = "Derived from [ssha_filtered] field and mean dynamic currents associated with the MDT field"


def _gos(component: str, standard_name: str, comment: str) -> dict[str, str]:
    return {"long_name": component, "standard_name": standard_name, "units": "m/s", "comment": comment}


_EXPERT_AUX_ATTRS: dict[str, dict[str, str]] = {
    "calibration": {
        "comment": "phase screen + phase_screen_static + phase_screen_orbit + xcal. the uncorrected ssha can "
        "be computed as follows: [uncorrected ssha]=[ssha from product] - [calibration]; see the product "
        "user manual for details.\n",
        "long_name": "satellite calibration",
        "units": "m",
    },
    "dac": {
        "comment": "Model estimate of the effect on sea surface topography due to high frequency air "
        "pressure and wind effects and the low-frequency height from inverted barometer effect. "
        + _CORRECTED.format(v="dac"),
        "institution": "LEGOS/CNES/CLS",
        "long_name": "dynamic atmospheric correction",
        "source": "MOG2D",
        "units": "m",
    },
    "internal_tide": {
        "comment": _CORRECTED.format(v="internal_tide"),
        "long_name": "Internal Tide signal from HRET14/HRET8 blend: coherent mode M2/K1/O1/S2/N2",
        "source": "HRET14/HRET8 blend",
        "units": "m",
        "disclaimer": "There are limitations of HRET14 in specific regions (see L3 handbook).\n",
    },
    "mss": {
        "comment": "Mean sea surface height above the reference ellipsoid. The value is referenced to the "
        "mean tide system, i.e. includes the permanent tide (zero frequency)\n",
        "long_name": "mean sea surface height (CNES/CLS)",
        "source": "Hybrid SIO/CNES_CLS22/DTU21 (https://doi.org/10.24400/527896/a01-2024.002)",
        "units": "m",
    },
    "ocean_tide": {
        "comment": "Geocentric ocean tide height. Includes the total sum of the ocean tide, the "
        "corresponding load tide and equilibrium long-period ocean tide height. "
        + _CORRECTED.format(v="ocean_tide"),
        "institution": "LEGOS/CNES",
        "long_name": "geocentric ocean tide height (FES)",
        "source": "FES2022 (https://doi.org/10.24400/527896/A01-2024.004)",
        "units": "m",
    },
    "sigma0": {
        "comment": "Normalized radar cross section (sigma0) from KaRIn in real, linear units (not decibels). "
        "The value may be negative due to noise subtraction.\n",
        "long_name": "normalized radar cross section (sigma0) from KaRIn)",
        "standard_name": "surface_backwards_scattering_coefficient_of_radar_wave",
        "units": "1",
    },
    "ugos_filtered": _gos("Absolute geostrophic velocity: zonal component", _EAST, _FROM_MDT),
    "ugosa_filtered": _gos(
        "Geostrophic velocity anomalies: zonal component",
        _EAST + _ANOMALY,
        "Derived from ssha_filtered field",
    ),
    "ugosa_unfiltered": _gos(
        "Geostrophic velocity anomalies: zonal component",
        _EAST + _ANOMALY,
        "Derived from ssha_unfiltered field",
    ),
    "vgos_filtered": _gos("Absolute geostrophic velocity: meridian component", _NORTH, _FROM_MDT),
    "vgosa_filtered": _gos(
        "Geostrophic velocity anomalies: meridian component",
        _NORTH + _ANOMALY,
        "Derived from ssha_filtered field",
    ),
    "vgosa_unfiltered": _gos(
        "Geostrophic velocity anomalies: meridian component",
        _NORTH + _ANOMALY,
        "Derived from ssha_unfiltered field",
    ),
}


def _swot_time_var(sw: _Swath, fill: bool) -> _Var:
    seconds = (sw.times - SWOT_EPOCH) / np.timedelta64(1, "s")
    attrs: dict[str, Any] = {}
    if fill:  # L2 declares the netCDF default double fill explicitly
        attrs["_FillValue"] = np.float64(9.969209968386869e36)
    attrs |= {
        "comment": "Time of measurement in seconds in the UTC time scale since 1 Jan 2000 00:00:00 UTC. "
        "[tai_utc_difference] is the difference between TAI and UTC reference time (seconds) for the first "
        "measurement of the data set. If a leap second occurs within the data set, the attribute leap_second "
        "is set to the UTC time at which the leap second occurs.",
        "leap_second": "0000-00-00T00:00:00Z",
        "long_name": "time in UTC",
        "standard_name": "time",
        "tai_utc_difference": np.float64(37.0),
        "calendar": "gregorian",
        "units": "seconds since 2000-01-01 00:00:00.0",
    }
    return _Var(("num_lines",), seconds, attrs)


def _latlon_vars(sw: _Swath, missing: np.ndarray | None, l2: bool) -> dict[str, _Var]:
    out = {}
    for name, packed, long_name, units, comment, valid in (
        (
            "latitude",
            sw.lat,
            "latitude (positive N, negative S)",
            "degrees_north",
            "Latitude of measurement [-80,80]. Positive latitude is North latitude, negative latitude is "
            "South "
            "latitude.",
            (-80_000_000, 80_000_000),
        ),
        (
            "longitude",
            sw.lon,
            "longitude (degrees East)",
            "degrees_east",
            "Longitude of measurement. East longitude relative to Greenwich meridian.",
            (0, 359_999_999),
        ),
    ):
        data = packed.copy()
        attrs: dict[str, Any] = {}
        if l2:
            data[missing] = _L2_INT_FILL
            attrs["_FillValue"] = np.int32(_L2_INT_FILL)
        attrs |= {
            "scale_factor": np.float64(1e-6),
            "comment": comment,
            "long_name": long_name,
            "standard_name": name,
            "units": units,
        }
        if l2:
            attrs |= {"valid_min": np.int32(valid[0]), "valid_max": np.int32(valid[1])}
        out[name] = _Var(("num_lines", "num_pixels"), data, attrs)
    return out


def _nadir_vars(sw: _Swath) -> dict[str, _Var]:
    return {
        "i_num_line": _Var(
            ("num_nadir",),
            sw.nadir_lines.astype(np.int16),
            {
                "comment": "alongtrack indice of the nearest karin pixel from the nadir data",
                "long_name": "alongtrack indice of the nearest karin pixel from the nadir data",
                "units": "count",
            },
        ),
        "i_num_pixel": _Var(
            ("num_nadir",),
            np.full(sw.nadir_lines.size, sw.centre, dtype=np.int8),
            {
                "comment": "acrosstrack indice of the nearest karin pixel from the nadir data",
                "long_name": "acrosstrack indice of the nearest karin pixel from the nadir data",
                "units": "count",
            },
        ),
    }


def _l3_globals(sw: _Swath, kind: SwotKind) -> dict[str, Any]:
    created = f"{_to_datetime(sw.times[0]).date() + dt.timedelta(days=66):%Y-%m-%d}T00:19:16Z"
    lat, lon = sw.lat_deg, sw.lon_deg
    return {
        "Conventions": "CF-1.7",
        "Metadata_Conventions": "Unidata Dataset Discovery v1.0",
        "cdm_data_type": "Swath",
        "comment": "Sea Surface Height measured by Altimetry",
        "data_used": "SWOT KaRIn L2_LR_SSH PGC0/PIC0/PIC2 (NASA/CNES). DOI associated: "
        "https://doi.org/10.24400/527896/a01-2023.015",
        "doi": "https://doi.org/10.24400/527896/A01-2023.017"
        if kind == "Basic"
        else "https://doi.org/10.24400/527896/A01-2023.018",
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
        "geospatial_vertical_max": np.int64(0),
        "geospatial_vertical_min": np.int64(0),
        "geospatial_vertical_positive": "down",
        "geospatial_vertical_resolution": "point",
        "geospatial_vertical_units": "m",
        "institution": "CLS, CNES",
        "keywords": "Oceans > Ocean Topography > Sea Surface Height",
        "keywords_vocabulary": "NetCDF COARDS Climate and Forecast Standard Names",
        "platform": "Swot",
        "processing_level": "L3",
        "product_version": "2.0.1",
        "project": "SSALTO/DUACS",
        "reference_altimeter": "S6",
        "references": "Handbook: https://www.aviso.altimetry.fr/fileadmin/documents/data/tools/hdbk_duacs_SWOT_L3.pdf",
        "source": "Altimetry measurements",
        "ssalto_duacs_comment": "The reference mission used for the altimeter inter-calibration processing "
        "is Sentinel-6A",
        "standard_name_vocabulary": _CF_VOCABULARY,
        "time_coverage_resolution": "PT0.3S",
        "title": "NRT SWOT KaRIn & nadir Global Ocean swath SSALTO/DUACS Sea Surface Height L3 product",
        "contact": "aviso@altimetry.fr",
        "creator_email": "aviso@altimetry.fr",
        "creator_name": "DUACS - Data Unification and Altimeter Combination System",
        "creator_url": "https://aviso.altimetry.fr",
        "license": "https://www.aviso.altimetry.fr/fileadmin/documents/data/License_Aviso.pdf",
        "time_coverage_start": _iso(sw.times[0]),
        "time_coverage_end": _iso(sw.times[-1]),
        "geospatial_lat_min": np.float64(lat.min()),
        "geospatial_lat_max": np.float64(lat.max()),
        "geospatial_lon_min": np.float64(lon.min()),
        "geospatial_lon_max": np.float64(lon.max()),
        "date_modified": created,
        "history": f"{created}: Created by oceantaco synthetic (DUACS KaRIn prototype layout)",
        "date_created": created,
        "date_issued": created,
    }


def _l3_variables(sw: _Swath, kind: SwotKind, rng: np.random.Generator) -> dict[str, _Var]:
    flag = _l3_flags(sw, rng)
    good = flag == 0
    no_value = (flag == _FLAG_LAND) | (flag == _FLAG_NO_DATA)
    expert = kind == "Expert"
    # Expert keeps measured-but-flagged pixels with (garbage) values; Basic has already blanked them.
    missing = no_value if expert else ~good
    lat, lon, when = sw.lat_deg, sw.lon_deg, sw.times[:, None]
    junk = _garbage(flag.shape, rng)
    flagged = ~good & ~no_value

    def measured(value: np.ndarray) -> np.ndarray:
        return np.where(flagged, junk, value) if expert else value

    sla = analytic_sla(lat, lon, when)
    unfiltered = measured(sla + _ripple(lat, lon, when))
    mdt = analytic_swot("mdt", lat, lon, when)
    ssha_f = _l3_var(measured(sla), missing, _SSHA_FILTERED_ATTRS)
    ssha_f = _Var(
        ssha_f.dims, ssha_f.data, ssha_f.attrs, vlen_attrs={"disclaimer": _SSHA_FILTERED_DISCLAIMER}
    )
    variables: dict[str, _Var] = {"time": _swot_time_var(sw, fill=False)}
    if not expert:
        variables |= _latlon_vars(sw, None, l2=False)
        variables["mdt"] = _l3_var(mdt, missing, _MDT_ATTRS)
        variables["ssha_filtered"] = ssha_f
        variables["ssha_unfiltered"] = _l3_var(unfiltered, missing, _SSHA_UNFILTERED_ATTRS)
        return variables | _nadir_vars(sw)

    coords = {"coordinates": "longitude latitude"}

    # Corrections vary along track only (evaluated at nadir): nobody bins them, and 12 full-swath fields
    # would double the time a pass takes to write.
    nadir_lat, nadir_lon = lat[:, sw.centre : sw.centre + 1], lon[:, sw.centre : sw.centre + 1]

    def aux(name: str, dtype: str = "int32", fill: int = _L3_INT_FILL) -> _Var:
        value = np.broadcast_to(_aux(name, nadir_lat, nadir_lon, when), flag.shape)
        return _l3_var(value, no_value, {**coords, **_EXPERT_AUX_ATTRS[name]}, dtype, fill)

    variables["calibration"] = aux("calibration")
    variables["cross_track_distance"] = _Var(
        ("num_pixels",),
        sw.xtd.astype(np.float64),
        {
            "comment": "Distance of sample from nadir. Negative values indicate the left side of the swath, "
            "and "
            "positive values indicate the right side of the swath.\n",
            "coordinates": "longitude latitude",
            "long_name": "cross track distance",
            "units": "km",
            "valid_max": np.float64(75.0),
            "valid_min": np.float64(-75.0),
        },
    )
    variables["dac"] = aux("dac", "int16", -32767)
    variables["internal_tide"] = aux("internal_tide")
    variables |= _latlon_vars(sw, None, l2=False)
    variables["mdt"] = _l3_var(mdt, no_value, _MDT_ATTRS)
    variables["mss"] = aux("mss")
    variables["ocean_tide"] = aux("ocean_tide")
    variables["quality_flag"] = _Var(
        ("num_lines", "num_pixels"),
        flag,
        {
            "comment": "Deduced from L3 DUACS processing; see the product user manual for details.\n",
            "coordinates": "longitude latitude",
            "credits": "LEGOS is the author of the sea ice classification algorithm used to fill the 'ice', "
            "'ice_unsure' and 'ocean_unsure' flags.\n",
            "flag_masks": np.array(_L3_FLAG_VALUES, dtype=np.int64),  # int64 as in the sample file
            "flag_meanings": _L3_FLAG_MEANINGS,
            "long_name": "Quality Flag",
            "standard_name": "valid_flag_for_data",
        },
    )
    variables["sigma0"] = aux("sigma0")
    variables["sigma0"].attrs.update(valid_max=np.int32(10_000_000), valid_min=np.int32(-1000))
    variables["ssha_filtered"] = ssha_f
    variables["ssha_unedited"] = _l3_var(
        unfiltered,
        no_value,
        {**_SSHA_UNFILTERED_ATTRS, "long_name": "sea surface height anomaly calibrated"},
    )
    variables["ssha_unfiltered"] = _l3_var(unfiltered, missing, _SSHA_UNFILTERED_ATTRS)
    for name in (
        "ugos_filtered",
        "ugosa_filtered",
        "ugosa_unfiltered",
        "vgos_filtered",
        "vgosa_filtered",
        "vgosa_unfiltered",
    ):
        variables[name] = aux(name)
    return variables | _nadir_vars(sw)


def _l2_variables(sw: _Swath, rng: np.random.Generator) -> tuple[dict[str, _Var], dict[str, Any]]:
    n_lines, n_pixels = sw.lat.shape
    # The nadir gap has no KaRIn sample, so no position either; a short run of missing lines blanks all.
    no_position = np.zeros((n_lines, n_pixels), dtype=bool)
    no_position[:, np.abs(sw.xtd) < _NADIR_GAP_KM] = True
    if n_lines >= 20:
        run = max(1, n_lines // 200)
        first = int(rng.integers(n_lines // 4, 3 * n_lines // 4 - run))
        no_position[first : first + run] = True
    bits = rng.choice(_L2_QUAL_MASKS, size=(n_lines, n_pixels))
    qual = np.where(rng.random((n_lines, n_pixels)) < 0.03, bits, np.uint32(0)).astype(np.uint32)
    qual[:, np.abs(sw.xtd) > _SWATH_EDGE_KM] |= _L2_DEGRADED
    qual[sw.land] |= _L2_NOT_USABLE
    qual[no_position] = _L2_QUAL_FILL
    flagged = (qual != 0) & ~no_position
    lat, lon, when = sw.lat_deg, sw.lon_deg, sw.times[:, None]
    ssha = np.where(flagged, _garbage(qual.shape, rng), analytic_swot("ssha_unfiltered", lat, lon, when))
    mss = _aux("mss", lat, lon, when)
    mdt = analytic_swot("mdt", lat, lon, when)
    coords = {"coordinates": "longitude latitude"}

    def int32(physical: np.ndarray, attrs: dict[str, Any], missing: np.ndarray = no_position) -> _Var:
        return _Var(
            ("num_lines", "num_pixels"),
            _packed(physical, "int32", 1e-4, _L2_INT_FILL, missing),
            {**_packing_attrs("int32", 1e-4, _L2_INT_FILL), **attrs, **coords},
        )

    def qual_var(target: str) -> _Var:
        return _Var(
            ("num_lines", "num_pixels"),
            qual,
            {
                "_FillValue": _L2_QUAL_FILL,
                "long_name": f"quality flag for {target}",
                "standard_name": "status_flag",
                "flag_meanings": _L2_QUAL_MEANINGS,
                "flag_masks": _L2_QUAL_MASKS,
                "valid_min": np.uint32(0),
                "valid_max": np.uint32(4279222239),
                "comment": f"Quality flag for {target} in the {target} variable.",
                **coords,
            },
        )

    def height(long_name: str, qual_name: str, valid: tuple[int, int]) -> dict[str, Any]:
        return {
            "long_name": long_name,
            "units": "m",
            "quality_flag": qual_name,
            "valid_min": np.int32(valid[0]),
            "valid_max": np.int32(valid[1]),
        }

    ssh_range, ssha_range = (-15_000_000, 150_000_000), (-1_000_000, 1_000_000)
    wet_tropo = 0.004 * np.cos(np.deg2rad(lat))  # model vs radiometer wet troposphere difference
    variables: dict[str, _Var] = {
        "time": _swot_time_var(sw, fill=True),
        "time_tai": _Var(
            ("num_lines",),
            (sw.times - SWOT_EPOCH) / np.timedelta64(1, "s") + 37.0,
            {
                "_FillValue": np.float64(9.969209968386869e36),
                "long_name": "time in TAI",
                "standard_name": "time",
                "calendar": "gregorian",
                "tai_utc_difference": np.float64(37.0),
                "units": "seconds since 2000-01-01 00:00:00.0",
            },
        ),
        **_latlon_vars(sw, no_position, l2=True),
        "ssh_karin": int32(ssha + mss, height("sea surface height", "ssh_karin_qual", ssh_range)),
        "ssh_karin_qual": qual_var("ssh_karin"),
        "ssh_karin_uncert": _Var(
            ("num_lines", "num_pixels"),
            _packed(_aux("ssh_karin_uncert", lat, lon, when), "uint16", 1e-4, 65535, no_position),
            {
                **_packing_attrs("uint16", 1e-4, 65535),
                "long_name": "sea surface height anomaly uncertainty",
                "units": "m",
                "valid_min": np.uint16(0),
                "valid_max": np.uint16(60000),
                **coords,
            },
        ),
        "ssha_karin": int32(ssha, height("sea surface height anomaly", "ssha_karin_qual", ssha_range)),
        "ssha_karin_qual": qual_var("ssha_karin"),
        "polarization_karin": _Var(
            ("num_lines",),
            np.full(n_lines, b"HV", dtype="S2"),
            {
                "long_name": "polarization for each side of the KaRIn swath",
                "comment": "H denotes co-polarized "
                "linear horizontal, V denotes co-polarized linear vertical.",
            },
            encoding={"char_dim_name": "num_sides", "chunksizes": (n_lines, 2)},
        ),
        "ssh_karin_2": int32(
            ssha + mss + wet_tropo, height("sea surface height", "ssh_karin_2_qual", ssh_range)
        ),
        "ssh_karin_2_qual": qual_var("ssh_karin_2"),
        "ssha_karin_2": int32(
            ssha + wet_tropo, height("sea surface height anomaly", "ssha_karin_2_qual", ssha_range)
        ),
        "ssha_karin_2_qual": qual_var("ssha_karin_2"),
        "geoid": int32(
            mss - mdt,
            {
                "long_name": "geoid height",
                "standard_name": "geoid_height_above_reference_ellipsoid",
                "units": "m",
            },
        ),
        "internal_tide_hret": int32(
            _aux("internal_tide_hret", lat, lon, when),
            {"long_name": "coherent internal tide (HRET)", "units": "m"},
        ),
        "height_cor_xover": int32(
            _aux("height_cor_xover", lat, lon, when),
            {"long_name": "height correction from crossover calibration", "units": "m"},
        ),
        "height_cor_xover_qual": _Var(
            ("num_lines", "num_pixels"),
            np.where(no_position, np.uint8(255), np.uint8(0)).astype(np.uint8),
            {
                "_FillValue": np.uint8(255),
                "long_name": "quality flag for height correction from crossover calibration",
                "flag_meanings": "good suspect bad",
                "flag_values": np.array([0, 1, 2], dtype=np.uint8),
                **coords,
            },
        ),
    }
    measured = ~no_position
    good = measured & (qual == 0)
    stats = {
        "good_ocean_data_percent": np.float64(100.0 * good.sum() / max(1, (~sw.land & measured).sum())),
        "ssha_variance": np.float64(np.var(ssha[good])) if good.any() else np.float64(0.0),
    }
    return variables, stats


def _l2_globals(sw: _Swath, cycle: int, pass_number: int, stats: dict[str, Any]) -> dict[str, Any]:
    lat, lon = sw.lat_deg, sw.lon_deg
    created = _to_datetime(sw.times[-1]) + dt.timedelta(days=30)
    return {
        "Conventions": "CF-1.7",
        "title": "Level 2 Low Rate Sea Surface Height Data Product - Basic SSH",
        "institution": "CNES",
        "source": "Ka-band radar interferometer",
        "history": f"{created:%Y-%m-%dT%H:%M:%SZ} : Creation (oceantaco synthetic)",
        "platform": "SWOT",
        "product_version": "01",
        "references": "V1.4.1",
        "reference_document": "D-56407_SWOT_Product_Description_L2_LR_SSH",
        "contact": "CNES aviso@altimetry.fr, JPL podaac@podaac.jpl.nasa.gov",
        "cycle_number": np.int16(cycle),
        "pass_number": np.int16(pass_number),
        "equator_time": f"{np.datetime_as_string(sw.equator_time, 'us')}Z",
        "equator_longitude": np.float64(round(sw.equator_lon, 6)),
        "time_coverage_start": f"{np.datetime_as_string(sw.times[0], 'us')}Z",
        "time_coverage_end": f"{np.datetime_as_string(sw.times[-1], 'us')}Z",
        "geospatial_lon_min": np.float64(np.nanmin(lon)),
        "geospatial_lon_max": np.float64(np.nanmax(lon)),
        "geospatial_lat_min": np.float64(np.nanmin(lat)),
        "geospatial_lat_max": np.float64(np.nanmax(lat)),
        "short_name": "L2_LR_SSH",
        "product_file_id": "Basic",
        "crid": "PIC2",
        "orbit_solution": "POE",
        "ellipsoid_semi_major_axis": np.float64(6378137.0),
        "ellipsoid_flattening": np.float64(0.003352810664781205),
        **stats,
    }


def write_swot_pass(
    path: Path | str,
    cycle: int,
    pass_number: int,
    start: dt.datetime,
    *,
    kind: SwotKind = "Basic",
    n_lines: int | None = None,
    n_pixels: int = SWOT_PIXELS,
    seed: int = 0,
) -> Path:
    """Write one SWOT pass. ``path`` ending in ``.nc`` is the file; otherwise it is the folder and the file
    gets its upstream name (:func:`swot_file_name`).

    L3 (``Basic``/``Expert``, §9a): ``num_lines`` × ``num_pixels`` (default 9860 × 69), ``time(num_lines)``
    float64 seconds since 2000-01-01, 2-D int32 × 1e-6 ``latitude``/``longitude`` (0..360, no fill),
    ``ssha_filtered``/``ssha_unfiltered``/``mdt`` int32 × 1e-4 fill -2147483647, ``i_num_line`` int16 and
    ``i_num_pixel`` int8 on ``num_nadir``; zlib level 5 + shuffle. Expert adds ``quality_flag`` (uint8),
    ``cross_track_distance`` and the rest of the real sample's variables (``dac`` int16 fill -32767, tides,
    ``mss``, ``sigma0``, geostrophic velocities, ``ssha_unedited``); its flagged pixels carry garbage.
    ``L2Basic`` (§9b): 9866 lines, ``num_sides``, lat/lon fill 2147483647 in the nadir gap and on missing
    lines, ``ssha_karin``/``ssh_karin`` int32 × 1e-4 (fill 2147483647, ``quality_flag`` naming their uint32
    ``*_qual`` bit mask, fill 4294967295), ``ssh_karin_uncert`` uint16 (fill 65535), ``cycle_number``/
    ``pass_number`` short global attributes.

    Positions follow (``cycle``, ``pass_number``) on the science orbit; line times start at ``start``
    (use :func:`swot_pass_start` for the nominal one). ``n_lines`` defaults to the kind's native count.
    """
    _check_kind(kind)
    if n_pixels < 3 or n_pixels % 2 == 0:
        raise ValueError("n_pixels must be odd (a nadir column in the middle) and at least 3")
    n = n_lines or _native_lines(kind)
    if n < 2:
        raise ValueError("n_lines must be at least 2")
    start_us = _as_us(start)
    sw = _swath(cycle, pass_number, start_us, kind, n, n_pixels)
    path = Path(path)
    if path.suffix != ".nc":
        path = path / swot_file_name(kind, cycle, pass_number, sw.times[0], sw.times[-1])
    rng = np.random.default_rng([seed, cycle, pass_number])
    if kind == "L2Basic":
        variables, stats = _l2_variables(sw, rng)
        return _write(path, variables, _l2_globals(sw, cycle, pass_number, stats), complevel=5)
    return _write(path, _l3_variables(sw, kind, rng), _l3_globals(sw, kind), complevel=5)


def swot_day(
    day: dt.date,
    *,
    n_passes: int = 28,
    kind: SwotKind = "Basic",
    seed: int = 0,
    n_lines: int | None = None,
) -> list[tuple[int, int, dt.datetime]]:
    """``(cycle, pass_number, start)`` of the SWOT passes that touch UTC ``day``, in time order.

    The science orbit makes ~28 passes a day; the list starts with the pass that began before midnight and
    ends on ``day`` and finishes with the one that crosses into the next day (whenever the orbit puts a
    pass across each midnight, i.e. unless a midnight falls in the 0.3 s between two passes). With fewer
    ``n_passes`` than touch the day, passes in the middle are left out (as missing files are upstream),
    chosen with ``seed``; those two crossing passes are always kept. ``kind``/``n_lines`` set the pass
    length used for "touches".
    """
    _check_kind(kind)
    n = n_lines or _native_lines(kind)
    length = np.timedelta64(round((n - 1) * _line_step_s(kind, n) * 1e6), "us")
    day_start = np.datetime64(day, "us")
    day_end = day_start + np.timedelta64(_DAY_US, "us")
    first = math.floor(_SWOT.seconds(day_start) / _SWOT.pass_seconds) - 1
    last = math.floor(_SWOT.seconds(day_end) / _SWOT.pass_seconds) + 1
    index = np.arange(first, last + 1)
    starts = _SWOT.pass_start(index)
    touching = (starts < day_end) & (starts + length >= day_start)
    index, starts = index[touching], starts[touching]
    if n_passes < index.size:
        rng = np.random.default_rng([seed, day.toordinal()])
        keep = np.zeros(index.size, dtype=bool)
        ends = [0, index.size - 1][: max(0, n_passes)]
        keep[ends] = True
        middle = np.arange(1, index.size - 1)
        keep[rng.choice(middle, size=max(0, n_passes - len(ends)), replace=False)] = True
        index, starts = index[keep], starts[keep]
    cycles, passes = _SWOT.cycle_pass(index)
    return [(int(c), int(p), _to_datetime(s)) for c, p, s in zip(cycles, passes, starts, strict=True)]


# ---------------------------------------------------------------------------------------------------------
# A day of raw files, as the original pipeline laid them out (anchor study §1.3 / §1.4)
# ---------------------------------------------------------------------------------------------------------

L3_SSH_DATASET_VERSION = "202411"


def _alongtrack_target(dataset: Dataset, day: dt.date) -> tuple[str, dt.date, Timeliness, str]:
    """Satellite, production date, timeliness and file name of a day's file in ``dataset``.

    NRT files are final 6 days after the measurement; MY files carry the reprocessing date, or a later one
    for days appended after it (the same rule as the L4 mirror)."""
    found = re.match(r"(dt|nrt)_global_([a-z0-9]+)_phy_l3", dataset.pattern)
    if found is None:
        raise ValueError(f"cannot tell the satellite from pattern {dataset.pattern!r}")
    timeliness: Timeliness = "nrt" if found.group(1) == "nrt" else "dt"
    satellite = found.group(2)
    if timeliness == "nrt":
        production = day + dt.timedelta(days=6)
    else:
        production = max(dt.date(2024, 11, 20), day + dt.timedelta(days=120))
    return satellite, production, timeliness, alongtrack_file_name(satellite, day, production, timeliness)


def write_sparse_day(
    raw_root: Path | str,
    day: dt.date,
    *,
    products: Sequence[str] = ("l3_ssh", "l3_swot"),
    alongtrack_points: int = 50_000,
    swot_lines: int | None = None,
    swot_passes: int = 28,
    swot_kind: SwotKind = "Basic",
    workers: int = 1,
) -> dict[str, list[Path]]:
    """Write ``day``'s raw files of the sparse products under ``raw_root``; returns the paths per product.

    ``l3_ssh``: one file per satellite whose catalog dataset covers ``day``, in the Copernicus Marine native
    tree ``raw_root/l3_ssh/<PRODUCT_ID>/<DATASET_ID>_202411/YYYY/MM/<file>``; every name is checked against
    the dataset's ``file_regex(day)``. ``l3_swot``: the :func:`swot_day` passes in the flat folder
    ``raw_root/l3_swot`` (``raw_root/l2_swot`` for ``swot_kind="L2Basic"``); L3 Basic names are checked
    against the catalog regex of their start day. ``alongtrack_points``/``swot_lines`` (default: native
    9860 / 9866) make small, fast days for tests. ``workers`` > 1 writes files in that many (spawned)
    processes; the files are identical either way.
    """
    raw_root = Path(raw_root)
    catalog = load_catalog()
    unknown = [p for p in products if p not in ("l3_ssh", "l3_swot")]
    if unknown:
        raise ValueError(f"not a sparse product: {', '.join(unknown)}")
    jobs: list[tuple[str, Callable[..., Path], tuple[Any, ...], dict[str, Any]]] = []
    if "l3_ssh" in products:
        for dataset in catalog["l3_ssh"].datasets_for(day):
            satellite, production, timeliness, name = _alongtrack_target(dataset, day)
            if not dataset.file_regex(day).match(name):
                raise AssertionError(f"{name!r} does not match the catalog pattern {dataset.pattern!r}")
            folder = raw_root / catalog["l3_ssh"].raw_dir / dataset.product_id
            folder = folder / f"{dataset.dataset_id}_{L3_SSH_DATASET_VERSION}" / f"{day:%Y}" / f"{day:%m}"
            kwargs = {"production_date": production, "n_points": alongtrack_points, "timeliness": timeliness}
            jobs.append(("l3_ssh", write_alongtrack, (folder / name, satellite, day), kwargs))
    if "l3_swot" in products:
        folder = raw_root / ("l2_swot" if swot_kind == "L2Basic" else catalog["l3_swot"].raw_dir)
        for cycle, pass_number, start in swot_day(
            day, n_passes=swot_passes, kind=swot_kind, n_lines=swot_lines
        ):
            name = swot_file_name(
                swot_kind, cycle, pass_number, start, swot_pass_end(start, swot_kind, swot_lines)
            )
            if swot_kind == "Basic":
                dataset = catalog["l3_swot"].dataset_for(start.date())
                if not dataset.file_regex(start.date()).match(name):
                    raise AssertionError(f"{name!r} does not match the catalog pattern {dataset.pattern!r}")
            kwargs = {"kind": swot_kind, "n_lines": swot_lines}
            jobs.append(("l3_swot", write_swot_pass, (folder / name, cycle, pass_number, start), kwargs))
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: the parent may hold HDF5 state (open files, locks) that a fork would copy.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(func, *args, **kwargs) for _, func, args, kwargs in jobs]
            paths = [future.result() for future in futures]
    else:
        paths = [func(*args, **kwargs) for _, func, args, kwargs in jobs]
    written: dict[str, list[Path]] = {token: [] for token in products}
    for (token, *_), path in zip(jobs, paths, strict=True):
        written[token].append(path)
    return written


# ---------------------------------------------------------------------------------------------------------
# Truth: what a correct loader keeps, decoded from the written file
# ---------------------------------------------------------------------------------------------------------


def read_truth(path: Path | str) -> dict[str, np.ndarray]:
    """Decode a file written here with plain xarray CF decoding into 1-D arrays, one entry per observation.

    Keys: ``time`` (datetime64[ns]), ``lat``, ``lon`` (float64, lon 0..360 as stored), ``values`` (the
    product's primary variable: ``sla_filtered``, ``ssha_filtered`` or L2 ``ssha_karin``), ``valid`` (the
    points a correct loader bins for it), and per variable ``<var>`` and ``valid_<var>``: along-track
    ``sla_filtered``, ``sla_unfiltered``, ``mdt`` plus ``cycle``/``track``; SWOT L3 ``ssha_filtered``,
    ``ssha_unfiltered``, ``mdt`` plus ``line``/``pixel``; L2 ``ssha_karin``, ``ssh_karin``. A point is valid
    where the variable is not fill, the position is not fill and, where the file has one, the quality flag
    is 0 (Expert ``quality_flag`` applies to every variable).
    """
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds = ds.load()
    if "sla_filtered" in ds:
        names, primary, flag = ("sla_filtered", "sla_unfiltered", "mdt"), "sla_filtered", None
    elif "ssha_filtered" in ds:
        names, primary = ("ssha_filtered", "ssha_unfiltered", "mdt"), "ssha_filtered"
        flag = ds["quality_flag"].values == 0 if "quality_flag" in ds else None
    elif "ssha_karin" in ds:
        names, primary = ("ssha_karin", "ssh_karin"), "ssha_karin"
        flag = ds["ssha_karin_qual"].values == 0
    else:
        raise ValueError(f"{path}: not a sparse product file written by oceantaco.synthetic_sparse")
    lat = ds["latitude"].values.astype(np.float64)
    lon = ds["longitude"].values.astype(np.float64)
    time = ds["time"].values
    out: dict[str, np.ndarray] = {}
    if lat.ndim == 2:
        lines, pixels = np.indices(lat.shape)
        out["line"], out["pixel"] = lines.ravel(), pixels.ravel()
        time = np.broadcast_to(time[:, None], lat.shape)
    else:
        out["cycle"], out["track"] = ds["cycle"].values.astype(np.int64), ds["track"].values.astype(np.int64)
    position = np.isfinite(lat) & np.isfinite(lon)
    for name in names:
        values = ds[name].values.astype(np.float64)
        valid = np.isfinite(values) & position
        if flag is not None:
            valid &= flag
        out[name], out[f"valid_{name}"] = values.ravel(), valid.ravel()
    out |= {
        "time": np.asarray(time).ravel(),
        "lat": lat.ravel(),
        "lon": lon.ravel(),
        "values": out[primary],
        "valid": out[f"valid_{primary}"],
    }
    return out
