"""Shared pytest fixtures. Sections: storage servers and roots. Add new fixtures in their own section."""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from services import Service, start_gcs_emulator, start_moto_s3

from oceantaco.storage import Storage  # also sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT before gcsfs loads

# `real_fixtures`: ../shared samples, or a skip; `prefect_helpers`: the tiny upstream of deployment runs
pytest_plugins = ["real_fixtures", "prefect_helpers"]

# ---------------------------------------------------------------------------------------------------------
# Storage: real moto S3 / GCS emulator servers (started once per session, on first use), fresh buckets and
# a `storage_root` fixture that runs a test on every backend.
# ---------------------------------------------------------------------------------------------------------

STORAGE_BACKENDS = ["local", "memory", "s3", "gcs"]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Service]:
    """moto S3 server; sets the AWS env vars that s3fs/boto3 and tacoreader/obstore read, for the session."""
    with start_moto_s3() as service, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", service.url)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ALLOW_HTTP", "true")  # obstore refuses http:// endpoints without it
        yield service


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[Service]:
    """gcp-storage-emulator; sets STORAGE_EMULATOR_HOST (gcsfs then talks to it anonymously)."""
    with start_gcs_emulator() as service, pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", service.url)
        yield service


def _bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def s3_bucket(s3_server: Service) -> str:
    """A new empty bucket on the moto server: "s3://<bucket>"."""
    name = _bucket_name()
    Storage(f"s3://{name}").fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture
def gcs_bucket(gcs_server: Service) -> str:
    """A new empty bucket on the GCS emulator: "gs://<bucket>"."""
    name = _bucket_name()
    Storage(f"gs://{name}").fs.mkdir(name)
    return f"gs://{name}"


@pytest.fixture
def make_storage_root(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], str]:
    """Factory: backend ("local", "memory", "s3", "gcs") -> a fresh, empty root URL on it.

    Each call gives a new root; servers and buckets are only started/created when a test asks for them.
    """
    counter = itertools.count()

    def make(backend: str) -> str:
        name = f"root{next(counter)}"
        if backend == "local":
            return str(tmp_path / name)
        if backend == "memory":
            url = f"memory://test-{uuid.uuid4().hex}/{name}"
            request.addfinalizer(lambda: _remove_memory_root(url))
            return url
        bucket = request.getfixturevalue({"s3": "s3_bucket", "gcs": "gcs_bucket"}[backend])
        return f"{bucket}/{name}"

    return make


def _remove_memory_root(url: str) -> None:
    """fsspec's memory store is process-global: drop what a test left there."""
    storage = Storage(url)
    with contextlib.suppress(FileNotFoundError):
        storage.fs.rm(storage.full_path(""), recursive=True)


@pytest.fixture(params=STORAGE_BACKENDS)
def storage_root(request: pytest.FixtureRequest, make_storage_root: Callable[[str], str]) -> str:
    """A fresh root URL on each backend in turn: local dir, memory://..., s3://<bucket>/..., gs://<bucket>/..."""
    return make_storage_root(request.param)


# ---------------------------------------------------------------------------------------------------------
# Prefect: tests marked `prefect` talk to the one API server that `make test` starts (PREFECT_API_URL).
# ---------------------------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PREFECT_API_URL"):
        return
    skip = pytest.mark.skip(
        reason="needs the Prefect API server that `make test` starts (PREFECT_API_URL unset)"
    )
    for item in items:
        if "prefect" in item.keywords:
            item.add_marker(skip)


# ---------------------------------------------------------------------------------------------------------
# Upstream: the pipeline reads its sources from OCEANTACO_* settings in the environment, as pods do.
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def upstream_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """Point the settings at a CMEMS mirror and an Argo GDAC for this test only."""

    def point(cmems_mirror: str, argo_gdac: str) -> None:
        monkeypatch.setenv("OCEANTACO_CMEMS_MIRROR", cmems_mirror)
        monkeypatch.setenv("OCEANTACO_ARGO_GDAC", argo_gdac)

    return point
