"""The format step: real upstream files, longitude conventions, tile seams, bad input, stale tiles."""

import datetime as dt
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.io import netcdf_file
from tiles import decoded

from oceantaco.catalog import load_catalog
from oceantaco.formatting import format_product_day
from oceantaco.inventory import read_fragment
from oceantaco.loaders import InputError, get_loader
from oceantaco.regions import REGIONS, region_index
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import write_duacs_l4

CATALOG = load_catalog()
SSH = CATALOG["l4_ssh"]
STEP = SSH.variables["sla"].scale_factor
DAY = dt.date(2024, 1, 31)
VERSION_DIR = (
    "l4_ssh/SEALEVEL_GLO_PHY_L4_MY_008_047/cmems_obs-sl_glo_phy-ssh_my_allsat-l4-duacs-0.125deg_P1D_202411"
)


def _raw_day(raw: Path, source: Path, day: dt.date, production: str = "20241120") -> Path:
    target = raw / VERSION_DIR / f"{day:%Y/%m}" / f"dt_global_allsat_phy_l4_{day:%Y%m%d}_{production}.nc"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, target)
    return target


def _tiles(formatted: Storage, day: dt.date) -> list[xr.Dataset]:
    fragment = read_fragment(formatted, SSH, day)
    return [
        xr.open_dataset(io.BytesIO(formatted.read_bytes(k)), engine="h5netcdf").load()
        for k in fragment["relative_path"]
    ]


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("dt_blacksea_allsat_phy_l4_20160707_20200801.nc", dt.date(2016, 7, 7)),
        ("dt_med_allsat_phy_l4_20160515_20190101.nc", dt.date(2016, 5, 15)),  # time dim, no time variable
    ],
)
def test_real_duacs_files_tile_to_their_decoded_values(real_fixtures, tmp_path, name, day):
    source = real_fixtures / "l4_ssh_duacs" / name
    _raw_day(tmp_path / "raw", source, day)
    formatted = Storage(str(tmp_path / "formatted"))
    result = format_product_day(SSH, day, Storage(str(tmp_path / "raw")), formatted, Settings())
    assert result.status == "formatted" and result.tiles_written >= 1
    with xr.open_dataset(source, engine="h5netcdf") as src:
        expected = src["sla"].squeeze(drop=True).load()
    valid_cells = 0
    for tile in _tiles(formatted, day):
        want = expected.sel(latitude=tile["lat"].values, longitude=tile["lon"].values).values
        assert np.array_equal(np.isnan(want), np.isnan(tile["sla"].values))
        assert np.nanmax(np.abs(tile["sla"].values - want)) <= STEP / 2 + 1e-9
        valid_cells += int(np.isfinite(want).sum())
    assert valid_cells == int(np.isfinite(expected.values).sum())  # nothing lost at tile seams


def test_real_global_file_on_0_360_longitudes(real_fixtures):
    """The real NRT 0.25° file runs 0..360 and has no `sla` (a dangling grid_mapping, too)."""
    path = real_fixtures / "l4_ssh_duacs" / "nrt_global_allsat_phy_l4_20190223_20190226.nc"
    with pytest.raises(InputError, match="sla missing"):
        list(get_loader(SSH).tiles(SSH, dt.date(2019, 2, 23), [path]))
    variables = {k: v.model_copy(update={"required": k == "adt"}) for k, v in SSH.variables.items()}
    adt_only = SSH.model_copy(update={"variables": variables})
    tiles = list(get_loader(adt_only).tiles(adt_only, dt.date(2019, 2, 23), [path]))
    assert len(tiles) == 8
    merged = xr.combine_by_coords([decoded(t)[["adt"]] for t in tiles])
    lat, lon = merged["lat"].values, merged["lon"].values
    assert lon.min() >= -180 and lon.max() < 180 and np.all(np.diff(lon) > 0) and np.all(np.diff(lat) > 0)
    with xr.open_dataset(path, engine="h5netcdf") as src:
        raw = src["adt"].squeeze(drop=True).load()
    assert merged.sizes == {"lat": raw.sizes["latitude"], "lon": raw.sizes["longitude"]}
    step = SSH.variables["adt"].scale_factor / 2 + 1e-9
    east = raw.sel(longitude=10.125).values  # 10.125°E is the same column in both conventions
    west = raw.sel(longitude=350.125).values  # 350.125°E must come back as -9.875°
    np.testing.assert_allclose(merged["adt"].sel(lon=10.125).values, east, atol=step)
    np.testing.assert_allclose(merged["adt"].sel(lon=-9.875).values, west, atol=step)


@pytest.mark.parametrize("convention", ["-180..180", "0..360"])
def test_both_longitude_conventions_give_the_same_tiles(tmp_path, convention):
    reference = write_duacs_l4(tmp_path / "ref.nc", DAY, dt.date(2024, 11, 20), resolution=1.0)
    other = write_duacs_l4(
        tmp_path / "other.nc", DAY, dt.date(2024, 11, 20), resolution=1.0, lon_convention=convention
    )
    (ref_tiles, other_tiles) = (
        {t.region.name: decoded(t) for t in get_loader(SSH).tiles(SSH, DAY, [p])} for p in (reference, other)
    )
    assert ref_tiles.keys() == other_tiles.keys() == {r.name for r in REGIONS}
    for name, tile in ref_tiles.items():
        xr.testing.assert_identical(tile, other_tiles[name])


