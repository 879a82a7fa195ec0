"""Synthetic upstream files that are structurally identical to the real products, with analytic values.

The pipeline is tested and demonstrated without network access by pointing it at a local "mirror" built
here. Two requirements drive the design:

* **Structure is copied from real files** (see the reference product-formats.md, §2 and §10):
  variable and dimension names and order, dtypes, CF packing, fill values, longitude convention, time
  encoding, global attributes, blank-padded char arrays, and the NetCDF flavour (NETCDF4/HDF5 for DUACS,
  NETCDF3_CLASSIC for Argo). A loader that works on these files is expected to work on the real ones.
* **Values are analytic and deterministic** (:func:`analytic_ssh`, :func:`analytic_argo_temp`,
  :func:`analytic_argo_psal`), so a test can compare a decoded pipeline output with the exact physical
  input rather than with a stored golden file.

Nothing here reads the reference or its sample files; the structure is encoded in this module.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from scipy.io import netcdf_file

from oceantaco.catalog import load_catalog
from oceantaco.regions import REGIONS, normalize_lon

# ---------------------------------------------------------------------------------------------------------
# DUACS L4 gridded SSH (SEALEVEL_GLO_PHY_L4_MY_008_047 / NRT_008_046)
# ---------------------------------------------------------------------------------------------------------

DUACS_EPOCH = dt.date(1950, 1, 1)
DUACS_SCALE_FACTOR = 0.0001
DUACS_FILL_VALUE = np.int32(-2147483647)
DUACS_VARIABLES: tuple[str, ...] = ("adt", "ugos", "vgos", "sla", "ugosa", "vgosa", "err_sla")
L4_SSH_DATASET_VERSION = "202411"

LonConvention = Literal["-180..180", "0..360"]
Timeliness = Literal["dt", "nrt"]

# Rectangular "continents" (lon_min, lon_max, lat_min, lat_max) in [-180, 180). The last one crosses the
# antimeridian (lon_min > lon_max) so loaders that re-wrap longitudes are exercised. Edges are on whole
# degrees, which no 0.125° or 0.25° cell centre hits, so the mask does not depend on float rounding.
_CONTINENTS: tuple[tuple[float, float, float, float], ...] = (
    (-100.0, -60.0, 15.0, 55.0),
    (10.0, 40.0, -30.0, 30.0),
    (115.0, 150.0, -38.0, -15.0),
    (170.0, -170.0, 50.0, 66.0),
)
_POLAR_CAP_DEG = 80.0

_SLA_COMMENT = (
    "The sea level anomaly is the sea surface height above mean sea surface; it is referenced to the "
    "[1993, 2012] period; see the product user manual for details"
)
_ADT_COMMENT = (
    "The absolute dynamic topography is the sea surface height above geoid; the adt is obtained as "
    "follows: adt=sla+mdt where mdt is the mean dynamic topography; see the product user manual for details"
)
_GOSA_COMMENT = "The geostrophic velocity anomalies are referenced to the [1993, 2012] period"

# Per-variable attributes as the real Black Sea DT file has them (err_sla is not in any sample file; its
# attributes follow the same pattern). sla points to err_sla, the name the newer products use (the old
# Black Sea file still says "err", a variable it does not contain).
_DUACS_VAR_ATTRS: dict[str, dict[str, str]] = {
    "adt": {
        "comment": _ADT_COMMENT,
        "long_name": "Absolute dynamic topography",
        "standard_name": "sea_surface_height_above_geoid",
        "units": "m",
    },
    "ugos": {
        "long_name": "Absolute geostrophic velocity: zonal component",
        "standard_name": "surface_geostrophic_eastward_sea_water_velocity",
        "units": "m/s",
    },
    "vgos": {
        "long_name": "Absolute geostrophic velocity: meridian component",
        "standard_name": "surface_geostrophic_northward_sea_water_velocity",
        "units": "m/s",
    },
    "sla": {
        "ancillary_variables": "err_sla",
        "comment": _SLA_COMMENT,
        "long_name": "Sea level anomaly",
        "standard_name": "sea_surface_height_above_sea_level",
        "units": "m",
    },
    "ugosa": {
        "ancillary_variables": "err_ugosa",
        "comment": _GOSA_COMMENT,
        "long_name": "Geostrophic velocity anomalies: zonal component",
        "standard_name": "surface_geostrophic_eastward_sea_water_velocity_assuming_sea_level_for_geoid",
        "units": "m/s",
    },
    "vgosa": {
        "ancillary_variables": "err_vgosa",
        "comment": _GOSA_COMMENT,
        "long_name": "Geostrophic velocity anomalies: meridian component",
        "standard_name": "surface_geostrophic_northward_sea_water_velocity_assuming_sea_level_for_geoid",
        "units": "m/s",
    },
    "err_sla": {
        "comment": "The formal mapping error represents a purely theoretical mapping error.",
        "long_name": "Formal mapping error",
        "units": "m",
    },
}

# Storage layout of the real DT file: zlib level 1 + shuffle, 50×50 tiles.
_DUACS_CHUNK = 50
_DUACS_COMPRESSION = {"zlib": True, "shuffle": True, "complevel": 1}


def _char_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Text as fixed-length bytes: netCDF-C (and so the real files) store text attributes as NC_CHAR,
    while h5netcdf writes a Python ``str`` as a variable-length NC_STRING."""
    return {k: np.bytes_(v.encode("ascii")) if isinstance(v, str) else v for k, v in attrs.items()}


