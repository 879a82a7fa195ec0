"""CF decoding from a variable's own attributes, and the few unit conversions the catalog needs.

Loaders read variables undecoded (packed integers plus their attributes) so a tile decodes only its own
block, in float64, right before it is packed again: a global OSTIA field never exists as floats.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from oceantaco.loaders import InputError

_KELVIN = frozenset({"k", "kelvin", "kelvins", "degrees_k", "degree_k", "deg_k"})
_CELSIUS = frozenset(
    {"degree_celsius", "degrees_celsius", "celsius", "degc", "deg_c", "degrees_c", "degree_c"}
)
_ZERO_CELSIUS_IN_KELVIN = 273.15


def decode(raw: np.ndarray, attrs: Mapping) -> np.ndarray:
    """Physical float64 values of a stored array: ``_Unsigned``, fill/missing values, scale and offset."""
    data = np.asarray(raw)
    if str(attrs.get("_Unsigned", "")).lower() == "true" and data.dtype.kind == "i":
        data = data.view(data.dtype.str.replace("i", "u"))
    missing = np.zeros(data.shape, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            for value in np.atleast_1d(attrs[key]):
                missing |= np.isnan(data) if np.isnan(value) else data == np.asarray(value).astype(data.dtype)
    values = data.astype(np.float64)
    scale, offset = attrs.get("scale_factor"), attrs.get("add_offset")
    if scale is not None:
        values *= float(np.asarray(scale).ravel()[0])
    if offset is not None:
        values += float(np.asarray(offset).ravel()[0])
    values[missing] = np.nan
    return values


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
