"""Minimal read access to NetCDF files: variables with their dims, attributes and reads of what is asked.

xarray builds every variable of a file on open (≈80 ms for an hourly wind file with its extra variables,
≈2 ms with scipy for an Argo profile file with its ~70 calibration and history variables), which dominates
a day made of many files; the loaders need only a few variables, read undecoded. NetCDF4/HDF5 is opened
lazily with h5netcdf; classic NetCDF (CDF-1/CDF-2) is read from its bytes by walking the header once and
decoding only the variables asked for.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import h5netcdf
import numpy as np

from oceantaco.loaders import InputError, netcdf_engine


class Variable(Protocol):
    """What the loaders use of a variable, whatever the file format."""

    name: str
    dims: tuple[str, ...]

    @property
    def attrs(self) -> dict[str, Any]: ...

    @property
    def dtype(self) -> np.dtype: ...

    @property
    def sizes(self) -> dict[str, int]: ...

    def read(self, fixed: Mapping[str, int] | None = None) -> np.ndarray: ...


def _text(value: Any) -> Any:
    """Attribute values as netCDF-C users see them: NC_CHAR bytes become str."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return value


def _index(dims: tuple[str, ...], fixed: Mapping[str, int] | None) -> tuple:
    return tuple((fixed or {}).get(dim, slice(None)) for dim in dims)


# --- NetCDF4 / HDF5 -------------------------------------------------------------------------------------


@dataclass
class _HDF5Variable:
    name: str
    dims: tuple[str, ...]
    _source: Any = field(repr=False)

    @cached_property
    def attrs(self) -> dict[str, Any]:
        return {key: _text(value) for key, value in self._source.attrs.items()}

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._source.dtype)

    @property
    def sizes(self) -> dict[str, int]:
        return dict(zip(self.dims, self._source.shape, strict=True))

    def read(self, fixed: Mapping[str, int] | None = None) -> np.ndarray:
        """The variable with ``fixed`` dims indexed away (a hyperslab read); other dims in file order."""
        key = _index(self.dims, fixed)
        return np.asarray(self._source[key] if key else self._source[...])


# --- classic NetCDF (CDF-1 / CDF-2) -------------------------------------------------------------------

_NC_TYPES = {1: np.dtype("i1"), 2: np.dtype("S1"), 3: np.dtype(">i2"), 4: np.dtype(">i4")}
_NC_TYPES |= {5: np.dtype(">f4"), 6: np.dtype(">f8")}
_NC_SIZES = {key: dtype.itemsize for key, dtype in _NC_TYPES.items()}
_ABSENT, _NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 0, 10, 11, 12
_INT, _TWO_INTS = struct.Struct(">i").unpack_from, struct.Struct(">ii").unpack_from


def _padded(n: int) -> int:
    return (n + 3) & ~3


