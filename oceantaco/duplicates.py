"""Duplicate analysis of the inventory, and the rule that resolves duplicates.

A TACO holds exactly one payload per slot: (day, region, sample id). Two inventory rows for one slot would
put two files under one id (the original pipeline's builder then silently truncated or collided), so the
build must either refuse such an inventory or drop all but one row per slot by an explicit rule. Duplicates
arise from re-runs that appended instead of replacing (the original's SMOS ``--update-existing-inventory``
bug), from an NRT and an MY run of the same day, or from merged inventories.

- A *slot* is (day of ``timestamp_file``, ``region``, sample id). The sample id is the row's ``output_id``
  (``l3_sss_asc.nc``); inventories of the original pipeline have no ``output_id``, so it is derived from
  ``data_source`` through the catalog, and for a ``data_source`` the catalog does not know, by the
  original's rule ``<data_source>.nc``.
- Rows with the same ``relative_path`` describe one file and are duplicates as well (the only kind the
  original removed). Both relations are combined: rows linked by either one form one *collision group*.
  In a consistent inventory a path determines its slot, so a group is simply one slot.
- Resolution, "newest processing time wins": per group the row with the greatest ``processed_at`` is
  kept. A missing ``processed_at`` counts as older than any recorded one (the row was written before the
  column existed). Among rows equal on that (ties, or all missing) the row that comes last in the inventory
  is kept: it was appended later (``inventory.compact`` appends new rows after old ones and sorts stably).

Everything here is a pure function of an inventory DataFrame; only ``write_report`` touches storage.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from oceantaco.catalog import Catalog, load_catalog
from oceantaco.storage import Storage, WriteResult

# The original report's columns and order (anchor study §4), then ours. ``date`` is an ISO string
# (``YYYY-MM-DD``): it sorts like the date, and reads back from parquet/CSV as the same value everywhere.
ORIGINAL_REPORT_COLUMNS = [
    "date",
    "region",
    "sample_id",
    "data_source",
    "variable",
    "relative_path",
    "timestamp_file",
    "sensor",
]
REPORT_COLUMNS = [*ORIGINAL_REPORT_COLUMNS, "processed_at", "sha256", "dataset_version", "keep"]
REPORT_SORT = ["date", "region", "sample_id", "relative_path"]
RESOLUTION_RULES = ("newest",)  # the value of --resolve-duplicates
_TOP = 20  # collisions listed by summary(), as the original printed
_FIX = "pass --resolve-duplicates newest (newest processing time wins) or fix the inventory"


@dataclass(frozen=True, eq=False)
class DuplicateAnalysis:
    """Result of ``analyze``. ``report`` holds every row involved in a collision, and only those."""

    rows_total: int  # rows of the analysed inventory
    rows_involved: int  # rows in a collision group of more than one row
    collisions: int  # collision groups (slots) holding more than one row
    duplicated_ids: tuple[tuple[str, int], ...]  # (sample id, rows involved), most rows first, then by id
    report: pd.DataFrame  # exactly REPORT_COLUMNS, sorted by REPORT_SORT, fresh index
    group_ids: np.ndarray  # collision group number of each report row (same order as ``report``)

    @property
    def has_duplicates(self) -> bool:
        return self.collisions > 0

    def top_collisions(self, n: int = _TOP) -> list[pd.DataFrame]:
        """The ``n`` largest collision groups (their report rows), biggest first, then in report order."""
        if not self.collisions:
            return []
        groups = [group for _, group in self.report.groupby(self.group_ids, sort=False)]
        groups.sort(key=len, reverse=True)  # stable: equal sizes stay in report (date, region, id) order
        return groups[:n]

    def summary(self) -> str:
        """Readable multi-line text for the CLI: counts, duplicated ids, the top 20 collisions."""
        if not self.has_duplicates:
            return (
                f"No duplicates: every (day, region, sample id) slot holds one row ({self.rows_total} rows)."
            )
        lines = [
            f"Duplicates: {self.rows_involved} of {self.rows_total} inventory rows are involved in "
            f"{self.collisions} colliding slot(s) (same day, region and sample id, or same relative_path).",
            "Duplicated sample ids: "
            + ", ".join(f"{sid} ({count} rows)" for sid, count in self.duplicated_ids),
            f"Top {min(_TOP, self.collisions)} collision(s); 'keep' marks the row that "
            "'newest processing time wins' keeps:",
        ]
        for group in self.top_collisions():
            first = group.iloc[0]
            lines.append(f"  {first['date']} {first['region']} {first['sample_id']} ({len(group)} rows)")
            for row in group.itertuples(index=False):
                when = (
                    "processed_at unknown" if pd.isna(row.processed_at) else f"processed {row.processed_at}"
                )
                lines.append(f"    {'keep' if row.keep else 'drop'}  {row.relative_path}  ({when})")
        if self.collisions > _TOP:
            lines.append(f"  ... and {self.collisions - _TOP} more; write the report for the full list")
        return "\n".join(lines)


class UnresolvedDuplicatesError(ValueError):
    """The inventory has colliding slots and no resolution rule was chosen.

    Takes a plain message so it survives pickling (task runners ship exceptions between processes); the
    analysis, when known, is kept on ``.analysis`` for callers that want to write the report.
    """

    def __init__(self, message: str, analysis: DuplicateAnalysis | None = None) -> None:
        super().__init__(message)
        self.analysis = analysis

    @classmethod
    def from_analysis(cls, analysis: DuplicateAnalysis, examples: int = 3) -> UnresolvedDuplicatesError:
        named = [
            f"{g.iloc[0]['date']} {g.iloc[0]['region']} {g.iloc[0]['sample_id']} ({len(g)} rows)"
            for g in analysis.top_collisions(examples)
        ]
        more = f" and {analysis.collisions - len(named)} more" if analysis.collisions > len(named) else ""
        return cls(
            f"the inventory has duplicates: {analysis.collisions} slot(s) hold more than one tile "
            f"({analysis.rows_involved} rows), e.g. {'; '.join(named)}{more}. To build anyway, {_FIX}.",
            analysis,
        )


def sample_ids(inventory: pd.DataFrame, catalog: Catalog | None = None) -> pd.Series:
    """Sample id of each row: ``output_id``, else derived from ``data_source`` (catalog, else ``<ds>.nc``)."""
    catalog = catalog or load_catalog()
    by_source = {p.data_source: p.output_id for p in catalog.products.values()}
    given = _column(inventory, "output_id")
    derived = inventory["data_source"].map(lambda ds: by_source.get(ds, f"{ds}.nc"))
    missing = given.fillna("").astype(str).str.strip().eq("")
    return given.where(~missing, derived).astype(object)


def analyze(inventory: pd.DataFrame, catalog: Catalog | None = None) -> DuplicateAnalysis:
    """Find every collision group in ``inventory`` and mark the row the resolution rule keeps."""
    frame = _annotated(inventory, catalog)
    involved = frame[frame["_size"] > 1].sort_values([*REPORT_SORT, "_position"], na_position="last")
    ranked = sorted(involved["sample_id"].value_counts().items(), key=lambda item: (-item[1], item[0]))
    return DuplicateAnalysis(
        rows_total=len(frame),
        rows_involved=len(involved),
        collisions=int(involved["_group"].nunique()),
        duplicated_ids=tuple((str(sid), int(count)) for sid, count in ranked),
        report=involved[REPORT_COLUMNS].reset_index(drop=True),
        group_ids=involved["_group"].to_numpy(),
    )


def resolve(inventory: pd.DataFrame, catalog: Catalog | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply "newest processing time wins": (inventory without the losers, the dropped rows).

    The kept inventory has the input's columns and row order with a fresh index; the dropped rows keep
    their original index labels so a caller can say where they were.
    """
    keep = _annotated(inventory, catalog)["keep"].to_numpy()
    return inventory[keep].reset_index(drop=True), inventory[~keep]


