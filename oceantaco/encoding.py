"""Turn decoded physical arrays into stored variables, driven by the catalog's encoding table.

Values are packed here, not by xarray on write: one pass in numpy with the catalog's scale and offset, so
values outside a variable's valid range become fill and are counted instead of wrapping around on the
cast to a packed integer type, and the float64 intermediate exists only for one tile at a time. The stored
variables carry ``scale_factor``/``add_offset`` attributes, so every CF reader decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from oceantaco.catalog import VariableEncoding

# Measured on full-resolution tiles (benchmarks/encoding_choices.py): level 4 saves 10-25 % over level 1 at
# +40-50 % write time, level 9 costs 3-4x the time; shuffle helps packed integers most.
ZLIB_LEVEL = 1


@dataclass(frozen=True)
class EncodedVariable:
    variable: xr.Variable
    encoding: dict
    n_out_of_range: int


def pack(values: np.ndarray, spec: VariableEncoding) -> tuple[np.ndarray, int]:
    """Physical values (NaN = missing) -> stored values of ``spec.dtype``; also the count set to fill."""
    data = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        valid = (data >= spec.valid_min) & (data <= spec.valid_max)  # False for NaN
    n_valid = int(np.count_nonzero(valid))
    n_out_of_range = data.size - int(np.count_nonzero(np.isnan(data))) - n_valid
    if spec.dtype.startswith("int"):
        scaled = data - (spec.add_offset or 0.0)
        if spec.scale_factor is not None:
            scaled /= spec.scale_factor
        np.rint(scaled, out=scaled)
    else:
        scaled = data.copy()
    if n_valid < data.size:
        scaled[~valid] = spec.fill_value
    return scaled.astype(spec.dtype), n_out_of_range


def encode_variable(
    dims: tuple[str, ...], values: np.ndarray, spec: VariableEncoding, *, chunks: tuple[int, ...]
) -> EncodedVariable:
    """Pack one variable and describe its on-disk encoding (fill, compression, chunks)."""
    stored, n_out_of_range = pack(values, spec)
    attrs: dict = {"units": spec.units, "long_name": spec.long_name}
    if spec.standard_name:
        attrs["standard_name"] = spec.standard_name
    if spec.scale_factor is not None:
        attrs["scale_factor"] = float(spec.scale_factor)
        attrs["add_offset"] = float(spec.add_offset or 0.0)
    # CF: valid_min/valid_max are in the stored (packed) type, so generic readers mask correctly.
    bounds = (spec.valid_min, spec.valid_max)
    if spec.scale_factor is not None:
        bounds = tuple(spec.pack_scalar(v) for v in bounds)
    attrs["valid_min"], attrs["valid_max"] = (np.array(v, dtype=spec.dtype)[()] for v in bounds)
    encoding: dict = {
        "dtype": spec.dtype,
        "_FillValue": spec.fill_value,
        "zlib": True,
        "complevel": ZLIB_LEVEL,
    }
    if spec.dtype.startswith("int"):
        encoding["shuffle"] = True
    if stored.ndim and all(n > 0 for n in stored.shape):
        encoding["chunksizes"] = tuple(min(c, n) for c, n in zip(chunks, stored.shape, strict=True))
    return EncodedVariable(xr.Variable(dims, stored, attrs), encoding, n_out_of_range)


def encode_dataset(
    variables: dict[str, tuple[tuple[str, ...], np.ndarray]],
    specs: dict[str, VariableEncoding],
    *,
    coords: dict[str, xr.Variable],
    attrs: dict,
    chunks: dict[str, int],
    variable_attrs: dict[str, dict] | None = None,
) -> tuple[xr.Dataset, dict[str, dict], int]:
    """Build a tile dataset from physical arrays; returns (dataset, encoding, values set to fill).

    ``variable_attrs`` adds per-variable attributes (e.g. the depth a level was taken at).
    """
    data_vars, encoding, out_of_range = {}, {}, 0
    for name, (dims, values) in variables.items():
        encoded = encode_variable(dims, values, specs[name], chunks=tuple(chunks[d] for d in dims))
        encoded.variable.attrs.update((variable_attrs or {}).get(name, {}))
        data_vars[name] = encoded.variable
        encoding[name] = encoded.encoding
        out_of_range += encoded.n_out_of_range
    return xr.Dataset(data_vars, coords=coords, attrs=attrs), encoding, out_of_range


def to_netcdf_bytes(ds: xr.Dataset, encoding: dict[str, dict]) -> bytes:
    """Serialise in memory with h5netcdf: deterministic bytes, so an unchanged tile hashes the same."""
    return bytes(ds.to_netcdf(engine="h5netcdf", encoding=encoding))
