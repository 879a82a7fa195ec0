"""OceanTACO: daily sea-surface products as regional NetCDF tiles, an inventory, and a TACO dataset."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("oceantaco")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
