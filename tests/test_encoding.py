import io

import numpy as np
import pytest
import xarray as xr

from oceantaco.catalog import load_catalog
from oceantaco.encoding import encode_dataset, to_netcdf_bytes

CHUNKS = {"lat": 4, "lon": 4}


def _roundtrip(values: dict[str, np.ndarray], specs, **open_kw) -> tuple[xr.Dataset, int]:
    variables = {name: (("lat", "lon"), v) for name, v in values.items()}
    shape = next(iter(values.values())).shape
    coords = {"lat": np.arange(shape[0], dtype=float), "lon": np.arange(shape[1], dtype=float)}
    ds, encoding, out_of_range = encode_dataset(variables, specs, coords=coords, attrs={}, chunks=CHUNKS)
    return xr.open_dataset(
        io.BytesIO(to_netcdf_bytes(ds, encoding)), engine="h5netcdf", **open_kw
    ).load(), out_of_range


def test_packed_values_decode_within_half_a_step():
    specs = load_catalog()["l4_ssh"].variables
    rng = np.random.default_rng(0)
    sla = rng.uniform(-2, 2, (6, 7))
    decoded, out_of_range = _roundtrip({"sla": sla}, specs)
    step = specs["sla"].scale_factor
    assert out_of_range == 0
    assert np.abs(decoded["sla"].values - sla).max() <= step / 2 + 1e-12
    raw, _ = _roundtrip({"sla": sla}, specs, mask_and_scale=False)
    assert raw["sla"].dtype == np.int16 and raw["sla"].attrs["scale_factor"] == step


def test_values_outside_the_valid_range_become_fill_and_are_counted():
    specs = load_catalog()["l4_ssh"].variables
    sla = np.array([[0.5, 7.0, -9.0, np.nan]])
    decoded, out_of_range = _roundtrip({"sla": sla}, specs)
    assert out_of_range == 2
    assert np.isnan(decoded["sla"].values[0, 1:]).all() and decoded["sla"].values[0, 0] == pytest.approx(0.5)
    raw, _ = _roundtrip({"sla": sla}, specs, mask_and_scale=False)
    assert raw["sla"].values[0, 1:].tolist() == [specs["sla"].fill_value] * 3  # no wrapped integers


def test_kelvin_sst_survives_packing():
    specs = load_catalog()["l4_sst"].variables
    sst = np.array([[271.35, 288.15, 305.2]])
    decoded, _ = _roundtrip({"analysed_sst": sst}, specs)
    assert np.abs(decoded["analysed_sst"].values - sst).max() <= specs["analysed_sst"].scale_factor / 2 + 1e-9
    assert decoded["analysed_sst"].attrs["units"] == "kelvin"


def test_serialisation_is_deterministic():
    specs = load_catalog()["l4_ssh"].variables
    variables = {"sla": (("lat", "lon"), np.linspace(-1, 1, 12).reshape(3, 4))}
    coords = {"lat": [0.0, 1.0, 2.0], "lon": [0.0, 1.0, 2.0, 3.0]}
    first = to_netcdf_bytes(
        *encode_dataset(variables, specs, coords=coords, attrs={"a": 1}, chunks=CHUNKS)[:2]
    )
    second = to_netcdf_bytes(
        *encode_dataset(variables, specs, coords=coords, attrs={"a": 1}, chunks=CHUNKS)[:2]
    )
    assert first == second
