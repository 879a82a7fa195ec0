"""AVISO (SWOT KaRIn swaths): the raw layout of the original pipeline, and which passes make a day.

The original pipeline keeps SWOT passes flat in ``l3_swot/`` (``--swot-level l3``) or ``l2_swot/``
(``--swot-level l2``). A pass file names its first and last measurement times, so the passes of a day are
those whose [start, end] intersects it: a pass crossing midnight serves both days, and the loader keeps
each observation in the day of its own time. Downloading over FTP comes with the AVISO provider's
transport (not implemented yet).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from oceantaco.catalog import Product
from oceantaco.providers import DayPlan, register
from oceantaco.settings import Settings
from oceantaco.storage import Storage

L2_RAW_DIR = "l2_swot"
PASS_FILE = re.compile(
    r"SWOT_(?P<kind>L3_LR_SSH_(?:Basic|Expert)|L2_LR_SSH_Basic)_(?P<cycle>\d{3})_(?P<pass>\d{3})_"
    r"(?P<start>\d{8}T\d{6})_(?P<end>\d{8}T\d{6})_(?P<version>v\d+\.\d+\.\d+|[A-Z]{2}\w\d_\d{2})\.nc"
)
# Among files of one pass: L3 before L2, Expert (it carries the quality flag) before Basic.
_KIND_RANK = {"L3_LR_SSH_Expert": 0, "L3_LR_SSH_Basic": 1, "L2_LR_SSH_Basic": 2}


@dataclass(frozen=True)
class PassFile:
    key: str
    kind: str
    cycle: int
    pass_number: int
    start: dt.datetime
    end: dt.datetime
    version: str

    @classmethod
    def parse(cls, key: str) -> PassFile | None:
        found = PASS_FILE.fullmatch(key.rsplit("/", 1)[-1])
        if found is None:
            return None
        stamp = "%Y%m%dT%H%M%S"
        return cls(
            key,
            found["kind"],
            int(found["cycle"]),
            int(found["pass"]),
            dt.datetime.strptime(found["start"], stamp),
            dt.datetime.strptime(found["end"], stamp),
            found["version"],
        )

    def overlaps(self, day: dt.date) -> bool:
        start = dt.datetime.combine(day, dt.time())
        return self.start < start + dt.timedelta(days=1) and self.end >= start

    @property
    def preference(self) -> tuple:
        """Sort key: the best file of a pass sorts last (kind, then the newest version)."""
        numbers = tuple(int(n) for n in re.findall(r"\d+", self.version))
        return (-_KIND_RANK[self.kind], numbers)


def passes_for_day(keys: list[str], day: dt.date) -> list[PassFile]:
    """One file per (cycle, pass) overlapping ``day``: the preferred kind and newest version."""
    best: dict[tuple[int, int], PassFile] = {}
    for key in keys:
        found = PassFile.parse(key)
        if found is None or not found.overlaps(day):
            continue
        current = best.get((found.cycle, found.pass_number))
        if current is None or found.preference > current.preference:
            best[(found.cycle, found.pass_number)] = found
    return sorted(best.values(), key=lambda p: (p.start, p.cycle, p.pass_number))


@register
class Aviso:
    name = "aviso"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def source(self) -> Storage:
        raise NotImplementedError("SWOT downloads from the AVISO FTP server are not implemented yet")

    def plan(self, product: Product, days: list[dt.date]) -> list[DayPlan]:
        raise NotImplementedError("SWOT downloads from the AVISO FTP server are not implemented yet")

    def raw_inputs(self, product: Product, day: dt.date, raw: Storage) -> list[str]:
        keys = [*raw.list(product.raw_dir), *raw.list(L2_RAW_DIR)]
        return [p.key for p in passes_for_day(keys, day)]
