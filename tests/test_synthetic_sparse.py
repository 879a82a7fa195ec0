"""Synthetic sparse upstream files (DUACS L3 along-track, SWOT L3/L2): real structure, analytic values."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from oceantaco import synthetic_sparse as sp
from oceantaco.catalog import load_catalog
from oceantaco.synthetic import _land_mask

DAY = dt.date(2024, 12, 29)  # every MY along-track dataset covers it; the real SWOT sample is from this day
NRT_DAY = dt.date(2025, 8, 10)
MIDNIGHT = np.datetime64(DAY, "us")
NEXT_MIDNIGHT = MIDNIGHT + np.timedelta64(1, "D")
ALONGTRACK_REAL = "l3_ssh_alongtrack/COAsT_example_altimetry_data.nc"
SWOT_REAL = "swot_l3_lr_ssh/SWOT_L3_LR_SSH_Expert_026_165_20241229T165806_20241229T174933_v2.0.1.nc"
BASIC_VARIABLES = {"time", "latitude", "longitude", "mdt", "ssha_filtered", "ssha_unfiltered"}
BASIC_VARIABLES |= {"i_num_line", "i_num_pixel"}
_INTERNAL = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid", "_Netcdf4Coordinates"}
_INTERNAL |= {"_NCProperties"}


def _half_step(scale: float) -> float:
    return scale / 2 + 1e-9


def _layout(path: Path) -> dict[str, dict]:
    """Per variable: dtype, dims, maxshape, filters and attributes as (kind, dtype, value); text attributes
    are told apart as fixed-length NC_CHAR ("char") or variable-length NC_STRING ("vlen")."""

    def attrs(obj: h5py.HLObject) -> dict[str, tuple[str, np.dtype | None, object]]:
        out = {}
        for key in obj.attrs:
            if key in _INTERNAL:
                continue
            kind = obj.attrs.get_id(key).get_type()
            if isinstance(kind, h5py.h5t.TypeStringID):
                out[key] = ("vlen" if kind.is_variable_str() else "char", None, None)
            else:
                value = np.asarray(obj.attrs[key])
                out[key] = ("number", value.dtype, value.ravel()[0] if value.size == 1 else value)
        return out

    with h5py.File(path, "r") as f:
        layout = {"/": {"attrs": attrs(f)}}
        for name, var in f.items():
            if "DIMENSION_LIST" not in var.attrs and b"not a netCDF variable" in var.attrs.get("NAME", b""):
                continue  # a bare dimension
            dims = tuple(f[refs[0]].name.lstrip("/") for refs in var.attrs.get("DIMENSION_LIST", []))
            layout[name] = {
                "dtype": var.dtype,
                "dims": dims or (name,),
                "fixed": var.maxshape == var.shape,
                "filters": (var.compression, var.compression_opts, var.shuffle, var.chunks == var.shape),
                "attrs": attrs(var),
            }
    return layout


def _assert_attrs_like(ours: dict, real: dict, where: str, *, same_names: bool) -> None:
    if same_names:
        assert set(ours) == set(real), where
    else:
        assert set(real) <= set(ours), (where, set(real) - set(ours))
    for key, (kind, dtype, value) in real.items():
        got_kind, got_dtype, got_value = ours[key]
        assert got_kind == kind, (where, key)
        if kind == "number" and key in ("_FillValue", "scale_factor", "add_offset"):
            assert got_dtype == dtype and got_value == value, (where, key, got_value, value)


# ---------------------------------------------------------------------------------------------------------
# Analytic fields
# ---------------------------------------------------------------------------------------------------------


def test_analytic_fields_are_bounded_convention_free_and_time_varying():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-90, 90, 20_000), rng.uniform(0, 360, 20_000)
    when = MIDNIGHT + (rng.uniform(0, 86400, 20_000) * 1e6).astype("timedelta64[us]")
    sla = sp.analytic_sla(lat, lon, when)
    assert np.abs(sla).max() < 1.5
    np.testing.assert_allclose(sp.analytic_sla(lat, lon - 360.0, when), sla, atol=1e-12)
    assert np.abs(sp.analytic_sla(lat, lon, when + np.timedelta64(3, "h")) - sla).max() > 0.05
    np.testing.assert_array_equal(sp.analytic_swot("ssha_filtered", lat, lon, when), sla)
    ripple = sp.analytic_swot("ssha_unfiltered", lat, lon, when) - sla
    assert 0.005 < np.abs(ripple).max() <= 0.02
    mdt = sp.analytic_swot("mdt", lat, lon, when)
    assert np.abs(mdt).max() < 1.5
    np.testing.assert_array_equal(sp.analytic_swot("mdt", lat, lon, when + np.timedelta64(9, "D")), mdt)
    noon = dt.datetime(2024, 12, 29, 12)
    assert sp.analytic_sla(10.0, 20.0, noon) == sp.analytic_sla(10.0, 20.0, np.datetime64(noon, "us"))
    with pytest.raises(ValueError, match="unknown SWOT variable"):
        sp.analytic_swot("sla", lat, lon, when)


# ---------------------------------------------------------------------------------------------------------
# DUACS L3 along-track
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def j3n(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[sp.AlongTrackPass]]:
    path = tmp_path_factory.mktemp("l3") / sp.alongtrack_file_name("j3n", DAY, dt.date(2025, 4, 28))
    sp.write_alongtrack(path, "j3n", DAY, production_date=dt.date(2025, 4, 28), n_points=4000, seed=3)
    return path, sp.alongtrack_day("j3n", DAY, n_points=4000, seed=3)


def test_alongtrack_day_is_a_plausible_day_of_ground_track():
    passes = sp.alongtrack_day("s3a", DAY, n_points=3000)
    times = np.concatenate([p.times for p in passes])
    lat = np.concatenate([p.lat for p in passes])
    lon = np.concatenate([p.lon for p in passes])
    assert times.size == 3000 and times.dtype == np.dtype("datetime64[us]")
    assert (np.diff(times) > np.timedelta64(0)).all()
    assert times[0] >= MIDNIGHT and times[-1] < NEXT_MIDNIGHT
    # the day's first and last passes were cut at the midnights
    assert passes[0].start < MIDNIGHT and passes[-1].end > NEXT_MIDNIGHT
    assert 26 <= len(passes) <= 31  # ~28.5 half orbits of a 27-day, 385-revolution orbit
    assert [p.track for p in passes] == list(range(passes[0].track, passes[0].track + len(passes)))
    assert ((lon >= 0) & (lon < 360)).all() and not _land_mask(lat, lon).any()
    assert 75 < np.abs(lat).max() <= 80.0  # 98.65° inclination reaches 81.35°, beyond the 80° polar cap
    step = np.median(np.diff(times) / np.timedelta64(1, "s"))
    assert (np.diff(times) / np.timedelta64(1, "s") > 10 * step).sum() > 10  # data gaps and land
    assert sum(p.sla_fill.sum() for p in passes) >= 1 and sum(p.mdt_fill.sum() for p in passes) >= 1
    # Jason-class orbit: 66° inclination; the default size keeps the native 1-Hz spacing
    jason = sp.alongtrack_day("j3n", DAY)
    jason_times = np.concatenate([p.times for p in jason])
    assert jason_times.size == 50_000
    assert np.median(np.diff(jason_times) / np.timedelta64(1, "s")) == pytest.approx(1.0786, abs=1e-5)
    assert 65.5 < max(np.abs(p.lat).max() for p in jason) < 66.1


def test_alongtrack_file_has_the_real_structure(real_fixtures, j3n):
    path, _ = j3n
    real, ours = _layout(real_fixtures / ALONGTRACK_REAL), _layout(path)
    assert set(real) <= set(ours) and set(ours) - set(real) == {"internal_tide"}  # newer product versions
    _assert_attrs_like(ours["/"]["attrs"], real["/"]["attrs"], "globals", same_names=False)
    for name, spec in real.items():
        if name == "/":
            continue
        got = ours[name]
        assert got["dtype"] == spec["dtype"] and got["dims"] == spec["dims"] == ("time",), name
        assert got["fixed"], f"{name}: the time dimension is not unlimited"
        assert got["filters"] == spec["filters"] == ("gzip", 1, True, True), name
        _assert_attrs_like(got["attrs"], spec["attrs"], name, same_names=True)
    assert all(kind == "char" for kind, _, _ in ours["/"]["attrs"].values() if kind != "number")
    with h5py.File(path) as f:
        assert f["time"].attrs["units"] == b"days since 1950-01-01 00:00:00"
        assert "_FillValue" not in f["longitude"].attrs and "_FillValue" not in f["time"].attrs
        assert f["internal_tide"].dtype == np.int16 and f["internal_tide"].attrs["scale_factor"] == 0.001
        lon = f["longitude"][:] * 1e-6
        assert lon.min() >= 0 and lon.max() < 360 and lon.max() > 300
        assert f.attrs["platform"] == b"Jason-3 Interleaved"
        start = np.datetime64(f.attrs["time_coverage_start"].decode().rstrip("Z"))
        end = np.datetime64(f.attrs["time_coverage_end"].decode().rstrip("Z"))
        assert start >= MIDNIGHT and end < NEXT_MIDNIGHT  # one UTC day per file


def test_alongtrack_decodes_to_the_analytic_values_at_exact_positions(j3n):
    path, passes = j3n
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds.load()
    lat = np.concatenate([p.lat for p in passes])
    lon = np.concatenate([p.lon for p in passes])
    times = np.concatenate([p.times for p in passes])
    np.testing.assert_array_equal(ds["latitude"].values, lat)  # positions are exactly what was stored
    np.testing.assert_array_equal(ds["longitude"].values, lon)
    assert np.abs(ds["time"].values - times).max() <= np.timedelta64(1, "us")
    sla_fill = np.concatenate([p.sla_fill for p in passes])
    mdt_fill = np.concatenate([p.mdt_fill for p in passes])
    for name, scale, fill in (
        ("sla_filtered", 1e-4, sla_fill),
        ("sla_unfiltered", 1e-3, sla_fill),
        ("lwe", 1e-3, sla_fill),
        ("mdt", 1e-3, mdt_fill),
        ("dac", 1e-4, None),
        ("ocean_tide", 1e-4, None),
        ("internal_tide", 1e-3, None),
    ):
        decoded = ds[name].values
        assert decoded.dtype == np.float64, name
        if fill is not None:
            np.testing.assert_array_equal(np.isnan(decoded), fill, err_msg=name)
        physical = np.concatenate([p.physical(name) for p in passes])
        ok = ~np.isnan(decoded)
        assert np.abs(decoded[ok] - physical[ok]).max() <= _half_step(scale), name
    truth = sp.read_truth(path)
    np.testing.assert_array_equal(truth["valid"], ~sla_fill)
    np.testing.assert_array_equal(truth["time"], ds["time"].values)
    np.testing.assert_array_equal(truth["values"], ds["sla_filtered"].values)
    assert (truth["cycle"] == np.repeat([p.cycle for p in passes], [p.size for p in passes])).all()
    ok = truth["valid"]
    exact = sp.analytic_sla(truth["lat"][ok], truth["lon"][ok], truth["time"][ok])
    assert np.abs(truth["values"][ok] - exact).max() <= _half_step(1e-4)


def test_write_sparse_day_lays_out_catalog_named_along_track_files(tmp_path):
    catalog = load_catalog()["l3_ssh"]
    for day, prefix in ((DAY, "dt_global_"), (NRT_DAY, "nrt_global_")):
        written = sp.write_sparse_day(tmp_path, day, products=("l3_ssh",), alongtrack_points=300)
        datasets = catalog.datasets_for(day)
        assert list(written) == ["l3_ssh"] and len(written["l3_ssh"]) == len(datasets) == 7
        for path, dataset in zip(written["l3_ssh"], datasets, strict=True):
            rel = path.relative_to(tmp_path / "l3_ssh")
            version_dir = f"{dataset.dataset_id}_{sp.L3_SSH_DATASET_VERSION}"
            assert rel.parts[:-1] == (dataset.product_id, version_dir, f"{day:%Y}", f"{day:%m}")
            assert path.name.startswith(prefix) and dataset.file_regex(day).match(path.name)
            for other in (day - dt.timedelta(days=1), day + dt.timedelta(days=1)):
                assert not dataset.file_regex(other).match(path.name)
    nrt = {p.name.split("_")[2] for p in tmp_path.rglob("nrt_global_*.nc")}
    assert nrt == {"s3a", "s3b", "c2n", "al", "j3n", "s6a", "h2b"}


# ---------------------------------------------------------------------------------------------------------
# SWOT L3 (Basic / Expert) and L2 (Basic)
# ---------------------------------------------------------------------------------------------------------

CYCLE, PASS = 26, 165
START = sp.swot_pass_start(CYCLE, PASS)
LINES = 240


@pytest.fixture(scope="module")
def swot(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("swot")
    return {
        kind: sp.write_swot_pass(folder, CYCLE, PASS, START, kind=kind, n_lines=LINES, seed=5)
        for kind in ("Basic", "Expert", "L2Basic")
    }


def test_swot_pass_reproduces_the_real_sample_time_and_ground_track(real_fixtures, tmp_path):
    assert dt.datetime(2024, 12, 29, 16, 58, 6, 880000) == START
    path = sp.write_swot_pass(tmp_path, CYCLE, PASS, START, kind="Basic")  # full 9860 × 69
    assert path.name == Path(SWOT_REAL).name.replace("Expert", "Basic")
    with h5py.File(real_fixtures / SWOT_REAL) as real, h5py.File(path) as ours:
        for name in ("latitude", "longitude"):
            diff = (ours[name][:] - real[name][:]) * 1e-6
            diff = (diff + 180.0) % 360.0 - 180.0
            assert np.abs(diff).max() < 0.25, name  # circular orbit vs the real geodetic ground track
        assert np.abs(ours["time"][:] - real["time"][:]).max() < 1.0


def test_swot_l3_expert_and_basic_have_the_real_structure(real_fixtures, swot):
    real, ours = _layout(real_fixtures / SWOT_REAL), _layout(swot["Expert"])
    assert set(ours) == set(real)
    _assert_attrs_like(ours["/"]["attrs"], real["/"]["attrs"], "globals", same_names=True)
    for name, spec in real.items():
        if name == "/":
            continue
        got = ours[name]
        assert got["dtype"] == spec["dtype"] and got["dims"] == spec["dims"], name
        assert got["filters"] == spec["filters"], name
        _assert_attrs_like(got["attrs"], spec["attrs"], name, same_names=True)
    with h5py.File(swot["Expert"]) as f:
        assert f["time"].attrs["units"] == b"seconds since 2000-01-01 00:00:00.0"
        assert f.attrs["product_version"] == b"2.0.1"
        np.testing.assert_array_equal(f["cross_track_distance"][:], np.arange(-68.0, 69.0, 2.0))
        lon = f["longitude"][:] * 1e-6
        assert lon.min() >= 0 and lon.max() < 360
    basic = _layout(swot["Basic"])
    assert set(basic) - {"/"} == BASIC_VARIABLES  # no quality_flag, no cross_track_distance
    for name in BASIC_VARIABLES:
        _assert_attrs_like(basic[name]["attrs"], real[name]["attrs"], name, same_names=True)
        assert basic[name]["dtype"] == real[name]["dtype"]


def test_swot_basic_decodes_to_the_analytic_fields_with_invalid_pixels_as_fill(swot):
    truth = sp.read_truth(swot["Basic"])
    valid = truth["valid"]
    assert 0.3 < valid.mean() < 0.9
    for name in ("ssha_filtered", "ssha_unfiltered", "mdt"):
        ok = truth[f"valid_{name}"]
        np.testing.assert_array_equal(ok, valid)
        np.testing.assert_array_equal(np.isfinite(truth[name]), ok)  # Basic: anything not good is fill
        exact = sp.analytic_swot(name, truth["lat"][ok], truth["lon"][ok], truth["time"][ok])
        assert np.abs(truth[name][ok] - exact).max() <= _half_step(1e-4), name
    with xr.open_dataset(swot["Basic"], engine="h5netcdf") as ds:
        nadir_lines = ds["i_num_line"].values
        assert (ds["i_num_pixel"].values == 34).all() and nadir_lines.size > LINES // 5
        times = ds["time"].values
    step = np.diff(times) / np.timedelta64(1, "s")
    assert step.mean() * LINES == pytest.approx(3086.8, abs=20)  # a half orbit ≈ 51.4 min
    xtd = np.linspace(-68, 68, 69)[truth["pixel"]]
    gap = np.abs(xtd) < 10
    assert not valid[gap & (truth["pixel"] != 34)].any()  # the nadir gap...
    nadir_valid = np.unique(truth["line"][valid & (truth["pixel"] == 34)])
    np.testing.assert_array_equal(nadir_valid, nadir_lines)  # ...but for the nadir altimeter's points
    assert not valid[np.abs(xtd) > 60].any()


def test_swot_expert_flags_bad_pixels_that_carry_garbage(swot):
    basic, expert = sp.read_truth(swot["Basic"]), sp.read_truth(swot["Expert"])
    np.testing.assert_array_equal(expert["valid"], basic["valid"])  # same good pixels, same values
    np.testing.assert_array_equal(expert["values"][expert["valid"]], basic["values"][basic["valid"]])
    with xr.open_dataset(swot["Expert"], engine="h5netcdf") as ds:
        flag = ds["quality_flag"].values.ravel()
        ssha = ds["ssha_filtered"].values.ravel()
        assert set(np.unique(flag)) <= set(ds["quality_flag"].attrs["flag_masks"].tolist())
    flagged = (flag != 0) & np.isfinite(ssha)
    assert flagged.sum() > 0.05 * flag.size
    assert (np.abs(ssha[flagged]) > 1.5).all()  # garbage no analytic value reaches
    assert set(np.unique(flag[flagged])) >= {3, 5, 30, 50, 100}
    # a loader that ignores the flag bins values far from the truth
    kept = np.isfinite(ssha)
    exact = sp.analytic_sla(expert["lat"][kept], expert["lon"][kept], expert["time"][kept])
    assert np.sqrt(np.mean((ssha[kept] - exact) ** 2)) > 0.5


def test_swot_l2_fill_conventions_differ_from_l3(swot):
    l2 = xr.open_dataset(swot["L2Basic"], engine="h5netcdf", decode_cf=False)
    l3 = xr.open_dataset(swot["Basic"], engine="h5netcdf", decode_cf=False)
    with l2, l3:
        assert dict(l2.sizes) == {"num_lines": LINES, "num_pixels": 69, "num_sides": 2}
        assert "_FillValue" not in l3["latitude"].attrs
        assert l2["latitude"].attrs["_FillValue"] == 2147483647 and l2["latitude"].dtype == np.int32
        assert l3["ssha_filtered"].attrs["_FillValue"] == -2147483647
        assert l2["ssha_karin"].attrs["_FillValue"] == 2147483647 and l2["ssha_karin"].dtype == np.int32
        assert l2["ssha_karin"].attrs["scale_factor"] == 1e-4
        assert l2["ssha_karin"].attrs["quality_flag"] == "ssha_karin_qual"
        assert l2["ssh_karin"].attrs["quality_flag"] == "ssh_karin_qual"
        qual = l2["ssha_karin_qual"]
        assert qual.dtype == np.uint32 and qual.attrs["_FillValue"] == np.uint32(4294967295)
        assert qual.attrs["_FillValue"].dtype == np.uint32
        uncert = l2["ssh_karin_uncert"]
        assert uncert.dtype == np.uint16 and uncert.attrs["_FillValue"] == 65535
        assert l2.attrs["cycle_number"] == CYCLE and l2.attrs["cycle_number"].dtype == np.int16
        assert l2.attrs["pass_number"] == PASS and l2.attrs["pass_number"].dtype == np.int16
        lat = l2["latitude"].values
        assert (lat[:, 30:39] == 2147483647).all() and (lat[:, 34] == 2147483647).all()  # no nadir column
        assert (lat == 2147483647).any(axis=1).sum() == LINES  # gap pixels on every line...
        assert (lat == 2147483647).all(axis=1).any()  # ...and a few missing lines
    truth = sp.read_truth(swot["L2Basic"])
    ok = truth["valid"]
    exact = sp.analytic_swot("ssha_unfiltered", truth["lat"][ok], truth["lon"][ok], truth["time"][ok])
    assert np.abs(truth["values"][ok] - exact).max() <= _half_step(1e-4)
    with xr.open_dataset(swot["L2Basic"], engine="h5netcdf") as ds:
        qual = ds["ssha_karin_qual"].values.ravel()
        ssha = ds["ssha_karin"].values.ravel()
    flagged = np.isfinite(qual) & (qual != 0)
    assert flagged.any() and (np.abs(ssha[flagged]) > 1.5).all()
    np.testing.assert_array_equal(ok, np.isfinite(ssha) & (qual == 0))


def test_swot_day_names_and_midnight_crossings(tmp_path):
    passes = sp.swot_day(DAY)
    assert len(passes) == 28
    starts = [start for _, _, start in passes]
    assert starts == sorted(starts)
    midnight, next_midnight = dt.datetime(2024, 12, 29), dt.datetime(2024, 12, 30)
    assert starts[0] < midnight <= sp.swot_pass_end(starts[0])  # began the day before
    assert starts[-1] < next_midnight < sp.swot_pass_end(starts[-1])  # runs into the next day
    assert all(midnight <= s < next_midnight for s in starts[1:])
    assert len(sp.swot_day(DAY, n_passes=40)) == 29  # every pass touching the day
    assert sp.swot_day(DAY, n_passes=40)[0] == passes[0] and sp.swot_day(DAY, n_passes=40)[-1] == passes[-1]
    pattern = re.compile(r"SWOT_L3_LR_SSH_Basic_(\d{3})_(\d{3})_(\d{8}T\d{6})_(\d{8}T\d{6})_v2\.0\.1\.nc\Z")
    dataset = load_catalog()["l3_swot"].dataset_for(DAY)
    for cycle, pass_number, start in passes:
        end = sp.swot_pass_end(start)
        name = sp.swot_file_name("Basic", cycle, pass_number, start, end)
        found = pattern.match(name)
        assert found and found.groups() == (
            f"{cycle:03d}",
            f"{pass_number:03d}",
            f"{start:%Y%m%dT%H%M%S}",
            f"{end:%Y%m%dT%H%M%S}",
        )
        assert dataset.file_regex(start.date()).match(name)
    l2 = sp.swot_file_name("L2Basic", 26, 145, starts[0], sp.swot_pass_end(starts[0], "L2Basic"))
    assert l2.startswith("SWOT_L2_LR_SSH_Basic_026_145_20241228T23") and l2.endswith("_PIC2_01.nc")
    assert sp.swot_pass_end(START, "L2Basic") - sp.swot_pass_end(START) == pytest.approx(
        dt.timedelta(seconds=6 * 0.3131), abs=dt.timedelta(seconds=0.01)
    )  # 9866 L2 lines where L3 has 9860

    written = sp.write_sparse_day(tmp_path, DAY, products=("l3_swot",), swot_lines=12, swot_passes=3)
    files = written["l3_swot"]
    assert [p.parent for p in files] == [tmp_path / "l3_swot"] * 3  # flat folder
    assert "_20241228T" in files[0].name and files[-1].name.split("_")[8].startswith("20241230T")
    l2_files = sp.write_sparse_day(
        tmp_path, DAY, products=("l3_swot",), swot_lines=12, swot_passes=2, swot_kind="L2Basic"
    )["l3_swot"]
    assert [p.parent.name for p in l2_files] == ["l2_swot"] * 2
    assert all(p.name.startswith("SWOT_L2_LR_SSH_Basic_") for p in l2_files)
