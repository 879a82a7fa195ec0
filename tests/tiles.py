"""Test helper: a tile as a reader sees it, after serialisation and CF decoding."""

from __future__ import annotations

import io

import xarray as xr

from oceantaco.loaders import Tile


def decoded(tile: Tile, **open_kw) -> xr.Dataset:
    data = io.BytesIO(tile.to_bytes({}))
    return xr.open_dataset(data, engine="h5netcdf", **open_kw).load()
