"""Turn decoded physical arrays into stored variables, driven by the catalog's encoding table.

Values are packed here, not by xarray on write: one pass in numpy with the catalog's scale and offset, so
values outside a variable's valid range become fill and are counted instead of wrapping around on the
cast to a packed integer type, and the float64 intermediate exists only for one tile at a time. The stored
variables carry ``scale_factor``/``add_offset`` attributes, so every CF reader decodes them.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
    occupied: np.ndarray | None = None,
    extra: dict[str, tuple[tuple[str, ...], np.ndarray, dict]] | None = None,
) -> tuple[bytes, int]:
    """Write a NetCDF4 file in memory one variable at a time; returns (bytes, values set to fill).

    For tiles too large to hold all variables at once (a 2 km SWOT tile has 17.6 M cells per variable):
    each variable is computed, packed with the catalog's encoding, written and released before the next.
    ``occupied`` (one boolean per chunk of the 2-D variables) limits packing and writing to the chunks that
    hold data: HDF5 leaves the other chunks unallocated and readers see the fill value there, so an empty
    chunk costs neither time nor bytes. ``extra`` holds small unpacked variables (track ids and times).
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
            sizes = tuple(min(chunks[d], dims[d]) for d in variable.dims)
            var = f.create_variable(
                name,
                variable.dims,
                spec.dtype,
                fillvalue=np.array(spec.fill_value, dtype=spec.dtype)[()],
                chunks=sizes,
                compression="gzip",
                compression_opts=ZLIB_LEVEL,
                shuffle=spec.dtype.startswith("int"),
            )
            var.attrs.update({**variable_attrs(spec), **variable.attrs})
            values = variable.values()
            if occupied is None:
                stored, n_out = pack(values, spec)
                out_of_range += n_out
                var[...] = stored
            else:
                out_of_range += _write_chunks(var, values, spec, sizes, occupied)
            del values
        for name, (var_dims, values, var_attrs) in (extra or {}).items():
            dtype = h5py.string_dtype() if values.dtype.kind in "OU" else values.dtype
            var = f.create_variable(name, var_dims, dtype, data=values)
            var.attrs.update(var_attrs)
        f.attrs.update(attrs)
    return buffer.getvalue(), out_of_range


def _compressed_chunk(block: np.ndarray, spec: VariableEncoding, sizes: tuple[int, ...]) -> tuple[bytes, int]:
    """One chunk packed, padded to the full chunk shape, shuffled when the dataset shuffles, deflated."""
    stored, n_out = pack(block, spec)
    if stored.shape != sizes:
        full = np.full(sizes, spec.fill_value, dtype=spec.dtype)
        full[tuple(slice(0, n) for n in stored.shape)] = stored
        stored = full
    raw = np.ascontiguousarray(stored).view(np.uint8)
    if spec.dtype.startswith("int") and stored.itemsize > 1:  # HDF5's shuffle filter runs before deflate
        raw = raw.reshape(-1, stored.itemsize).T
    return zlib.compress(raw.tobytes(), ZLIB_LEVEL), n_out


def _write_chunks(var: h5netcdf.Variable, values: np.ndarray, spec: VariableEncoding, sizes, occupied) -> int:
    """Pack and deflate the occupied chunks on two threads (zlib releases the GIL), write them as they come.

    The bytes are what HDF5's own shuffle + deflate filters would store, written with ``write_direct_chunk``;
    unoccupied chunks stay unallocated and read back as the fill value.
    """
    origins = [(int(i) * sizes[0], int(j) * sizes[1]) for i, j in zip(*np.nonzero(occupied), strict=True)]
    blocks = (values[r : r + sizes[0], c : c + sizes[1]] for r, c in origins)
    dataset = var._h5ds
    out_of_range = 0
    with ThreadPoolExecutor(2) as pool:
        chunks = pool.map(lambda block: _compressed_chunk(block, spec, sizes), blocks)
        for origin, (data, n_out) in zip(origins, chunks, strict=True):
            dataset.id.write_direct_chunk(origin, data)
            out_of_range += n_out
    return out_of_range
