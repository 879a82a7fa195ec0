"""Argo from GDAC profile files or the original pipeline's daily point files: same rules, tiles, counts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.io import netcdf_file

from oceantaco.catalog import load_catalog
from oceantaco.formatting import format_product_day
from oceantaco.inventory import read_fragment
from oceantaco.loaders import InputError, get_loader
from oceantaco.loaders.netcdf import _ClassicFile
from oceantaco.loaders.points import read_points
from oceantaco.providers import fetch, get_provider
from oceantaco.providers.argo_gdac import day_index_key
from oceantaco.regions import REGION_NAMES, region_index
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import (
    ArgoIndexRow,
    ArgoProfile,
    argo_profiles_for_days,
    group_argo_files,
    write_argo_index,
    write_argo_profile,
)
from oceantaco.synthetic_argo_points import (
    argo_point_table,
    point_file_name,
    write_argo_points,
    write_point_table,
)

ARGO = load_catalog()["argo"]
DAY = dt.date(2024, 1, 31)
COLUMNS = ["region", "PLATFORM_NUMBER", "CYCLE_NUMBER", "time", "lon", "lat", "PRES", "TEMP", "PSAL"]
QC_COLUMNS = ["PRES_QC", "TEMP_QC", "PSAL_QC"]


# --- inputs ------------------------------------------------------------------------------------------------


def _float(profiles: list[ArgoProfile], k: int) -> ArgoProfile:
    """The (first) profile of the generator's float ``k`` (WMO 1990100 + k, or 29001 for float 1)."""
    wmo = "29001" if k == 1 else str(1990100 + k)
    return next(p for p in profiles if p.platform_number == wmo)


def _region(p: ArgoProfile) -> str:
    return REGION_NAMES[int(region_index(np.array([p.longitude]), np.array([p.latitude]))[0])]


def _varied_profiles(n_per_day: int = 16) -> list[ArgoProfile]:
    """The generator's day (float k in region k % 8) plus: float 0's file with four samplings (N_PROF=4,
    like R6903247_275), float 2 adjusted in real time ('A'), and a descending profile of float 3's cycle
    (``..._NNND.nc``) two hours before its ascent."""
    profiles = argo_profiles_for_days([DAY], n_per_day=n_per_day)
    delayed = _float(profiles, 2)
    profiles[profiles.index(delayed)] = dataclasses.replace(delayed, data_mode="A")
    ascent = _float(profiles, 3)
    descent = dataclasses.replace(ascent, direction="D", juld=ascent.juld - dt.timedelta(hours=2))
    assert descent.juld.date() == DAY and descent.file_name.endswith(f"_{descent.cycle_number:03d}D.nc")
    primary = _float(profiles, 0)
    secondaries = [
        dataclasses.replace(primary, vertical_sampling_scheme=f"Secondary sampling: discrete [{n} sampling]")
        for n in ("100s", "500s")
    ]
    return [*profiles, descent, *secondaries]


def _gdac_raw(root: Path, profiles: list[ArgoProfile], days: list[dt.date]) -> Storage:
    """A GDAC tree of ``profiles`` laid out in ``root/raw`` as the download step does (plan + fetch)."""
    gdac = root / "gdac"
    files = group_argo_files(profiles)
    for rel, in_file in files.items():
        write_argo_profile(gdac / "dac" / rel, in_file)
    write_argo_index(gdac / "ar_index_global_prof.txt", [ArgoIndexRow.for_file(p) for p in files.values()])
    provider = get_provider("argo_gdac", Settings(argo_gdac=str(gdac)))
    raw = Storage(str(root / "raw"))
    for plan in provider.plan(ARGO, days):
        assert {o.status for o in fetch(plan, provider.source, raw)} <= {"ok"}
    return raw


def _points_raw(root: Path, table: xr.Dataset, day: dt.date = DAY, **write_kw) -> Storage:
    write_point_table(root / "raw" / ARGO.raw_dir / point_file_name(day), table, **write_kw)
    return Storage(str(root / "raw"))