def require_unique(inventory: pd.DataFrame, catalog: Catalog | None = None) -> None:
    """Raise ``UnresolvedDuplicatesError`` when any slot holds more than one row."""
    analysis = analyze(inventory, catalog)
    if analysis.has_duplicates:
        raise UnresolvedDuplicatesError.from_analysis(analysis)


def write_report(analysis: DuplicateAnalysis, target: Storage | str, key: str | None = None) -> WriteResult:
    """Write the report as parquet, atomically, through ``Storage`` (local paths and bucket URLs alike).

    ``target`` is a Storage plus ``key``, or, without ``key``, the full path/URL of the report file.
    """
    if key is None:
        if isinstance(target, Storage):
            raise ValueError("write_report: a key is needed with a Storage target")
        parent, _, key = str(target).rstrip("/").rpartition("/")
        target = parent or "."
    storage = target if isinstance(target, Storage) else Storage(target)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(analysis.report, preserve_index=False), buffer)
    return storage.write_bytes(key, buffer.getvalue())


def _column(inventory: pd.DataFrame, name: str) -> pd.Series:
    """A column, or all-null when an older inventory lacks it."""
    if name in inventory.columns:
        return inventory[name]
    return pd.Series([None] * len(inventory), index=inventory.index, dtype=object)


def _dates(inventory: pd.DataFrame) -> pd.Series:
    """ISO day of each row from ``timestamp_file``, falling back to ``date_str`` (YYYYMMDD) where null."""
    stamps = pd.to_datetime(_column(inventory, "timestamp_file"))
    fallback = pd.to_datetime(_column(inventory, "date_str"), format="%Y%m%d", errors="coerce")
    return stamps.fillna(fallback).dt.strftime("%Y-%m-%d").astype(object)


def _annotated(inventory: pd.DataFrame, catalog: Catalog | None) -> pd.DataFrame:
    """The report columns for every row (RangeIndex), plus ``_position``, ``_group`` and ``_size``.

    Groups are the connected components of "same slot" and "same relative_path", found by propagating the
    smallest slot number through both relations until nothing changes (one or two rounds in practice).
    """
    rows = inventory.reset_index(drop=True)
    frame = pd.DataFrame({"date": _dates(rows), "region": _column(rows, "region")})
    frame["sample_id"] = sample_ids(rows, catalog)
    for name in REPORT_COLUMNS[3:-1]:
        frame[name] = _column(rows, name)
    frame["processed_at"] = pd.to_datetime(frame["processed_at"], utc=True)
    frame["_position"] = np.arange(len(frame))

    slot = frame.groupby(["date", "region", "sample_id"], dropna=False, sort=False).ngroup().to_numpy()
    # A null path links nothing: each such row gets a key of its own.
    paths = frame["relative_path"].where(
        frame["relative_path"].notna(), "\0row" + frame["_position"].astype(str)
    )
    path = paths.groupby(paths, sort=False).ngroup().to_numpy()
    group = slot
    while True:
        linked = pd.Series(group).groupby(path).transform("min").groupby(slot).transform("min").to_numpy()
        if np.array_equal(linked, group):
            break
        group = linked
    frame["_group"] = group
    frame["_size"] = frame.groupby("_group")["_group"].transform("size")

    # Newest processed_at last (missing = oldest), then later inventory position last: the last row wins.
    ranked = frame.sort_values(["_group", "processed_at", "_position"], na_position="first")
    winners = ranked.groupby("_group", sort=False).tail(1)["_position"].to_numpy()
    frame["keep"] = np.isin(frame["_position"].to_numpy(), winners)
    return frame
