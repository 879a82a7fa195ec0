"""Regular lat/lon grids (Copernicus Marine L3/L4 products and GLORYS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from oceantaco.catalog import Product
from oceantaco.encoding import encode_dataset
from oceantaco.loaders import InputError, Tile, day_bounds_us, netcdf_engine, register
from oceantaco.regions import REGIONS, normalize_lon

_COORD_NAMES = {"latitude": "lat", "longitude": "lon"}
TILE_CHUNKS = {"lat": 512, "lon": 512}


def open_grid(path: Path, product: Product) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Decoded fields of the catalog's variables on a 1-D ascending lat and [-180, 180) lon grid.

    Handles ``latitude/longitude`` vs ``lat/lon``, 0..360 longitudes, descending latitudes, a length-1
    time dimension with or without a ``time`` variable, and dangling ``grid_mapping`` references; unknown
    variables are ignored.
    """
    with xr.open_dataset(path, engine=netcdf_engine(path), decode_times=False) as ds:
        ds = ds.rename({k: v for k, v in _COORD_NAMES.items() if k in ds.variables or k in ds.dims})
        if "lat" not in ds.variables or "lon" not in ds.variables:
            raise InputError(f"{path.name}: no lat/lon coordinates")
        missing = [v for v in product.required_variables() if v not in ds.variables]
        if missing:
            raise InputError(f"{path.name}: main variable(s) {', '.join(missing)} missing")
        lat = ds["lat"].values.astype(np.float64)
        lon = normalize_lon(ds["lon"].values)
        lat_order, lon_order = np.argsort(lat, kind="stable"), np.argsort(lon, kind="stable")
        fields = {}
        for name in product.variables:
            if name not in ds.variables:
                continue
            var = ds[name]
            extra = [d for d in var.dims if d not in ("lat", "lon")]
            if any(var.sizes[d] != 1 for d in extra) or set(var.dims) - set(extra) != {"lat", "lon"}:
                raise InputError(
                    f"{path.name}: {name} has dims {var.dims}, expected (lat, lon) plus length-1"
                )
            values = var.isel({d: 0 for d in extra}).transpose("lat", "lon").values
            fields[name] = values[np.ix_(lat_order, lon_order)]
    return lat[lat_order], lon[lon_order], fields


def grid_step(coord: np.ndarray) -> float | None:
    return float((coord[-1] - coord[0]) / (coord.size - 1)) if coord.size > 1 else None


@register
class GridLoader:
    tiling = "grid"

    def tiles(self, product: Product, day: dt.date, paths: list[Path]) -> Iterator[Tile]:
        if len(paths) != 1:
            raise InputError(f"{product.token} {day}: expected one raw file, got {len(paths)}")
        lat, lon, fields = open_grid(paths[0], product)
        for region in REGIONS:
            rows = np.flatnonzero(region.lat_mask(lat))
            cols = np.flatnonzero(region.lon_mask(lon))
            if rows.size == 0 or cols.size == 0:
                continue
            tile_lat, tile_lon = lat[rows[0] : rows[-1] + 1], lon[cols[0] : cols[-1] + 1]
            block = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            coords = {
                "lat": xr.Variable("lat", tile_lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": xr.Variable("lon", tile_lon, {"units": "degrees_east", "standard_name": "longitude"}),
            }
            dataset, encoding, out_of_range = encode_dataset(
                {name: (("lat", "lon"), values[block]) for name, values in fields.items()},
                product.variables,
                coords=coords,
                attrs={},
                chunks=TILE_CHUNKS,
            )
            yield Tile(
                region=region,
                dataset=dataset,
                encoding=encoding,
                bbox=[float(tile_lon[0]), float(tile_lat[0]), float(tile_lon[-1]), float(tile_lat[-1])],
                time_range_us=day_bounds_us(day),
                n_out_of_range=out_of_range,
                resolution_deg=(grid_step(tile_lat), grid_step(tile_lon)),
            )
