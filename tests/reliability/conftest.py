"""The fault-injection suite (`make test-reliability`): every test here is marked `reliability`, which the
default `make test` leaves out. The fixtures of tests/conftest.py (storage servers, upstream_env) apply.

Faults are drawn from one seed, OCEANTACO_FAULT_SEED (printed in the header), so a failure found by a
random kill point can be replayed exactly.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

DEFAULT_SEED = 20261126
HERE = Path(__file__).resolve().parent


def fault_seed() -> int:
    return int(os.environ.get("OCEANTACO_FAULT_SEED", DEFAULT_SEED))


def pytest_report_header(config: pytest.Config) -> str:
    return f"fault seed: OCEANTACO_FAULT_SEED={fault_seed()}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.fspath).resolve().parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture
def rng() -> random.Random:
    """A random source seeded from OCEANTACO_FAULT_SEED: the same faults on every run with that seed."""
    return random.Random(fault_seed())
