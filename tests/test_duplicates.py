"""Duplicate analysis of the inventory and the "newest processing time wins" rule.

Expected values are worked out by hand from the rows built below (positions 0..13 in inventory order).
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oceantaco.catalog import load_catalog
from oceantaco.duplicates import (
    UnresolvedDuplicatesError,
    analyze,
    require_unique,
    resolve,
    sample_ids,
    write_report,
)
from oceantaco.formatting import format_product_day
from oceantaco.inventory import (
    INVENTORY_NAME,
    SCHEMA,
    TileRecord,
    compact,
    read_fragment,
    read_inventory,
    to_table,
    write_fragment,
)
from oceantaco.regions import region
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import write_duacs_l4

CATALOG = load_catalog()
DAY1, DAY2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
T0 = dt.datetime(2024, 3, 5, 6, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2024, 4, 1, 10, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2024, 4, 2, 12, 30, tzinfo=dt.UTC)
KEEP_OUTPUT_ID = object()  # sentinel: use the catalog's output_id

REPORT_COLUMNS = [
    "date",
    "region",
    "sample_id",
    "data_source",
    "variable",
    "relative_path",
    "timestamp_file",
    "sensor",
    "processed_at",
    "sha256",
    "dataset_version",
    "keep",
]


def _row(
    token: str,
    day: dt.date,
    region_name: str,
    processed_at: dt.datetime | None,
    *,
    path: str | None = None,
    output_id: object = KEEP_OUTPUT_ID,
    sha: str = "0" * 64,
    version: str = "202411",
) -> TileRecord:
    product = CATALOG[token]
    return TileRecord(
        relative_path=path or product.tile_key(region_name, day),
        day=day,
        data_source=product.data_source,
        variable=product.variable,
        sensor=product.sensor,
        modality=product.modality,
        output_id=product.output_id if output_id is KEEP_OUTPUT_ID else output_id,
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
        dataset_version=version,
        software_version="t",
        input_fingerprint="f",
        processed_at=processed_at,
    )


def _inventory(records: list[TileRecord]) -> pd.DataFrame:
    return to_table(records).to_pandas()


SMOS_ASC_DAY2 = "l3_sss_smos_asc/l3_sss_smos_asc_NORTH_ATLANTIC_20240302.nc"
SST_DAY2 = "l4_sst/l4_sst_SOUTH_INDIAN_20240302.nc"


def mixed_inventory() -> pd.DataFrame:
    """14 rows; comments give the position, the slot and what the rule must do."""
    return _inventory(
        [
            # 0: l4_ssh MY run, DAY1 NORTH_ATLANTIC, newest processing time of its slot -> kept
            _row("l4_ssh", DAY1, "NORTH_ATLANTIC", T1, sha="a" * 64),
            # 1, 2: SMOS asc and desc on the same day/region: two different slots, no duplicate
            _row("l3_sss_smos_asc", DAY1, "NORTH_ATLANTIC", T1),
            _row("l3_sss_smos_desc", DAY1, "NORTH_ATLANTIC", T1),
            # 3: l4_ssh NRT run of the same slot as 0, appended later but processed earlier -> dropped
            _row(
                "l4_ssh",
                DAY1,
                "NORTH_ATLANTIC",
                T0,
                path="l4_ssh_nrt/l4_ssh_NORTH_ATLANTIC_20240301.nc",
                sha="b" * 64,
                version="202311",
            ),
            # 4: unique
            _row("l4_sst", DAY1, "SOUTH_INDIAN", T1),
            # 5: same relative_path as 8, processed later than 8 -> kept
            _row("l4_sst", DAY2, "SOUTH_INDIAN", T1),
            # 6: l4_sss, tie on processed_at with 9, which comes later -> dropped
            _row("l4_sss", DAY2, "NORTH_PACIFIC_EAST", T2),
            # 7: original-pipeline row: no output_id (derived l3_sss_asc.nc), no processed_at -> dropped
            _row("l3_sss_smos_asc", DAY2, "NORTH_ATLANTIC", None, output_id=None),
            # 8: same relative_path as 5, older -> dropped
            _row("l4_sst", DAY2, "SOUTH_INDIAN", T0),
            # 9: tie with 6, later in the inventory -> kept; its path sorts before 6's in the report
            _row(
                "l4_sss",
                DAY2,
                "NORTH_PACIFIC_EAST",
                T2,
                path="l4_sss/a_rerun/l4_sss_NORTH_PACIFIC_EAST_20240302.nc",
            ),
            # 10: same slot and path as 7, has a processed_at (7 has none) -> kept
            _row("l3_sss_smos_asc", DAY2, "NORTH_ATLANTIC", T0),
            # 11, 12: argo, both without output_id and processed_at -> the later one (12) is kept
            _row("argo", DAY2, "SOUTH_INDIAN", None, output_id=""),
            _row(
                "argo",
                DAY2,
                "SOUTH_INDIAN",
                None,
                output_id=None,
                path="argo/argo_SOUTH_INDIAN_20240302_v2.nc",
            ),
            # 13: a third l4_ssh row for the slot of 0, older than 0 -> dropped
            _row("l4_ssh", DAY1, "NORTH_ATLANTIC", T0, path="l4_ssh_v2/l4_ssh_NORTH_ATLANTIC_20240301.nc"),
        ]
    )


# Report order (date, region, sample_id, relative_path), worked out by hand:
#   2024-03-01 NORTH_ATLANTIC     l4_ssh.nc     "l4_ssh/..." < "l4_ssh_nrt/..." < "l4_ssh_v2/..."  -> 0, 3, 13
#   2024-03-02 NORTH_ATLANTIC     l3_sss_asc.nc identical paths, inventory order              -> 7, 10
#   2024-03-02 NORTH_PACIFIC_EAST l4_sss.nc     "l4_sss/a_rerun/..." < "l4_sss/l4_sss_..."    -> 9, 6
#   2024-03-02 SOUTH_INDIAN       argo.nc       "..._20240302.nc" < "..._20240302_v2.nc"      -> 11, 12
#   2024-03-02 SOUTH_INDIAN       l4_sst.nc     identical paths, inventory order              -> 5, 8
REPORT_POSITIONS = [0, 3, 13, 7, 10, 9, 6, 11, 12, 5, 8]
REPORT_KEEP = [True, False, False, False, True, True, False, False, True, True, False]
DROPPED = [3, 6, 7, 8, 11, 13]
KEPT = [0, 1, 2, 4, 5, 9, 10, 12]


def test_counts_and_duplicated_ids() -> None:
    analysis = analyze(mixed_inventory(), CATALOG)
    assert analysis.rows_total == 14
    assert analysis.rows_involved == 11
    assert analysis.collisions == 5
    assert analysis.has_duplicates
    assert analysis.duplicated_ids == (
        ("l4_ssh.nc", 3),
        ("argo.nc", 2),
        ("l3_sss_asc.nc", 2),
        ("l4_sss.nc", 2),
        ("l4_sst.nc", 2),
    )


def test_report_columns_order_and_keep() -> None:
    inventory = mixed_inventory()
    report = analyze(inventory, CATALOG).report
    assert list(report.columns) == REPORT_COLUMNS
    assert list(report.index) == list(range(11))
    assert report["relative_path"].tolist() == inventory["relative_path"][REPORT_POSITIONS].tolist()
    assert report["sha256"].tolist() == inventory["sha256"][REPORT_POSITIONS].tolist()
    assert report["keep"].tolist() == REPORT_KEEP
    assert report["date"].tolist() == ["2024-03-01"] * 3 + ["2024-03-02"] * 8
    assert (
        report["region"].tolist()
        == ["NORTH_ATLANTIC"] * 5 + ["NORTH_PACIFIC_EAST"] * 2 + ["SOUTH_INDIAN"] * 4
    )
    assert report["sample_id"].tolist() == (
        ["l4_ssh.nc"] * 3 + ["l3_sss_asc.nc"] * 2 + ["l4_sss.nc"] * 2 + ["argo.nc"] * 2 + ["l4_sst.nc"] * 2
    )
    # the MY/NRT pair: the MY row (processed T1) wins over the later-appended NRT row (T0)
    assert report.loc[0, ["sha256", "keep"]].tolist() == ["a" * 64, True]
    assert report.loc[1, ["sha256", "dataset_version", "keep"]].tolist() == ["b" * 64, "202311", False]
    assert report.loc[0, "processed_at"] == pd.Timestamp(T1)
    assert pd.isna(report.loc[3, "processed_at"])
    assert report.loc[0, "timestamp_file"] == pd.Timestamp(DAY1)
    assert report.loc[0, ["data_source", "variable", "sensor"]].tolist() == [
        CATALOG["l4_ssh"].data_source,
        CATALOG["l4_ssh"].variable,
        CATALOG["l4_ssh"].sensor,
    ]
    # SMOS asc/desc of DAY1 are distinct slots: neither is in the report
    assert not set(inventory["relative_path"][[1, 2]]) & set(report["relative_path"])


def test_sample_id_falls_back_to_the_catalog_then_to_the_original_rule() -> None:
    inventory = mixed_inventory()
    ids = sample_ids(inventory, CATALOG)
    assert ids[7] == "l3_sss_asc.nc"  # output_id null, data_source l3_sss_smos_asc
    assert ids[11] == ids[12] == "argo.nc"  # empty / null output_id
    assert ids[1] == "l3_sss_asc.nc" and ids[2] == "l3_sss_desc.nc"
    unknown = inventory.iloc[[7]].assign(data_source="l2_future")
    assert sample_ids(unknown, CATALOG).tolist() == ["l2_future.nc"]


def test_resolve_keeps_the_newest_and_returns_the_dropped_rows() -> None:
    inventory = mixed_inventory()
    kept, dropped = resolve(inventory, CATALOG)
    assert list(kept.columns) == list(inventory.columns)
    assert list(kept.index) == list(range(len(KEPT)))
    assert kept["relative_path"].tolist() == inventory["relative_path"][KEPT].tolist()
    assert kept["sha256"].tolist() == inventory["sha256"][KEPT].tolist()
    assert list(dropped.index) == DROPPED
    assert dropped.equals(inventory.loc[DROPPED])
    assert not analyze(kept, CATALOG).has_duplicates
    require_unique(kept, CATALOG)


def test_without_processing_times_the_last_row_wins() -> None:
    rows = [
        _row("glorys", DAY1, "SOUTH_ATLANTIC", None, sha="1" * 64),
        _row("glorys", DAY1, "SOUTH_ATLANTIC", None, sha="2" * 64),
        _row("glorys", DAY1, "SOUTH_ATLANTIC", None, sha="3" * 64),
    ]
    kept, dropped = resolve(_inventory(rows), CATALOG)
    assert kept["sha256"].tolist() == ["3" * 64]
    assert list(dropped.index) == [0, 1]


def test_same_path_in_two_slots_is_one_collision() -> None:
    """An inconsistent inventory: a path listed under two regions is still one file, hence one group."""
    path = "l4_sst/l4_sst_SOUTH_INDIAN_20240301.nc"
    rows = [
        _row("l4_sst", DAY1, "SOUTH_INDIAN", T0, path=path),
        _row("l4_sst", DAY1, "SOUTH_ATLANTIC", T1, path=path),
        _row("l4_sst", DAY1, "SOUTH_ATLANTIC", T0),  # same slot as row 1, different path: same group
    ]
    analysis = analyze(_inventory(rows), CATALOG)
    assert (analysis.collisions, analysis.rows_involved) == (1, 3)
    # SOUTH_ATLANTIC first (rows 2 then 1: "..._SOUTH_ATLANTIC_..." < "..._SOUTH_INDIAN_..."), then row 0
    assert analysis.report["relative_path"].tolist() == [
        "l4_sst/l4_sst_SOUTH_ATLANTIC_20240301.nc",
        path,
        path,
    ]
    assert analysis.report["keep"].tolist() == [False, True, False]


def test_a_clean_inventory_has_no_duplicates() -> None:
    clean = _inventory(
        [
            _row("l3_sss_smos_asc", DAY1, "NORTH_ATLANTIC", T0),
            _row("l3_sss_smos_desc", DAY1, "NORTH_ATLANTIC", T0),
            _row("l3_sss_smos_asc", DAY2, "NORTH_ATLANTIC", T0),
            _row("l3_sss_smos_asc", DAY1, "NORTH_INDIAN", T0),
        ]
    )
    analysis = analyze(clean, CATALOG)
    assert (analysis.rows_total, analysis.rows_involved, analysis.collisions) == (4, 0, 0)
    assert analysis.duplicated_ids == ()
    assert list(analysis.report.columns) == REPORT_COLUMNS and analysis.report.empty
    assert "No duplicates" in analysis.summary()
    require_unique(clean, CATALOG)
    kept, dropped = resolve(clean, CATALOG)
    assert kept.equals(clean) and dropped.empty


def test_empty_inventory() -> None:
    empty = SCHEMA.empty_table().to_pandas()
    analysis = analyze(empty, CATALOG)
    assert (analysis.rows_total, analysis.collisions) == (0, 0)
    require_unique(empty, CATALOG)


def test_require_unique_names_the_collisions_and_the_fix() -> None:
    with pytest.raises(UnresolvedDuplicatesError) as caught:
        require_unique(mixed_inventory(), CATALOG)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "5 slot(s)" in message and "11 rows" in message
    assert "2024-03-01 NORTH_ATLANTIC l4_ssh.nc (3 rows)" in message  # the biggest collision first
    assert "2024-03-02 NORTH_ATLANTIC l3_sss_asc.nc (2 rows)" in message
    assert "and 2 more" in message
    assert "pass --resolve-duplicates newest (newest processing time wins) or fix the inventory" in message
    assert caught.value.analysis is not None and caught.value.analysis.collisions == 5


def test_summary_lists_counts_ids_and_paths() -> None:
    text = analyze(mixed_inventory(), CATALOG).summary()
    assert "11 of 14 inventory rows" in text and "5 colliding slot(s)" in text
    assert "l4_ssh.nc (3 rows), argo.nc (2 rows)" in text
    lines = text.splitlines()
    start = lines.index("  2024-03-01 NORTH_ATLANTIC l4_ssh.nc (3 rows)")
    assert lines[start + 1].startswith("    keep  l4_ssh/l4_ssh_NORTH_ATLANTIC_20240301.nc")
    assert lines[start + 2].startswith("    drop  l4_ssh_nrt/l4_ssh_NORTH_ATLANTIC_20240301.nc")
    assert (
        "    drop  l3_sss_smos_asc/l3_sss_smos_asc_NORTH_ATLANTIC_20240302.nc  (processed_at unknown)"
        in lines
    )


def test_summary_lists_at_most_twenty_collisions() -> None:
    days = [DAY1 + dt.timedelta(days=i) for i in range(25)]
    rows = [_row("l4_wind", day, "NORTH_ATLANTIC", t) for day in days for t in (T0, T1)]
    text = analyze(_inventory(rows), CATALOG).summary()
    assert sum(line.startswith("  2024-") for line in text.splitlines()) == 20
    assert "... and 5 more" in text


@pytest.mark.parametrize("as_storage", [False, True])
def test_report_written_locally_reads_back(tmp_path: Path, as_storage: bool) -> None:
    analysis = analyze(mixed_inventory(), CATALOG)
    if as_storage:
        result = write_report(analysis, Storage(str(tmp_path / "out")), "reports/duplicates.parquet")
        path = tmp_path / "out" / "reports" / "duplicates.parquet"
    else:
        path = tmp_path / "reports" / "duplicates.parquet"
        result = write_report(analysis, str(path))
    assert result.size == path.stat().st_size
    back = pd.read_parquet(path)
    assert list(back.columns) == REPORT_COLUMNS
    assert back["relative_path"].tolist() == mixed_inventory()["relative_path"][REPORT_POSITIONS].tolist()
    assert back["keep"].tolist() == REPORT_KEEP
    assert back["date"].tolist()[:3] == ["2024-03-01"] * 3
    assert back.loc[0, "processed_at"] == pd.Timestamp(T1)


def _parquet_without(frame: pd.DataFrame, *dropped: str) -> bytes:
    """Parquet bytes of an inventory written before ``dropped`` columns existed."""
    schema = pa.schema([f for f in SCHEMA if f.name not in dropped])
    table = pa.Table.from_pandas(frame.drop(columns=list(dropped)), schema=schema, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def test_an_older_inventory_without_processed_at_reads_and_compacts(tmp_path: Path) -> None:
    formatted = Storage(str(tmp_path))
    old = _inventory(
        [_row("l4_ssh", DAY1, "NORTH_ATLANTIC", None), _row("l3_sss_smos_asc", DAY1, "NORTH_ATLANTIC", None)]
    )
    formatted.write_bytes(INVENTORY_NAME, _parquet_without(old, "processed_at", "output_id"))
    inventory = read_inventory(formatted)
    assert str(inventory["processed_at"].dtype) == "datetime64[us, UTC]"
    assert inventory["processed_at"].isna().all() and inventory["output_id"].isna().all()
    assert not analyze(inventory, CATALOG).has_duplicates

    # an old fragment (no processed_at) and a new one (with it) compact together with the old inventory
    sst = CATALOG["l4_sst"]
    formatted.write_bytes(
        f"l4_sst/l4_sst_{DAY1:%Y%m%d}.inventory.parquet",
        _parquet_without(_inventory([_row("l4_sst", DAY1, "SOUTH_INDIAN", None)]), "processed_at"),
    )
    sss = CATALOG["l4_sss"]
    write_fragment(formatted, sss, DAY1, [_row("l4_sss", DAY1, "SOUTH_INDIAN", T2)])
    merged = compact(formatted, [sst, sss], [DAY1])
    by_source = dict(zip(merged["data_source"], merged["processed_at"], strict=True))
    assert by_source["l4_sss"] == pd.Timestamp(T2)
    assert pd.isna(by_source["l4_ssh"]) and pd.isna(by_source["l4_sst"])
    assert read_inventory(formatted).equals(merged)


def test_the_format_step_records_one_processing_time_per_product_day(tmp_path: Path) -> None:
    ssh, day = CATALOG["l4_ssh"], dt.date(2024, 1, 31)
    version_dir = (
        "l4_ssh/SEALEVEL_GLO_PHY_L4_MY_008_047/"
        "cmems_obs-sl_glo_phy-ssh_my_allsat-l4-duacs-0.125deg_P1D_202411"
    )
    target = (
        tmp_path / "raw" / version_dir / f"{day:%Y/%m}" / f"dt_global_allsat_phy_l4_{day:%Y%m%d}_20241120.nc"
    )
    target.parent.mkdir(parents=True)
    shutil.copy(write_duacs_l4(tmp_path / "a.nc", day, dt.date(2024, 11, 20), resolution=2.0), target)
    raw, formatted = Storage(str(tmp_path / "raw")), Storage(str(tmp_path / "formatted"))

    before = pd.Timestamp.now(tz="UTC")
    assert format_product_day(ssh, day, raw, formatted, Settings()).status == "formatted"
    after = pd.Timestamp.now(tz="UTC")
    first = read_fragment(formatted, ssh, day)["processed_at"]
    assert len(first) == 8 and first.nunique() == 1
    assert before <= first[0] <= after

    assert format_product_day(ssh, day, raw, formatted, Settings(), force=True).status == "formatted"
    second = read_fragment(formatted, ssh, day)["processed_at"]
    assert second.nunique() == 1 and second[0] > first[0]
