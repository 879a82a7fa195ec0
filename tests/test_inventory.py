import datetime as dt

import pyarrow as pa
import pytest

from oceantaco.catalog import load_catalog
from oceantaco.inventory import SCHEMA, TileRecord, compact, read_inventory, to_table, write_fragment
from oceantaco.regions import region
from oceantaco.storage import Storage

ORIGINAL_COLUMNS = [
    "relative_path",
    "timestamp_file",
    "timestamp_data",
    "data_source",
    "variable",
    "filename",
    "_istac_spatial_wkb",
    "_istac_time_start",
    "_istac_time_end",
    "sensor",
    "region",
    "bbox",
    "intersects",
    "resolution_deg_lat",
    "resolution_deg_lon",
    "resolution_km_lat",
    "resolution_km_lon",
    "gridded",
    "n_tracks",
    "n_profiles",
    "satellite_pass",
    "date_str",
]


def _record(product, day: dt.date, region_name: str, sha: str = "0" * 64) -> TileRecord:
    return TileRecord(
        relative_path=product.tile_key(region_name, day),
        day=day,
        data_source=product.data_source,
        variable=product.variable,
        sensor=product.sensor,
        modality=product.modality,
        output_id=product.output_id,
        region=region_name,
        spatial_wkb=region(region_name).polygon_wkb,
        time_start_us=0,
        time_end_us=1,
        bbox=[0.0, 0.0, 1.0, 1.0],
        sha256=sha,
        size_bytes=10,
        source_files=["a.nc"],
        product_id="P",
        dataset_id="D",
        dataset_version="202411",
        software_version="t",
        input_fingerprint="f",
    )


def test_schema_is_a_superset_of_the_original_and_records_fit_it():
    assert set(ORIGINAL_COLUMNS) <= set(SCHEMA.names)
    product = load_catalog()["l4_ssh"]
    table = to_table([_record(product, dt.date(2024, 1, 2), "SOUTH_INDIAN")])
    assert table.schema.equals(SCHEMA)
    row = table.to_pylist()[0]
    assert row["relative_path"] == "l4_ssh/l4_ssh_SOUTH_INDIAN_20240102.nc"
    assert row["filename"] == "l4_ssh_SOUTH_INDIAN_20240102.nc" and row["date_str"] == "20240102"
    assert row["timestamp_file"] == dt.datetime(2024, 1, 2) and row["intersects"] is True


@pytest.fixture
def formatted(tmp_path):
    return Storage(str(tmp_path))


def _write(formatted, product, day, regions, sha="0" * 64):
    write_fragment(formatted, product, day, [_record(product, day, r, sha) for r in regions])


def test_compact_replaces_exactly_the_remade_pairs(formatted):
    catalog = load_catalog()
    ssh, argo = catalog["l4_ssh"], catalog["argo"]
    d1, d2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    _write(formatted, ssh, d1, ["NORTH_ATLANTIC", "SOUTH_INDIAN"])
    _write(formatted, argo, d1, ["NORTH_ATLANTIC"])
    _write(formatted, ssh, d2, ["NORTH_ATLANTIC"])
    assert len(compact(formatted, [ssh, argo], [d1, d2])) == 4

    _write(formatted, ssh, d1, ["NORTH_ATLANTIC"], sha="1" * 64)  # re-made with one tile fewer
    inventory = compact(formatted, [ssh], [d1])
    assert len(inventory) == 3
    assert inventory[inventory["data_source"] == "l4_ssh"]["date_str"].tolist() == ["20240101", "20240102"]
    remade = inventory[(inventory["data_source"] == "l4_ssh") & (inventory["date_str"] == "20240101")]
    assert remade["sha256"].tolist() == ["1" * 64]
    assert not inventory.duplicated(["date_str", "data_source", "region"]).any()
    assert read_inventory(formatted).equals(inventory)


def test_compact_without_update_keeps_only_this_run(formatted):
    ssh = load_catalog()["l4_ssh"]
    d1, d2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)
    _write(formatted, ssh, d1, ["NORTH_ATLANTIC"])
    _write(formatted, ssh, d2, ["NORTH_ATLANTIC"])
    compact(formatted, [ssh], [d1, d2])
    assert compact(formatted, [ssh], [d2], update_existing=False)["date_str"].tolist() == ["20240102"]


def test_compacting_twice_rewrites_nothing(formatted):
    ssh = load_catalog()["l4_ssh"]
    _write(formatted, ssh, dt.date(2024, 1, 1), ["NORTH_ATLANTIC"])
    compact(formatted, [ssh], [dt.date(2024, 1, 1)])
    before = formatted.sha256("file_inventory.parquet")
    compact(formatted, [ssh], [dt.date(2024, 1, 1)])
    assert formatted.sha256("file_inventory.parquet") == before
    assert pa.types.is_list(SCHEMA.field("source_files").type)
