"""OceanTACO: daily sea-surface products as regional NetCDF tiles, an inventory, and a TACO dataset."""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("oceantaco")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from oceantaco.reading import open_bbox, open_tile

__all__ = ["__version__", "open_bbox", "open_tile"]

# The readers pull in xarray and tacoreader: import them on first use, keeping `import oceantaco` light.
_LAZY = {"open_bbox": "oceantaco.reading", "open_tile": "oceantaco.reading"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
