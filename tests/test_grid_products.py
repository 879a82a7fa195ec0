"""Every gridded product through the format step, from synthetic upstream files with the real structure.

Tile values are compared with the input decoded independently (plain xarray CF decoding of the upstream
files): within half an output packing step. Wind statistics are computed here from the decoded hourly
fields; GLORYS levels and the ODYSSEA kelvin -> °C conversion are applied here as the catalog states them.
"""

import datetime as dt
import functools
import io
import warnings

import numpy as np
import pytest
import xarray as xr

from oceantaco.catalog import load_catalog
from oceantaco.formatting import format_product_day
from oceantaco.inventory import read_fragment
from oceantaco.regions import REGIONS
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic_grids import (
    GRIDDED_PRODUCTS,
    OUT_OF_RANGE,
    analytic_field,
    out_of_range_mask,
    write_product_day,
    write_wind_daily_original,
)

CATALOG = load_catalog()
DAY = dt.date(2024, 1, 10)
RESOLUTION = {"glorys": 1.0, "l3_sss_smos_asc": 2.0, "l3_sss_smos_desc": 2.0}
COARSE = 1.5


def _format(tmp_path, token: str, **write_kw):
    product = CATALOG[token]
    raw = tmp_path / "raw"
    paths = write_product_day(
        raw / product.raw_dir, token, DAY, resolution=RESOLUTION.get(token, COARSE), **write_kw
    )
    formatted = Storage(str(tmp_path / "formatted"))
    result = format_product_day(product, DAY, Storage(str(raw)), formatted, Settings())
    return product, paths, formatted, result


def _tiles(formatted: Storage, product, day=DAY) -> list[xr.Dataset]:
    fragment = read_fragment(formatted, product, day)
    return [
        xr.open_dataset(io.BytesIO(formatted.read_bytes(key)), engine="h5netcdf").load()
        for key in fragment["relative_path"]
    ]


@functools.cache
def _source(path) -> xr.Dataset:
    ds = xr.open_dataset(path, engine="h5netcdf", decode_timedelta=False).load()
    ds = ds.rename({k: v for k, v in {"latitude": "lat", "longitude": "lon"}.items() if k in ds.variables})
    return ds.sortby(["lat", "lon"])