@dataclass
class _ClassicVariable:
    """One variable of a classic NetCDF file: attributes decoded and data read only when asked."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    nc_type: int
    begin: int
    record: bool
    _file: _ClassicFile = field(repr=False)
    _attr_offset: int = field(repr=False)

    @property
    def dtype(self) -> np.dtype:
        return _NC_TYPES[self.nc_type].newbyteorder("=")

    @property
    def sizes(self) -> dict[str, int]:
        shape = (self._file.n_records, *self.shape[1:]) if self.record else self.shape
        return dict(zip(self.dims, shape, strict=True))

    @cached_property
    def attrs(self) -> dict[str, Any]:
        return self._file.attributes(self._attr_offset)

    def read(self, fixed: Mapping[str, int] | None = None) -> np.ndarray:
        stored = _NC_TYPES[self.nc_type]
        shape, strides = self.shape, None
        if self.record and self._file.n_records < 0:
            raise InputError(f"{self._file.name}: streamed NetCDF (unknown record count) is not supported")
        if self.record:
            shape = (self._file.n_records, *self.shape[1:])
            inner = np.empty(shape[1:], dtype=stored).strides
            strides = (self._file.record_size, *inner)
        if 0 in shape:
            return np.empty(shape, dtype=self.dtype)[_index(self.dims, fixed)]
        try:
            data = np.ndarray(shape, dtype=stored, buffer=self._file.data, offset=self.begin, strides=strides)
        except (TypeError, ValueError) as exc:  # the header points past the end of the file
            raise InputError(f"{self._file.name}: truncated NetCDF file ({exc})") from exc
        return data[_index(self.dims, fixed)].astype(self.dtype)


class _ClassicFile(Mapping[str, _ClassicVariable]):
    """The header of a classic NetCDF file, walked once from its bytes; variables decoded on request."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.name = data, name
        if data[3] not in (1, 2):
            raise InputError(f"{name}: classic NetCDF version {data[3]} is not supported (CDF-1/CDF-2 only)")
        self._offset_size = 8 if data[3] == 2 else 4
        try:
            pos = 4
            (self.n_records,), pos = struct.unpack_from(">i", data, pos), pos + 4
            dims, pos = self._dimensions(pos)
            self.attrs_offset = pos
            pos = self._skip_attributes(pos)
            self.variables, pos = self._variables(pos, dims)
        except (struct.error, KeyError, IndexError) as exc:
            raise InputError(f"{name}: broken NetCDF header ({type(exc).__name__}: {exc})") from exc

    def _name(self, pos: int) -> tuple[str, int]:
        (n,) = _INT(self.data, pos)
        return self.data[pos + 4 : pos + 4 + n].decode("utf-8", errors="replace"), pos + 4 + _padded(n)

    def _list_header(self, pos: int, tag: int) -> tuple[int, int]:
        found, count = _TWO_INTS(self.data, pos)
        if found not in (tag, _ABSENT):
            raise InputError(f"{self.name}: broken NetCDF header (tag {found} where {tag} expected)")
        return count, pos + 8

    def _dimensions(self, pos: int) -> tuple[list[tuple[str, int]], int]:
        count, pos = self._list_header(pos, _NC_DIMENSION)
        dims = []
        for _ in range(count):
            name, pos = self._name(pos)
            (length,) = struct.unpack_from(">i", self.data, pos)
            dims.append((name, length))
            pos += 4
        return dims, pos

    def _skip_attributes(self, pos: int) -> int:
        # The hot loop of a header (~500 attributes in an Argo profile file): names are skipped, not decoded.
        count, pos = self._list_header(pos, _NC_ATTRIBUTE)
        data = self.data
        for _ in range(count):
            (n,) = _INT(data, pos)
            pos += 4 + _padded(n)
            nc_type, n = _TWO_INTS(data, pos)
            pos += 8 + _padded(n * _NC_SIZES[nc_type])
        return pos

    def attributes(self, pos: int) -> dict[str, Any]:
        """Attributes at ``pos`` as netCDF-C users see them: text as str, one number as a scalar."""
        count, pos = self._list_header(pos, _NC_ATTRIBUTE)
        attrs: dict[str, Any] = {}
        for _ in range(count):
            name, pos = self._name(pos)
            nc_type, n = struct.unpack_from(">ii", self.data, pos)
            dtype = _NC_TYPES[nc_type]
            raw = self.data[pos + 8 : pos + 8 + n * dtype.itemsize]
            if nc_type == 2:
                attrs[name] = raw.decode("utf-8", errors="replace").rstrip("\x00")
            else:
                values = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
                attrs[name] = values[0] if n == 1 else values
            pos += 8 + _padded(n * dtype.itemsize)
        return attrs

    def _variables(self, pos: int, dims: list[tuple[str, int]]) -> tuple[dict[str, _ClassicVariable], int]:
        count, pos = self._list_header(pos, _NC_VARIABLE)
        variables: dict[str, _ClassicVariable] = {}
        record_sizes = []
        for _ in range(count):
            name, pos = self._name(pos)
            (n_dims,) = struct.unpack_from(">i", self.data, pos)
            ids = struct.unpack_from(f">{n_dims}i", self.data, pos + 4)
            attr_offset = pos + 4 + 4 * n_dims
            pos = self._skip_attributes(attr_offset)
            nc_type, vsize = struct.unpack_from(">ii", self.data, pos)
            fmt = ">q" if self._offset_size == 8 else ">i"
            (begin,) = struct.unpack_from(fmt, self.data, pos + 8)
            pos += 8 + self._offset_size
            record = bool(ids) and dims[ids[0]][1] == 0
            if record:
                record_sizes.append(vsize)
            shape = tuple(dims[i][1] for i in ids)
            variables[name] = _ClassicVariable(
                name, tuple(dims[i][0] for i in ids), shape, nc_type, begin, record, self, attr_offset
            )
            if nc_type not in _NC_TYPES:
                raise InputError(f"{self.name}: variable {name} has unknown NetCDF type {nc_type}")
        # One record variable is stored unpadded (NetCDF classic format specification).
        single = [v for v in variables.values() if v.record]
        if len(single) == 1:
            record_sizes = [int(np.prod(single[0].shape[1:], dtype=np.int64)) * single[0].dtype.itemsize]
        self.record_size = sum(record_sizes)
        return variables, pos

    def __getitem__(self, name: str) -> _ClassicVariable:
        return self.variables[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)