def _land_mask(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat = np.asarray(lat, dtype=np.float64)
    lon = normalize_lon(lon)
    mask = np.abs(lat) > _POLAR_CAP_DEG
    for lon0, lon1, lat0, lat1 in _CONTINENTS:
        in_lon = (lon >= lon0) & (lon < lon1) if lon0 < lon1 else (lon >= lon0) | (lon < lon1)
        mask = mask | (in_lon & (lat >= lat0) & (lat < lat1))
    return mask


def analytic_ssh(var: str, lat: np.ndarray, lon: np.ndarray, day: dt.date) -> np.ndarray:
    """Physical value (m or m/s, float64) of a DUACS L4 variable at ``lat``/``lon`` on ``day``.

    ``lat`` and ``lon`` broadcast against each other (pass ``lat[:, None], lon[None, :]`` for a grid).
    Every term uses whole longitudinal wave numbers, so a point has the same value whatever longitude
    convention names it. The pattern propagates westward with the day, so two days never coincide.
    Land (``_CONTINENTS`` and |lat| > 80°) is NaN for every variable.
    """
    if var not in _DUACS_VAR_ATTRS:
        raise ValueError(f"unknown DUACS variable {var!r}; expected one of {', '.join(DUACS_VARIABLES)}")
    value = _ssh_pattern(var, lat, lon, day)
    return np.where(_land_mask(lat, lon), np.nan, value)


def _ssh_pattern(var: str, lat: np.ndarray, lon: np.ndarray, day: dt.date) -> np.ndarray:
    """:func:`analytic_ssh` without the land mask, broadcast to the shape of ``lat`` and ``lon``."""
    theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    t = float((day - DUACS_EPOCH).days)
    fast = 2.0 * np.pi * t / 10.0
    season = 2.0 * np.pi * t / 365.25

    def sla() -> np.ndarray:
        return (
            0.4 * np.sin(3.0 * lam - fast) * np.cos(2.0 * theta)
            + 0.25 * np.cos(5.0 * lam + 0.5 * fast) * np.cos(theta)
            + 0.1 * np.sin(season)
        )

    if var == "sla":
        value = sla()
    elif var == "adt":
        mdt = np.cos(theta) ** 2 - 0.4 + 0.15 * np.sin(2.0 * lam) * np.cos(theta)
        value = sla() + mdt
    elif var == "ugos":
        value = 0.8 * np.cos(3.0 * theta) * np.sin(2.0 * lam + 0.5 * fast) + 0.3
    elif var == "vgos":
        value = 0.8 * np.sin(2.0 * theta) * np.cos(3.0 * lam - 0.5 * fast)
    elif var == "ugosa":
        value = 0.5 * np.sin(2.0 * theta) * np.sin(3.0 * lam - fast)
    elif var == "vgosa":
        value = 0.5 * np.cos(2.0 * theta) * np.cos(3.0 * lam - fast)
    else:  # err_sla
        value = 0.05 + 0.03 * np.sin(4.0 * lam + fast) * np.cos(theta)
    return np.broadcast_to(value, np.broadcast_shapes(theta.shape, lam.shape))


def duacs_grid(resolution: float, lon_convention: LonConvention) -> tuple[np.ndarray, np.ndarray]:
    """Float32 cell-centre latitudes and longitudes of a global DUACS grid.

    The 0.125° products run -179.9375..179.9375; the old 0.25° files run 0.125..359.875.
    """
    n_lat = round(180.0 / resolution)
    if not np.isclose(n_lat * resolution, 180.0, rtol=0, atol=1e-9):
        raise ValueError(f"resolution {resolution} does not divide 180°")
    if lon_convention not in ("-180..180", "0..360"):
        raise ValueError(f"unknown lon_convention {lon_convention!r}")
    centres = (np.arange(2 * n_lat) + 0.5) * resolution
    lat = (-90.0 + centres[:n_lat]).astype(np.float32)
    lon = (centres - 180.0 if lon_convention == "-180..180" else centres).astype(np.float32)
    return lat, lon


def _duacs_global_attrs(
    day: dt.date,
    production_date: dt.date,
    timeliness: Timeliness,
    lat: np.ndarray,
    lon: np.ndarray,
    resolution: float,
) -> dict[str, object]:
    midnight = dt.datetime.combine(day, dt.time())
    if timeliness == "dt":
        # The DT files state a 24 h window centred on the map date; NRT files state the map instant.
        start, end = midnight - dt.timedelta(hours=12), midnight + dt.timedelta(hours=12)
        label, long_label = "DT", "Delayed-Time"
    else:
        start = end = midnight
        label, long_label = "NRT", "Near-Real-Time"
    created = f"{production_date:%Y-%m-%d}T00:00:00Z"
    return {
        "Conventions": "CF-1.6",
        "Metadata_Conventions": "Unidata Dataset Discovery v1.0",
        "cdm_data_type": "Grid",
        "comment": "Sea Surface Height measured by Altimetry and derived variables",
        "contact": "servicedesk.cmems@mercator-ocean.eu",
        "creator_email": "servicedesk.cmems@mercator-ocean.eu",
        "creator_name": "CMEMS - Sea Level Thematic Assembly Center",
        "creator_url": "http://marine.copernicus.eu",
        "date_created": created,
        "date_issued": created,
        "date_modified": created,
        "geospatial_lat_max": np.float64(lat[-1]),
        "geospatial_lat_min": np.float64(lat[0]),
        "geospatial_lat_resolution": np.float64(resolution),
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_max": np.float64(lon[-1]),
        "geospatial_lon_min": np.float64(lon[0]),
        "geospatial_lon_resolution": np.float64(resolution),
        "geospatial_lon_units": "degrees_east",
        "geospatial_vertical_max": np.float64(0.0),
        "geospatial_vertical_min": np.float64(0.0),
        "geospatial_vertical_positive": "down",
        "geospatial_vertical_resolution": "point",
        "geospatial_vertical_units": "m",
        "history": f"{production_date:%Y-%m-%d} 00:00:00Z: Creation (oceantaco synthetic)",
        "institution": "CLS, CNES",
        "keywords": "Oceans > Ocean Topography > Sea Surface Height",
        "keywords_vocabulary": "NetCDF COARDS Climate and Forecast Standard Names",
        "license": "http://marine.copernicus.eu/web/27-service-commitments-and-licence.php",
        "platform": "Synthetic constellation",
        "processing_level": "L4",
        "product_version": f"v{label}2024",
        "project": "COPERNICUS MARINE ENVIRONMENT MONITORING SERVICE (CMEMS)",
        "references": "http://marine.copernicus.eu",
        "software_version": "oceantaco-synthetic",
        "source": "Altimetry measurements",
        "ssalto_duacs_comment": "Synthetic analytic fields generated by oceantaco.synthetic",
        "standard_name_vocabulary": (
            "NetCDF Climate and Forecast (CF) Metadata Convention Standard Name Table v37"
        ),
        "summary": f"SSALTO/DUACS {long_label} Level-4 sea surface height and derived variables measured by "
        "multi-satellite altimetry observations over Global Ocean.",
        "time_coverage_duration": "P1D",
        "time_coverage_end": f"{end:%Y-%m-%dT%H:%M:%SZ}",
        "time_coverage_resolution": "P1D",
        "time_coverage_start": f"{start:%Y-%m-%dT%H:%M:%SZ}",
        "title": f"{label} merged all satellites Global Ocean Gridded SSALTO/DUACS Sea Surface Height L4 "
        "product and derived variables",
    }


def duacs_l4_dataset(
    day: dt.date,
    resolution: float = 0.125,
    lon_convention: LonConvention = "-180..180",
    variables: Sequence[str] = DUACS_VARIABLES,
    *,
    production_date: dt.date | None = None,
    timeliness: Timeliness = "dt",
) -> xr.Dataset:
    """One DUACS L4 day in its **on-disk** form, as ``xr.open_dataset(real_file, decode_cf=False)`` shows it.

    Data variables hold the packed int32 counts with ``scale_factor``/``_FillValue`` as attributes and
    ``time`` holds float32 days since 1950; ``xr.decode_cf`` gives the physical view. Encoding the
    decoded form through xarray would not be faithful: xarray shortens the time units to
    "days since 1950-01-01". ``encoding`` carries the storage layout (chunks, compression, no fill on
    coordinates). Write it with :func:`write_duacs_l4`, which also stores text attributes as NC_CHAR.
    """
    unknown = [v for v in variables if v not in _DUACS_VAR_ATTRS]
    if unknown:
        raise ValueError(f"unknown DUACS variable(s) {unknown}; expected a subset of {DUACS_VARIABLES}")
    lat, lon = duacs_grid(resolution, lon_convention)
    half = resolution / 2.0
    coord_attrs = {
        name: {
            "axis": axis,
            "bounds": bounds,
            "long_name": name.capitalize(),
            "standard_name": name,
            "units": units,
            "valid_max": np.float64(values[-1]),
            "valid_min": np.float64(values[0]),
        }
        for name, axis, bounds, units, values in (
            ("latitude", "Y", "lat_bnds", "degrees_north", lat),
            ("longitude", "X", "lon_bnds", "degrees_east", lon),
        )
    }
    coords = {
        "time": (
            "time",
            np.array([(day - DUACS_EPOCH).days], dtype=np.float32),
            {
                "axis": "T",
                "calendar": "gregorian",
                "long_name": "Time",
                "standard_name": "time",
                "units": "days since 1950-01-01 00:00:00",
            },
        ),
        "latitude": ("latitude", lat, coord_attrs["latitude"]),
        "longitude": ("longitude", lon, coord_attrs["longitude"]),
        "nv": (
            "nv",
            np.array([0, 1], dtype=np.int32),
            {"comment": "Vertex", "long_name": "Number of cell vertices", "units": "1"},
        ),
    }
    data_vars: dict[str, tuple] = {
        # The real crs holds the netCDF default int fill: it was never written.
        "crs": (
            (),
            DUACS_FILL_VALUE,
            {
                "comment": "This is a container variable that describes the grid_mapping used by the data in "
                "this file. This variable does not contain any data; only information about the geographic "
                "coordinate system.",
                "grid_mapping_name": "latitude_longitude",
                "inverse_flattening": np.float64(298.257),
                "semi_major_axis": np.float64(6378136.3),
            },
        ),
        "lat_bnds": (
            ("latitude", "nv"),
            np.stack([lat - half, lat + half], axis=1).astype(np.float32),
            {
                "comment": "latitude values at the north and south bounds of each pixel.",
                "units": "degrees_north",
            },
        ),
        "lon_bnds": (
            ("longitude", "nv"),
            np.stack([lon - half, lon + half], axis=1).astype(np.float32),
            {
                "comment": "longitude values at the west and east bounds of each pixel.",
                "units": "degrees_east",
            },
        ),
    }
    # int32 × 0.0001 with land → -2147483647, which CF decoding inverts to analytic_ssh within 0.00005.
    land = _land_mask(lat[:, None], lon[None, :])
    for name in variables:
        packed = np.rint(_ssh_pattern(name, lat[:, None], lon[None, :], day) / DUACS_SCALE_FACTOR)
        packed = packed.astype(np.int32)
        packed[land] = DUACS_FILL_VALUE
        attrs = {
            "_FillValue": DUACS_FILL_VALUE,
            "coordinates": "longitude latitude",
            "grid_mapping": "crs",
            "scale_factor": np.float64(DUACS_SCALE_FACTOR),
            **_DUACS_VAR_ATTRS[name],
        }
        data_vars[name] = (("time", "latitude", "longitude"), packed[None], attrs)

    attrs = _duacs_global_attrs(day, production_date or day, timeliness, lat, lon, resolution)
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    for name in ("time", "latitude", "longitude", "nv"):
        ds[name].encoding = {
            "_FillValue": None,
            "chunksizes": (min(_DUACS_CHUNK, ds.sizes[name]),),
            **_DUACS_COMPRESSION,
        }
    for name in ("lat_bnds", "lon_bnds"):
        ds[name].encoding = {
            "_FillValue": None,
            "chunksizes": (min(_DUACS_CHUNK, ds[name].shape[0]), 2),
            **_DUACS_COMPRESSION,
        }
    for name in variables:
        chunks = (1, min(_DUACS_CHUNK, lat.size), min(_DUACS_CHUNK, lon.size))
        ds[name].encoding = {"chunksizes": chunks, **_DUACS_COMPRESSION}
    return ds


def write_duacs_l4(
    path: Path | str,
    day: dt.date,
    production_date: dt.date,
    **kw: Any,
) -> Path:
    """Write one DUACS L4 day as NETCDF4 via h5netcdf; ``kw`` goes to :func:`duacs_l4_dataset`.

    The file name is the caller's choice (``dt_global_allsat_phy_l4_<day>_<production>.nc`` for MY,
    ``nrt_global_...`` for NRT); ``production_date`` only fills the creation attributes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = duacs_l4_dataset(day, production_date=production_date, **kw)
    ds.attrs = _char_attrs(ds.attrs)
    for var in ds.variables.values():
        var.attrs = _char_attrs(var.attrs)
    ds.to_netcdf(path, engine="h5netcdf")
    return path


# ---------------------------------------------------------------------------------------------------------
# Argo GDAC: core profile files (format 3.1, NETCDF3_CLASSIC) and ar_index_global_prof.txt
# ---------------------------------------------------------------------------------------------------------

ARGO_EPOCH = dt.datetime(1950, 1, 1)
ARGO_FILL = 99999.0
ARGO_JULD_FILL = 999999.0
ARGO_INT_FILL = 99999

# DAC folder → DATA_CENTRE / index "institution" code (Argo reference table 4).
ARGO_DATA_CENTRES: dict[str, str] = {
    "aoml": "AO",
    "bodc": "BO",
    "coriolis": "IF",
    "csiro": "CS",
    "incois": "IN",
    "jma": "JA",
    "kma": "KM",
    "meds": "ME",
}

_ARGO_PARAM_ATTRS: dict[str, dict[str, object]] = {
    "PRES": {
        "long_name": "Sea water pressure, equals 0 at sea-level",
        "standard_name": "sea_water_pressure",
        "units": "decibar",
        "valid_min": 0.0,
        "valid_max": 12000.0,
        "C_format": "%7.1f",
        "FORTRAN_format": "F7.1",
        "resolution": 0.1,
    },
    "TEMP": {
        "long_name": "Sea temperature in-situ ITS-90 scale",
        "standard_name": "sea_water_temperature",
        "units": "degree_Celsius",
        "valid_min": -2.5,
        "valid_max": 40.0,
        "C_format": "%10.3f",
        "FORTRAN_format": "F10.3",
        "resolution": 0.001,
    },
    "PSAL": {
        "long_name": "Practical salinity",
        "standard_name": "sea_water_salinity",
        "units": "psu",
        "valid_min": 2.0,
        "valid_max": 41.0,
        "C_format": "%10.3f",
        "FORTRAN_format": "F10.3",
        "resolution": 0.001,
    },
}
_ARGO_PARAMS = tuple(_ARGO_PARAM_ATTRS)

# Delayed-mode biases that the adjusted values remove: a D/A profile's *_ADJUSTED values are the analytic
# truth and its raw values are offset, so a loader reading the raw columns of a D file is caught.
_ARGO_RAW_BIAS = {"PRES": 0.2, "TEMP": 0.0, "PSAL": 0.03}
_ARGO_ADJUSTED_ERROR = {"PRES": 2.4, "TEMP": 0.002, "PSAL": 0.01}
_ARGO_CALIB = {
    "PRES": (
        "PRES_ADJUSTED = PRES - dP",
        "dP =0.2 dbar.",
        "Pressures adjusted by using pressure offset at the sea surface.",
    ),
    "TEMP": ("none", "none", "The quoted error is manufacturer specified accuracy."),
    "PSAL": ("PSAL_ADJUSTED = PSAL + dS", "dS =-0.03", "Salinity drift removed (synthetic OWC fit)."),
}


def analytic_argo_temp(pres: np.ndarray, lat: np.ndarray | float, lon: np.ndarray | float) -> np.ndarray:
    """In-situ temperature (°C, float64): warm tropical surface decaying to ~2 °C at depth."""
    pres = np.asarray(pres, dtype=np.float64)
    theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    surface = 28.0 * np.cos(theta) ** 2 - 1.0 + 1.5 * np.sin(lam) * np.cos(theta)
    deep = 2.0 + 0.5 * np.cos(theta)
    return deep + (surface - deep) * np.exp(-pres / 400.0)


def analytic_argo_psal(pres: np.ndarray, lat: np.ndarray | float, lon: np.ndarray | float) -> np.ndarray:
    """Practical salinity (psu, float64): subtropical surface maximum relaxing to 34.7 at depth."""
    pres = np.asarray(pres, dtype=np.float64)
    theta = np.deg2rad(np.asarray(lat, dtype=np.float64))
    lam = np.deg2rad(np.asarray(lon, dtype=np.float64))
    surface = 35.0 + 1.2 * np.cos(2.0 * theta) + 0.3 * np.sin(2.0 * lam)
    return 34.7 + (surface - 34.7) * np.exp(-pres / 300.0)


@dataclass(eq=False)
class ArgoProfile:
    """One Argo profile (one ``N_PROF`` entry of a core file) in physical units.

    Arrays are float32 per level with NaN where the file holds the fill value; ``*_qc`` strings hold one
    Argo QC character per level (``" "`` where the level is fill). ``*_adjusted*`` are ``None`` for
    real-time profiles ('R'), whose adjusted columns are written as fill with blank QC. For 'D'/'A'
    profiles the adjusted values at good levels equal the analytic functions; the raw values carry a bias.
    ``psal`` is ``None`` for floats without a conductivity sensor (the file then has N_PARAM=2, like
    R13857_137). ``juld`` is naive UTC.
    """

    platform_number: str
    cycle_number: int
    dac: str
    data_mode: Literal["R", "A", "D"]
    direction: Literal["A", "D"]
    juld: dt.datetime
    latitude: float
    longitude: float
    pres: np.ndarray
    temp: np.ndarray
    psal: np.ndarray | None
    pres_qc: str
    temp_qc: str
    psal_qc: str | None
    pres_adjusted: np.ndarray | None = None
    temp_adjusted: np.ndarray | None = None
    psal_adjusted: np.ndarray | None = None
    pres_adjusted_qc: str | None = None
    temp_adjusted_qc: str | None = None
    psal_adjusted_qc: str | None = None
    pres_adjusted_error: np.ndarray | None = None
    temp_adjusted_error: np.ndarray | None = None
    psal_adjusted_error: np.ndarray | None = None
    position_qc: str = "1"
    juld_qc: str = "1"
    wmo_inst_type: str = "846"
    platform_type: str = "APEX"
    vertical_sampling_scheme: str = "Primary sampling: averaged []"
    date_update: dt.datetime | None = None

    @property
    def parameters(self) -> tuple[str, ...]:
        """STATION_PARAMETERS of this profile, in file order."""
        return tuple(p for p in _ARGO_PARAMS if self.values(p) is not None)

    @property
    def n_levels(self) -> int:
        return int(self.pres.size)

    @property
    def data_centre(self) -> str:
        """DATA_CENTRE code of the DAC, also the index ``institution``."""
        return ARGO_DATA_CENTRES[self.dac]

    @property
    def file_name(self) -> str:
        """GDAC name: ``D`` prefix only for delayed mode; a ``D`` suffix marks a descending profile."""
        prefix = "D" if self.data_mode == "D" else "R"
        suffix = "D" if self.direction == "D" else ""
        return f"{prefix}{self.platform_number}_{self.cycle_number:03d}{suffix}.nc"

    @property
    def relative_path(self) -> str:
        """Path relative to the GDAC ``dac/`` folder, as the index ``file`` column has it."""
        return f"{self.dac}/{self.platform_number}/profiles/{self.file_name}"

    def values(self, param: str, adjusted: bool = False) -> np.ndarray | None:
        """``<param>`` or ``<param>_ADJUSTED`` by Argo name (PRES, TEMP, PSAL)."""
        return getattr(self, f"{param.lower()}{'_adjusted' if adjusted else ''}")

    def qc(self, param: str, adjusted: bool = False) -> str | None:
        """``<param>_QC`` or ``<param>_ADJUSTED_QC`` by Argo name."""
        return getattr(self, f"{param.lower()}{'_adjusted' if adjusted else ''}_qc")

    def adjusted_error(self, param: str) -> np.ndarray | None:
        """``<param>_ADJUSTED_ERROR`` by Argo name."""
        return getattr(self, f"{param.lower()}_adjusted_error")

    def profile_qc(self, param: str) -> str:
        """PROFILE_<PARAM>_QC (reference table 2a) from the QC of the values a user should read."""
        flags = self.qc(param, adjusted=self.data_mode != "R")
        if not flags:
            return " "
        rated = [f for f in flags if f not in " 9"]
        if not rated:
            return " "
        good = 100.0 * sum(f in "1258" for f in rated) / len(rated)
        for grade, threshold in (("A", 100.0), ("B", 75.0), ("C", 50.0), ("D", 25.0)):
            if good >= threshold:
                return grade
        return "E" if good > 0 else "F"


def _juld(when: dt.datetime) -> float:
    return (when - ARGO_EPOCH) / dt.timedelta(days=1)


def _chars(texts: object, width: int) -> np.ndarray:
    """Blank-padded ``S1`` array of shape ``(..., width)``; refuses to truncate (real files never do)."""
    texts = np.asarray(texts, dtype=object)
    flat = [str(t) for t in texts.ravel()]
    too_long = [t for t in flat if len(t) > width]
    if too_long:
        raise ValueError(f"{too_long[0]!r} does not fit in {width} characters")
    padded = np.array([t.ljust(width) for t in flat], dtype=f"S{width}")
    return padded.view("S1").reshape((*texts.shape, width))


def _levels_or_fill(values: Sequence[np.ndarray | None], n_levels: int) -> np.ndarray:
    """(N_PROF, N_LEVELS) float32 with 99999 for NaN, absent columns and the padding of short profiles."""
    out = np.full((len(values), n_levels), ARGO_FILL, dtype=np.float32)
    for i, v in enumerate(values):
        if v is not None:
            out[i, : v.size] = np.where(np.isnan(v), ARGO_FILL, v)
    return out


def _char_var(f: netcdf_file, name: str, dims: tuple[str, ...], texts: object, attrs: dict[str, str]) -> None:
    """Char variable whose last dimension is the string length: ``texts`` nests like the other dims.

    Per-profile flags such as DATA_MODE(N_PROF) are one string with a character per profile.
    """
    var = f.createVariable(name, "c", dims)
    for key, value in {**attrs, "_FillValue": " "}.items():
        setattr(var, key, value)
    var[:] = _chars(texts, f.dimensions[dims[-1]])


def _num_var(
    f: netcdf_file, name: str, dtype: str, dims: tuple[str, ...], data: np.ndarray, attrs: dict[str, object]
) -> None:
    var = f.createVariable(name, dtype, dims)
    for key, value in attrs.items():
        setattr(var, key, value)
    var[:] = data


def _param_attrs(param: str, adjusted: bool) -> dict[str, object]:
    """Attribute set of PRES/TEMP/PSAL(_ADJUSTED) in the real file's order, float32-typed numbers."""
    base = _ARGO_PARAM_ATTRS[param]
    attrs: dict[str, object] = {
        "long_name": base["long_name"],
        "standard_name": base["standard_name"],
        "_FillValue": np.float32(ARGO_FILL),
        "units": base["units"],
        "valid_min": np.float32(base["valid_min"]),
        "valid_max": np.float32(base["valid_max"]),
        "C_format": base["C_format"],
        "FORTRAN_format": base["FORTRAN_format"],
        "resolution": np.float32(base["resolution"]),
    }
    if param == "PRES" and not adjusted:
        attrs["axis"] = "Z"
    return attrs


def _error_attrs(param: str) -> dict[str, object]:
    base = _ARGO_PARAM_ATTRS[param]
    return {
        "long_name": "Contains the error on the adjusted values as determined by the delayed mode QC process",
        "_FillValue": np.float32(ARGO_FILL),
        "units": base["units"],
        "C_format": base["C_format"],
        "FORTRAN_format": base["FORTRAN_format"],
        "resolution": np.float32(base["resolution"]),
    }


_QC_ATTRS = {"long_name": "quality flag", "conventions": "Argo reference table 2"}
_DATE_ATTRS = {"conventions": "YYYYMMDDHHMISS"}


def write_argo_profile(path: Path | str, profiles: Sequence[ArgoProfile]) -> Path:
    """Write one Argo core profile file (format 3.1) as NETCDF3_CLASSIC, like the GDAC serves it.

    All ``profiles`` share the float and cycle (``N_PROF`` > 1 holds e.g. a primary and a near-surface
    sampling, as in R6903247_275). Variables, dimensions (order included), dtypes, attribute types and
    the record dimension ``N_HISTORY`` follow the real D5906072_022.nc.
    """
    if not profiles:
        raise ValueError("an Argo profile file needs at least one profile")
    first = profiles[0]
    if len({(p.platform_number, p.cycle_number, p.data_mode, p.direction) for p in profiles}) != 1:
        raise ValueError("all profiles of one file must share platform, cycle, data mode and direction")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = tuple(p for p in _ARGO_PARAMS if any(prof.values(p) is not None for prof in profiles))
    n_prof, n_levels = len(profiles), max(p.n_levels for p in profiles)
    n_param = max(len(p.parameters) for p in profiles)
    created = first.juld + dt.timedelta(hours=5)
    updated = max(p.date_update or created for p in profiles)
    prof_dims = ("N_PROF",)

    with netcdf_file(path, "w", version=1) as f:
        for key, value in {
            "title": "Argo float vertical profile",
            "institution": first.dac.upper(),
            "source": "Argo float",
            "history": f"{created:%Y-%m-%dT%H:%M:%SZ} creation (oceantaco synthetic)",
            "references": "http://www.argodatamgt.org/Documentation",
            "user_manual_version": "3.1",
            "Conventions": "Argo-3.1 CF-1.6",
            "featureType": "trajectoryProfile",
        }.items():
            setattr(f, key, value)
        for name, size in (
            ("DATE_TIME", 14),
            ("STRING256", 256),
            ("STRING64", 64),
            ("STRING32", 32),
            ("STRING16", 16),
            ("STRING8", 8),
            ("STRING4", 4),
            ("STRING2", 2),
            ("N_PROF", n_prof),
            ("N_PARAM", n_param),
            ("N_LEVELS", n_levels),
            ("N_CALIB", 1),
        ):
            f.createDimension(name, size)
        # The GDAC files declare the unlimited N_HISTORY last. scipy's createDimension only accepts an
        # unlimited dimension declared first, a restriction the classic format does not have (it only
        # needs it to lead the record variables' shapes), so register it the way createDimension would.
        f.dimensions["N_HISTORY"] = None
        f._dims.append("N_HISTORY")

        _char_var(
            f,
            "DATA_TYPE",
            ("STRING16",),
            "Argo profile",
            {"long_name": "Data type", "conventions": "Argo reference table 1"},
        )
        _char_var(f, "FORMAT_VERSION", ("STRING4",), "3.1", {"long_name": "File format version"})
        _char_var(f, "HANDBOOK_VERSION", ("STRING4",), "1.2", {"long_name": "Data handbook version"})
        _char_var(
            f,
            "REFERENCE_DATE_TIME",
            ("DATE_TIME",),
            "19500101000000",
            {"long_name": "Date of reference for Julian days", **_DATE_ATTRS},
        )
        _char_var(
            f,
            "DATE_CREATION",
            ("DATE_TIME",),
            f"{created:%Y%m%d%H%M%S}",
            {"long_name": "Date of file creation", **_DATE_ATTRS},
        )
        _char_var(
            f,
            "DATE_UPDATE",
            ("DATE_TIME",),
            f"{updated:%Y%m%d%H%M%S}",
            {"long_name": "Date of update of this file", **_DATE_ATTRS},
        )
        _char_var(
            f,
            "PLATFORM_NUMBER",
            ("N_PROF", "STRING8"),
            [p.platform_number for p in profiles],
            {"long_name": "Float unique identifier", "conventions": "WMO float identifier : A9IIIII"},
        )
        _char_var(
            f,
            "PROJECT_NAME",
            ("N_PROF", "STRING64"),
            ["OCEANTACO SYNTHETIC"] * n_prof,
            {"long_name": "Name of the project"},
        )
        _char_var(
            f,
            "PI_NAME",
            ("N_PROF", "STRING64"),
            ["SYNTHETIC PI"] * n_prof,
            {"long_name": "Name of the principal investigator"},
        )
        station = [list(p.parameters) + [""] * (n_param - len(p.parameters)) for p in profiles]
        _char_var(
            f,
            "STATION_PARAMETERS",
            ("N_PROF", "N_PARAM", "STRING16"),
            station,
            {
                "long_name": "List of available parameters for the station",
                "conventions": "Argo reference table 3",
            },
        )
        _num_var(
            f,
            "CYCLE_NUMBER",
            "i4",
            prof_dims,
            np.array([p.cycle_number for p in profiles], np.int32),
            {
                "long_name": "Float cycle number",
                "conventions": "0...N, 0 : launch cycle (if exists), 1 : first complete cycle",
                "_FillValue": np.int32(ARGO_INT_FILL),
            },
        )
        _char_var(
            f,
            "DIRECTION",
            prof_dims,
            "".join(p.direction for p in profiles),
            {
                "long_name": "Direction of the station profiles",
                "conventions": "A: ascending profiles, D: descending profiles",
            },
        )
        _char_var(
            f,
            "DATA_CENTRE",
            ("N_PROF", "STRING2"),
            [p.data_centre for p in profiles],
            {
                "long_name": "Data centre in charge of float data processing",
                "conventions": "Argo reference table 4",
            },
        )
        _char_var(
            f,
            "DC_REFERENCE",
            ("N_PROF", "STRING32"),
            [f"{p.platform_number}_{p.cycle_number}" for p in profiles],
            {
                "long_name": "Station unique identifier in data centre",
                "conventions": "Data centre convention",
            },
        )
        _char_var(
            f,
            "DATA_STATE_INDICATOR",
            ("N_PROF", "STRING4"),
            ["2C" if p.data_mode == "D" else "2B" for p in profiles],
            {
                "long_name": "Degree of processing the data have passed through",
                "conventions": "Argo reference table 6",
            },
        )
        _char_var(
            f,
            "DATA_MODE",
            prof_dims,
            "".join(p.data_mode for p in profiles),
            {
                "long_name": "Delayed mode or real time data",
                "conventions": "R : real time; D : delayed mode; A : real time with adjustment",
            },
        )
        _char_var(
            f,
            "PLATFORM_TYPE",
            ("N_PROF", "STRING32"),
            [p.platform_type for p in profiles],
            {"long_name": "Type of float", "conventions": "Argo reference table 23"},
        )
        _char_var(
            f,
            "FLOAT_SERIAL_NO",
            ("N_PROF", "STRING32"),
            [f"SYN-{p.platform_number}" for p in profiles],
            {"long_name": "Serial number of the float"},
        )
        _char_var(
            f,
            "FIRMWARE_VERSION",
            ("N_PROF", "STRING32"),
            ["1.0"] * n_prof,
            {"long_name": "Instrument firmware version"},
        )
        _char_var(
            f,
            "WMO_INST_TYPE",
            ("N_PROF", "STRING4"),
            [p.wmo_inst_type for p in profiles],
            {"long_name": "Coded instrument type", "conventions": "Argo reference table 8"},
        )
        juld_attrs = {
            "long_name": "Julian day (UTC) of the station relative to REFERENCE_DATE_TIME",
            "standard_name": "time",
            "units": "days since 1950-01-01 00:00:00 UTC",
            "conventions": "Relative julian days with decimal part (as parts of day)",
            # One second, stored as the float32 value widened to double, like the real files.
            "resolution": np.float64(np.float32(1.0 / 86400.0)),
            "_FillValue": np.float64(ARGO_JULD_FILL),
            "axis": "T",
        }
        _num_var(f, "JULD", "f8", prof_dims, np.array([_juld(p.juld) for p in profiles]), juld_attrs)
        _char_var(
            f,
            "JULD_QC",
            prof_dims,
            "".join(p.juld_qc for p in profiles),
            {"long_name": "Quality on date and time", "conventions": "Argo reference table 2"},
        )
        location_attrs = {k: v for k, v in juld_attrs.items() if k not in ("standard_name", "axis")}
        location_attrs["long_name"] = "Julian day (UTC) of the location relative to REFERENCE_DATE_TIME"
        # The position fix comes a few minutes after surfacing, as on the real floats.
        _num_var(
            f,
            "JULD_LOCATION",
            "f8",
            prof_dims,
            np.array([_juld(p.juld + dt.timedelta(minutes=17)) for p in profiles]),
            location_attrs,
        )
        for name, axis, limit, units in (
            ("LATITUDE", "Y", 90.0, "degree_north"),
            ("LONGITUDE", "X", 180.0, "degree_east"),
        ):
            values = np.array([getattr(p, name.lower()) for p in profiles], dtype=np.float64)
            _num_var(
                f,
                name,
                "f8",
                prof_dims,
                np.where(np.isnan(values), ARGO_FILL, values),
                {
                    "long_name": f"{name.capitalize()} of the station, best estimate",
                    "standard_name": name.lower(),
                    "units": units,
                    "_FillValue": np.float64(ARGO_FILL),
                    "valid_min": np.float64(-limit),
                    "valid_max": np.float64(limit),
                    "axis": axis,
                },
            )
        _char_var(
            f,
            "POSITION_QC",
            prof_dims,
            "".join(p.position_qc for p in profiles),
            {
                "long_name": "Quality on position (latitude and longitude)",
                "conventions": "Argo reference table 2",
            },
        )
        _char_var(
            f,
            "POSITIONING_SYSTEM",
            ("N_PROF", "STRING8"),
            ["GPS"] * n_prof,
            {"long_name": "Positioning system"},
        )
        _char_var(
            f,
            "VERTICAL_SAMPLING_SCHEME",
            ("N_PROF", "STRING256"),
            [p.vertical_sampling_scheme for p in profiles],
            {"long_name": "Vertical sampling scheme", "conventions": "Argo reference table 16"},
        )
        _num_var(
            f,
            "CONFIG_MISSION_NUMBER",
            "i4",
            prof_dims,
            np.ones(n_prof, np.int32),
            {
                "long_name": "Unique number denoting the missions performed by the float",
                "conventions": "1...N, 1 : first complete mission",
                "_FillValue": np.int32(ARGO_INT_FILL),
            },
        )
        for param in params:
            _char_var(
                f,
                f"PROFILE_{param}_QC",
                prof_dims,
                "".join(p.profile_qc(param) for p in profiles),
                {
                    "long_name": f"Global quality flag of {param} profile",
                    "conventions": "Argo reference table 2a",
                },
            )

        level_dims = ("N_PROF", "N_LEVELS")
        for param in params:
            _num_var(
                f,
                param,
                "f4",
                level_dims,
                _levels_or_fill([p.values(param) for p in profiles], n_levels),
                _param_attrs(param, adjusted=False),
            )
            _char_var(f, f"{param}_QC", level_dims, [p.qc(param) or "" for p in profiles], _QC_ATTRS)
            _num_var(
                f,
                f"{param}_ADJUSTED",
                "f4",
                level_dims,
                _levels_or_fill([p.values(param, adjusted=True) for p in profiles], n_levels),
                _param_attrs(param, adjusted=True),
            )
            _char_var(
                f,
                f"{param}_ADJUSTED_QC",
                level_dims,
                [p.qc(param, adjusted=True) or "" for p in profiles],
                _QC_ATTRS,
            )
            _num_var(
                f,
                f"{param}_ADJUSTED_ERROR",
                "f4",
                level_dims,
                _levels_or_fill([p.adjusted_error(param) for p in profiles], n_levels),
                _error_attrs(param),
            )

        _write_calibration(f, profiles, station, updated)
        _write_history(f, first, n_prof, created)
    return path


def _calib_text(profile: ArgoProfile, param: str, column: int) -> str:
    """One SCIENTIFIC_CALIB_{EQUATION,COEFFICIENT,COMMENT} entry; empty for unused N_PARAM slots."""
    if not param:
        return ""
    if profile.data_mode == "D":
        return _ARGO_CALIB[param][column]
    return "none" if column == 0 else ""


def _write_calibration(
    f: netcdf_file, profiles: Sequence[ArgoProfile], station: list[list[str]], when: dt.datetime
) -> None:
    """SCIENTIFIC_CALIB_* (N_PROF, N_CALIB=1, N_PARAM, ...): filled for delayed mode, "none" otherwise."""
    dims = ("N_PROF", "N_CALIB", "N_PARAM")
    _char_var(
        f,
        "PARAMETER",
        (*dims, "STRING16"),
        [[row] for row in station],
        {
            "long_name": "List of parameters with calibration information",
            "conventions": "Argo reference table 3",
        },
    )
    columns = (
        "Calibration equation for this parameter",
        "Calibration coefficients for this equation",
        "Comment applying to this parameter calibration",
    )
    for column, (name, long_name) in enumerate(
        zip(("EQUATION", "COEFFICIENT", "COMMENT"), columns, strict=True)
    ):
        texts = [
            [[_calib_text(prof, param, column) for param in params]]
            for prof, params in zip(profiles, station, strict=True)
        ]
        _char_var(f, f"SCIENTIFIC_CALIB_{name}", (*dims, "STRING256"), texts, {"long_name": long_name})
    dates = [
        [[f"{when:%Y%m%d%H%M%S}" if prof.data_mode == "D" and param else "" for param in params]]
        for prof, params in zip(profiles, station, strict=True)
    ]
    _char_var(
        f,
        "SCIENTIFIC_CALIB_DATE",
        (*dims, "DATE_TIME"),
        dates,
        {"long_name": "Date of calibration", **_DATE_ATTRS},
    )


def _write_history(f: netcdf_file, profile: ArgoProfile, n_prof: int, when: dt.datetime) -> None:
    """HISTORY_* record variables (N_HISTORY is the unlimited dimension): the real-time QC test records
    every GDAC file has, plus the delayed-mode QC record of D files. Records apply to all profiles."""
    centre = profile.data_centre
    # (institution, step, action, qc tests) per record, as in D5906072_022.
    records = [(centre, "ARGQ", "QCP$", "5F03E"), (centre, "ARGQ", "QCF$", "0")]
    if profile.data_mode == "D":
        records.append((centre, "ARSQ", "IP", ""))
    stamp = f"{when:%Y%m%d%H%M%S}"
    institution, step, action, qctest = zip(*records, strict=True)
    blank = [""] * len(records)
    dims = ("N_HISTORY", "N_PROF")
    text_columns: list[tuple[str, str, Sequence[str], dict[str, str]]] = [
        (
            "HISTORY_INSTITUTION",
            "STRING4",
            institution,
            {"long_name": "Institution which performed action", "conventions": "Argo reference table 4"},
        ),
        (
            "HISTORY_STEP",
            "STRING4",
            step,
            {"long_name": "Step in data processing", "conventions": "Argo reference table 12"},
        ),
        (
            "HISTORY_SOFTWARE",
            "STRING4",
            ["SYNT"] * len(records),
            {"long_name": "Name of software which performed action", "conventions": "Institution dependent"},
        ),
        (
            "HISTORY_SOFTWARE_RELEASE",
            "STRING4",
            ["1.0"] * len(records),
            {
                "long_name": "Version/release of software which performed action",
                "conventions": "Institution dependent",
            },
        ),
        (
            "HISTORY_REFERENCE",
            "STRING64",
            blank,
            {"long_name": "Reference of database", "conventions": "Institution dependent"},
        ),
        (
            "HISTORY_DATE",
            "DATE_TIME",
            [stamp] * len(records),
            {"long_name": "Date the history record was created", **_DATE_ATTRS},
        ),
        (
            "HISTORY_ACTION",
            "STRING4",
            action,
            {"long_name": "Action performed on data", "conventions": "Argo reference table 7"},
        ),
        (
            "HISTORY_PARAMETER",
            "STRING16",
            blank,
            {
                "long_name": "Station parameter action is performed on",
                "conventions": "Argo reference table 3",
            },
        ),
    ]
    for name, string_dim, texts, attrs in text_columns:
        _char_var(f, name, (*dims, string_dim), [[t] * n_prof for t in texts], attrs)
    fill = np.full((len(records), n_prof), ARGO_FILL, dtype=np.float32)
    for name, long_name, units in (
        ("HISTORY_START_PRES", "Start pressure action applied on", "decibar"),
        ("HISTORY_STOP_PRES", "Stop pressure action applied on", "decibar"),
        ("HISTORY_PREVIOUS_VALUE", "Parameter/Flag previous value before action", None),
    ):
        attrs: dict[str, object] = {"long_name": long_name, "_FillValue": np.float32(ARGO_FILL)}
        if units:
            attrs["units"] = units
        _num_var(f, name, "f4", dims, fill, attrs)
    _char_var(
        f,
        "HISTORY_QCTEST",
        (*dims, "STRING16"),
        [[t] * n_prof for t in qctest],
        {
            "long_name": "Documentation of tests performed, tests failed (in hex form)",
            "conventions": "Write tests performed when ACTION=QCP$; tests failed when ACTION=QCF$",
        },
    )


# --- index -------------------------------------------------------------------------------------------------

ARGO_INDEX_HEADER = (
    "# Title : Profile directory file of the Argo Global Data Assembly Center\n"
    "# Description : The directory file describes all individual profile files of the argo GDAC ftp site.\n"
    "# Project : ARGO\n"
    "# Format version : 2.0\n"
    "# Date of update : {date_of_update}\n"
    "# FTP root number 1 : ftp://ftp.ifremer.fr/ifremer/argo/dac\n"
    "# FTP root number 2 : ftp://usgodae.org/pub/outgoing/argo/dac\n"
    "# GDAC node : CORIOLIS\n"
    "file,date,latitude,longitude,ocean,profiler_type,institution,date_update\n"
)


@dataclass(frozen=True)
class ArgoIndexRow:
    """One line of ``ar_index_global_prof.txt``; NaN positions and empty ``ocean`` are written empty."""

    file: str
    date: dt.datetime
    latitude: float
    longitude: float
    ocean: str
    profiler_type: str
    institution: str
    date_update: dt.datetime

    @classmethod
    def for_file(cls, profiles: Sequence[ArgoProfile]) -> ArgoIndexRow:
        """The GDAC describes a multi-profile file by its first profile."""
        first = profiles[0]
        return cls(
            file=first.relative_path,
            date=first.juld,
            latitude=first.latitude,
            longitude=first.longitude,
            ocean=_ocean_code(first.latitude, first.longitude),
            profiler_type=first.wmo_inst_type,
            institution=first.data_centre,
            date_update=max(p.date_update or p.juld for p in profiles),
        )

    def line(self) -> str:
        lat = "" if np.isnan(self.latitude) else f"{self.latitude:.3f}"
        lon = "" if np.isnan(self.longitude) else f"{self.longitude:.3f}"
        return (
            f"{self.file},{self.date:%Y%m%d%H%M%S},{lat},{lon},{self.ocean},{self.profiler_type},"
            f"{self.institution},{self.date_update:%Y%m%d%H%M%S}\n"
        )


def _ocean_code(lat: float, lon: float) -> str:
    """Coarse A/I/P basin letter; the real index derives it from a basin map we do not need to match."""
    if np.isnan(lat) or np.isnan(lon):
        return ""
    lon = float(normalize_lon(lon))
    if -70.0 <= lon < 20.0:
        return "A"
    if 20.0 <= lon < 120.0 and lat < 25.0:
        return "I"
    return "P"


def write_argo_index(
    path: Path | str, rows: Iterable[ArgoIndexRow], date_of_update: dt.datetime | None = None
) -> Path:
    """Write ``ar_index_global_prof.txt`` like the GDAC: 8 ``# `` lines, the CSV header, rows by file.

    ``date_of_update`` defaults to the newest row update, so the same rows always give the same bytes.
    """
    rows = sorted(rows, key=lambda r: r.file)
    if date_of_update is None:
        date_of_update = max((r.date_update for r in rows), default=ARGO_EPOCH)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="ascii", newline="\n") as fh:
        fh.write(ARGO_INDEX_HEADER.format(date_of_update=f"{date_of_update:%Y%m%d%H%M%S}"))
        fh.writelines(row.line() for row in rows)
    return path


