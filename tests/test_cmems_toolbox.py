"""The CMEMS provider's copernicusmarine toolbox transport against a local Copernicus Marine service.

The toolbox itself runs, unmodified but for its credentials check (prefect-k8s-stack.md §6): a fake
clients-config and STAC catalogue over HTTP, native files (and, for GLORYS, an ARCO zarr for ``subset``)
as public-read objects in moto S3 on 127.0.0.1:80, since the toolbox drops ports from S3 URLs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from services import patch_copernicusmarine, start_fake_copernicus_marine
from typer.testing import CliRunner

from oceantaco.catalog import load_catalog
from oceantaco.cli import app
from oceantaco.formatting import format_product_day
from oceantaco.providers import cmems, fetch, get_provider, is_transient
from oceantaco.providers.cmems import CmemsCredentialsError, CmemsDatasetError, CmemsTransientError
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic_grids import write_product_day

CATALOG = load_catalog()
# L4 SST switches from the REP to the NRT dataset on 2024-01-16: the range spans the switch-over.
DAYS = [dt.date(2024, 1, 14), dt.date(2024, 1, 15), dt.date(2024, 1, 16)]
OUTSIDE = [dt.date(2024, 1, 13), dt.date(2024, 1, 17)]  # upstream holds these days too; no plan may take them
PRODUCTS = ("glorys", "l4_sst", "l3_sss_smos_asc")  # SMOS keeps year folders, without months
GLORYS_PRODUCT = "GLOBAL_MULTIYEAR_PHY_001_030"
SST_REP = "METOFFICE-GLO-SST-L4-REP-OBS-SST"
OLD_SST_VERSION = "201904"  # an older version folder next to the synthetic 202003 one
USER, PASSWORD = "oceantaco-user-5d1f", "secret-pass-8c2e"


class Upstream:
    def __init__(self, tree: Path) -> None:
        self.tree = tree
        self.storage = Storage(str(tree))

    def day_keys(self, token: str, day: dt.date, versions: dict[str, str] | None = None) -> list[str]:
        """Native keys of a product's files for the day, newest version unless ``versions`` pins one."""
        keys = []
        for dataset in CATALOG[token].datasets_for(day):
            found = cmems.dataset_versions(self.storage, "", dataset)
            version = (versions or {}).get(dataset.dataset_id, found[-1])
            keys += sorted(cmems.day_files(self.storage, "", dataset, day, version))
        return keys


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    tree = tmp_path_factory.mktemp("cmems-native")
    for token in PRODUCTS:
        for day in DAYS + OUTSIDE:
            write_product_day(tree, token, day, resolution=4.0)
    for day in DAYS[:1] + OUTSIDE[:1]:  # hourly: 24 files a day
        write_product_day(tree, "l4_wind", day, resolution=4.0)
    rep = next(tree.glob(f"*/{SST_REP}_202003"))
    shutil.copytree(rep, rep.with_name(f"{SST_REP}_{OLD_SST_VERSION}"))
    try:
        fake = start_fake_copernicus_marine(
            tree, tmp_path_factory.mktemp("cmems-service"), arco_products=(GLORYS_PRODUCT,)
        )
    except OSError as exc:
        pytest.skip(f"the toolbox drops ports from S3 URLs, so its fake needs moto on 127.0.0.1:80: {exc}")
    try:
        with patch_copernicusmarine(fake.config_url, user=USER), pytest.MonkeyPatch.context() as mp:
            mp.setenv("COPERNICUSMARINE_SERVICE_USERNAME", USER)
            mp.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", PASSWORD)
            mp.delenv("OCEANTACO_CMEMS_MIRROR", raising=False)
            yield Upstream(tree)
    finally:
        fake.stop()


def settings(**changes) -> Settings:
    return Settings(**{"cmems_mirror": None, "cmems_backoff_seconds": 0.01, **changes})


@contextlib.contextmanager
def counting_toolbox_calls(monkeypatch):
    """The descriptions of the toolbox calls the provider makes meanwhile."""
    calls: list[str] = []
    real = cmems.toolbox_call

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(cmems, "toolbox_call", counting)
        yield calls


