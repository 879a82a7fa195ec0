"""Synthetic upstream files must look like the real ones on disk and decode to the analytic truth."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.io import netcdf_file

from oceantaco import synthetic as syn
from oceantaco.catalog import load_catalog
from oceantaco.regions import REGIONS, region_index

DAY = dt.date(2020, 1, 5)
FilePick = Callable[[list[syn.ArgoProfile]], bool]
HALF_STEP = syn.DUACS_SCALE_FACTOR / 2 + 1e-12
# netCDF-C / HDF5 bookkeeping attributes, not part of the product's metadata.
_HDF5_INTERNAL = {
    "DIMENSION_LIST",
    "REFERENCE_LIST",
    "CLASS",
    "NAME",
    "_Netcdf4Dimid",
    "_Netcdf4Coordinates",
    "_NCProperties",
}
# The real sample is a Black Sea subset: its coordinate ranges differ from a global grid.
_DOMAIN_DEPENDENT = {"valid_min", "valid_max"}


# --- DUACS L4 ----------------------------------------------------------------------------------------------


def _h5_layout(path: Path) -> tuple[dict[str, np.dtype], dict[str, dict]]:
    """Global attribute dtypes and, per variable, dtype, dims, storage and attribute (dtype, value)."""
    with h5py.File(path, "r") as f:
        globals_ = {k: np.asarray(v).dtype for k, v in f.attrs.items() if k not in _HDF5_INTERNAL}
        variables = {}
        for name, var in f.items():
            dims = tuple(f[refs[0]].name.lstrip("/") for refs in var.attrs.get("DIMENSION_LIST", []))
            variables[name] = {
                "dtype": var.dtype,
                "dims": dims or ((name,) if var.ndim == 1 else ()),
                "storage": (var.compression, var.compression_opts, var.shuffle, var.chunks),
                "attrs": {
                    k: (np.asarray(v).dtype, v) for k, v in var.attrs.items() if k not in _HDF5_INTERNAL
                },
            }
    return globals_, variables


@pytest.fixture(scope="module")
def duacs_quarter_degree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("duacs") / "dt_global_allsat_phy_l4_20200105_20241120.nc"
    return syn.write_duacs_l4(path, DAY, dt.date(2024, 11, 20), resolution=0.25)


@pytest.mark.real_fixtures
def test_duacs_layout_matches_real_black_sea_file(
    real_fixtures: Path,
    duacs_quarter_degree: Path,
) -> None:
    real_file = real_fixtures / "l4_ssh_duacs/dt_blacksea_allsat_phy_l4_20160707_20200801.nc"
    real_globals, real = _h5_layout(real_file)
    ours_globals, ours = _h5_layout(duacs_quarter_degree)

    assert set(real_globals) == set(ours_globals)
    for key, dtype in real_globals.items():
        assert ours_globals[key].kind == dtype.kind, key  # fixed-length text stays NC_CHAR, numbers float64
        if dtype.kind != "S":
            assert ours_globals[key] == dtype, key

    assert set(real) <= set(ours)
    assert set(ours) - set(real) == {"err_sla"}
    for name, want in real.items():
        got = ours[name]
        assert got["dtype"] == want["dtype"], name
        assert got["dims"] == want["dims"], name
        # zlib level 1 + shuffle, 50-wide chunks (a 1-element time and 2-element nv stay whole)
        assert got["storage"] == want["storage"], name
        assert set(got["attrs"]) == set(want["attrs"]), name
        for key, (dtype, value) in want["attrs"].items():
            got_dtype, got_value = got["attrs"][key]
            # text attributes are fixed-length NC_CHAR (kind "S", length follows the value)
            assert (got_dtype == dtype) if dtype.kind != "S" else (got_dtype.kind == "S"), (name, key)
            if key not in _DOMAIN_DEPENDENT and (name, key) != ("sla", "ancillary_variables"):
                np.testing.assert_array_equal(got_value, value, err_msg=f"{name}.{key}")
    # the newer products carry err_sla, which the old Black Sea file calls "err" without containing it
    assert ours["sla"]["attrs"]["ancillary_variables"][1] == b"err_sla"
    assert ours["sla"]["attrs"]["_FillValue"][1] == np.int32(-2147483647)
    assert ours["sla"]["attrs"]["scale_factor"][0] == np.float64
    assert ours["time"]["attrs"]["units"][1] == b"days since 1950-01-01 00:00:00"


def test_duacs_decodes_to_analytic_values(duacs_quarter_degree: Path) -> None:
    with xr.open_dataset(duacs_quarter_degree, engine="h5netcdf") as ds:
        assert ds.time.values[0] == np.datetime64("2020-01-05T00:00:00")
        assert ds.sizes == {"time": 1, "latitude": 720, "longitude": 1440, "nv": 2}
        lat, lon = ds.latitude.values, ds.longitude.values
        assert (lat[0], lat[-1], lon[0], lon[-1]) == (-89.875, 89.875, -179.875, 179.875)
        np.testing.assert_array_equal(ds.lat_bnds.values[:, 1] - ds.lat_bnds.values[:, 0], 0.25)
        for name in syn.DUACS_VARIABLES:
            decoded = ds[name].values[0]
            assert decoded.dtype == np.float64
            truth = syn.analytic_ssh(name, lat[:, None], lon[None, :], DAY)
            np.testing.assert_array_equal(np.isnan(decoded), np.isnan(truth), err_msg=name)
            sea = ~np.isnan(truth)
            assert np.abs(decoded[sea] - truth[sea]).max() <= HALF_STEP, name


def test_duacs_in_memory_dataset_is_the_on_disk_form() -> None:
    ds = syn.duacs_l4_dataset(DAY, resolution=1.0, variables=("sla",))
    assert ds.sla.dtype == np.int32 and ds.time.dtype == np.float32
    assert ds.sla.attrs["_FillValue"] == -2147483647 and ds.sla.attrs["scale_factor"] == 0.0001
    assert ds.time.values[0] == (DAY - dt.date(1950, 1, 1)).days
    decoded = xr.decode_cf(ds)
    truth = syn.analytic_ssh("sla", ds.latitude.values[:, None], ds.longitude.values[None, :], DAY)
    np.testing.assert_allclose(decoded.sla.values[0], truth, atol=HALF_STEP, rtol=0)
    assert decoded.time.values[0] == np.datetime64("2020-01-05")
    with pytest.raises(ValueError, match="unknown DUACS"):
        syn.duacs_l4_dataset(DAY, resolution=1.0, variables=("flag_ice",))


def test_duacs_grids_and_longitude_conventions_agree() -> None:
    lat, lon = syn.duacs_grid(0.125, "-180..180")
    assert (lat.size, lon.size) == (1440, 2880) and lat.dtype == lon.dtype == np.float32
    assert (lon[0], lon[-1], lat[0], lat[-1]) == (-179.9375, 179.9375, -89.9375, 89.9375)
    _, lon360 = syn.duacs_grid(0.25, "0..360")
    assert (lon360[0], lon360[-1]) == (0.125, 359.875)
    with pytest.raises(ValueError, match="does not divide"):
        syn.duacs_grid(0.7, "-180..180")

    east = xr.decode_cf(syn.duacs_l4_dataset(DAY, resolution=0.5, lon_convention="0..360"))
    west = xr.decode_cf(syn.duacs_l4_dataset(DAY, resolution=0.5))
    assert (east.attrs["geospatial_lon_min"], west.attrs["geospatial_lon_min"]) == (0.25, -179.75)
    wrapped = east.assign_coords(longitude=((east.longitude + 180) % 360) - 180).sortby("longitude")
    for name in syn.DUACS_VARIABLES:
        np.testing.assert_array_equal(wrapped[name].values, west[name].values, err_msg=name)


def test_analytic_ssh_ranges_land_and_day_shift() -> None:
    lat, lon = syn.duacs_grid(0.25, "-180..180")
    grid = (lat[:, None], lon[None, :])
    ranges = {
        "sla": (-1.5, 1.5),
        "adt": (-1.5, 2.0),
        "ugos": (-2, 2),
        "vgos": (-2, 2),
        "ugosa": (-2, 2),
        "vgosa": (-2, 2),
        "err_sla": (0.0, 0.1),
    }
    for name, (lo, hi) in ranges.items():
        values = syn.analytic_ssh(name, *grid, DAY)
        assert lo <= np.nanmin(values) and np.nanmax(values) <= hi, name
        assert np.nanstd(values) > 0.01, name
    sla = syn.analytic_ssh("sla", *grid, DAY)
    assert np.isnan(sla[np.abs(lat) > 80]).all()
    # the continent across the antimeridian is land on both sides of ±180
    points = syn.analytic_ssh("sla", np.array([60.0, 60.0, 0.0]), np.array([175.0, -175.0, -150.0]), DAY)
    assert np.isnan(points[:2]).all() and np.isfinite(points[2])
    assert 0.05 < np.isnan(sla).mean() < 0.3
    next_day = syn.analytic_ssh("sla", *grid, DAY + dt.timedelta(days=1))
    assert np.nanmax(np.abs(next_day - sla)) > 0.05
    with pytest.raises(ValueError, match="unknown DUACS"):
        syn.analytic_ssh("mdt", *grid, DAY)


def test_duacs_nrt_time_coverage() -> None:
    ds = syn.duacs_l4_dataset(DAY, resolution=2.0, variables=(), timeliness="nrt")
    assert ds.attrs["title"].startswith("NRT merged all satellites Global Ocean")
    assert ds.attrs["time_coverage_start"] == ds.attrs["time_coverage_end"] == "2020-01-05T00:00:00Z"
    dt_ds = syn.duacs_l4_dataset(DAY, resolution=2.0, variables=())
    assert (dt_ds.attrs["time_coverage_start"], dt_ds.attrs["time_coverage_end"]) == (
        "2020-01-04T12:00:00Z",
        "2020-01-05T12:00:00Z",
    )


def test_a_global_eighth_degree_day_has_the_native_shape_and_chunks(tmp_path: Path) -> None:
    path = syn.write_duacs_l4(
        tmp_path / "dt_global_allsat_phy_l4_20200105_20241120.nc", DAY, dt.date(2024, 11, 20)
    )
    with h5py.File(path, "r") as f:
        assert f["adt"].shape == (1, 1440, 2880) and f["adt"].chunks == (1, 50, 50)


# --- Argo --------------------------------------------------------------------------------------------------


def _nc3_layout(path: Path) -> tuple[list[tuple[str, int | None]], dict[str, dict], dict[str, object]]:
    f = netcdf_file(path, "r", mmap=False, maskandscale=False)
    try:
        dims = list(f.dimensions.items())
        variables = {
            name: {
                "dims": var.dimensions,
                "dtype": var.data.dtype.str,
                "attrs": {
                    k: (np.asarray(v).dtype.str if not isinstance(v, bytes) else "char", v)
                    for k, v in var._attributes.items()
                },
            }
            for name, var in f.variables.items()
        }
        return dims, variables, dict(f._attributes)
    finally:
        f.close()


@pytest.fixture(scope="module")
def argo_day() -> dict[str, list[syn.ArgoProfile]]:
    return syn.group_argo_files(syn.argo_profiles_for_days([DAY]))


def _write_first(files: dict[str, list[syn.ArgoProfile]], tmp_path: Path, pick: FilePick) -> Path:
    rel = next(rel for rel, profiles in files.items() if pick(profiles))
    return syn.write_argo_profile(tmp_path / rel, files[rel])


_VALUE_ATTRS = {
    "long_name",
    "standard_name",
    "units",
    "conventions",
    "_FillValue",
    "valid_min",
    "valid_max",
    "C_format",
    "FORTRAN_format",
    "resolution",
    "axis",
}


@pytest.mark.real_fixtures
@pytest.mark.parametrize(
    ("real_file", "pick"),
    [
        ("aoml/5906072/profiles/D5906072_022.nc", lambda ps: ps[0].data_mode == "D"),
        ("aoml/13857/profiles/R13857_137.nc", lambda ps: ps[0].psal is None),
    ],
    ids=["delayed-mode", "without-psal"],
)
def test_argo_profile_file_matches_real(
    real_fixtures: Path,
    tmp_path: Path,
    argo_day: dict[str, list[syn.ArgoProfile]],
    real_file: str,
    pick: FilePick,
) -> None:
    path = _write_first(argo_day, tmp_path, pick)
    with path.open("rb") as fh:
        assert fh.read(4) == b"CDF\x01"  # NETCDF3_CLASSIC
    real_dims, real_vars, real_globals = _nc3_layout(real_fixtures / "argo_gdac/dac" / real_file)
    dims, variables, globals_ = _nc3_layout(path)

    assert [name for name, _ in dims] == [name for name, _ in real_dims]
    fixed = {
        "DATE_TIME",
        "STRING256",
        "STRING64",
        "STRING32",
        "STRING16",
        "STRING8",
        "STRING4",
        "STRING2",
        "N_CALIB",
    }
    assert {k: v for k, v in dims if k in fixed} == {k: v for k, v in real_dims if k in fixed}
    assert dict(dims)["N_HISTORY"] is None  # unlimited, as on the GDAC
    assert dict(dims)["N_PARAM"] == dict(real_dims)["N_PARAM"]

    assert set(variables) == set(real_vars)
    for name, want in real_vars.items():
        got = variables[name]
        assert (got["dims"], got["dtype"]) == (want["dims"], want["dtype"]), name
        assert list(got["attrs"]) == list(want["attrs"]), name
        for key, (kind, value) in want["attrs"].items():
            assert got["attrs"][key][0] == kind, (name, key)
            if key in _VALUE_ATTRS:
                assert got["attrs"][key][1] == value, (name, key)

    assert set(globals_) <= set(real_globals)
    for key in ("title", "source", "references", "featureType"):
        assert globals_[key] == real_globals[key]


def test_argo_values_round_trip_and_match_analytic(
    tmp_path: Path, argo_day: dict[str, list[syn.ArgoProfile]]
) -> None:
    for rel, profiles in argo_day.items():
        path = syn.write_argo_profile(tmp_path / rel, profiles)
        # xarray masks blank chars through _FillValue ' ', so text is checked undecoded
        with (
            xr.open_dataset(path, engine="scipy") as ds,
            xr.open_dataset(path, engine="scipy", mask_and_scale=False) as chars,
        ):
            assert ds.sizes["N_PROF"] == len(profiles)
            for i, prof in enumerate(profiles):
                assert chars.PLATFORM_NUMBER.values[i].decode().strip() == prof.platform_number
                assert chars.DATA_MODE.values[i].decode() == prof.data_mode
                assert abs(pd.Timestamp(ds.JULD.values[i]) - pd.Timestamp(prof.juld)) < pd.Timedelta("1ms")
                assert (float(ds.LATITUDE[i]), float(ds.LONGITUDE[i])) == (prof.latitude, prof.longitude)
                n = prof.n_levels
                for param in prof.parameters:
                    np.testing.assert_array_equal(ds[param].values[i, :n], prof.values(param), err_msg=param)
                    assert np.isnan(ds[param].values[i, n:]).all()  # padding of shorter profiles is fill
                    qc = b"".join(chars[f"{param}_QC"].values[i]).decode()
                    assert qc == prof.qc(param).ljust(ds.sizes["N_LEVELS"])
                    adjusted = ds[f"{param}_ADJUSTED"].values[i, :n]
                    if prof.data_mode == "R":
                        assert np.isnan(adjusted).all()
                        assert set(b"".join(chars[f"{param}_ADJUSTED_QC"].values[i]).decode()) == {" "}
                    else:
                        np.testing.assert_array_equal(adjusted, prof.values(param, adjusted=True))
                assert "PSAL" not in prof.parameters or "PSAL" in ds
        _assert_truth(profiles)


def _assert_truth(profiles: list[syn.ArgoProfile]) -> None:
    """Good levels of the columns a user should read equal the analytic functions (float32)."""
    for prof in profiles:
        adjusted = prof.data_mode != "R"
        pres = prof.values("PRES", adjusted)
        for param, func in (("TEMP", syn.analytic_argo_temp), ("PSAL", syn.analytic_argo_psal)):
            values, qc = prof.values(param, adjusted), prof.qc(param, adjusted)
            if values is None:
                continue
            good = np.array([c in "12" for c in qc])
            truth = func(pres, prof.latitude, prof.longitude).astype(np.float32)
            np.testing.assert_array_equal(values[good], truth[good])
            flagged = ~good & ~np.isnan(values)
            assert not np.isclose(values[flagged], truth[flagged]).any()
        if adjusted:  # raw columns of delayed-mode files are biased, so reading them is detectable
            assert np.all(prof.pres - prof.pres_adjusted > 0.1)


def test_argo_multi_profile_file_and_defects(argo_day: dict[str, list[syn.ArgoProfile]]) -> None:
    multi = [ps for ps in argo_day.values() if len(ps) > 1]
    assert len(multi) == 1 and multi[0][1].vertical_sampling_scheme.startswith("Near-surface sampling")
    assert multi[0][0].n_levels > multi[0][1].n_levels
    profiles = [p for ps in argo_day.values() for p in ps]
    flags = "".join(p.temp_qc + (p.psal_qc or "") for p in profiles)
    assert {"3", "4", "9"} <= set(flags)
    assert any(p.psal is not None and np.isnan(p.psal).any() for p in profiles)
    assert {p.profile_qc("TEMP") for p in profiles} <= set("ABCDEF")
    assert profiles[0].profile_qc("PSAL") in "AB"
    assert next(p for p in profiles if p.psal is None).profile_qc("PSAL") == " "


def test_argo_file_mixing_parameter_sets(tmp_path: Path, argo_day: dict[str, list[syn.ArgoProfile]]) -> None:
    delayed = next(ps[0] for ps in argo_day.values() if ps[0].data_mode == "D")
    no_psal = dataclasses.replace(
        delayed, psal=None, psal_qc=None, psal_adjusted=None, psal_adjusted_qc=None, psal_adjusted_error=None
    )
    path = syn.write_argo_profile(tmp_path / "mixed.nc", [delayed, no_psal])
    with xr.open_dataset(path, engine="scipy", mask_and_scale=False) as ds:
        assert ds.STATION_PARAMETERS.values[1].tolist() == [b"PRES".ljust(16), b"TEMP".ljust(16), b" " * 16]
        assert ds.PROFILE_PSAL_QC.values.tolist() == [delayed.profile_qc("PSAL").encode(), b" "]
        assert ds.SCIENTIFIC_CALIB_EQUATION.values[1, 0, 2] == b" " * 256
        assert (ds.PSAL.values[1] == syn.ARGO_FILL).all()
    assert dataclasses.replace(delayed, direction="D").file_name == f"D{delayed.platform_number}_7309D.nc"
    with pytest.raises(ValueError, match="must share"):
        syn.write_argo_profile(tmp_path / "bad.nc", [delayed, dataclasses.replace(delayed, cycle_number=1)])


def test_argo_profiles_for_days_cover_globe_modes_and_midnight() -> None:
    days = [DAY, DAY + dt.timedelta(days=1)]
    profiles = syn.argo_profiles_for_days(days)
    lat = np.array([p.latitude for p in profiles])
    lon = np.array([p.longitude for p in profiles])
    assert set(region_index(lon, lat)) == set(range(len(REGIONS)))
    assert np.abs(lat).max() <= 70 and lon.min() >= -180 and lon.max() < 180
    assert {p.data_mode for p in profiles} == {"R", "D"}
    assert sum(p.psal is None for p in profiles) == len(days)
    for day in days:
        times = sorted(p.juld for p in profiles if p.juld.date() == day)
        midnight = dt.datetime.combine(day, dt.time())
        assert times[0] - midnight < dt.timedelta(minutes=1)
        assert midnight + dt.timedelta(days=1) - times[-1] < dt.timedelta(minutes=1)
    # deterministic, and a day does not depend on which other days are requested
    again = syn.argo_profiles_for_days(days[1:])
    later = [p for p in profiles if p.juld.date() == days[1]]
    assert [(p.relative_path, p.latitude, p.juld) for p in again] == [
        (p.relative_path, p.latitude, p.juld) for p in later
    ]
    np.testing.assert_array_equal(again[3].temp, later[3].temp)
    with pytest.raises(ValueError, match="at least 2"):
        syn.argo_profiles_for_days(days, n_per_day=1)


@pytest.mark.real_fixtures
def test_argo_index_parses_like_real(
    real_fixtures: Path,
    tmp_path: Path,
    argo_day: dict[str, list[syn.ArgoProfile]],
) -> None:
    rows = [syn.ArgoIndexRow.for_file(ps) for ps in argo_day.values()]
    nan_row = syn.ArgoIndexRow(
        "aoml/29001/profiles/R29001_001.nc",
        dt.datetime(2020, 1, 5),
        np.nan,
        np.nan,
        "",
        "846",
        "AO",
        dt.datetime(2020, 1, 6),
    )
    path = syn.write_argo_index(tmp_path / "ar_index_global_prof.txt", [*rows, nan_row])
    real_path = real_fixtures / "argo_gdac/ar_index_global_prof.txt"

    ours_head = path.read_text().splitlines()[:9]
    real_head = real_path.read_text().splitlines()[:9]
    assert [line.split(":")[0] for line in ours_head[:8]] == [line.split(":")[0] for line in real_head[:8]]
    assert ours_head[3] == "# Format version : 2.0" and ours_head[8] == real_head[8]
    assert re.fullmatch(r"# Date of update : \d{14}", ours_head[4])

    ours, real = pd.read_csv(path, skiprows=8), pd.read_csv(real_path, skiprows=8)
    assert list(ours.columns) == list(real.columns)
    for column in ("file", "latitude", "longitude", "ocean", "profiler_type", "institution", "date_update"):
        assert ours[column].dtype == real[column].dtype, column
    assert len(ours) == len(argo_day) + 1
    for frame in (ours, real):
        parsed = pd.to_datetime(frame["date"].dropna().astype("int64").astype(str), format="%Y%m%d%H%M%S")
        assert parsed.notna().all()
    missing = ours[ours.file == nan_row.file].iloc[0]
    assert np.isnan(missing.latitude) and np.isnan(missing.longitude) and pd.isna(missing.ocean)
    first = rows[0]
    row = ours[ours.file == first.file].iloc[0]
    assert (row.latitude, row.longitude) == (round(first.latitude, 3), round(first.longitude, 3))


# --- mirror ------------------------------------------------------------------------------------------------


def test_build_mirror_lays_out_native_trees(tmp_path: Path) -> None:
    days = [DAY, DAY + dt.timedelta(days=1)]
    manifest = syn.build_mirror(tmp_path / "mirror", days, l4_resolution=1.0)
    assert all(f.is_file() for f in manifest.files)
    assert Path(manifest.cmems_mirror) == (tmp_path / "mirror" / "cmems").resolve()
    assert Path(manifest.argo_gdac) == (tmp_path / "mirror" / "gdac").resolve()

    product = load_catalog()["l4_ssh"]
    for day, path in manifest.l4_ssh_files.items():
        dataset = product.dataset_for(day)
        rel = path.relative_to(manifest.cmems_mirror)
        assert rel.parts[:4] == (dataset.product_id, f"{dataset.dataset_id}_202411", f"{day:%Y}", f"{day:%m}")
        assert dataset.file_regex(day).match(path.name)
        assert rel.parts[1] == "cmems_obs-sl_glo_phy-ssh_my_allsat-l4-duacs-0.125deg_P1D_202411"

    argo_pattern = re.compile(load_catalog()["argo"].datasets[0].pattern)
    index = pd.read_csv(manifest.argo_index, skiprows=8)
    assert sorted(index.file) == sorted(manifest.argo_files)
    for rel in manifest.argo_files:
        assert (Path(manifest.argo_gdac) / "dac" / rel).is_file()
        assert argo_pattern.fullmatch(Path(rel).name)
    assert len(manifest.argo_profiles) == sum(len(ps) for ps in manifest.argo_files.values())


def test_build_mirror_uses_nrt_after_the_my_window(tmp_path: Path) -> None:
    day = dt.date(2025, 9, 1)
    manifest = syn.build_mirror(tmp_path, [day], l4_resolution=2.0)
    path = manifest.l4_ssh_files[day]
    assert path.name == "nrt_global_allsat_phy_l4_20250901_20250907.nc"
    assert "SEALEVEL_GLO_PHY_L4_NRT_008_046" in path.parts
    with h5py.File(path, "r") as f:
        assert f.attrs["title"].startswith(b"NRT merged")
