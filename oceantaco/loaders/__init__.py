"""Loaders turn a day's raw files of one product into encoded regional tiles.

One small class per kind of data behind one protocol, registered by the catalog's ``tiling`` kind.
Loaders decode every value from the file's own attributes (CF mask-and-scale) and encode the output from
the catalog's table; they never look at storage, only at local paths.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import xarray as xr

from oceantaco.catalog import Product
from oceantaco.encoding import to_netcdf_bytes
from oceantaco.regions import Region


@dataclass(frozen=True)
class Tile:
    """One encoded regional tile, ready to serialise, with the facts the inventory records.

    Either ``dataset`` + ``encoding`` (written by xarray) or ``serializer`` (for tiles too large to hold
    every variable at once, which writes them one by one) describes the content.
    """

    region: Region
    dataset: xr.Dataset | None
    encoding: dict[str, dict]
    bbox: list[float]
    time_range_us: tuple[int, int]
    n_out_of_range: int = 0
    resolution_deg: tuple[float, float] | None = None  # (lat, lon)
    n_points: int | None = None
    n_profiles: int | None = None
    n_time_steps: int | None = None  # time steps combined into the tile (24 for a full day of hourly wind)
    n_tracks: int | None = None  # passes/tracks that contributed (binned products)
    serializer: Callable[[dict], bytes] | None = None

    def to_bytes(self, attrs: dict) -> bytes:
        """The tile as NetCDF4 bytes, with ``attrs`` added to its global attributes."""
        if self.serializer is not None:
            return self.serializer(attrs)
        assert self.dataset is not None
        self.dataset.attrs.update(attrs)
        return to_netcdf_bytes(self.dataset, self.encoding)


class InputError(ValueError):
    """A raw file cannot be turned into tiles (missing main variable, wrong structure, ...)."""


class Loader(Protocol):
    tiling: ClassVar[str]

    def tiles(self, product: Product, day: dt.date, paths: list[Path]) -> Iterator[Tile]: ...


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    _REGISTRY[cls.tiling] = cls
    return cls


def get_loader(product: Product) -> Loader:
    from oceantaco.loaders import binned, grid, points  # noqa: F401  (registration side effect)

    try:
        return _REGISTRY[product.tiling]()
    except KeyError:
        raise NotImplementedError(
            f"formatting {product.token} ({product.tiling} data) is not implemented yet"
        ) from None


def netcdf_engine(path: Path) -> str:
    """xarray engine for a NetCDF file, from its magic bytes.

    scipy reads classic NetCDF3 (Argo profile files), h5netcdf reads NetCDF4/HDF5. The netCDF4 library is
    never used: its bundled HDF5 is not thread-safe next to h5py's under the threaded task runner.
    """
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:3] == b"CDF":
        return "scipy"
    if magic == b"\x89HDF":
        return "h5netcdf"
    raise InputError(f"{path.name}: not a NetCDF file (starts with {magic!r})")


def day_bounds_us(day: dt.date) -> tuple[int, int]:
    """[00:00, 24:00) of a UTC day in integer microseconds, the unit TACO's istac columns use."""
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    return start, start + 86_400_000_000 - 1