# --- generator ---------------------------------------------------------------------------------------------

# (dac, WMO instrument type, platform type) cycled over the floats so several DACs and makers appear.
_FLOAT_MAKERS = (
    ("coriolis", "836", "PROVOR_III"),
    ("aoml", "846", "APEX"),
    ("jma", "863", "NAVIS_A"),
    ("csiro", "844", "ARVOR"),
    ("incois", "846", "APEX"),
    ("bodc", "844", "ARVOR"),
    ("kma", "846", "APEX"),
    ("meds", "844", "ARVOR"),
)
_ARGO_CYCLE_EPOCH = dt.date(2000, 1, 1)
_NEAR_SURFACE_SCHEME = "Near-surface sampling: averaged, unpumped [1dbar avg in [4.0-1.0]dbar]"


def _pressure_levels(rng: np.random.Generator) -> np.ndarray:
    """2 dbar bins to 100 dbar, then 25 dbar to 1000 and 50 dbar below, to a float-specific depth."""
    start = round(float(rng.uniform(2.0, 6.0)), 1)
    bottom = float(rng.choice([1000.0, 1500.0, 2000.0]))
    levels = np.concatenate(
        [np.arange(start, 100.0, 2.0), np.arange(100.0, 1000.0, 25.0), np.arange(1000.0, bottom + 1.0, 50.0)]
    )
    return np.round(levels, 1).astype(np.float32)


