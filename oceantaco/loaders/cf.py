"""CF decoding from a variable's own attributes, and the few unit conversions the catalog needs.

Loaders read variables undecoded (packed integers plus their attributes) so a tile decodes only its own
block, in float64, right before it is packed again: a global OSTIA field never exists as floats.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from oceantaco.loaders import InputError

_KELVIN = frozenset({"k", "kelvin", "kelvins", "degrees_k", "degree_k", "deg_k"})
_CELSIUS = frozenset(
    {"degree_celsius", "degrees_celsius", "celsius", "degc", "deg_c", "degrees_c", "degree_c"}
)
_ZERO_CELSIUS_IN_KELVIN = 273.15


@dataclass(frozen=True)
class Packing:
    """How a variable is stored: scale, offset, the stored values that mean "missing", signedness."""

    scale: float = 1.0
    offset: float = 0.0
    missing: tuple[float, ...] = ()
    unsigned: bool = False

    @classmethod
    def of(cls, attrs: Mapping) -> Packing:
        missing = tuple(
            float(v)
            for key in ("_FillValue", "missing_value")
            if key in attrs
            for v in np.atleast_1d(attrs[key])
        )
        return cls(
            scale=float(np.asarray(attrs.get("scale_factor", 1.0)).ravel()[0]),
            offset=float(np.asarray(attrs.get("add_offset", 0.0)).ravel()[0]),
            missing=missing,
            unsigned=str(attrs.get("_Unsigned", "")).lower() == "true",
        )

    def stored(self, raw: np.ndarray) -> np.ndarray:
        data = np.asarray(raw)
        if self.unsigned and data.dtype.kind == "i":
            return data.view(data.dtype.str.replace("i", "u"))
        return data

    def missing_mask(self, data: np.ndarray) -> np.ndarray:
        """Cells holding a fill or missing value (or NaN), compared in the stored type."""
        mask = np.isnan(data) if data.dtype.kind == "f" else np.zeros(data.shape, dtype=bool)
        for value in self.missing:
            mask |= data == np.asarray(value).astype(data.dtype)
        return mask

    def decode(self, raw: np.ndarray) -> np.ndarray:
        """Physical float64 values; missing cells are NaN."""
        data = self.stored(raw)
        values = np.multiply(data, self.scale, dtype=np.float64)
        if self.offset:
            values += self.offset
        values[self.missing_mask(data)] = np.nan
        return values


def decode(raw: np.ndarray, attrs: Mapping) -> np.ndarray:
    """Physical float64 values of a stored array from its CF attributes (fill, scale, offset, unsigned)."""
    return Packing.of(attrs).decode(raw)


def _unit_kind(units: str | None) -> str | None:
    key = (units or "").strip().lower().replace(" ", "_")
    if key in _KELVIN:
        return "kelvin"
    if key in _CELSIUS:
        return "celsius"
    return None


def convert_units(
    values: np.ndarray, source_units: str | None, target_units: str, *, name: str
) -> np.ndarray:
    """Values in ``target_units``; only temperature scales differ between upstream files and our tiles."""
    source, target = _unit_kind(source_units), _unit_kind(target_units)
    if source == target:
        return values
    if source == "kelvin" and target == "celsius":
        return values - _ZERO_CELSIUS_IN_KELVIN
    if source == "celsius" and target == "kelvin":
        return values + _ZERO_CELSIUS_IN_KELVIN
    if source is None and target is not None and source_units:
        raise InputError(f"{name}: units {source_units!r} cannot be converted to {target_units!r}")
    return values


_TIME_UNITS = re.compile(r"\s*(days|hours|minutes|seconds)\s+since\s+(.+?)\s*$", re.IGNORECASE)
_MICROSECONDS = {"days": 86_400_000_000, "hours": 3_600_000_000, "minutes": 60_000_000, "seconds": 1_000_000}


def decode_time(values: np.ndarray, units: str | None, *, name: str) -> np.ndarray:
    """CF ``<unit> since <reference>`` numbers (NaN = missing) -> datetime64[us] (NaT = missing)."""
    found = _TIME_UNITS.match(units or "")
    if found is None:
        raise InputError(f"{name}: time units {units!r} are not '<unit> since <date>'")
    reference = np.datetime64(pd.Timestamp(found.group(2).replace("UTC", "").strip()).tz_localize(None), "us")
    offsets = np.asarray(values, dtype=np.float64) * _MICROSECONDS[found.group(1).lower()]
    finite = np.isfinite(offsets)
    out = np.full(offsets.shape, np.datetime64("NaT"), dtype="datetime64[us]")
    out[finite] = reference + np.rint(offsets[finite]).astype(np.int64).astype("timedelta64[us]")
    return out
