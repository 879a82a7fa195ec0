"""Typed view of ``catalog.toml``, the one place that knows about upstream products.

Code asks the catalog (which dataset covers a day, how a variable is encoded, where raw files live)
instead of matching substrings of product or variable names.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Tiling = Literal["grid", "along_track", "swath", "points"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VariableEncoding(_Frozen):
    """How one output variable is stored: dtype, CF packing, fill, and the physically valid range."""

    dtype: Literal["int8", "int16", "int32", "float32", "float64"]
    scale_factor: float | None = None
    add_offset: float | None = None
    fill_value: float
    valid_min: float
    valid_max: float
    units: str
    long_name: str
    standard_name: str | None = None
    required: bool = False
    source: str | None = None
    statistic: Literal["mean", "std", "min", "max"] | None = None
    depth_m: float | None = None

    @model_validator(mode="after")
    def _range_fits_dtype(self) -> VariableEncoding:
        """A valid value must never wrap on cast: the packed valid range has to fit the integer type."""
        if self.dtype.startswith("int"):
            bits = int(self.dtype[3:])
            lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
            packed = [self.pack_scalar(v) for v in (self.valid_min, self.valid_max)]
            if (
                min(packed) < lo
                or max(packed) > hi
                or (lo <= self.fill_value <= hi and (min(packed) <= self.fill_value <= max(packed)))
            ):
                raise ValueError(
                    f"valid range [{self.valid_min}, {self.valid_max}] packs to {packed}, which does not fit "
                    f"{self.dtype} without touching the fill value {self.fill_value}"
                )
        return self

    def pack_scalar(self, value: float) -> float:
        scale = self.scale_factor or 1.0
        offset = self.add_offset or 0.0
        return round((value - offset) / scale)


class Dataset(_Frozen):
    """One upstream dataset and the days it is the source for (inclusive window, open end allowed)."""

    product_id: str
    dataset_id: str
    start: dt.date
    end: dt.date | None = None
    pattern: str

    def covers(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def file_regex(self, day: dt.date) -> re.Pattern[str]:
        """Regex matching the raw file name(s) of ``day``, and no other day."""
        return re.compile(self.pattern.replace("{date}", day.strftime("%Y%m%d")) + r"\Z")

    @property
    def dataset_family(self) -> str:
        """``nrt`` for near-real-time datasets, ``my`` for multi-year/reprocessed ones."""
        # From the dataset id alone: product ids such as MULTIOBS_..._MYNRT_... hold both families.
        return "nrt" if re.search(r"(^|[_-])nrt([_-]|$)", self.dataset_id, re.IGNORECASE) else "my"


class Product(_Frozen):
    token: str
    output_id: str
    data_source: str
    variable: str
    sensor: str
    modality: Literal["model", "satellite", "in_situ"]
    provider: Literal["cmems", "aviso", "argo_gdac"]
    raw_dir: str
    tiling: Tiling
    resolution_deg: float | None = None
    resolution_km: float | None = None
    format_cpu_seconds: float
    format_peak_rss_mb: float
    files_per_day: int = 1
    daily_input: str | None = None
    depth_tolerance_m: float | None = None
    satellite_pass: str | None = None
    max_pressure_dbar: float | None = None
    good_qc: tuple[str, ...] = ()
    datasets: tuple[Dataset, ...]
    variables: dict[str, VariableEncoding] = Field(default_factory=dict)

    def datasets_for(self, day: dt.date) -> tuple[Dataset, ...]:
        """Datasets that are the source of ``day`` (several for per-satellite products)."""
        return tuple(d for d in self.datasets if d.covers(day))

    def dataset_for(self, day: dt.date) -> Dataset:
        found = self.datasets_for(day)
        if not found:
            windows = ", ".join(f"{d.dataset_id} {d.start}..{d.end or 'open'}" for d in self.datasets)
            raise ValueError(f"{self.token}: no upstream dataset covers {day} (windows: {windows})")
        return found[0]

    @property
    def tile_stem(self) -> str:
        return self.output_id.removesuffix(".nc")

    @property
    def placeholder_id(self) -> str:
        """TACO id of the empty slot standing for a missing tile; never matches a reader's ``<id>.nc``."""
        return f"{self.tile_stem}.missing"

    def tile_key(self, region: str, day: dt.date) -> str:
        """Key of a formatted tile relative to the formatted root (the published layout)."""
        return f"{self.data_source}/{self.data_source}_{region}_{day:%Y%m%d}.nc"

    def daily_input_name(self, day: dt.date) -> str | None:
        """File name of the original pipeline's aggregated daily file for ``day``, if the product has one."""
        return self.daily_input.replace("{date}", f"{day:%Y%m%d}") if self.daily_input else None

    def required_variables(self) -> list[str]:
        return [name for name, enc in self.variables.items() if enc.required]


class Catalog(_Frozen):
    slot_order: tuple[str, ...]
    products: dict[str, Product]

    @model_validator(mode="after")
    def _slots_cover_products(self) -> Catalog:
        if sorted(self.slot_order) != sorted(self.products):
            raise ValueError("slot_order must list every product exactly once")
        return self

    def __getitem__(self, token: str) -> Product:
        try:
            return self.products[token]
        except KeyError:
            raise KeyError(f"unknown product {token!r}; known: {', '.join(self.slot_order)}") from None

    def ordered(self) -> list[Product]:
        """Products in TACO slot order (the same order in every region of every day)."""
        return [self.products[t] for t in self.slot_order]

    def resolve(self, names: list[str] | tuple[str, ...]) -> list[Product]:
        """Products from tokens, output ids or raw folders, in slot order.

        ``l4_ssh``, ``l4_ssh.nc`` and ``l4_ssh`` name one product; a raw folder shared by several products
        (``l3_sss_smos``, the original pipeline's processor name) names all of them.
        """
        by_alias: dict[str, set[str]] = {}
        for product in self.products.values():
            for alias in (product.token, product.output_id, product.tile_stem, product.raw_dir):
                by_alias.setdefault(alias, set()).add(product.token)
        unknown = [n for n in names if n not in by_alias]
        if unknown:
            raise KeyError(f"unknown product(s) {', '.join(unknown)}; known: {', '.join(self.slot_order)}")
        wanted = set().union(*(by_alias[n] for n in names))
        return [p for p in self.ordered() if p.token in wanted]


def parse_catalog(text: str) -> Catalog:
    raw = tomllib.loads(text)
    products = {token: {"token": token, **spec} for token, spec in raw.get("products", {}).items()}
    return Catalog(slot_order=raw["slot_order"], products=products)


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package."""
    return parse_catalog(resources.files("oceantaco").joinpath("catalog.toml").read_text())