def _measured_profile(
    wmo: str,
    cycle: int,
    dac: str,
    inst: str,
    platform_type: str,
    mode: Literal["R", "D"],
    juld: dt.datetime,
    lat: float,
    lon: float,
    pres: np.ndarray,
    rng: np.random.Generator,
    with_psal: bool = True,
    scheme: str = "Primary sampling: averaged []",
    defects: bool = True,
) -> ArgoProfile:
    """Analytic profile with Argo-like defects in the top 100 dbar (where the pipeline reads):
    one TEMP spike flagged '4', one PSAL level flagged '3' and one missing PSAL level ('9', fill)."""
    n = pres.size
    temp = analytic_argo_temp(pres, lat, lon).astype(np.float32)
    psal = analytic_argo_psal(pres, lat, lon).astype(np.float32) if with_psal else None
    temp_qc, psal_qc = ["1"] * n, ["1"] * n
    if defects:
        shallow = np.flatnonzero(pres < 100.0)
        spike, doubtful, missing = rng.choice(shallow, size=3, replace=False)
        temp[spike] += np.float32(3.5)
        temp_qc[spike] = "4"
        if psal is not None:
            psal[doubtful] -= np.float32(0.8)
            psal_qc[doubtful] = "3"
            psal[missing] = np.nan
            psal_qc[missing] = "9"
    pres_qc = "1" * n
    common = dict(
        platform_number=wmo,
        cycle_number=cycle,
        dac=dac,
        direction="A",
        juld=juld,
        latitude=lat,
        longitude=lon,
        wmo_inst_type=inst,
        platform_type=platform_type,
        vertical_sampling_scheme=scheme,
    )
    if mode == "R":
        return ArgoProfile(
            **common,
            data_mode="R",
            pres=pres,
            temp=temp,
            psal=psal,
            pres_qc=pres_qc,
            temp_qc="".join(temp_qc),
            psal_qc="".join(psal_qc) if with_psal else None,
            date_update=juld + dt.timedelta(hours=6),
        )

    # Delayed mode: the adjusted columns are the truth; bad levels ('4') become fill there, as in DMQC.
    def adjusted(values: np.ndarray | None, qc: list[str]) -> np.ndarray | None:
        if values is None:
            return None
        return np.where(np.array(qc) == "4", np.float32(np.nan), values).astype(np.float32)

    def error(param: str, values: np.ndarray | None) -> np.ndarray | None:
        if values is None:
            return None
        return np.where(np.isnan(values), np.float32(np.nan), np.float32(_ARGO_ADJUSTED_ERROR[param]))

    temp_adj, psal_adj = adjusted(temp, temp_qc), adjusted(psal, psal_qc)
    return ArgoProfile(
        **common,
        data_mode="D",
        pres=(pres + np.float32(_ARGO_RAW_BIAS["PRES"])).astype(np.float32),
        temp=(temp + np.float32(_ARGO_RAW_BIAS["TEMP"])).astype(np.float32),
        psal=None if psal is None else (psal + np.float32(_ARGO_RAW_BIAS["PSAL"])).astype(np.float32),
        pres_qc=pres_qc,
        temp_qc="".join(temp_qc),
        psal_qc="".join(psal_qc) if with_psal else None,
        pres_adjusted=pres,
        temp_adjusted=temp_adj,
        psal_adjusted=psal_adj,
        pres_adjusted_qc=pres_qc,
        temp_adjusted_qc="".join(temp_qc),
        psal_adjusted_qc="".join(psal_qc) if with_psal else None,
        pres_adjusted_error=error("PRES", pres),
        temp_adjusted_error=error("TEMP", temp_adj),
        psal_adjusted_error=error("PSAL", psal_adj),
        date_update=juld + dt.timedelta(days=400),
    )