# --- one interface ----------------------------------------------------------------------------------------


class NetcdfFile(Mapping[str, Variable]):
    """Variables by name, with ``aliases`` applied to variable and dimension names; ``attrs`` global."""

    def __init__(self, variables: Mapping[str, Variable], aliases: Mapping[str, str], attrs: Mapping) -> None:
        self._variables = {aliases.get(name, name): var for name, var in variables.items()}
        self._aliases = aliases
        self.attrs = {key: _text(value) for key, value in attrs.items()}

    def __getitem__(self, name: str) -> Variable:
        var = self._variables[name]
        if not self._aliases:
            return var
        return replace(var, name=name, dims=tuple(self._aliases.get(d, d) for d in var.dims))

    def __iter__(self) -> Iterator[str]:
        return iter(self._variables)

    def __len__(self) -> int:
        return len(self._variables)


@contextmanager
def open_netcdf(path: Path, aliases: Mapping[str, str] | None = None) -> Iterator[NetcdfFile]:
    """Open a NetCDF3 or NetCDF4 file for reads of single variables; unreadable files are an InputError."""
    if netcdf_engine(path) == "scipy":
        classic = _ClassicFile(Path(path).read_bytes(), Path(path).name)
        yield NetcdfFile(classic, aliases or {}, classic.attributes(classic.attrs_offset))
        return
    try:
        handle = h5netcdf.File(path, "r", phony_dims="access")
    except Exception as exc:
        raise InputError(f"{path.name}: cannot be read as NetCDF ({type(exc).__name__}: {exc})") from exc
    try:
        variables = {
            name: _HDF5Variable(name, tuple(var.dimensions), var) for name, var in handle.variables.items()
        }
        yield NetcdfFile(variables, aliases or {}, handle.attrs)
    finally:
        handle.close()


def unreadable(path: Path) -> str | None:
    """Why ``path`` cannot be read in full (header, every variable's data), or None when it can.

    For failures whose message names no file (HDF5 errors on a truncated data chunk): it finds which of a
    day's files is damaged. It reads everything, so it is only for the failure path.
    """
    try:
        with open_netcdf(path) as ds:
            for var in ds.values():
                var.read()
    except Exception as exc:  # any error is the answer here, not a crash
        message = str(exc)
        return message if message.startswith(path.name) else f"{path.name}: {type(exc).__name__}: {message}"
    return None
