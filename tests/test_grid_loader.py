"""Gridded loaders on the real upstream samples: decoding from attributes, depth levels, units, seams."""

import datetime as dt

import numpy as np
import pytest
import xarray as xr
from tiles import decoded

from oceantaco.catalog import load_catalog
from oceantaco.loaders import InputError, get_loader
from oceantaco.loaders.grid import Axis
from oceantaco.regions import REGIONS

CATALOG = load_catalog()
GLORYS, L4_SST, L3_SST = CATALOG["glorys"], CATALOG["l4_sst"], CATALOG["l3_sst"]
GLORYS_DAY = dt.date(2012, 1, 1)
GHRSST_DAY = dt.date(2016, 7, 7)


def _half_step(product, name: str) -> float:
    return product.variables[name].scale_factor / 2 + 1e-6


def _with_variables(product, **changes: dict):
    variables = {
        name: spec.model_copy(update=changes.get(name, {})) for name, spec in product.variables.items()
    }
    return product.model_copy(update={"variables": variables})


@pytest.fixture
def glorys_file(real_fixtures):
    return real_fixtures / "glorys12" / "GLORYS_NA_20120101.nc"


@pytest.fixture
def ghrsst_file(real_fixtures):
    return next((real_fixtures / "ghrsst_l4_analog").glob("*.nc"))


def test_real_glorys_levels_outside_the_tolerance_are_left_out_and_said_so(glorys_file):
    """The sample holds 5 levels (6.2 m .. 3868 m): none within 1 m of the surface or of 15.8 m."""
    (tile,) = get_loader(GLORYS).tiles(GLORYS, GLORYS_DAY, [glorys_file])
    assert tile.region.name == "NORTH_ATLANTIC"
    out = decoded(tile)
    assert list(out.data_vars) == ["zos"]
    assert "thetao: no depth level within 1 m of 0.494025 m" in out.attrs["omitted_variables"]
    assert "uo: no depth level within 1 m of 15.8101 m" in out.attrs["omitted_variables"]
    with xr.open_dataset(glorys_file) as src:
        zos = src["zos"].squeeze(drop=True).load()
    want = zos.sel(latitude=out["lat"], longitude=out["lon"]).values
    assert np.array_equal(np.isnan(want), np.isnan(out["zos"].values))
    assert np.nanmax(np.abs(out["zos"].values - want)) <= _half_step(GLORYS, "zos")


def test_real_glorys_takes_the_level_nearest_the_catalog_depth(glorys_file):
    product = _with_variables(GLORYS, thetao={"depth_m": 6.0}, uo={"depth_m": 35.0}, vo={"depth_m": 35.0})
    (tile,) = get_loader(product).tiles(product, GLORYS_DAY, [glorys_file])
    out = decoded(tile)
    assert sorted(out.data_vars) == ["thetao", "uo", "vo", "zos"]
    with xr.open_dataset(glorys_file) as src:
        src = src.squeeze("time", drop=True).load()
    for name, level in (("thetao", 0), ("uo", 1), ("vo", 1)):
        want = src[name].isel(depth=level).sel(latitude=out["lat"], longitude=out["lon"]).values
        assert np.nanmax(np.abs(out[name].values - want)) <= _half_step(product, name), name
        assert out[name].attrs["depth"] == pytest.approx(float(src["depth"][level]))
    assert out["thetao"].attrs["units"] == "degrees_C"


def test_a_required_variable_without_its_level_fails_the_day(glorys_file):
    product = _with_variables(GLORYS, thetao={"required": True})
    with pytest.raises(InputError, match="thetao: no depth level"):
        list(get_loader(product).tiles(product, GLORYS_DAY, [glorys_file]))


def test_real_ghrsst_l4_stays_in_kelvin_with_its_flags(ghrsst_file):
    (tile,) = get_loader(L4_SST).tiles(L4_SST, GHRSST_DAY, [ghrsst_file])
    out = decoded(tile)
    with xr.open_dataset(ghrsst_file) as src:
        src = src.squeeze("time", drop=True).load()
    assert out["analysed_sst"].attrs["units"] == "kelvin"
    for name in ("analysed_sst", "analysis_error"):
        want = src[name].values
        assert np.array_equal(np.isnan(want), np.isnan(out[name].values)), name
        assert np.nanmax(np.abs(out[name].values - want)) <= _half_step(L4_SST, name), name
    assert 270 < np.nanmean(out["analysed_sst"].values) < 310
    np.testing.assert_array_equal(out["mask"].values, src["mask"].values)
    stored = decoded(tile, mask_and_scale=False)
    assert stored["analysed_sst"].dtype == np.int16 and stored["mask"].dtype == np.int8