def test_tiles_join_into_the_global_field_without_gaps_or_overlap(tmp_path):
    path = write_duacs_l4(tmp_path / "day.nc", DAY, dt.date(2024, 11, 20), resolution=0.5)
    tiles = [decoded(t) for t in get_loader(SSH).tiles(SSH, DAY, [path])]
    merged = xr.combine_by_coords(tiles)
    with xr.open_dataset(path, engine="h5netcdf") as src:
        source = src["sla"].squeeze(drop=True).load()
    assert merged.sizes == {"lat": source.sizes["latitude"], "lon": source.sizes["longitude"]}
    assert np.nanmax(np.abs(merged["sla"].values - source.values)) <= STEP / 2 + 1e-9


def test_garbage_and_missing_variables_are_clear_input_errors(tmp_path):
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"<html>503 Service Unavailable</html>")
    with pytest.raises(InputError, match="not a NetCDF file"):
        list(get_loader(SSH).tiles(SSH, DAY, [garbage]))
    no_sla = write_duacs_l4(
        tmp_path / "adt.nc", DAY, dt.date(2024, 11, 20), resolution=2.0, variables=("adt",)
    )
    with pytest.raises(InputError, match="sla missing"):
        list(get_loader(SSH).tiles(SSH, DAY, [no_sla]))


def test_a_newer_production_replaces_the_tiles(tmp_path):
    raw, formatted = Storage(str(tmp_path / "raw")), Storage(str(tmp_path / "formatted"))
    first = write_duacs_l4(tmp_path / "a.nc", DAY, dt.date(2024, 11, 20), resolution=2.0)
    _raw_day(tmp_path / "raw", first, DAY, "20241120")
    assert format_product_day(SSH, DAY, raw, formatted, Settings()).status == "formatted"
    assert format_product_day(SSH, DAY, raw, formatted, Settings()).status == "unchanged"
    newer = write_duacs_l4(tmp_path / "b.nc", DAY + dt.timedelta(days=1), dt.date(2025, 1, 5), resolution=2.0)
    _raw_day(tmp_path / "raw", newer, DAY, "20250105")
    result = format_product_day(SSH, DAY, raw, formatted, Settings())
    assert result.status == "formatted" and result.tiles_written == 8
    assert set(read_fragment(formatted, SSH, DAY)["source_files"].map(tuple)) == {
        (f"dt_global_allsat_phy_l4_{DAY:%Y%m%d}_20250105.nc",)
    }


def _good_points_by_hand(path: Path, day: dt.date) -> list[tuple[float, float]]:
    """(lon, lat) of every level the Argo rules keep, read with scipy's raw NetCDF3 reader."""
    keep = []
    with netcdf_file(path, "r", mmap=False) as f:
        var = f.variables
        for p in range(f.dimensions["N_PROF"]):
            mode = var["DATA_MODE"][p].decode()
            juld = dt.date(1950, 1, 1) + dt.timedelta(days=float(var["JULD"][p]))
            if juld != day or var["POSITION_QC"][p].decode() not in "12":
                continue
            suffix = "_ADJUSTED" if mode in "DA" else ""
            pres, temp = var[f"PRES{suffix}"][p], var[f"TEMP{suffix}"][p]
            pres_qc, temp_qc = var[f"PRES{suffix}_QC"][p], var[f"TEMP{suffix}_QC"][p]
            for level in range(len(pres)):
                if (
                    pres[level] != 99999.0
                    and pres[level] <= 100
                    and temp[level] != 99999.0
                    and pres_qc[level].decode() in "12"
                    and temp_qc[level].decode() in "12"
                ):
                    keep.append((float(var["LONGITUDE"][p]), float(var["LATITUDE"][p])))
    return keep


def test_real_argo_profiles_keep_every_good_upper_level_in_the_right_tile(real_fixtures):
    argo = CATALOG["argo"]
    for path in sorted((real_fixtures / "argo_gdac" / "dac").rglob("*.nc")):
        with netcdf_file(path, "r", mmap=False) as f:
            day = dt.date(1950, 1, 1) + dt.timedelta(days=float(f.variables["JULD"][0]))
        expected = _good_points_by_hand(path, day)
        tiles = list(get_loader(argo).tiles(argo, day, [path]))
        assert sum(t.n_points for t in tiles) == len(expected), path.name
        for tile in tiles:
            lon, lat = np.array([e[0] for e in expected]), np.array([e[1] for e in expected])
            in_tile = region_index(lon, lat) == REGIONS.index(tile.region)
            assert tile.n_points == int(in_tile.sum())
            assert tile.dataset["TEMP"].attrs["units"] == "degree_Celsius"