def _format(raw: Storage, root: Path, day: dt.date = DAY) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Format the day; the written tiles as one table of points (sorted) and the inventory fragment."""
    formatted = Storage(str(root / "formatted"))
    result = format_product_day(ARGO, day, raw, formatted, Settings(), force=True)
    assert result.status == "formatted"
    fragment = read_fragment(formatted, ARGO, day)
    frames = []
    for key, region in zip(fragment["relative_path"], fragment["region"], strict=True):
        with xr.open_dataset(io.BytesIO(formatted.read_bytes(key)), engine="h5netcdf") as ds:
            frame = ds.reset_coords().to_dataframe().reset_index(drop=True)
        frames.append(frame.assign(region=region))
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return _sorted(points), fragment


def _sorted(points: pd.DataFrame) -> pd.DataFrame:
    return points.sort_values([*COLUMNS, "DATA_MODE"], ignore_index=True)


def _expected(profiles: list[ArgoProfile], day: dt.date = DAY) -> pd.DataFrame:
    """The Argo rules applied level by level to the synthetic profiles: the test's own oracle."""
    rows = []
    for p in profiles:
        if p.juld.date() != day or p.position_qc not in "12" or p.juld_qc not in "12":
            continue
        adjusted = p.data_mode in "AD"
        pres, temp, psal = (p.values(x, adjusted) for x in ("PRES", "TEMP", "PSAL"))
        pres_qc, temp_qc, psal_qc = (p.qc(x, adjusted) for x in ("PRES", "TEMP", "PSAL"))
        for i in range(p.n_levels):
            if not (np.isfinite(pres[i]) and pres[i] <= 100 and pres_qc[i] in "12"):
                continue
            if not (np.isfinite(temp[i]) and temp_qc[i] in "12"):
                continue
            salty = psal is not None and np.isfinite(psal[i]) and psal_qc[i] in "12"
            lon, lat = np.array([p.longitude]), np.array([p.latitude])
            rows.append(
                {
                    "region": REGION_NAMES[int(region_index(lon, lat)[0])],
                    "PLATFORM_NUMBER": int(p.platform_number),
                    "CYCLE_NUMBER": p.cycle_number,
                    "DIRECTION": p.direction,
                    "time": pd.Timestamp(p.juld),
                    "lon": p.longitude,
                    "lat": p.latitude,
                    "PRES": np.float32(pres[i]),
                    "TEMP": np.float32(temp[i]),
                    "PSAL": np.float32(psal[i]) if salty else np.float32(np.nan),
                    "DATA_MODE": p.data_mode,
                }
            )
    return _sorted(pd.DataFrame(rows))


