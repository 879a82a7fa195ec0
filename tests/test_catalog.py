import datetime as dt

import pytest
from pydantic import ValidationError

from oceantaco.catalog import load_catalog, parse_catalog

# The published reader's level-2 ids, in the published slot order (anchor study §8).
PUBLISHED_IDS = [
    "glorys.nc",
    "l4_ssh.nc",
    "l4_sst.nc",
    "l4_sss.nc",
    "l4_wind.nc",
    "l3_sst.nc",
    "l3_sss_asc.nc",
    "l3_sss_desc.nc",
    "l3_ssh.nc",
    "l3_swot.nc",
    "argo.nc",
]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_all_eleven_products_in_published_order(catalog):
    assert [p.output_id for p in catalog.ordered()] == PUBLISHED_IDS
    assert {p.tiling for p in catalog.ordered()} == {"grid", "along_track", "swath", "points"}
    assert catalog["l3_sss_smos_asc"].raw_dir == catalog["l3_sss_smos_desc"].raw_dir == "l3_sss_smos"


def test_every_product_has_an_encoded_required_variable(catalog):
    for product in catalog.ordered():
        assert product.required_variables(), product.token
        assert product.placeholder_id == product.output_id.replace(".nc", ".missing")


@pytest.mark.parametrize(
    ("token", "last_old", "old_id", "new_id"),
    [
        (
            "l4_sst",
            dt.date(2024, 1, 15),
            "METOFFICE-GLO-SST-L4-REP-OBS-SST",
            "METOFFICE-GLO-SST-L4-NRT-OBS-SST-V2",
        ),
        (
            "l4_sss",
            dt.date(2022, 12, 31),
            "cmems_obs-mob_glo_phy-sss_my_multi_P1D",
            "cmems_obs-mob_glo_phy-sss_nrt_multi_P1D",
        ),
        (
            "glorys",
            dt.date(2021, 6, 30),
            "cmems_mod_glo_phy_my_0.083deg_P1D-m",
            "cmems_mod_glo_phy_myint_0.083deg_P1D-m",
        ),
    ],
)
def test_switch_overs(catalog, token, last_old, old_id, new_id):
    product = catalog[token]
    assert product.dataset_for(last_old).dataset_id == old_id
    assert product.dataset_for(last_old + dt.timedelta(days=1)).dataset_id == new_id


def test_windows_never_overlap(catalog):
    day = dt.date(1993, 1, 1)
    while day < dt.date(2027, 1, 1):
        for product in catalog.ordered():
            ids = [d.dataset_id for d in product.datasets_for(day)]
            assert len(ids) == len(set(ids))
            if product.token != "l3_ssh":
                assert len(ids) <= 1, (product.token, day, ids)
        day += dt.timedelta(days=17)


def test_l3_ssh_has_one_dataset_per_satellite(catalog):
    assert len(catalog["l3_ssh"].datasets_for(dt.date(2025, 8, 2))) == 7
    nrt = catalog["l3_ssh"].datasets_for(dt.date(2025, 8, 3))
    assert len(nrt) == 7 and all("_nrt_" in d.dataset_id for d in nrt)


@pytest.mark.parametrize(
    ("token", "day", "name"),
    [
        ("l4_ssh", dt.date(2024, 1, 1), "dt_global_allsat_phy_l4_20240101_20240607.nc"),
        ("glorys", dt.date(2012, 1, 1), "mercatorglorys12v1_gl12_mean_20120101_R20120104.nc"),
        (
            "l4_sst",
            dt.date(2016, 7, 7),
            "20160707120000-UKMO-L4_GHRSST-SSTfnd-OSTIA-GLOB_REP-v02.0-fv02.0.nc",
        ),
        ("argo", dt.date(2020, 8, 6), "D5906072_022.nc"),
    ],
)
def test_file_patterns_match_real_names_for_their_day_only(catalog, token, day, name):
    dataset = catalog[token].dataset_for(day)
    assert dataset.file_regex(day).match(name)
    if "{date}" in dataset.pattern:
        assert not dataset.file_regex(day + dt.timedelta(days=1)).match(name)


def test_resolve_accepts_tokens_and_output_ids(catalog):
    assert [p.token for p in catalog.resolve(["argo.nc", "l4_ssh"])] == ["l4_ssh", "argo"]
    with pytest.raises(KeyError, match="unknown product"):
        catalog.resolve(["sst"])


def test_an_encoding_whose_valid_range_overflows_is_rejected():
    text = """
slot_order = ["x"]
[products.x]
output_id = "x.nc"
data_source = "x"
variable = "sst"
sensor = "X"
modality = "satellite"
provider = "cmems"
raw_dir = "x"
tiling = "grid"
[[products.x.datasets]]
product_id = "P"
dataset_id = "D"
start = 2000-01-01
pattern = 'x_{date}\\.nc'
[products.x.variables]
sst = { dtype = "int16", scale_factor = 0.001, add_offset = 0.0, fill_value = -32767, \
valid_min = 270.0, valid_max = 310.0, units = "K", long_name = "Kelvin would wrap" }
"""
    with pytest.raises(ValidationError, match="does not fit int16"):
        parse_catalog(text)