def test_kelvin_input_becomes_celsius_where_the_catalog_says_so(ghrsst_file):
    """ODYSSEA stores kelvin; the published l3_sst tiles are °C: converted from the file's units attribute."""
    product = _with_variables(
        L3_SST, adjusted_sea_surface_temperature={"source": "analysed_sst"}, quality_level={"source": "mask"}
    )
    (tile,) = get_loader(product).tiles(product, GHRSST_DAY, [ghrsst_file])
    out = decoded(tile)
    with xr.open_dataset(ghrsst_file) as src:
        kelvin = src["analysed_sst"].squeeze(drop=True).values
    celsius = out["adjusted_sea_surface_temperature"]
    assert celsius.attrs["units"] == "degree_Celsius"
    assert np.nanmax(np.abs(celsius.values - (kelvin - 273.15))) <= _half_step(product, celsius.name)


def test_unconvertible_units_are_an_input_error(tmp_path):
    lat, lon = np.arange(-1.5, 2), np.arange(-1.5, 2)
    field = xr.DataArray(np.full((1, 4, 4), 300.0, np.float32), dims=("time", "lat", "lon"))
    field.attrs["units"] = "degrees_F"
    path = tmp_path / "f.nc"
    xr.Dataset({"adjusted_sea_surface_temperature": field}, coords={"lat": lat, "lon": lon}).to_netcdf(
        path, engine="h5netcdf"
    )
    with pytest.raises(InputError, match="cannot be converted"):
        list(get_loader(L3_SST).tiles(L3_SST, GHRSST_DAY, [path]))


def test_descending_latitudes_duplicate_seam_longitudes_and_the_pole_row(tmp_path):
    """lat stored north->south with a 90° row; lon 0..360 with both 0 and 360: one copy of each, in tiles."""
    lat = np.linspace(90, -90, 7)  # 90, 60, ..., -90
    lon = np.arange(0, 361, 45.0)  # 0 .. 360: 0 and 360 are the same meridian
    values = lat[:, None] / 20 + lon[None, :] / 1000
    path = tmp_path / "grid.nc"
    ds = xr.Dataset(
        {"sla": (("time", "latitude", "longitude"), values[None])},
        coords={"latitude": lat, "longitude": lon},
    )
    ds["sla"].attrs["units"] = "m"
    ds.to_netcdf(path, engine="h5netcdf")
    ssh = CATALOG["l4_ssh"]
    tiles = {t.region.name: decoded(t) for t in get_loader(ssh).tiles(ssh, GHRSST_DAY, [path])}
    assert set(tiles) == {r.name for r in REGIONS}
    merged = xr.combine_by_coords(list(tiles.values()))
    assert merged["lat"].values.tolist() == sorted(lat.tolist())
    assert merged["lon"].values.tolist() == [-180, -135, -90, -45, 0, 45, 90, 135]
    assert 90.0 in tiles["NORTH_ATLANTIC"]["lat"].values and 90.0 not in tiles["SOUTH_ATLANTIC"]["lat"].values
    want = merged["lat"].values[:, None] / 20 + (merged["lon"].values[None, :] % 360) / 1000
    assert np.abs(merged["sla"].values - want).max() <= _half_step(ssh, "sla")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0, 1.0, 2.0, 0.0], [3, 1, 2, 0]),  # argsort order: 0@3, 1@1, 2@2, 3@0
        ([0.0, 1.0, 2.0, 3.0], slice(0, 4, 1)),
        ([3.0, 2.0, 1.0, 0.0], slice(3, None, -1)),
    ],
)
def test_axis_selects_slices_when_contiguous(values, expected):
    axis = Axis.from_file(np.array(values))
    selected = axis.select(0, 4)
    data = np.array(values)
    np.testing.assert_array_equal(data[selected], [0.0, 1.0, 2.0, 3.0])
    if isinstance(expected, slice):
        assert selected == expected
