"""Test helper: a tile as a reader sees it, after serialisation and CF decoding."""

from __future__ import annotations

import io

import xarray as xr

from oceantaco.encoding import to_netcdf_bytes
from oceantaco.loaders import Tile


def decoded(tile: Tile, **open_kw) -> xr.Dataset:
    data = io.BytesIO(to_netcdf_bytes(tile.dataset, tile.encoding))
    return xr.open_dataset(data, engine="h5netcdf", **open_kw).load()
