"""The eight fixed 90°×90° OceanTACO tiles, shared by every step of the pipeline.

Tiles are half-open, ``lon_min <= lon < lon_max`` and ``lat_min <= lat < lat_max``, with one exception:
the North Pole row (lat = 90, present in GLORYS) belongs to the northern tiles, so no observation on the
globe is left out. Longitudes are normalised to [-180, 180) first, so 180° falls into the western Pacific
tiles and no tile crosses the antimeridian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.geometry


@dataclass(frozen=True)
class Region:
    """One tile: ``Region("NORTH_ATLANTIC", -90, 0, 0, 90)``."""

    name: str
    lon_min: float
    lon_max: float
    lat_min: float
    lat_max: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max), the order shapely and STAC use."""
        return (self.lon_min, self.lat_min, self.lon_max, self.lat_max)

    @property
    def polygon_wkb(self) -> bytes:
        return shapely.to_wkb(shapely.geometry.box(*self.bounds))

    def lat_mask(self, lat: np.ndarray) -> np.ndarray:
        lat = np.asarray(lat)
        upper = lat <= self.lat_max if self.lat_max == 90.0 else lat < self.lat_max
        return (lat >= self.lat_min) & upper

    def lon_mask(self, lon: np.ndarray) -> np.ndarray:
        lon = normalize_lon(lon)
        return (lon >= self.lon_min) & (lon < self.lon_max)

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Point-wise membership; ``lon`` may use any convention."""
        return self.lon_mask(lon) & self.lat_mask(lat)


_LAT_BANDS = {"SOUTH": (-90.0, 0.0), "NORTH": (0.0, 90.0)}
_LON_BANDS = {
    "PACIFIC_WEST": (-180.0, -90.0),
    "ATLANTIC": (-90.0, 0.0),
    "INDIAN": (0.0, 90.0),
    "PACIFIC_EAST": (90.0, 180.0),
}

REGIONS: tuple[Region, ...] = tuple(
    sorted(
        (
            Region(f"{lat_name}_{lon_name}", lon0, lon1, lat0, lat1)
            for lat_name, (lat0, lat1) in _LAT_BANDS.items()
            for lon_name, (lon0, lon1) in _LON_BANDS.items()
        ),
        key=lambda r: r.name,
    )
)
REGION_NAMES: tuple[str, ...] = tuple(r.name for r in REGIONS)
_BY_NAME = {r.name: r for r in REGIONS}


def region(name: str) -> Region:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown region {name!r}; expected one of {', '.join(REGION_NAMES)}") from None


def normalize_lon(lon: np.ndarray | float) -> np.ndarray:
    """Map any longitude to [-180, 180); 180 and -180 both become -180."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0


def region_index(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Index into ``REGIONS`` for every point (-1 where lat/lon is not finite), vectorised."""
    lon = normalize_lon(lon)
    lat = np.asarray(lat, dtype=np.float64)
    out = np.full(lon.shape, -1, dtype=np.int8)
    for i, reg in enumerate(REGIONS):
        out[reg.contains(lon, lat)] = i
    return out
