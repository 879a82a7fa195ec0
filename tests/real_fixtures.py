"""The ``real_fixtures`` pytest fixture: real upstream sample files, or a skip when they are absent.

The samples live outside the repository (``../shared/fixtures/real`` next to the checkout) and are never
copied into it, so tests that compare against them must skip cleanly wherever ``shared/`` is missing.
``conftest.py`` registers this module as a plugin, so any test can ask for the fixture.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_FIXTURES_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    """``shared/fixtures/real`` (product sub-folders as in its SOURCES.md), or skip the test."""
    if not REAL_FIXTURES_DIR.is_dir():
        pytest.skip(f"real upstream sample files not found at {REAL_FIXTURES_DIR} (../shared is not present)")
    return REAL_FIXTURES_DIR