def check_glorys_cut(cut_path: Path, native_path: Path) -> None:
    """The subset file holds every catalog variable at its level, equal to the native file's values there."""
    with xr.open_dataset(cut_path) as cut, xr.open_dataset(native_path) as full:
        assert sorted(cut.data_vars) == ["so", "thetao", "uo", "vo", "zos"]
        np.testing.assert_allclose(cut["depth"].values, [0.494025, 15.81007], rtol=1e-6)
        for name, level in (("thetao", 0), ("so", 0), ("uo", 1), ("vo", 1)):
            native_level = int(np.abs(full["depth"].values - cut["depth"].values[level]).argmin())
            expected = full[name].isel(depth=native_level).values
            np.testing.assert_allclose(cut[name].isel(depth=level).values, expected, rtol=1e-6)
            assert np.isnan(cut[name].isel(depth=1 - level).values).all()  # never cut at the other level
        np.testing.assert_allclose(cut["zos"].values, full["zos"].values, rtol=1e-6)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_toolbox_fetches_exactly_each_days_files_once(
    upstream, backend, make_storage_root, tmp_path, monkeypatch
):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    raw = Storage(make_storage_root(backend))
    formatted = Storage(make_storage_root("local"))
    conf = settings()
    provider = get_provider("cmems", conf)
    days = DAYS if backend == "local" else DAYS[1:]  # the s3 root: two days, still across the SST switch
    moved, started = 0, time.perf_counter()
    for token in PRODUCTS:
        product = CATALOG[token]
        plans = provider.plan(product, days)
        assert [p.day for p in plans] == days
        for plan in plans:
            assert [f.source_key for f in plan.files] == upstream.day_keys(token, plan.day)
            assert all(f.raw_key == f"{product.raw_dir}/{f.source_key}" for f in plan.files)
            outcomes = fetch(plan, provider.source, raw)
            assert [o.status for o in outcomes] == ["ok"] * len(plan.files), outcomes
            moved += sum(o.bytes for o in outcomes)
            for remote in plan.files:
                native = (upstream.tree / remote.source_key).read_bytes()
                if token == "glorys":  # cut by subset: its own, smaller file under the native name
                    assert remote.size is None and 0 < raw.size(remote.raw_key) < len(native)
                    if backend == "local":
                        check_glorys_cut(
                            Path(raw.full_path(remote.raw_key)), upstream.tree / remote.source_key
                        )
                else:
                    assert remote.size == len(native) and raw.read_bytes(remote.raw_key) == native
            assert provider.raw_inputs(product, plan.day, raw) == [f.raw_key for f in plan.files]
        with counting_toolbox_calls(monkeypatch) as calls:
            again = [o for plan in plans for o in fetch(plan, provider.source, raw)]
        assert {o.status for o in again} == {"skipped"} and sum(o.bytes for o in again) == 0
        assert calls == []  # nothing asked upstream, not even a HEAD
        for day in days if backend == "local" else days[-1:]:
            result = format_product_day(product, day, raw, formatted, conf)
            assert result.status == "formatted" and result.tiles_written > 0, result
    seconds = time.perf_counter() - started
    print(f"\n{backend}: {moved / 1e6:.2f} MB in {seconds:.1f} s through the toolbox, formatting included")
    assert not list(scratch.iterdir())  # every download's scratch copy is gone


def test_hourly_wind_plans_the_24_files_of_the_day(upstream, tmp_path):
    provider = get_provider("cmems", settings())
    (plan,) = provider.plan(CATALOG["l4_wind"], DAYS[:1])
    assert [f.source_key for f in plan.files] == upstream.day_keys("l4_wind", DAYS[0])
    assert len(plan.files) == 24 and all(f.size for f in plan.files)
    raw = Storage(str(tmp_path))
    some = type(plan)(plan.product, plan.day, plan.files[:2])  # each file is one toolbox get (~1 s here)
    assert [o.status for o in fetch(some, provider.source, raw)] == ["ok", "ok"]
    for remote in some.files:
        assert raw.read_bytes(remote.raw_key) == (upstream.tree / remote.source_key).read_bytes()


def test_glorys_without_subset_is_the_native_file(upstream, tmp_path):
    raw = Storage(str(tmp_path))
    provider = get_provider("cmems", settings(cmems_subset_depths=False))
    (plan,) = provider.plan(CATALOG["glorys"], DAYS[-1:])
    assert [o.status for o in fetch(plan, provider.source, raw)] == ["ok"]
    (remote,) = plan.files
    assert raw.read_bytes(remote.raw_key) == (upstream.tree / remote.source_key).read_bytes()


def test_versions_are_the_newest_released_unless_pinned(upstream):
    product = CATALOG["l4_sst"]
    plans = get_provider("cmems", settings()).plan(product, DAYS)
    assert [p.files[0].source_key.split("/")[1].rsplit("_", 1)[1] for p in plans] == [
        "202003",
        "202003",
        "202211",  # the NRT dataset from 2024-01-16
    ]
    pinned = settings(pinned_versions={SST_REP: OLD_SST_VERSION})
    plans = get_provider("cmems", pinned).plan(product, DAYS)
    for plan in plans:
        expected = upstream.day_keys("l4_sst", plan.day, {SST_REP: OLD_SST_VERSION})
        assert [f.source_key for f in plan.files] == expected
    assert f"{SST_REP}_{OLD_SST_VERSION}/" in plans[0].files[0].source_key
    with pytest.raises(CmemsDatasetError, match=r"l4_sst: version 199901 .*OCEANTACO_PINNED_VERSIONS"):
        get_provider("cmems", settings(pinned_versions={SST_REP: "199901"})).plan(product, DAYS)