def _assert_points(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(found) == len(expected)
    for column in COLUMNS:
        left, right = found[column].to_numpy(), expected[column].to_numpy()
        if column == "time":
            np.testing.assert_array_equal(left.astype("datetime64[us]"), right.astype("datetime64[us]"))
        elif column == "region":
            np.testing.assert_array_equal(left, right)
        elif column == "lon":  # mapped to [-180, 180) by arithmetic: within a rounding error
            np.testing.assert_allclose(left.astype(np.float64), right.astype(np.float64), rtol=0, atol=1e-9)
        else:
            np.testing.assert_array_equal(left.astype(np.float64), right.astype(np.float64), err_msg=column)


def _counts(fragment: pd.DataFrame) -> pd.DataFrame:
    return fragment.set_index("region")[["n_points", "n_profiles"]].sort_index().rename_axis("region")


# --- the two inputs agree ----------------------------------------------------------------------------------


def test_point_file_gives_the_same_tiles_as_the_gdac_profile_files(tmp_path):
    profiles = _varied_profiles()
    expected = _expected(profiles)
    from_gdac, gdac_fragment = _format(_gdac_raw(tmp_path / "g", profiles, [DAY]), tmp_path / "g")
    table = argo_point_table(profiles, mode="expert", max_pressure_dbar=None)
    from_points, points_fragment = _format(_points_raw(tmp_path / "p", table), tmp_path / "p")

    _assert_points(from_gdac, expected)
    pd.testing.assert_frame_equal(from_points, from_gdac)  # every variable, flags and DATA_MODE included
    assert set(from_gdac.columns) >= {*COLUMNS, *QC_COLUMNS, "DATA_MODE"} - {"region"}
    pd.testing.assert_frame_equal(_counts(points_fragment), _counts(gdac_fragment))
    assert list(points_fragment["source_files"].iloc[0]) == [point_file_name(DAY)]


def test_counts_are_points_and_distinct_profiles_for_both_inputs(tmp_path):
    profiles = _varied_profiles()
    expected = _expected(profiles)
    assert len(group_argo_files(profiles)[_float(profiles, 0).relative_path]) == 4
    # Floats k and k + 8 share region k: two profiles per tile, float 0's four samplings being one of them;
    # float 3's tile also holds the descent of its cycle, a profile of its own.
    n_profiles = dict.fromkeys(REGION_NAMES, 2) | {_region(_float(profiles, 3)): 3}
    n_points = expected.groupby("region").size()
    _, gdac_fragment = _format(_gdac_raw(tmp_path / "g", profiles, [DAY]), tmp_path / "g")
    table = argo_point_table(profiles, mode="expert", max_pressure_dbar=None)
    _, points_fragment = _format(_points_raw(tmp_path / "p", table), tmp_path / "p")
    for fragment in (gdac_fragment, points_fragment):
        assert dict(zip(fragment["region"], fragment["n_profiles"], strict=True)) == n_profiles
        assert dict(zip(fragment["region"], fragment["n_points"], strict=True)) == n_points.to_dict()


def test_real_multi_profile_and_psal_less_files(real_fixtures):
    folder = real_fixtures / "argo_gdac" / "dac"
    # R13857_137 (no PSAL, N_PARAM=2) starts at 915 dbar: a deeper limit lets its levels through.
    deep = ARGO.model_copy(update={"max_pressure_dbar": 2000.0})
    for name, n_prof in (
        ("coriolis/6903247/profiles/R6903247_275.nc", 4),
        ("aoml/13857/profiles/R13857_137.nc", 1),
    ):
        path = folder / name
        with netcdf_file(path, "r", mmap=False) as f:
            assert f.dimensions["N_PROF"] == n_prof
            day = dt.date(1950, 1, 1) + dt.timedelta(days=float(f.variables["JULD"][0]))
            has_psal = "PSAL" in f.variables
        (tile,) = get_loader(deep).tiles(deep, day, [path])
        assert tile.n_profiles == 1  # four samplings of one cycle are one profile
        assert tile.n_points == tile.dataset.sizes["N_POINTS"] > 0
        if not has_psal:  # an old float without conductivity sensor keeps TEMP and PRES
            points = read_points(path, deep, day)
            assert tile.n_points == points["PRES"].size == 13
            assert np.isfinite(points["PRES"]).all() and np.isfinite(points["TEMP"]).all()
            assert (points["TEMP_QC"] == 1).all() and (points["PRES_QC"] == 1).all()
            assert np.isnan(points["PSAL"]).all() and np.isnan(points["PSAL_QC"]).all()
            assert np.isnan(tile.dataset["PSAL"].values).all()
            assert (tile.dataset["PSAL_QC"].values == -1).all()  # packed fill: no flag


# --- rules on point files ----------------------------------------------------------------------------------


def test_floats_without_psal_keep_temperature_and_pressure(tmp_path):
    profiles = argo_profiles_for_days([DAY], n_per_day=8)
    old = next(p for p in profiles if p.psal is None)
    expected = _expected(profiles)
    from_old = expected[expected["PLATFORM_NUMBER"] == int(old.platform_number)]
    assert len(from_old) > 0 and from_old["PSAL"].isna().all()
    for label, raw in (
        ("gdac", _gdac_raw(tmp_path / "g", profiles, [DAY])),
        (
            "expert",
            _points_raw(tmp_path / "e", argo_point_table(profiles, mode="expert", max_pressure_dbar=None)),
        ),
    ):
        points, _ = _format(raw, tmp_path / label)
        _assert_points(points, expected)
        mine = points[points["PLATFORM_NUMBER"] == int(old.platform_number)]
        assert len(mine) == len(from_old) and mine["PSAL"].isna().all() and mine["PSAL_QC"].isna().all()

    # A research-mode table without PSAL at all (argopy then leaves it out of its checks) keeps the rest.
    table = argo_point_table(profiles, mode="research", max_pressure_dbar=None).drop_vars(
        ["PSAL", "PSAL_ERROR"]
    )
    points, fragment = _format(_points_raw(tmp_path / "r", table), tmp_path / "r")
    assert len(points) == fragment["n_points"].sum() > 0
    assert points["PSAL"].isna().all() and np.isfinite(points["TEMP"]).all()


def test_point_file_rules_flags_and_pressure(tmp_path):
    profiles = argo_profiles_for_days([DAY], n_per_day=8)
    table = argo_point_table(profiles, mode="expert", max_pressure_dbar=None)
    platform = table["PLATFORM_NUMBER"].values
    wmo = [int(p.platform_number) for p in profiles]
    bad_position, bad_time, bad_levels = wmo[3], wmo[5], wmo[4]
    table["POSITION_QC"].values[platform == bad_position] = 4
    table["TIME_QC"].values[platform == bad_time] = 3
    levels = np.flatnonzero(platform == bad_levels)
    mode = table["DATA_MODE"].values[levels[0]]
    prefix = "_ADJUSTED" if mode in "AD" else ""
    table[f"TEMP{prefix}_QC"].values[levels[:3]] = 4
    table[f"PRES{prefix}_QC"].values[levels[3:5]] = 3
    table[f"PSAL{prefix}_QC"].values[levels[5:7]] = 4  # bad salinity: the point stays, PSAL becomes NaN
    points, _ = _format(_points_raw(tmp_path, table), tmp_path)

    assert not points["PLATFORM_NUMBER"].isin([bad_position, bad_time]).any()
    assert (points["PRES"] <= ARGO.max_pressure_dbar).all() and points["PRES_QC"].isin([1, 2]).all()
    assert points["TEMP_QC"].isin([1, 2]).all()
    assert points["PSAL_QC"].dropna().isin([1, 2]).all()
    kept = points[points["PLATFORM_NUMBER"] == bad_levels]
    pres_column = table[f"PRES{prefix}"].values
    n_good = [
        i
        for i in levels
        if pres_column[i] <= 100
        and table[f"PRES{prefix}_QC"].values[i] in (1, 2)
        and table[f"TEMP{prefix}_QC"].values[i] in (1, 2)
        and np.isfinite(table[f"TEMP{prefix}"].values[i])
    ]
    assert len(kept) == len(n_good)
    bad_psal = {float(np.float32(pres_column[i])) for i in levels[5:7] if i in n_good}
    assert bad_psal
    assert kept[kept["PRES"].isin(bad_psal)]["PSAL"].isna().all()


def test_research_point_file_without_flags_is_cut_at_the_pressure_limit(tmp_path):
    profiles = argo_profiles_for_days([DAY], n_per_day=8)
    table = argo_point_table(profiles, mode="research", max_pressure_dbar=None)  # a deeper box
    assert not any("QC" in name for name in table.variables) and "DATA_MODE" not in table
    assert (table["PRES"].values > ARGO.max_pressure_dbar).any()
    points, fragment = _format(_points_raw(tmp_path, table), tmp_path)
    in_file = table["PRES"].values <= ARGO.max_pressure_dbar
    assert len(points) == int(in_file.sum()) == fragment["n_points"].sum()
    assert points[QC_COLUMNS].isna().all().all()  # the file holds no flags: stored as missing
    assert (points["DATA_MODE"] == "").all()
    # Research mode: delayed-mode values only, so every value is the analytic truth of the adjusted column.
    expected = _expected([p for p in profiles if p.data_mode == "D"])
    assert set(points["PLATFORM_NUMBER"]) <= set(expected["PLATFORM_NUMBER"])
    keys = ["PLATFORM_NUMBER", "PRES"]
    points[keys[0]], expected[keys[0]] = points[keys[0]].astype(np.int64), expected[keys[0]].astype(np.int64)
    merged = points.merge(expected, on=keys, suffixes=("", "_expected"))
    assert len(merged) == len(points)
    np.testing.assert_array_equal(merged["TEMP"], merged["TEMP_expected"])


@pytest.mark.parametrize("time_encoding", [None, {}], ids=["erddap-seconds", "xarray-default"])
def test_each_point_goes_to_the_day_of_its_own_time(tmp_path, time_encoding):
    days = [DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)]
    profiles = argo_profiles_for_days(days, n_per_day=8)
    midnight = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time())
    profiles.append(dataclasses.replace(_float(profiles, 5), juld=midnight))  # 00:00 next day: not this day's
    table = argo_point_table(profiles, mode="expert", max_pressure_dbar=None)
    points, fragment = _format(_points_raw(tmp_path, table, time_encoding=time_encoding), tmp_path)
    _assert_points(points, _expected(profiles))
    times = points["time"].to_numpy().astype("datetime64[us]")
    assert (times.astype("datetime64[D]") == np.datetime64(DAY)).all()
    assert times.max() == np.datetime64(
        dt.datetime.combine(DAY, dt.time()) + dt.timedelta(seconds=86400 - 40)
    )
    assert fragment["_istac_time_start"].min() >= int(pd.Timestamp(DAY).value // 1000)


# --- inputs of the day --------------------------------------------------------------------------------------


def test_raw_inputs_fall_back_to_the_daily_point_file(tmp_path):
    provider = get_provider("argo_gdac", Settings())
    raw = Storage(str(tmp_path / "raw"))
    point_key = f"{ARGO.raw_dir}/{point_file_name(DAY)}"
    assert provider.raw_inputs(ARGO, DAY, raw) == []
    result = format_product_day(ARGO, DAY, raw, Storage(str(tmp_path / "f")), Settings())
    assert result.status == "no_input"

    write_argo_points(raw.full_path(point_key), argo_profiles_for_days([DAY], n_per_day=8))
    assert provider.raw_inputs(ARGO, DAY, raw) == [point_key]
    assert provider.raw_inputs(ARGO, DAY + dt.timedelta(days=1), raw) == []

    raw.write_bytes(day_index_key(ARGO, DAY), b"file,date\n")  # a complete day without profiles
    assert provider.raw_inputs(ARGO, DAY, raw) == [point_key]

    raw.write_bytes(day_index_key(ARGO, DAY), b"file,date\naoml/1/profiles/R1_001.nc,20240131000000\n")
    assert provider.raw_inputs(ARGO, DAY, raw) == [f"{ARGO.raw_dir}/dac/aoml/1/profiles/R1_001.nc"]


def test_a_file_of_neither_kind_is_refused(tmp_path):
    path = tmp_path / "other.nc"
    xr.Dataset({"TEMP": ("x", np.zeros(3)), "PRES": ("x", np.zeros(3))}).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(InputError, match="neither"):
        list(get_loader(ARGO).tiles(ARGO, DAY, [path]))
    table = argo_point_table(argo_profiles_for_days([DAY], n_per_day=2), mode="expert")
    write_point_table(path, table.drop_vars(["TIME", "time"]))
    with pytest.raises(InputError, match="time missing"):
        list(get_loader(ARGO).tiles(ARGO, DAY, [path]))


def test_classic_reader_matches_scipy_on_real_profile_files(real_fixtures, tmp_path):
    paths = sorted((real_fixtures / "argo_gdac" / "dac").rglob("*.nc"))
    for path in paths:
        mine = _ClassicFile(path.read_bytes(), path.name)
        with netcdf_file(path, "r", mmap=False) as f:
            assert set(mine.variables) == set(f.variables)
            for name, var in f.variables.items():  # record variables (N_HISTORY) included
                assert mine[name].dims == var.dimensions
                np.testing.assert_array_equal(mine[name].read(), var.data, err_msg=name)
                assert mine[name].attrs.keys() == var._attributes.keys()
    broken = paths[0].read_bytes()[:200]
    with pytest.raises(InputError, match="broken NetCDF header"):
        _ClassicFile(broken, "copy.nc")
