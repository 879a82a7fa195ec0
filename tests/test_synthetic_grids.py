"""Synthetic gridded upstream files: real structure on disk, analytic values once decoded, catalog names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from oceantaco import synthetic as syn
from oceantaco import synthetic_grids as sg
from oceantaco.catalog import load_catalog

DAY = dt.date(2020, 1, 5)
# netCDF-C / HDF5 bookkeeping, and what THREDDS/NCO added to the real GLORYS subset.
_INTERNAL = {
    "DIMENSION_LIST",
    "REFERENCE_LIST",
    "CLASS",
    "NAME",
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_NCProperties",
}
_GLORYS_TOOL_ATTRS = {"_ChunkSizes", "_CoordinateAxisType", "_CoordinateZisPositive"}
_GLORYS_TOOL_GLOBALS = {"NCO", "history_of_appended_files", "_CoordSysBuilder"}


def _layout(path: Path) -> tuple[dict[str, tuple[np.dtype, object]], dict[str, dict]]:
    """Global attributes (dtype, value) and, per variable, dtype, dims, chunks and attributes."""
    with h5py.File(path, "r") as f:
        globals_ = {k: (np.asarray(v).dtype, v) for k, v in f.attrs.items() if k not in _INTERNAL}
        variables = {}
        for name, var in f.items():
            dims = tuple(f[refs[0]].name.lstrip("/") for refs in var.attrs.get("DIMENSION_LIST", []))
            variables[name] = {
                "dtype": var.dtype,
                "dims": dims or ((name,) if var.ndim == 1 else ()),
                "chunks": var.chunks,
                "compression": (var.compression, var.shuffle),
                "attrs": {k: (np.asarray(v).dtype, v) for k, v in var.attrs.items() if k not in _INTERNAL},
            }
    return globals_, variables


def _same_type(got: np.dtype, want: np.dtype) -> bool:
    """Numbers keep their exact type; text must stay fixed-length NC_CHAR (kind S), any length."""
    return got.kind == "S" if want.kind == "S" else got == want


def _tolerance(da: xr.DataArray) -> float:
    """Half the packing step, plus the rounding of a float32 decode (int16 × float32 scale + offset)."""
    values = np.abs(da.values[~np.isnan(da.values)]) if np.issubdtype(da.dtype, np.floating) else da.values
    rounding = (
        2 * np.finfo(np.float32).eps * float(values.max(initial=0.0)) if da.dtype == np.float32 else 0.0
    )
    scale = da.encoding.get("scale_factor")
    if scale is not None:
        return float(scale) / 2 + rounding + 1e-9
    return rounding + 1e-9  # whole counts and flags are exact; float32 storage only rounds


def _assert_close(decoded: np.ndarray, truth: np.ndarray, tol: float, label: str) -> None:
    np.testing.assert_array_equal(np.isnan(decoded), np.isnan(truth), err_msg=f"{label}: missing cells")
    ok = ~np.isnan(truth)
    assert ok.any(), f"{label}: no data at all"
    err = np.abs(decoded[ok].astype(np.float64) - truth[ok])
    assert err.max() <= tol, f"{label}: max error {err.max()} > {tol}"


# --- structure against the real samples --------------------------------------------------------------------


@pytest.fixture(scope="module")
def glorys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sg.write_glorys(tmp_path_factory.mktemp("glorys") / "g.nc", dt.date(2012, 1, 1), resolution=0.5)


@pytest.mark.real_fixtures
def test_glorys_layout_matches_real_sample(real_fixtures: Path, glorys_file: Path) -> None:
    real_globals, real = _layout(real_fixtures / "glorys12/GLORYS_NA_20120101.nc")
    ours_globals, ours = _layout(glorys_file)

    # The subset's tools renamed or added some globals; the native names are kept here.
    renamed = {k.removeprefix("FROM_ORIGINAL_FILE__") for k in real_globals} - _GLORYS_TOOL_GLOBALS
    assert set(ours_globals) == renamed
    for key, (dtype, _) in real_globals.items():
        native = key.removeprefix("FROM_ORIGINAL_FILE__")
        if native in ours_globals:
            assert _same_type(ours_globals[native][0], dtype), key

    assert set(ours) == set(real)
    for name, want in real.items():
        got = ours[name]
        assert got["dtype"] == want["dtype"], name
        assert got["dims"] == want["dims"], name
        assert set(got["attrs"]) == set(want["attrs"]) - _GLORYS_TOOL_ATTRS, name
        for key, (dtype, value) in want["attrs"].items():
            if key in _GLORYS_TOOL_ATTRS:
                continue
            assert _same_type(got["attrs"][key][0], dtype), (name, key)
            if key in (
                "scale_factor",
                "add_offset",
                "_FillValue",
                "units",
                "standard_name",
                "axis",
                "calendar",
            ):
                np.testing.assert_array_equal(got["attrs"][key][1], value, err_msg=f"{name}.{key}")
        if "_ChunkSizes" in want["attrs"] and name not in ("latitude", "longitude", "depth", "time"):
            shape = h5py.File(glorys_file, "r")[name].shape
            native = tuple(int(c) for c in want["attrs"]["_ChunkSizes"][1])
            assert got["chunks"] == tuple(min(c, s) for c, s in zip(native, shape, strict=True)), name


def test_glorys_grid_time_and_depths(glorys_file: Path) -> None:
    lat, lon = sg.product_grid("glorys")
    assert (lat.size, lon.size) == (2041, 4320)
    assert (lat[0], lat[-1], lon[0]) == (-80.0, 90.0, -180.0)
    assert lon[-1] == pytest.approx(179.9167, abs=1e-4)
    with xr.open_dataset(glorys_file, engine="h5netcdf") as ds:
        assert ds.latitude.values[-1] == 90.0  # the pipeline must keep the exact lat = 90 row
        assert ds.time.values[0] == np.datetime64("2012-01-01T12:00")
        assert ds.thetao.dims == ("time", "depth", "latitude", "longitude")
        np.testing.assert_allclose(ds.depth.values, sg.GLORYS_DEPTHS[:11], rtol=1e-7)
        # picking the wrong level must show: neighbouring levels differ by far more than a packing step
        for name in ("thetao", "so", "uo", "vo"):
            step = ds[name].encoding["scale_factor"]
            diff = np.abs(ds[name].values[0, 10] - ds[name].values[0, 9])
            assert np.nanmin(diff) > 2 * step, name


@pytest.fixture(scope="module")
def ostia_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sg.write_ostia(tmp_path_factory.mktemp("ostia") / "o.nc", DAY, resolution=1.0)


@pytest.mark.real_fixtures
def test_ostia_layout_matches_ghrsst_l4_analog(real_fixtures: Path, ostia_file: Path) -> None:
    analog = next((real_fixtures / "ghrsst_l4_analog").glob("*.nc"))
    real_globals, real = _layout(analog)
    ours_globals, ours = _layout(ostia_file)
    assert set(real_globals) <= set(ours_globals)
    for key, (dtype, _) in real_globals.items():
        assert _same_type(ours_globals[key][0], dtype), key
    assert set(ours) == set(real)
    for name, want in real.items():
        got = ours[name]
        assert got["dtype"] == want["dtype"], name
        assert got["dims"] == want["dims"], name
        assert got["compression"] == ("gzip", True), name
        missing = set(want["attrs"]) - set(got["attrs"]) - {"source_ice", "comment_ice", "flag_values"}
        assert not missing, (name, missing)
        for key in ("_FillValue", "scale_factor", "add_offset", "valid_min", "units", "axis", "calendar"):
            if key in want["attrs"]:
                assert _same_type(got["attrs"][key][0], want["attrs"][key][0]), (name, key)
                if key not in ("valid_min",):
                    np.testing.assert_array_equal(
                        got["attrs"][key][1], want["attrs"][key][1], f"{name}.{key}"
                    )
    assert "_FillValue" not in ours["lat"]["attrs"] and "_FillValue" not in ours["lon"]["attrs"]
    assert ours_globals["id"][1] == b"OSTIA-UKMO-L4-GLOB-REP-v2.0"
    assert ours["mask"]["attrs"]["flag_masks"][1].tolist() == [1, 2, 4, 8, 16]


def test_ostia_time_mask_and_land(ostia_file: Path) -> None:
    with xr.open_dataset(ostia_file, engine="h5netcdf") as ds:
        assert ds.time.values[0] == np.datetime64("2020-01-05T12:00")
        assert ds.time.encoding["dtype"] == np.int32
        assert ds.time.encoding["units"] == "seconds since 1981-01-01 00:00:00"
        mask = ds["mask"].values[0]
        sst = ds.analysed_sst.values[0]
        assert set(np.unique(mask)) == {1.0, 2.0, 9.0}  # sea, land, sea with ice
        assert np.isnan(sst[mask == 2]).all() and not np.isnan(sst[mask != 2]).any()


# --- every writer decodes to the analytic truth ------------------------------------------------------------


def _time_units_off(name: str) -> bool:
    return name in ("sst_dtime", "Mean_Acq_Time")


def _check_file(path: Path, token: str, day: dt.date, *, hour: int | None = None) -> None:
    with xr.open_dataset(path, engine="h5netcdf", decode_times=False, decode_timedelta=False) as ds:
        lat_name = "latitude" if "latitude" in ds.dims else "lat"
        lon_name = "longitude" if "longitude" in ds.dims else "lon"
        lat = ds[lat_name].values.astype(np.float64)[:, None]
        lon = ds[lon_name].values.astype(np.float64)[None, :]
        assert set(ds.data_vars) == set(sg.FILE_VARIABLES[token])
        for name, da in ds.data_vars.items():
            tol = _tolerance(da)
            kelvin = token == "l3_sst" and da.attrs.get("units") == "kelvin" and "temperature" in name
            if token == "glorys" and "depth" in da.dims:
                for k, depth in enumerate(ds.depth.values):
                    truth = sg.analytic_field(token, name, lat, lon, day, depth=float(depth))
                    _assert_close(da.values[0, k], truth, tol, f"{token}.{name}[{depth}]")
                continue
            truth = sg.analytic_field(token, name, lat, lon, day, hour=hour)
            decoded = da.values.reshape(truth.shape) - (273.15 if kelvin else 0.0)
            _assert_close(decoded, truth, tol, f"{token}.{name}")


@pytest.mark.parametrize("token", [t for t in sg.GRIDDED_PRODUCTS if t != "l4_wind"])
def test_daily_writers_decode_to_analytic_values(tmp_path: Path, token: str) -> None:
    (path,) = sg.write_product_day(tmp_path, token, DAY, resolution=1.0)
    _check_file(path, token, DAY)


def test_wind_hourly_decodes_and_moves_with_the_hour(tmp_path: Path) -> None:
    a = sg.write_wind_hourly(tmp_path / "h03.nc", DAY, 3, resolution=1.0)
    b = sg.write_wind_hourly(tmp_path / "h15.nc", DAY, 15, resolution=1.0)
    _check_file(a, "l4_wind", DAY, hour=3)
    _check_file(b, "l4_wind", DAY, hour=15)
    with xr.open_dataset(a, engine="h5netcdf") as ha, xr.open_dataset(b, engine="h5netcdf") as hb:
        assert ha.time.values[0] == np.datetime64("2020-01-05T03:00")
        assert ha.eastward_wind.dims == ("time", "lat", "lon")
        for name in ("eastward_wind", "northward_wind"):
            diff = np.abs(ha[name].values - hb[name].values)
            sea = ~np.isnan(diff)
            assert np.median(diff[sea]) > 0.5, name  # daily std/min/max are non-trivial
    with pytest.raises(ValueError, match="hourly"):
        sg.analytic_field("l4_wind", "eastward_wind", 0.0, 0.0, DAY)


def test_wind_daily_original_is_the_mean_of_the_hourly_files(tmp_path: Path) -> None:
    path = sg.write_wind_daily_original(tmp_path / "l4_wind_daily_20200105.nc", DAY, resolution=2.0)
    with h5py.File(path, "r") as f:
        assert set(f) == {"eastward_wind", "northward_wind", "lat", "lon", "time"}
        assert f["eastward_wind"].dtype == np.float32 and f["eastward_wind"].compression is None
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.sizes["time"] == 1 and ds.time.values[0] == np.datetime64("2020-01-05")
        lat, lon = ds.lat.values[:, None], ds.lon.values[None, :]
        for name in ("eastward_wind", "northward_wind"):
            truth = np.mean(
                [sg.analytic_field("l4_wind", name, lat, lon, DAY, hour=h) for h in range(24)], axis=0
            )
            _assert_close(ds[name].values[0], truth, 0.005 + 1e-5, name)


def test_multiobs_sss_float_form(tmp_path: Path) -> None:
    path = sg.write_multiobs_sss(tmp_path / "s.nc", DAY, resolution=2.0, packed=False)
    with h5py.File(path, "r") as f:
        assert f["sos"].dtype == np.float32
        assert np.isfinite(f["sos"].attrs["_FillValue"]).all()
    _check_file(path, "l4_sss", DAY)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds.sos.dims == ("time", "depth", "lat", "lon") and ds.depth.values.tolist() == [0.0]
        assert ds.time.values[0] == np.datetime64("2020-01-05T12:00")


def test_smos_grid_is_irregular_and_passes_differ(tmp_path: Path) -> None:
    lat, lon = sg.ease2_grid()
    assert (lat.size, lon.size) == (584, 1388)
    steps = -np.diff(lat.astype(np.float64))
    assert (steps > 0).all()  # north first
    assert steps.max() / steps.min() > 3  # equal-area rows: much closer together near the poles
    assert 83.0 < lat[0] < 85.0 and lat[-1] == -lat[0]
    np.testing.assert_allclose(np.diff(lon), 360.0 / 1388, atol=3e-5)

    asc = sg.write_smos(tmp_path / "a.nc", DAY, direction="asc", n_lat=146, n_lon=347)
    desc = sg.write_smos(tmp_path / "d.nc", DAY, direction="desc", n_lat=146, n_lon=347)
    with xr.open_dataset(asc, engine="h5netcdf") as a, xr.open_dataset(desc, engine="h5netcdf") as d:
        sa, sd = np.isnan(a.Sea_Surface_Salinity.values), np.isnan(d.Sea_Surface_Salinity.values)
        ocean = ~np.isnan(
            sg.analytic_field("l4_sss", "sos", a.lat.values[:, None], a.lon.values[None, :], DAY)
        )
        assert 0.35 < (~sa[0] & ocean).sum() / ocean.sum() < 0.65  # half the swaths are missing
        assert (sa != sd).mean() > 0.2
        assert a.attrs["orbit_direction"] == "ascending" and d.attrs["orbit_direction"] == "descending"


def test_odyssea_gaps_move_and_quality_level_marks_them(tmp_path: Path) -> None:
    one = sg.write_odyssea(tmp_path / "1.nc", DAY, resolution=1.0)
    two = sg.write_odyssea(tmp_path / "2.nc", DAY + dt.timedelta(days=1), resolution=1.0)
    kw = {"engine": "h5netcdf", "decode_timedelta": False}
    with xr.open_dataset(one, **kw) as a, xr.open_dataset(two, **kw) as b:
        assert (a.lat.values[0], a.lat.values[-1]) == (-79.5, 79.5)
        assert a.time.values[0] == np.datetime64("2020-01-05T00:00")
        gap_a = np.isnan(a.adjusted_sea_surface_temperature.values)
        gap_b = np.isnan(b.adjusted_sea_surface_temperature.values)
        assert (gap_a != gap_b).mean() > 0.1
        ql = a.quality_level.values
        assert set(np.unique(ql[~np.isnan(ql)])) == {0.0, 2.0, 3.0, 4.0, 5.0}
        assert (ql[gap_a & ~np.isnan(ql)] == 0).all()
        assert a.adjusted_sea_surface_temperature.attrs["units"] == "kelvin"


# --- out-of-range injection, longitudes, argument checks ---------------------------------------------------


def test_out_of_range_values_only_inside_the_box(tmp_path: Path) -> None:
    path = sg.write_ostia(tmp_path / "o.nc", DAY, resolution=1.0, out_of_range=True)
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        lat, lon = ds.lat.values[:, None], ds.lon.values[None, :]
        box = np.broadcast_to(sg.out_of_range_mask(lat, lon), (lat.size, lon.size))
        sst = ds.analysed_sst.values[0]
        assert box.sum() == 25
        np.testing.assert_allclose(sst[box], 330.0, atol=0.005)
        truth = sg.analytic_field("l4_sst", "analysed_sst", lat, lon, DAY)
        _assert_close(np.where(box, truth, sst), truth, 0.005 + 1e-4, "outside the box")
    valid_max = load_catalog()["l4_sst"].variables["analysed_sst"].valid_max
    assert sg.OUT_OF_RANGE["l4_sst"][1] > valid_max


def test_values_ignore_the_longitude_convention_and_stay_valid() -> None:
    lat = np.linspace(-79.0, 79.0, 40)[:, None]
    lon = np.linspace(-179.5, 179.5, 90)[None, :]
    catalog = load_catalog()
    for token in sg.GRIDDED_PRODUCTS:
        for name, spec in catalog[token].variables.items():
            var = spec.source or name
            kw = {"hour": 7} if token == "l4_wind" else {}
            if spec.depth_m is not None:
                kw["depth"] = spec.depth_m
            west = sg.analytic_field(token, var, lat, lon, DAY, **kw)
            east = sg.analytic_field(token, var, lat, lon + 360.0, DAY, **kw)
            np.testing.assert_allclose(west, east, atol=1e-9, err_msg=f"{token}.{var}")
            ok = west[~np.isnan(west)]
            if spec.statistic == "std":
                continue  # the source variable itself is no standard deviation
            assert ok.size and spec.valid_min <= ok.min() and ok.max() <= spec.valid_max, (token, var)


def test_analytic_field_rejects_wrong_arguments() -> None:
    with pytest.raises(ValueError, match="depth"):
        sg.analytic_field("glorys", "thetao", 0.0, 0.0, DAY)
    with pytest.raises(ValueError, match="no depth"):
        sg.analytic_field("glorys", "zos", 0.0, 0.0, DAY, depth=1.0)
    with pytest.raises(ValueError, match="no variable"):
        sg.analytic_field("l4_sst", "sla", 0.0, 0.0, DAY)
    with pytest.raises(ValueError, match="unknown gridded"):
        sg.analytic_field("l4_ssh", "sla", 0.0, 0.0, DAY)


# --- native tree layout and catalog file names -------------------------------------------------------------

# Days across the MY/NRT (and GLORYS MY/MYINT, wind 0.25°/0.125°) switch-overs of the catalog.
_LAYOUT_DAYS = [dt.date(2005, 6, 1), DAY, dt.date(2021, 7, 1), dt.date(2024, 2, 1)]


@pytest.mark.parametrize("token", sg.GRIDDED_PRODUCTS)
def test_write_product_day_names_match_the_catalog_for_that_day_only(tmp_path: Path, token: str) -> None:
    product = load_catalog()[token]
    for day in _LAYOUT_DAYS:
        if not product.datasets_for(day):
            with pytest.raises(ValueError, match="no upstream dataset"):
                sg.write_product_day(tmp_path, token, day, resolution=4.0)
            continue
        dataset = product.dataset_for(day)
        paths = sg.write_product_day(tmp_path, token, day, resolution=4.0)
        assert len(paths) == (24 if token == "l4_wind" else 1)
        steps = []
        for path in paths:
            rel = path.relative_to(tmp_path)
            assert rel.parts[0] == dataset.product_id
            assert rel.parts[1].startswith(f"{dataset.dataset_id}_") and rel.parts[1][-6:].isdigit()
            folders = (f"{day:%Y}",) if token.startswith("l3_sss_smos") else (f"{day:%Y}", f"{day:%m}")
            assert rel.parts[2:-1] == folders
            match = dataset.file_regex(day).match(path.name)
            assert match, path.name
            if "step" in dataset.file_regex(day).groupindex:
                steps.append(match["step"])
            nxt = day + dt.timedelta(days=1)
            assert not any(d.file_regex(nxt).match(path.name) for d in product.datasets), path.name
            assert path.is_file()
        if token == "l4_wind":
            assert steps == [f"{h:02d}" for h in range(24)]


def test_native_sizes_of_every_product() -> None:
    want = {
        "glorys": (2041, 4320),
        "l4_sst": (3600, 7200),
        "l4_sss": (1440, 2880),
        "l4_wind": (1440, 2880),
        "l3_sst": (1600, 3600),
        "l3_sss_smos_asc": (584, 1388),
        "l3_sss_smos_desc": (584, 1388),
    }
    for token, shape in want.items():
        lat, lon = sg.product_grid(token)
        assert (lat.size, lon.size) == shape, token
        assert lat.dtype == lon.dtype == np.float32
    lat, lon = sg.product_grid("l4_wind")
    assert (lat[0], lat[-1], lon[0], lon[-1]) == (-89.9375, 89.9375, -179.9375, 179.9375)
    lat, _ = sg.product_grid("l3_sst")
    assert lat[0] == pytest.approx(-79.95) and lat[-1] == pytest.approx(79.95)


def test_build_mirror_lays_out_every_gridded_product(tmp_path: Path) -> None:
    days = [DAY, DAY + dt.timedelta(days=1)]
    manifest = syn.build_mirror(tmp_path / "mirror", days, l4_resolution=2.0, grid_resolution=2.0)
    assert set(manifest.gridded_files) == set(sg.GRIDDED_PRODUCTS)
    files = set(manifest.files)
    for token, per_day in manifest.gridded_files.items():
        assert sorted(per_day) == days, token
        for day, paths in per_day.items():
            assert len(paths) == (24 if token == "l4_wind" else 1)
            for path in paths:
                assert path.is_file() and path in files
                assert Path(manifest.cmems_mirror) in path.parents
                assert load_catalog()[token].dataset_for(day).file_regex(day).match(path.name)
    along_track = manifest.sparse_files["l3_ssh"]
    satellites = {day: len(load_catalog()["l3_ssh"].datasets_for(day)) for day in days}
    assert sorted(along_track) == days and all(len(along_track[d]) == satellites[d] for d in days)
    assert all(p in files and Path(manifest.cmems_mirror) in p.parents for p in along_track[DAY])
    empty = syn.build_mirror(
        tmp_path / "bare", [DAY], l4_resolution=2.0, grid_products=(), alongtrack_points=None
    )
    assert empty.gridded_files == {} and empty.sparse_files == {}
    assert len(empty.files) == 1 + 1 + len(empty.argo_files)  # DUACS L4, the Argo index, profile files


def test_build_mirror_skips_days_a_product_has_no_dataset_for(tmp_path: Path) -> None:
    day = dt.date(2026, 1, 2)  # after the wind dataset's window, inside every other one
    manifest = syn.build_mirror(tmp_path, [day], l4_resolution=4.0, grid_resolution=4.0)
    assert manifest.gridded_files["l4_wind"] == {}
    assert len(manifest.gridded_files["l4_sst"][day]) == 1