def test_missing_or_refused_credentials_fail_fast(upstream, monkeypatch):
    import copernicusmarine
    from copernicusmarine.core_functions import request_structure

    product = CATALOG["l4_sst"]
    monkeypatch.delenv("COPERNICUSMARINE_SERVICE_PASSWORD")
    with pytest.raises(CmemsCredentialsError, match=r"l4_sst: .*COPERNICUSMARINE_SERVICE_PASSWORD"):
        get_provider("cmems", settings()).plan(product, DAYS)
    monkeypatch.setenv("COPERNICUSMARINE_SERVICE_PASSWORD", PASSWORD)

    checks = []

    def refuse(username, password, credentials_file):
        checks.append(1)
        raise copernicusmarine.InvalidUsernameOrPassword(f"refused {USER}")

    monkeypatch.setattr(request_structure, "get_and_check_username_password", refuse)
    with pytest.raises(CmemsCredentialsError, match="l4_sst: Copernicus Marine refused") as refused:
        get_provider("cmems", settings()).plan(product, DAYS)
    assert len(checks) == 1  # not retried
    assert not is_transient(refused.value)
    assert USER not in str(refused.value) and PASSWORD not in str(refused.value)


def test_unknown_dataset_fails_fast_and_names_the_product(upstream, monkeypatch):
    # DUACS L4 is in the catalog but not in this fake service: as an unknown dataset id would be.
    with (
        counting_toolbox_calls(monkeypatch) as calls,
        pytest.raises(CmemsDatasetError, match=r"l4_ssh: describe .*catalog\.toml") as failed,
    ):
        get_provider("cmems", settings()).plan(CATALOG["l4_ssh"], DAYS[:1])
    assert len(calls) == 1 and not is_transient(failed.value)


def test_transient_errors_are_retried_with_backoff_then_reported_as_transient(
    upstream, monkeypatch, tmp_path
):
    import copernicusmarine

    real_get = copernicusmarine.get
    failures = {"left": 2}
    sleeps: list[float] = []
    monkeypatch.setattr(cmems, "_sleep", sleeps.append)

    def flaky_get(**kwargs):
        if failures["left"]:
            failures["left"] -= 1
            # botocore puts request URLs, with the toolbox's x-cop-user parameter, in its messages
            raise ConnectionError(f"Could not connect to http://127.0.0.1/b/k.nc?x-cop-user={USER}")
        return real_get(**kwargs)

    monkeypatch.setattr(copernicusmarine, "get", flaky_get)
    provider = get_provider("cmems", settings(cmems_retries=3, cmems_backoff_seconds=1.0))
    (plan,) = provider.plan(CATALOG["l4_sst"], DAYS[:1])
    assert len(plan.files) == 1 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0  # full jitter under 1 s, then 2 s

    failures["left"] = 100
    outcomes = fetch(plan, provider.source, Storage(str(tmp_path)), backoff_seconds=0.01)
    (failed,) = outcomes  # the toolbox's 3 tries, and fetch's own 3 rounds of them on top
    assert failed.status == "failed" and failed.transient and "after 3 attempt(s)" in failed.error
    assert failed.attempts == 3
    assert USER not in failed.error and "x-cop-user=***" in failed.error
    with pytest.raises(CmemsTransientError):
        provider.source.open_read(plan.files[0].source_key)


def test_cli_download_reports_and_logs_hold_no_credentials(upstream, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OCEANTACO_CMEMS_BACKOFF_SECONDS", "0.01")
    root = tmp_path / "raw"
    args = ["download", "--start-date", "2024-01-16", "--end-date", "2024-01-16", "--output-dir", str(root)]
    result = CliRunner().invoke(app, [*args, "--download", "--sources", "l4_sst"])
    assert result.exit_code == 0, result.output
    assert "fetched 1 file(s)" in result.output
    result = CliRunner().invoke(app, [*args, "--download", "--sources", "l4_sst"])
    assert "fetched 0 file(s)" in result.output and "skipped 1" in result.output
    reports = [p.read_text() for p in (root / "logs").glob("download_report_*.json")]
    logs = [p.read_text() for p in (root / "logs").glob("download_log_*.log")]
    assert sorted(json.loads(r)["summary"]["ok"] for r in reports) == [0, 1] and len(logs) == 2
    for text in (*reports, *logs, result.output, caplog.text):
        assert USER not in text and PASSWORD not in text


def test_a_cut_file_counts_as_fetched_once_present_whatever_its_size(tmp_path):
    class CutOnRequest:  # what ToolboxSource offers fetch for products fetched with subset
        def size(self, key: str) -> int:
            return cmems._AnySize(0)

        def open_read(self, key: str) -> io.BytesIO:
            return io.BytesIO(b"cut on request")

        def url_of(self, key: str) -> str:
            return key

    raw = Storage(str(tmp_path))
    assert raw.copy_from(CutOnRequest(), "k", "glorys/k.nc").written
    again = raw.copy_from(CutOnRequest(), "k", "glorys/k.nc")
    assert not again.written and raw.read_bytes("glorys/k.nc") == b"cut on request"
