"""Argo core profiles from a GDAC (https, ftp or a local folder; ``OCEANTACO_ARGO_GDAC``).

The raw area mirrors the GDAC tree (``argo/dac/<dac>/<wmo>/profiles/<file>``) and adds one small index per
day (``argo/index/YYYY/MM/argo_index_YYYYMMDD.csv``, the GDAC index rows of that day). The day index is
written after the day's profiles, so its presence means the day is complete.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Collection
from typing import BinaryIO

import pandas as pd

from oceantaco.catalog import Product
from oceantaco.providers import DayPlan, RemoteFile, is_transient, register, with_retries
from oceantaco.settings import Settings
from oceantaco.storage import Storage

# The compressed index is a quarter of the size; the real one holds about 3 million profiles.
INDEX_NAMES = ("ar_index_global_prof.txt.gz", "ar_index_global_prof.txt")
INDEX_CHUNK_ROWS = 500_000
INDEX_COLUMNS = [
    "file",
    "date",
    "latitude",
    "longitude",
    "ocean",
    "profiler_type",
    "institution",
    "date_update",
]
# Core profile files only: R/D prefix, optional trailing D for descending profiles (no B/S/M files).
CORE_FILE = re.compile(r"[RD]\d+_\d{3,4}D?\.nc")


def parse_index(
    stream: BinaryIO, *, gzip: bool = False, days: Collection[dt.date] | None = None
) -> pd.DataFrame:
    """GDAC profile index -> DataFrame of its rows (only those of ``days`` when given).

    Header lines start with '#' and missing values are empty fields. The file is read in chunks, so memory
    stays flat however large the index is.
    """
    wanted = None if days is None else {f"{d:%Y%m%d}" for d in days}
    chunks = pd.read_csv(
        stream,
        comment="#",
        dtype={"file": str, "date": str, "ocean": str, "institution": str, "date_update": str},
        compression="gzip" if gzip else None,
        chunksize=INDEX_CHUNK_ROWS,
    )
    kept = []
    for chunk in chunks:
        missing = set(INDEX_COLUMNS) - set(chunk.columns)
        if missing:
            raise ValueError(f"not an Argo profile index: columns {sorted(missing)} missing")
        kept.append(chunk if wanted is None else chunk[chunk["date"].str[:8].isin(wanted)])
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=INDEX_COLUMNS)


def day_index_key(product: Product, day: dt.date) -> str:
    return f"{product.raw_dir}/index/{day:%Y}/{day:%m}/argo_index_{day:%Y%m%d}.csv"


@register
class ArgoGDAC:
    name = "argo_gdac"

    def __init__(self, settings: Settings) -> None:
        self.source = Storage(settings.argo_gdac)

    def _read_index(self, days: list[dt.date]) -> pd.DataFrame:
        """The index rows of ``days``: the compressed index if the GDAC has one, else the plain one.

        Whether an index exists is decided by opening it inside the retries: a HEAD answered 503 reaches us
        as a FileNotFoundError too (fsspec's HTTP), and must be retried, not taken for a missing index.
        """

        def read() -> pd.DataFrame:
            for name in INDEX_NAMES:
                try:
                    stream = self.source.open_read(name)
                except FileNotFoundError as exc:
                    if is_transient(exc):
                        raise
                    continue
                with stream:
                    return parse_index(stream, gzip=name.endswith(".gz"), days=days)
            raise FileNotFoundError(f"no {' or '.join(INDEX_NAMES)} at the Argo GDAC {self.source.url}")

        return with_retries(read)[0]

    def plan(self, product: Product, days: list[dt.date]) -> list[DayPlan]:
        index = self._read_index(days)
        # astype(bool): an empty index maps to an object Series, which pandas would take as column labels
        is_core = index["file"].map(lambda f: bool(CORE_FILE.fullmatch(f.rsplit("/", 1)[-1]))).astype(bool)
        index = index[is_core].sort_values("file")
        index_day = index["date"].str[:8]
        plans = []
        for day in days:
            rows = index[index_day == f"{day:%Y%m%d}"]
            files = tuple(RemoteFile(f"dac/{f}", f"{product.raw_dir}/dac/{f}") for f in rows["file"])
            sidecar = rows.to_csv(index=False).encode()
            plans.append(DayPlan(product.token, day, files, {day_index_key(product, day): sidecar}))
        return plans

    def raw_inputs(self, product: Product, day: dt.date, raw: Storage) -> list[str]:
        """The day's raw files: its GDAC profile files, else the original pipeline's daily point file.

        The profile files are the ones the day's index sidecar lists (it is written once the day is
        complete). A day without any (no sidecar, or one listing no file) falls back to
        ``<raw_dir>/argo_YYYYMMDD.nc``, the point file the original download step wrote with argopy, when
        the raw area holds one. The two are never combined, as they describe the same measurements and
        every point would count twice; the profile files win because they hold more (real-time and
        adjusted profiles with all their flags, where argopy's research mode kept delayed-mode points only).
        """
        key = day_index_key(product, day)
        if raw.exists(key):
            rows = pd.read_csv(io.BytesIO(raw.read_bytes(key)), dtype={"file": str})
            if len(rows):
                return [f"{product.raw_dir}/dac/{f}" for f in rows["file"]]
        point_file = f"{product.raw_dir}/argo_{day:%Y%m%d}.nc"
        return [point_file] if raw.exists(point_file) else []
