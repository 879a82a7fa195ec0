"""Minimal read access to NetCDF files: variables with their dims, attributes and hyperslab reads.

xarray builds every variable of a file on open (≈80 ms for an hourly wind file with its extra variables),
which dominates a day made of 24 files; the loaders need only a few variables, read undecoded. This opens
NetCDF4/HDF5 with h5netcdf and classic NetCDF3 with scipy, both lazily, behind one small interface.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5netcdf
import numpy as np
from scipy.io import netcdf_file

from oceantaco.loaders import InputError, netcdf_engine


def _text(value: Any) -> Any:
    """Attribute values as netCDF-C users see them: NC_CHAR bytes become str."""
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return value


@dataclass
class Variable:
    """One variable, renamed dims, str attributes; data read only on indexing."""

    name: str
    dims: tuple[str, ...]
    _source: Any

    @cached_property
    def attrs(self) -> dict[str, Any]:
        raw = self._source.attrs if hasattr(self._source, "attrs") else self._source._attributes
        return {key: _text(value) for key, value in raw.items()}

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._source.dtype if hasattr(self._source, "attrs") else self._source.data.dtype)

    @property
    def sizes(self) -> dict[str, int]:
        return dict(zip(self.dims, self._source.shape, strict=True))

    def read(self, fixed: Mapping[str, int] | None = None) -> np.ndarray:
        """The variable with ``fixed`` dims indexed away; other dims kept in file order."""
        key = tuple((fixed or {}).get(dim, slice(None)) for dim in self.dims)
        return np.asarray(self._source[key] if key else self._source[...])


class NetcdfFile(Mapping[str, Variable]):
    """Variables by name, with ``aliases`` applied to variable and dimension names."""

    def __init__(self, variables: Mapping[str, Any], aliases: Mapping[str, str], attrs: Mapping) -> None:
        self._sources = {aliases.get(name, name): (name, var) for name, var in variables.items()}
        self._aliases = aliases
        self.attrs = {key: _text(value) for key, value in attrs.items()}

    def __getitem__(self, name: str) -> Variable:
        _, source = self._sources[name]
        dims = getattr(source, "dimensions", ())
        return Variable(name, tuple(self._aliases.get(d, d) for d in dims), source)

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


@contextmanager
def open_netcdf(path: Path, aliases: Mapping[str, str] | None = None) -> Iterator[NetcdfFile]:
    """Open a NetCDF3 or NetCDF4 file for lazy reads; unreadable files are an InputError."""
    engine = netcdf_engine(path)
    try:
        handle = (
            h5netcdf.File(path, "r", phony_dims="access")
            if engine == "h5netcdf"
            else netcdf_file(path, "r", mmap=False)
        )
    except Exception as exc:
        raise InputError(f"{path.name}: cannot be read as NetCDF ({type(exc).__name__}: {exc})") from exc
    try:
        attrs = handle.attrs if engine == "h5netcdf" else handle._attributes
        yield NetcdfFile(handle.variables, aliases or {}, attrs)
    finally:
        handle.close()