def _expected(product, paths, name: str, merged: xr.Dataset) -> np.ndarray:
    """The input of one output variable, decoded by xarray, on the merged tile grid."""
    spec = product.variables[name]
    source = spec.source or name
    sources = [_source(p) for p in paths]
    fields = []
    for ds in sources:
        var = ds[source]
        if "depth" in var.dims:
            var = var.isel(depth=0) if spec.depth_m is None else var.sel(depth=spec.depth_m, method="nearest")
        var = var.sel(lat=merged["lat"].values, lon=merged["lon"].values)
        fields.append(
            var.transpose(..., "lat", "lon").values.reshape(-1, merged.sizes["lat"], merged.sizes["lon"])
        )
    stack = np.concatenate(fields).astype(np.float64)
    if var.attrs.get("units") == "kelvin" and spec.units == "degree_Celsius":
        stack = stack - 273.15
    if spec.statistic is None:
        return stack[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (land) reduce to NaN
        reduce = {"mean": np.nanmean, "std": np.nanstd, "min": np.nanmin, "max": np.nanmax}[spec.statistic]
        return reduce(stack, axis=0)


@pytest.mark.parametrize("token", GRIDDED_PRODUCTS)
def test_every_product_tiles_to_its_decoded_input(tmp_path, token):
    product, paths, formatted, result = _format(tmp_path, token)
    assert result.status == "formatted" and result.values_out_of_range == 0
    tiles = _tiles(formatted, product)
    fragment = read_fragment(formatted, product, DAY)
    assert set(fragment["region"]) == {r.name for r in REGIONS}
    merged = xr.combine_by_coords(tiles)  # raises on overlapping or non-monotonic tiles
    assert np.all(np.diff(merged["lat"]) > 0) and np.all(np.diff(merged["lon"]) > 0)
    first = _source(paths[0])
    assert merged.sizes == {"lat": first.sizes["lat"], "lon": first.sizes["lon"]}  # no row or column lost
    assert sorted(merged.data_vars) == sorted(product.variables)
    for name in product.variables:
        got = merged[name].values
        want = _expected(product, paths, name, merged)
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        step = product.variables[name].scale_factor or 1.0
        assert np.nanmax(np.abs(got - want)) <= step / 2 + 1e-6, name
        assert merged[name].attrs["units"] == product.variables[name].units
    for tile in tiles:
        assert tile.attrs["source_dataset_id"] == product.dataset_for(DAY).dataset_id
        assert tile.attrs["source_files"].split() == sorted(p.name for p in paths)


def test_tiles_match_the_analytic_fields(tmp_path):
    """End to end against the analytic truth: the upstream packing adds at most its own half step."""
    product, _, formatted, _ = _format(tmp_path, "l4_sst")
    merged = xr.combine_by_coords(_tiles(formatted, product))
    lat, lon = merged["lat"].values[:, None], merged["lon"].values[None, :]
    truth = analytic_field("l4_sst", "analysed_sst", lat, lon, DAY)
    error = np.nanmax(np.abs(merged["analysed_sst"].values - truth))
    assert error <= 0.01 / 2 + product.variables["analysed_sst"].scale_factor / 2 + 1e-6


def test_glorys_keeps_the_pole_row_and_records_the_levels(tmp_path):
    product, _, formatted, _ = _format(tmp_path, "glorys")
    regions = read_fragment(formatted, product, DAY)["region"]
    tiles = dict(zip(regions, _tiles(formatted, product), strict=True))
    assert tiles["NORTH_ATLANTIC"]["lat"].values[-1] == 90.0
    assert tiles["NORTH_ATLANTIC"]["uo"].attrs["depth"] == pytest.approx(15.81007, abs=1e-4)
    assert tiles["NORTH_ATLANTIC"]["thetao"].attrs["depth"] == pytest.approx(0.494025, abs=1e-5)
    lat, lon = tiles["NORTH_ATLANTIC"]["lat"].values[:, None], tiles["NORTH_ATLANTIC"]["lon"].values[None, :]
    at_current_depth = analytic_field("glorys", "uo", lat, lon, DAY, depth=15.81007)
    error = np.nanmax(np.abs(tiles["NORTH_ATLANTIC"]["uo"].values - at_current_depth))
    assert error <= 6.1037019e-4 / 2 + 0.0002 / 2 + 1e-6  # a wrong level would be far off


@pytest.mark.parametrize("token", GRIDDED_PRODUCTS)
def test_out_of_range_values_become_fill_and_are_counted(tmp_path, token):
    product, _, formatted, result = _format(tmp_path, token, out_of_range=True)
    name, _ = OUT_OF_RANGE[token]
    affected = [
        n
        for n, s in product.variables.items()
        if (s.source or n) == name and s.statistic in (None, "mean", "max")
    ]
    merged = xr.combine_by_coords(_tiles(formatted, product))
    box = out_of_range_mask(merged["lat"].values[:, None], merged["lon"].values[None, :])
    assert box.any()
    for output in affected:
        assert np.isnan(merged[output].values[box]).all(), output
        assert np.isfinite(merged[output].values[~box]).any(), output
    fragment = read_fragment(formatted, product, DAY)
    assert result.values_out_of_range == fragment["n_out_of_range"].sum() >= len(affected) * box.sum()


def test_wind_from_fewer_hours_records_how_many(tmp_path):
    product = CATALOG["l4_wind"]
    raw = tmp_path / "raw"
    paths = write_product_day(raw / product.raw_dir, "l4_wind", DAY, resolution=COARSE)
    for path in paths[5:9]:
        path.unlink()
    formatted = Storage(str(tmp_path / "formatted"))
    assert format_product_day(product, DAY, Storage(str(raw)), formatted, Settings()).status == "formatted"
    fragment = read_fragment(formatted, product, DAY)
    assert set(fragment["n_time_steps"]) == {20}
    merged = xr.combine_by_coords(_tiles(formatted, product))
    assert merged.attrs["n_time_steps"] == 20
    kept = paths[:5] + paths[9:]
    for name in ("eastward_wind", "northward_wind_std", "eastward_wind_max"):
        want = _expected(product, kept, name, merged)
        assert (
            np.nanmax(np.abs(merged[name].values - want)) <= product.variables[name].scale_factor / 2 + 1e-6
        )


def test_wind_newest_production_of_each_hour_is_used_once(tmp_path):
    product = CATALOG["l4_wind"]
    raw = tmp_path / "raw"
    paths = write_product_day(raw / product.raw_dir, "l4_wind", DAY, resolution=COARSE)
    older = paths[3].with_name(paths[3].name.replace("_R", "_R0"))  # sorts before: an older production
    older.write_bytes(paths[3].read_bytes())
    formatted = Storage(str(tmp_path / "formatted"))
    format_product_day(product, DAY, Storage(str(raw)), formatted, Settings())
    fragment = read_fragment(formatted, product, DAY)
    assert set(fragment["n_time_steps"]) == {24}
    assert older.name not in fragment["source_files"].iloc[0].tolist()


def test_the_original_daily_wind_file_is_accepted(tmp_path):
    product = CATALOG["l4_wind"]
    raw = tmp_path / "raw"
    daily = write_wind_daily_original(
        raw / "l4_wind" / f"l4_wind_daily_{DAY:%Y%m%d}.nc", DAY, resolution=COARSE
    )
    formatted = Storage(str(tmp_path / "formatted"))
    assert format_product_day(product, DAY, Storage(str(raw)), formatted, Settings()).status == "formatted"
    merged = xr.combine_by_coords(_tiles(formatted, product))
    assert sorted(merged.data_vars) == ["eastward_wind", "northward_wind"]
    assert "original pipeline" in merged.attrs["input_aggregation"]
    assert read_fragment(formatted, product, DAY)["n_time_steps"].isna().all()
    want = _expected(product, [daily], "eastward_wind", merged)
    assert np.nanmax(np.abs(merged["eastward_wind"].values - want)) <= 0.001 + 1e-6


def test_smos_passes_share_a_folder_and_stay_apart(tmp_path):
    raw = tmp_path / "raw"
    formatted = Storage(str(tmp_path / "formatted"))
    merged = {}
    for token in ("l3_sss_smos_asc", "l3_sss_smos_desc"):
        product = CATALOG[token]
        write_product_day(raw / product.raw_dir, token, DAY, resolution=2.0)
        format_product_day(product, DAY, Storage(str(raw)), formatted, Settings())
        fragment = read_fragment(formatted, product, DAY)
        assert set(fragment["satellite_pass"]) == {product.satellite_pass}
        assert all(
            ("CSF2QA" if token.endswith("asc") else "CSF2QD") in f for f in fragment["source_files"].iloc[0]
        )
        merged[token] = xr.combine_by_coords(_tiles(formatted, product))
    asc, desc = (merged[t]["Sea_Surface_Salinity"].values for t in ("l3_sss_smos_asc", "l3_sss_smos_desc"))
    assert not np.array_equal(np.isnan(asc), np.isnan(desc))
