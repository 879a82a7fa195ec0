"""Providers against real transports: a CMEMS-layout mirror on disk and on moto S3, an Argo GDAC folder
and a Range-capable HTTP server serving the real GDAC fixtures."""

import datetime as dt
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from services import start_http_file_server

from oceantaco.catalog import load_catalog
from oceantaco.providers import (
    DayPlan,
    DownloadError,
    FileOutcome,
    RemoteFile,
    fetch,
    get_provider,
    is_transient,
)
from oceantaco.providers.argo_gdac import day_index_key, parse_index
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror

DAYS = [dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
CATALOG = load_catalog()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return build_mirror(
        tmp_path_factory.mktemp("mirror"), DAYS, l4_resolution=1.0, grid_products=(), alongtrack_points=None
    )


def _upload_tree(local: Path, url: str) -> None:
    target = Storage(url)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        target.put_file(path, path.relative_to(local).as_posix())


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_cmems_mirror_copies_each_day_once_in_the_native_layout(mirror, backend, make_storage_root):
    source = mirror.cmems_mirror
    if backend == "s3":
        source = make_storage_root("s3")
        _upload_tree(Path(mirror.cmems_mirror), source)
    raw = Storage(make_storage_root(backend))
    provider = get_provider("cmems", Settings(cmems_mirror=source))
    plans = provider.plan(CATALOG["l4_ssh"], DAYS)
    assert [len(p.files) for p in plans] == [1, 1]
    for plan, day in zip(plans, DAYS, strict=True):
        expected = mirror.l4_ssh_files[day].relative_to(mirror.cmems_mirror).as_posix()
        assert plan.files[0].raw_key == f"l4_ssh/{expected}"
        assert plan.files[0].size == mirror.l4_ssh_files[day].stat().st_size
        outcomes = fetch(plan, provider.source, raw)
        assert [o.status for o in outcomes] == ["ok"]
        assert raw.read_bytes(plan.files[0].raw_key) == mirror.l4_ssh_files[day].read_bytes()
        assert [o.status for o in fetch(plan, provider.source, raw)] == ["skipped"]
        assert provider.raw_inputs(CATALOG["l4_ssh"], day, raw) == [plan.files[0].raw_key]


def test_cmems_versions_are_discovered_newest_first_unless_pinned(mirror, tmp_path):
    tree = tmp_path / "mirror"
    shutil.copytree(mirror.cmems_mirror, tree)
    (day_file,) = [p for p in tree.rglob("*.nc") if "20240131" in p.name]
    current = day_file.parent.parent.parent
    older = current.with_name(current.name[:-6] + "202311") / "2024" / "01"
    older.mkdir(parents=True)
    shutil.copy(day_file, older / day_file.name)
    product = CATALOG["l4_ssh"]

    (plan,) = get_provider("cmems", Settings(cmems_mirror=str(tree))).plan(product, DAYS[:1])
    assert "_202411/" in plan.files[0].source_key
    pinned = Settings(cmems_mirror=str(tree), pinned_versions={product.datasets[0].dataset_id: "202311"})
    (plan,) = get_provider("cmems", pinned).plan(product, DAYS[:1])
    assert "_202311/" in plan.files[0].source_key


def test_raw_inputs_prefer_the_newest_production_date(tmp_path, mirror):
    raw = Storage(str(tmp_path))
    src = mirror.l4_ssh_files[DAYS[0]]
    folder = "l4_ssh/" + src.parent.relative_to(mirror.cmems_mirror).as_posix()
    for production in ("20240601", "20241120", "20240901"):
        raw.put_file(src, f"{folder}/dt_global_allsat_phy_l4_20240131_{production}.nc")
    (chosen,) = get_provider("cmems", Settings()).raw_inputs(CATALOG["l4_ssh"], DAYS[0], raw)
    assert chosen.endswith("_20241120.nc")


def test_cmems_without_mirror_or_credentials_is_refused_clearly(monkeypatch):
    """Without a mirror the toolbox transport is used, and it needs the toolbox's own credentials."""
    monkeypatch.delenv("COPERNICUSMARINE_SERVICE_USERNAME", raising=False)
    monkeypatch.delenv("COPERNICUSMARINE_SERVICE_PASSWORD", raising=False)
    with pytest.raises(PermissionError, match="COPERNICUSMARINE_SERVICE_USERNAME"):
        get_provider("cmems", Settings(cmems_mirror=None)).plan(CATALOG["l4_ssh"], DAYS)


def test_argo_from_a_local_gdac_folder(mirror, tmp_path):
    product = CATALOG["argo"]
    provider = get_provider("argo_gdac", Settings(argo_gdac=mirror.argo_gdac))
    raw = Storage(str(tmp_path))
    for plan in provider.plan(product, DAYS):
        expected = {p.relative_path for p in mirror.argo_profiles if p.juld.date() == plan.day}
        assert {f.source_key.removeprefix("dac/") for f in plan.files} == expected
        assert {o.status for o in fetch(plan, provider.source, raw)} == {"ok"}
        assert raw.exists(day_index_key(product, plan.day))
        assert sorted(provider.raw_inputs(product, plan.day, raw)) == sorted(
            f"argo/dac/{r}" for r in expected
        )


def test_argo_days_without_profiles_plan_empty_days(mirror):
    provider = get_provider("argo_gdac", Settings(argo_gdac=mirror.argo_gdac))
    later = [dt.date(2030, 1, 1), dt.date(2030, 1, 2)]  # after every profile of the mirror's index
    plans = provider.plan(CATALOG["argo"], later)
    assert [(plan.day, plan.files) for plan in plans] == [(day, ()) for day in later]


@pytest.fixture
def real_gdac(real_fixtures, tmp_path):
    """The real GDAC index and profile files, served by a Range-capable HTTP server."""
    root = tmp_path / "gdac"
    shutil.copytree(real_fixtures / "argo_gdac", root)
    with start_http_file_server(root) as server:
        yield root, server.url


def test_real_index_parses_like_the_gdac_documents_it(real_fixtures):
    with open(real_fixtures / "argo_gdac" / "ar_index_global_prof.txt", "rb") as stream:
        index = parse_index(stream)
    assert len(index) == 2702
    assert index["latitude"].isna().sum() == 1  # one row has empty lat/lon fields
    assert index["file"].str.match(r"^\w+/\d+/profiles/[RD]\d+_\d+D?\.nc$").all()


def test_real_gdac_over_http(real_gdac, tmp_path):
    root, url = real_gdac
    product = CATALOG["argo"]
    provider = get_provider("argo_gdac", Settings(argo_gdac=url))
    raw = Storage(str(tmp_path / "raw"))
    day = dt.date(2020, 8, 6)  # four profiles in the index, one of them in the fixture folder
    (plan,) = provider.plan(product, [day])
    assert len(plan.files) == 4
    outcomes = {o.raw_key: o.status for o in fetch(plan, provider.source, raw)}
    present = "argo/dac/aoml/5906072/profiles/D5906072_022.nc"
    assert outcomes.pop(present) == "ok"
    assert set(outcomes.values()) == {"failed"}  # missing upstream files fail alone...
    assert raw.read_bytes(present) == (root / "dac/aoml/5906072/profiles/D5906072_022.nc").read_bytes()
    assert not raw.exists(day_index_key(product, day))  # ...and the day is not marked complete


def test_real_profile_day_completes_over_http(real_gdac, tmp_path):
    root, url = real_gdac
    with open(root / "ar_index_global_prof.txt", "rb") as stream:
        index = parse_index(stream)
    present = index[[(root / "dac" / f).exists() for f in index["file"]]]
    header = "".join((root / "ar_index_global_prof.txt").read_text().splitlines(keepends=True)[:8])
    (root / "ar_index_global_prof.txt").write_text(header + present.to_csv(index=False))
    product = CATALOG["argo"]
    provider = get_provider("argo_gdac", Settings(argo_gdac=url))
    raw = Storage(str(tmp_path / "raw"))
    days = sorted(pd.to_datetime(present["date"], format="%Y%m%d%H%M%S").dt.date.unique())
    for plan in provider.plan(product, days):
        assert {o.status for o in fetch(plan, provider.source, raw)} == {"ok"}
    assert sorted(k for d in days for k in provider.raw_inputs(product, d, raw)) == sorted(
        f"argo/dac/{f}" for f in present["file"]
    )


def test_index_is_filtered_to_the_requested_days_while_streaming(real_fixtures, tmp_path):
    import gzip

    text = (real_fixtures / "argo_gdac" / "ar_index_global_prof.txt").read_bytes()
    compressed = tmp_path / "ar_index_global_prof.txt.gz"
    compressed.write_bytes(gzip.compress(text))
    with open(compressed, "rb") as stream:
        rows = parse_index(stream, gzip=True, days=[dt.date(2020, 8, 6), dt.date(2022, 4, 23)])
    assert sorted(rows["date"].str[:8].unique()) == ["20200806", "20220423"]
    assert len(rows) == 6  # 4 + 2 profiles on those days in the real index


def test_failures_say_whether_a_retry_can_help(tmp_path):
    (tmp_path / "gdac" / "dac").mkdir(parents=True)
    plan = DayPlan("argo", DAYS[0], (RemoteFile("dac/missing.nc", "argo/dac/missing.nc"),))
    raw = Storage(str(tmp_path / "raw"))
    with start_http_file_server(tmp_path / "gdac") as server:
        (not_found,) = fetch(plan, Storage(server.url), raw)
    (refused,) = fetch(plan, Storage(server.url), raw)  # the server is gone now
    assert not_found.status == refused.status == "failed"
    assert not not_found.transient and "FileNotFoundError" in not_found.error
    assert refused.transient
    assert not raw.exists(day_index_key(CATALOG["argo"], DAYS[0]))


def test_a_day_is_retried_only_when_one_of_its_failures_is_transient():
    plan = DayPlan("argo", DAYS[0], ())
    permanent = FileOutcome("a", "failed", error="FileNotFoundError", transient=False)
    flaky = FileOutcome("b", "failed", error="TimeoutError", transient=True)
    assert not is_transient(DownloadError(plan, [permanent]))
    assert is_transient(DownloadError(plan, [permanent, flaky]))
    assert is_transient(TimeoutError()) and not is_transient(ValueError("bad input"))


@pytest.mark.parametrize("status", [503, 429])
def test_an_overloaded_gdac_is_retried_with_backoff(mirror, tmp_path, status):
    """Every file answers `status` once before it is served: the download completes, byte-identical, and
    each outcome says it took two tries."""
    product = CATALOG["argo"]
    with start_http_file_server(mirror.argo_gdac, fail_first=1, status=status) as server:
        provider = get_provider("argo_gdac", Settings(argo_gdac=server.url))
        raw = Storage(str(tmp_path / "raw"))
        outcomes = [
            o
            for plan in provider.plan(product, DAYS)
            for o in fetch(plan, provider.source, raw, backoff_seconds=0.01)
        ]
    assert outcomes and {o.status for o in outcomes} == {"ok"} and {o.attempts for o in outcomes} == {2}
    for outcome in outcomes:
        upstream = Path(mirror.argo_gdac) / outcome.raw_key.removeprefix("argo/")
        assert raw.read_bytes(outcome.raw_key) == upstream.read_bytes()


def test_a_missing_file_is_not_retried(mirror, tmp_path):
    product = CATALOG["argo"]
    with start_http_file_server(mirror.argo_gdac) as server:
        provider = get_provider("argo_gdac", Settings(argo_gdac=server.url))
        plan = provider.plan(product, DAYS[:1])[0]
        gone = replace(plan.files[0], source_key=plan.files[0].source_key + ".gone")
        started = time.monotonic()
        (outcome,) = fetch(
            replace(plan, files=(gone,)), provider.source, Storage(str(tmp_path)), backoff_seconds=5
        )
    assert outcome.status == "failed" and outcome.attempts == 1 and not outcome.transient
    assert time.monotonic() - started < 5
