"""Turn decoded physical arrays into stored variables, driven by the catalog's encoding table.

Values are packed here, not by xarray on write: one pass in numpy with the catalog's scale and offset, so
values outside a variable's valid range become fill and are counted instead of wrapping around on the
cast to a packed integer type, and the float64 intermediate exists only for one tile at a time. The stored
variables carry ``scale_factor``/``add_offset`` attributes, so every CF reader decodes them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import h5netcdf
import h5py
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
    data = np.asarray(values)
    if spec.dtype.startswith("int") or data.dtype.kind != "f":
        data = data.astype(np.float64)
    with np.errstate(invalid="ignore"):
        valid = (data >= spec.valid_min) & (data <= spec.valid_max)  # False for NaN
    n_valid = int(np.count_nonzero(valid))
    # The fill value itself (e.g. -1 for an empty cell's track index) is missing, not out of range.
    n_missing = np.count_nonzero(np.isnan(data) | (data == spec.fill_value))
    n_out_of_range = data.size - int(n_missing) - n_valid
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


def variable_attrs(spec: VariableEncoding) -> dict:
    """CF attributes of a stored variable (without ``_FillValue``, which the writer sets)."""
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
    return attrs


def encode_variable(
    dims: tuple[str, ...], values: np.ndarray, spec: VariableEncoding, *, chunks: tuple[int, ...]
) -> EncodedVariable:
    """Pack one variable and describe its on-disk encoding (fill, compression, chunks)."""
    stored, n_out_of_range = pack(values, spec)
    attrs = variable_attrs(spec)
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


@dataclass(frozen=True)
class StreamedVariable:
    """A variable whose physical values are computed only when the writer reaches it."""

    dims: tuple[str, ...]
    values: Callable[[], np.ndarray]
    attrs: dict = field(default_factory=dict)


def stream_netcdf_bytes(
    dims: dict[str, int],
    coords: dict[str, tuple[np.ndarray, dict]],
    variables: dict[str, StreamedVariable],
    specs: dict[str, VariableEncoding],
    *,
    attrs: dict,
    chunks: dict[str, int],
    extra: dict[str, tuple[tuple[str, ...], np.ndarray, dict]] | None = None,
) -> tuple[bytes, int]:
    """Write a NetCDF4 file in memory one variable at a time; returns (bytes, values set to fill).

    For tiles too large to hold all variables at once (a 2 km SWOT tile has 17.6 M cells per variable):
    each variable is computed, packed with the catalog's encoding, written and released before the next.
    ``extra`` holds small unpacked variables (track ids and times as strings).
    """
    buffer = io.BytesIO()
    out_of_range = 0
    with h5netcdf.File(buffer, "w") as f:
        f.dimensions = dims
        for name, (values, coord_attrs) in coords.items():
            var = f.create_variable(name, (name,), values.dtype, data=values)
            var.attrs.update(coord_attrs)
        for name, variable in variables.items():
            spec = specs[name]
            stored, n_out = pack(variable.values(), spec)
            out_of_range += n_out
            var = f.create_variable(
                name,
                variable.dims,
                spec.dtype,
                data=stored,
                fillvalue=np.array(spec.fill_value, dtype=spec.dtype)[()],
                chunks=tuple(min(chunks[d], dims[d]) for d in variable.dims),
                compression="gzip",
                compression_opts=ZLIB_LEVEL,
                shuffle=spec.dtype.startswith("int"),
            )
            var.attrs.update({**variable_attrs(spec), **variable.attrs})
            del stored
        for name, (var_dims, values, var_attrs) in (extra or {}).items():
            dtype = h5py.string_dtype() if values.dtype.kind in "OU" else values.dtype
            var = f.create_variable(
                name, var_dims, dtype, data=values.astype(object) if values.dtype.kind == "U" else values
            )
            var.attrs.update(var_attrs)
        f.attrs.update(attrs)
    return buffer.getvalue(), out_of_range