def argo_profiles_for_days(days: Iterable[dt.date], n_per_day: int = 8, seed: int = 0) -> list[ArgoProfile]:
    """Deterministic Argo profiles: ``n_per_day`` floats per day, float ``k`` in region ``k % 8``.

    Each float keeps its WMO and drifts a little from day to day; its cycle number is the day count since
    2000-01-01, so profiles of a day do not depend on which other days are requested. Every day has:
    float 0 with two profiles in one file (primary + near-surface sampling, N_PROF=2, like R6903247_275);
    float 1, an old 5-digit float without PSAL (N_PARAM=2, like R13857_137); delayed-mode files for even
    floats ≥ 2 and real-time ones otherwise; a profile 40 s after midnight and one 40 s before the next.
    Latitudes stay within ±70°, longitudes in -180..180.
    """
    if n_per_day < 2:
        raise ValueError("n_per_day must be at least 2 (the N_PROF>1 float and the float without PSAL)")
    profiles: list[ArgoProfile] = []
    slot = 86400 // n_per_day
    for day in days:
        cycle = (day - _ARGO_CYCLE_EPOCH).days
        for k in range(n_per_day):
            home = np.random.default_rng([seed, k])
            rng = np.random.default_rng([seed, k, day.toordinal()])
            reg = REGIONS[k % len(REGIONS)]
            # The home position keeps 3° from the region's edges, more than the drift (< 2.1°), so a float
            # never changes region.
            lat0 = float(home.uniform(max(reg.lat_min, -63.0) + 3.0, min(reg.lat_max, 63.0) - 3.0))
            lon0 = float(home.uniform(reg.lon_min + 3.0, reg.lon_max - 3.0))
            drift = (day - _ARGO_CYCLE_EPOCH).days % 30
            lat = round(lat0 + 0.05 * drift, 3)
            lon = round(lon0 + 0.07 * drift, 3)
            if k == 0:
                seconds = 40
            elif k == n_per_day - 1:
                seconds = 86400 - 40
            else:
                seconds = k * slot + int(rng.integers(0, slot // 2))
            juld = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
            dac, inst, platform_type = _FLOAT_MAKERS[k % len(_FLOAT_MAKERS)]
            wmo = "29001" if k == 1 else str(1990100 + k)
            mode: Literal["R", "D"] = "D" if k >= 2 and k % 2 == 0 else "R"
            args = (wmo, cycle, dac, inst, platform_type, mode, juld, lat, lon)
            profiles.append(_measured_profile(*args, _pressure_levels(rng), rng, with_psal=k != 1))
            if k == 0:
                surface = np.round(np.arange(1.0, 4.01, 0.5), 1).astype(np.float32)
                profiles.append(
                    _measured_profile(*args, surface, rng, scheme=_NEAR_SURFACE_SCHEME, defects=False)
                )
    return profiles


def group_argo_files(profiles: Iterable[ArgoProfile]) -> dict[str, list[ArgoProfile]]:
    """Profiles keyed by their GDAC path relative to ``dac/`` (several profiles may share one file)."""
    files: dict[str, list[ArgoProfile]] = {}
    for profile in profiles:
        files.setdefault(profile.relative_path, []).append(profile)
    return files


# ---------------------------------------------------------------------------------------------------------
# Local upstream mirror
# ---------------------------------------------------------------------------------------------------------


# Gridded products written by :mod:`oceantaco.synthetic_grids` (defined here so that ``build_mirror`` can
# default to them without importing that module, which itself imports this one).
GRIDDED_PRODUCTS: tuple[str, ...] = (
    "glorys",
    "l4_sst",
    "l4_sss",
    "l4_wind",
    "l3_sst",
    "l3_sss_smos_asc",
    "l3_sss_smos_desc",
)


@dataclass(frozen=True)
class MirrorManifest:
    """What :func:`build_mirror` wrote; the URLs go to ``Settings.cmems_mirror`` / ``Settings.argo_gdac``.

    ``gridded_files`` maps a gridded product token to the files written per day (24 for hourly wind);
    ``sparse_files`` does the same for the L3 along-track files (one per satellite).
    """

    root: Path
    cmems_mirror: str
    argo_gdac: str
    l4_ssh_files: dict[dt.date, Path]
    argo_index: Path
    argo_files: dict[str, list[ArgoProfile]]
    gridded_files: dict[str, dict[dt.date, list[Path]]] = field(default_factory=dict)
    sparse_files: dict[str, dict[dt.date, list[Path]]] = field(default_factory=dict)

    @property
    def argo_profiles(self) -> list[ArgoProfile]:
        return [p for profiles in self.argo_files.values() for p in profiles]

    @property
    def files(self) -> list[Path]:
        gdac = Path(self.argo_gdac) / "dac"
        per_product = [*self.gridded_files.values(), *self.sparse_files.values()]
        native = [p for per_day in per_product for paths in per_day.values() for p in paths]
        return [
            *self.l4_ssh_files.values(),
            *native,
            self.argo_index,
            *(gdac / rel for rel in self.argo_files),
        ]


def _l4_ssh_target(day: dt.date) -> tuple[Path, dt.date, Timeliness]:
    """Native-tree path, production date and timeliness of a day's L4 SSH file (MY or NRT per catalog).

    NRT maps are final 6 days after the map date; MY files carry the reprocessing date, or a later one
    for days appended after the reprocessing.
    """
    dataset = load_catalog()["l4_ssh"].dataset_for(day)
    timeliness: Timeliness = "nrt" if dataset.dataset_family == "nrt" else "dt"
    if timeliness == "nrt":
        production = day + dt.timedelta(days=6)
    else:
        production = max(dt.date(2024, 11, 20), day + dt.timedelta(days=120))
    name = f"{timeliness}_global_allsat_phy_l4_{day:%Y%m%d}_{production:%Y%m%d}.nc"
    version_dir = f"{dataset.dataset_id}_{L4_SSH_DATASET_VERSION}"
    return Path(dataset.product_id, version_dir, f"{day:%Y}", f"{day:%m}", name), production, timeliness


def build_mirror(
    root: Path,
    days: list[dt.date],
    *,
    l4_resolution: float = 0.125,
    grid_products: Sequence[str] = GRIDDED_PRODUCTS,
    grid_resolution: float = 1.0,
    alongtrack_points: int | None = 2000,
) -> MirrorManifest:
    """Lay out a small upstream mirror under ``root`` for ``days``.

    ``<root>/cmems`` is a Copernicus Marine native tree with one DUACS L4 file per day plus the native
    files of every product in ``grid_products`` (see :func:`oceantaco.synthetic_grids.write_product_day`)
    at ``grid_resolution``; ``<root>/gdac`` is a GDAC tree with ``ar_index_global_prof.txt`` and
    ``dac/<dac>/<wmo>/profiles/*.nc``. Coarse ``l4_resolution`` / ``grid_resolution`` keep tests fast; the
    grids keep their native extent and longitude convention. A gridded product is skipped on days no
    catalog dataset covers (as upstream has no file then). With ``alongtrack_points`` the tree also holds
    one DUACS L3 along-track file per satellite and day with that many points.
    """
    # These modules import this one: import at call time.
    from oceantaco.synthetic_grids import write_product_day
    from oceantaco.synthetic_sparse import write_sparse_day

    root = Path(root).resolve()
    cmems, gdac = root / "cmems", root / "gdac"
    l4_files: dict[dt.date, Path] = {}
    for day in days:
        rel, production, timeliness = _l4_ssh_target(day)
        l4_files[day] = write_duacs_l4(
            cmems / rel, day, production, resolution=l4_resolution, timeliness=timeliness
        )
    catalog = load_catalog()
    gridded: dict[str, dict[dt.date, list[Path]]] = {}
    for token in grid_products:
        covered = [day for day in days if catalog[token].datasets_for(day)]
        gridded[token] = {
            day: write_product_day(cmems, token, day, resolution=grid_resolution) for day in covered
        }
    sparse: dict[str, dict[dt.date, list[Path]]] = {}
    if alongtrack_points:
        staging = root / "staging"
        for day in days:
            written = write_sparse_day(
                staging, day, products=("l3_ssh",), alongtrack_points=alongtrack_points
            )
            moved = []
            for path in written["l3_ssh"]:
                target = cmems / path.relative_to(staging / catalog["l3_ssh"].raw_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                moved.append(path.replace(target))
            sparse.setdefault("l3_ssh", {})[day] = moved
        shutil.rmtree(staging)
    argo_files = group_argo_files(argo_profiles_for_days(days))
    for rel, profiles in argo_files.items():
        write_argo_profile(gdac / "dac" / rel, profiles)
    index = write_argo_index(
        gdac / "ar_index_global_prof.txt",
        [ArgoIndexRow.for_file(profiles) for profiles in argo_files.values()],
    )
    return MirrorManifest(
        root=root,
        cmems_mirror=str(cmems),
        argo_gdac=str(gdac),
        l4_ssh_files=l4_files,
        argo_index=index,
        argo_files=argo_files,
        gridded_files=gridded,
        sparse_files=sparse,
    )
