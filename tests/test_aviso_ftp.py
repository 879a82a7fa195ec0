"""SWOT over AVISO FTP against a real pyftpdlib server on 127.0.0.1 with an AVISO-like tree.

The tree holds L3 Basic passes of 2025-01-11..15 in cycles 025-027 (a cycle boundary falls on 2025-01-13)
and an L2 tree with two versions of some passes; the range under test is 2025-01-12..14, so passes crossing
its first and last midnights, and decoys outside it, are all there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr
from services import FTPService, start_ftp_server
from typer.testing import CliRunner

from oceantaco import steps
from oceantaco.catalog import load_catalog
from oceantaco.cli import app
from oceantaco.providers import DayPlan, RemoteFile, aviso, fetch, is_transient
from oceantaco.settings import Settings
from oceantaco.storage import Storage
from oceantaco.synthetic_sparse import (
    swot_day,
    swot_file_name,
    swot_pass_end,
    swot_pass_start,
    write_swot_pass,
)

USER, PASSWORD = "swot-tester", "pa55-Wörd:@/secret"
DAYS = [dt.date(2025, 1, 12), dt.date(2025, 1, 13), dt.date(2025, 1, 14)]
RANGE = ["--start-date", "2025-01-12", "--end-date", "2025-01-14"]
LINES = 200
L3_ROOT = "swot_products/l3_karin_nadir/l3_lr_ssh/v2_0_1/Basic"
L2_ROOT = "swot_products/l2_karin/l2_lr_ssh/PGC0/Basic"
SWOT = load_catalog()["l3_swot"]


def _day_passes(day: dt.date) -> list[tuple[int, int, dt.datetime]]:
    return swot_day(day, n_passes=4, n_lines=LINES)


def expected_names(day: dt.date, kind: str = "Basic") -> list[str]:
    """Upstream names of the passes with measurements on ``day`` (crossing passes included)."""
    return [
        swot_file_name(kind, c, p, start, swot_pass_end(start, kind, LINES))
        for c, p, start in _day_passes(day)
    ]


def build_tree(root: Path) -> Path:
    """L3 Basic passes of 2025-01-11..15, a decoy in cycle 025, a README; L2 passes with a newer version."""
    written: set[tuple[int, int]] = set()
    for day in [DAYS[0] - dt.timedelta(days=1), *DAYS, DAYS[-1] + dt.timedelta(days=1)]:
        for cycle, pass_number, start in _day_passes(day):
            if (cycle, pass_number) not in written:
                written.add((cycle, pass_number))
                write_swot_pass(
                    root / L3_ROOT / f"cycle_{cycle:03d}", cycle, pass_number, start, n_lines=LINES
                )
    write_swot_pass(root / L3_ROOT / "cycle_025", 25, 300, swot_pass_start(25, 300), n_lines=LINES)
    (root / L3_ROOT / "README.txt").write_text("not a pass\n")
    for index, (cycle, pass_number, start) in enumerate(_day_passes(DAYS[1])):
        name = swot_file_name("L2Basic", cycle, pass_number, start, swot_pass_end(start, "L2Basic", LINES))
        folder = root / L2_ROOT / f"cycle_{cycle:03d}"
        versions = ["PGC0_01", "PGC0_02"] if index % 2 == 0 else ["PGC0_01"]
        for seed, version in enumerate(versions):
            path = folder / name.replace("PIC2_01", version)
            write_swot_pass(path, cycle, pass_number, start, kind="L2Basic", n_lines=LINES, seed=seed)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tree(tmp_path_factory.mktemp("aviso"))


@pytest.fixture(scope="module")
def server(tree: Path) -> Iterator[FTPService]:
    with start_ftp_server(tree, USER, PASSWORD) as service:
        yield service


@pytest.fixture(autouse=True)
def fresh_pools(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without pooled connections or remembered login failures, and retries quickly."""
    monkeypatch.setattr(aviso, "BACKOFF_SECONDS", 0.01)
    aviso.reset_connection_pools()
    yield
    aviso.reset_connection_pools()


@pytest.fixture
def aviso_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Settings]:
    """Point OCEANTACO_AVISO_* at a server, as a pod's environment would; returns the resulting Settings."""

    def point(service: FTPService, password: str = PASSWORD, **extra: str) -> Settings:
        monkeypatch.setenv("OCEANTACO_AVISO_FTP_URL", service.url)
        monkeypatch.setenv("OCEANTACO_AVISO_USER", USER)
        monkeypatch.setenv("OCEANTACO_AVISO_PASSWORD", password)
        monkeypatch.setenv("OCEANTACO_AVISO_CATALOG_URL", str(tmp_path / "catalog"))
        for name, value in extra.items():
            monkeypatch.setenv(f"OCEANTACO_{name.upper()}", value)
        return Settings()

    return point


def plan_and_fetch(raw_url: str, settings: Settings) -> tuple[list[DayPlan], list]:
    """The download step's own functions, day by day, as the CLI runs them."""
    plans = steps.plan_downloads("l3_swot", DAYS, settings)
    outcomes = [o for plan in plans for o in steps.fetch_day(plan, raw_url, settings)]
    return plans, outcomes


def assert_identical(raw: Storage, tree: Path, plans: list[DayPlan]) -> None:
    for plan in plans:
        for remote in plan.files:
            assert raw.read_bytes(remote.raw_key) == (tree / remote.source_key).read_bytes(), remote.raw_key


def test_plan_takes_every_pass_touching_each_day(server, tree, aviso_env):
    plans = steps.plan_downloads("l3_swot", DAYS, aviso_env(server))
    assert [p.day for p in plans] == DAYS
    for plan in plans:
        names = [f.raw_key.removeprefix("l3_swot/") for f in plan.files]
        assert names == expected_names(plan.day)  # in time order, decoys and README left out
        for remote in plan.files:
            assert remote.source_key.startswith(f"{L3_ROOT}/cycle_0")
            assert remote.size == (tree / remote.source_key).stat().st_size
    # The passes crossing the range's midnights are planned for both of their days.
    assert plans[0].files[-1] == plans[1].files[0] and plans[1].files[-1] == plans[2].files[0]
    assert plans[0].files[0].raw_key.split("_")[-3].startswith("20250111T")
    assert {f.source_key.split("/")[-2] for p in plans for f in p.files} == {"cycle_026", "cycle_027"}


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_download_is_byte_identical_then_a_rerun_transfers_nothing(
    backend, server, tree, aviso_env, make_storage_root, monkeypatch
):
    raw_url = make_storage_root(backend)
    aviso_env(server)
    monkeypatch.delenv("OCEANTACO_AVISO_CATALOG_URL")
    settings = aviso.apply_cli_options(Settings(), raw_url)
    plans, outcomes = plan_and_fetch(raw_url, settings)
    raw = Storage(raw_url)
    unique = {f.raw_key for p in plans for f in p.files}
    assert [o.status for o in outcomes].count("ok") == len(unique) == 10
    assert [o.status for o in outcomes].count("skipped") == 2  # the two crossing passes, second day
    assert_identical(raw, tree, plans)
    assert raw.exists("l3_swot/catalog/aviso_swot_l3_Basic.json")  # the catalog lives in the raw root

    retr_before = server.stats.retr
    again, outcomes = plan_and_fetch(raw_url, settings)
    assert again == plans and {o.status for o in outcomes} == {"skipped"}
    assert server.stats.retr == retr_before  # nothing read from the server
    provider = aviso.Aviso(settings)
    for plan in plans:  # the format side finds each day's passes in the raw root
        assert provider.raw_inputs(SWOT, plan.day, raw) == [f.raw_key for f in plan.files]


def test_catalog_is_reused_while_fresh_and_relisted_on_request(tmp_path, aviso_env):
    root = tmp_path / "tree"
    c, p, start = _day_passes(DAYS[0])[1]
    write_swot_pass(root / L3_ROOT / f"cycle_{c:03d}", c, p, start, n_lines=LINES)
    with start_ftp_server(root, USER, PASSWORD) as service:
        settings = aviso_env(service)
        first = aviso.Aviso(settings).plan(SWOT, DAYS)
        cache = Storage(settings.aviso_catalog_url)
        created = json.loads(cache.read_bytes("aviso_swot_l3_Basic.json"))["created"]
        c2, p2, start2 = _day_passes(DAYS[1])[1]  # a pass published after the first listing
        write_swot_pass(root / L3_ROOT / f"cycle_{c2:03d}", c2, p2, start2, n_lines=LINES)

        assert aviso.Aviso(settings).plan(SWOT, DAYS) == first  # the cached listing is still fresh
        refreshed = settings.model_copy(update={"aviso_refresh_catalog": True})
        plans = aviso.Aviso(refreshed).plan(SWOT, DAYS)
        assert [len(plan.files) for plan in plans] == [1, 1, 0]
        assert json.loads(cache.read_bytes("aviso_swot_l3_Basic.json"))["created"] > created

        # Older than the maximum age: listed again without being asked.
        write_swot_pass(root / L3_ROOT / "cycle_027", *_day_passes(DAYS[2])[1], n_lines=LINES)
        body = json.loads(cache.read_bytes("aviso_swot_l3_Basic.json"))
        body["created"] = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=169)).isoformat()
        cache.write_bytes("aviso_swot_l3_Basic.json", json.dumps(body).encode())
        assert [len(plan.files) for plan in aviso.Aviso(settings).plan(SWOT, DAYS)] == [1, 1, 1]


def test_listing_without_mlsd_falls_back_to_nlst_and_size(tree, server, aviso_env, tmp_path):
    with_mlsd = aviso.Aviso(aviso_env(server)).catalog()
    with start_ftp_server(tree, USER, PASSWORD, mlsd=False) as old:
        settings = aviso_env(old).model_copy(update={"aviso_catalog_url": str(tmp_path / "nlst")})
        provider = aviso.Aviso(settings)
        without = provider.catalog()
        assert provider.pool.mlsd is False
    assert without.cycles == with_mlsd.cycles
    assert len(without.files()) == len(list(tree.glob(f"{L3_ROOT}/cycle_*/*.nc")))


def test_l2_level_takes_the_newest_version_into_l2_swot(server, tree, aviso_env, tmp_path):
    settings = aviso.apply_cli_options(aviso_env(server), str(tmp_path / "raw"), level="l2")
    plans, outcomes = plan_and_fetch(str(tmp_path / "raw"), settings)
    middle = plans[1]
    versions = [f.raw_key[-10:-3] for f in middle.files]
    assert versions == ["PGC0_02", "PGC0_01", "PGC0_02", "PGC0_01"]
    assert all(f.raw_key.startswith("l2_swot/SWOT_L2_LR_SSH_Basic_") for f in middle.files)
    assert {o.status for o in outcomes} <= {"ok", "skipped"}
    raw = Storage(str(tmp_path / "raw"))
    assert_identical(raw, tree, plans)
    assert aviso.Aviso(settings).raw_inputs(SWOT, DAYS[1], raw) == [f.raw_key for f in middle.files]


def test_a_server_dropping_connections_still_delivers_every_file(tree, aviso_env, tmp_path):
    raw_url = str(tmp_path / "raw")
    # One connection at a time keeps the server's drop choices in a reproducible order.
    with start_ftp_server(tree, USER, PASSWORD, drop_fraction=0.3, seed=20) as flaky:
        settings = aviso_env(flaky, aviso_max_connections="1")
        source = aviso.Aviso(settings).source
        plans = steps.plan_downloads("l3_swot", DAYS, settings)
        outcomes = [o for plan in plans for o in fetch(plan, source, Storage(raw_url))]
        drops = flaky.stats.refused_at_greeting + flaky.stats.aborted_transfers + flaky.stats.cut_sessions
    assert {o.status for o in outcomes} <= {"ok", "skipped"}
    assert_identical(Storage(raw_url), tree, plans)
    stats = aviso.Aviso(settings).pool.stats
    assert flaky.stats.aborted_transfers and flaky.stats.cut_sessions and drops >= 10
    assert flaky.stats.rest > 0  # broken transfers resumed where they stopped (REST), not restarted
    assert stats.retries == drops  # each drop cost exactly one retry, none gave up
    assert 0 < sum(source.fs.retries.values()) <= stats.retries  # transfer retries, counted per file
    assert stats.files == 10


def test_wrong_password_fails_fast_and_is_never_shown(server, aviso_env, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-Secret-42"
    aviso_env(server, password=wrong)
    failed_before, started = server.stats.failed_logins, time.monotonic()
    result = CliRunner().invoke(
        app, ["download", "--sources", "l3_swot", "--download", *RANGE, "--output-dir", str(tmp_path / "raw")]
    )
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 5
    assert server.stats.failed_logins - failed_before == 1  # one login, no retry storm
    output = " ".join(result.output.split())
    assert "refused the login" in output and "OCEANTACO_AVISO_PASSWORD" in output
    (report,) = (tmp_path / "raw" / "logs").glob("download_report_*.json")
    body = json.loads(report.read_text())
    assert body["errors"][0]["product"] == "l3_swot" and "530" in body["errors"][0]["error_message"]

    # Files planned earlier (e.g. from a cached catalog) fail at once too, without asking the server again.
    settings = Settings()
    plan = DayPlan("l3_swot", DAYS[0], (RemoteFile(f"{L3_ROOT}/cycle_026/x.nc", "l3_swot/x.nc", 1),) * 3)
    outcomes = steps.fetch_day(plan, str(tmp_path / "raw"), settings)
    assert [o.status for o in outcomes] == ["failed"] * 3 and not any(o.transient for o in outcomes)
    assert server.stats.failed_logins - failed_before == 1
    for text in (result.output, report.read_text(), caplog.text, *(o.error or "" for o in outcomes)):
        assert wrong not in text and PASSWORD not in text
    assert wrong not in repr(settings) and wrong not in repr(aviso.Aviso(settings).source)


def test_a_file_gone_from_the_server_fails_permanently_naming_the_fix(server, aviso_env, tmp_path):
    settings = aviso_env(server)
    plan = DayPlan("l3_swot", DAYS[0], (RemoteFile(f"{L3_ROOT}/cycle_026/gone.nc", "l3_swot/gone.nc", 5),))
    (outcome,) = steps.fetch_day(plan, str(tmp_path / "raw"), settings)
    assert outcome.status == "failed" and not outcome.transient
    assert "not on the server" in outcome.error and "--refresh-catalog" in outcome.error


def test_concurrent_fetches_stay_within_max_connections(tree, aviso_env, tmp_path):
    with start_ftp_server(tree, USER, PASSWORD) as service:
        settings = aviso_env(service, aviso_max_connections="2")
        plans = steps.plan_downloads("l3_swot", DAYS, settings)
        # One plan per file, fetched from six threads: the shape of the Prefect flow's mapped tasks.
        single = [DayPlan(p.product, p.day, (f,)) for p in plans for f in p.files]
        with ThreadPoolExecutor(6) as threads:
            results = list(threads.map(lambda p: steps.fetch_day(p, str(tmp_path / "raw"), settings), single))
        assert service.stats.peak_active <= 2
    assert aviso.Aviso(settings).pool.stats.peak_active <= 2
    assert {o.status for r in results for o in r} <= {"ok", "skipped"}
    assert_identical(Storage(str(tmp_path / "raw")), tree, plans)


def test_cli_download_with_environment_credentials(server, aviso_env, tmp_path, monkeypatch):
    aviso_env(server)
    monkeypatch.delenv("OCEANTACO_AVISO_CATALOG_URL")  # the CLI then keeps it in the raw root
    raw = tmp_path / "raw"
    args = ["download", "--sources", "l3_swot", *RANGE, "--output-dir", str(raw)]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "would fetch up to 12 file(s)" in result.output
    # A dry run writes its report and run log only.
    assert sorted(p.name.split("_")[1] for p in raw.rglob("*") if p.is_file()) == ["log", "report"]
    result = runner.invoke(app, [*args, "--download"])
    assert result.exit_code == 0, result.output
    assert "fetched 10 file(s)" in result.output and "skipped 2 already present" in result.output
    result = runner.invoke(app, [*args, "--download", "--refresh-catalog"])
    assert "fetched 0 file(s)" in result.output and "skipped 12 already present" in result.output
    assert len(list((raw / "l3_swot").glob("SWOT_*.nc"))) == 10


def test_cli_password_option_works_but_warns(server, aviso_env, tmp_path, monkeypatch):
    aviso_env(server)
    monkeypatch.delenv("OCEANTACO_AVISO_USER")
    monkeypatch.delenv("OCEANTACO_AVISO_PASSWORD")
    args = ["download", "--sources", "l3_swot", *RANGE, "--output-dir", str(tmp_path / "raw"), "--download"]
    result = CliRunner().invoke(app, [*args, "--aviso-ftp-user", USER, "--aviso-ftp-pass", PASSWORD])
    assert result.exit_code == 0, result.output
    assert "process list" in result.output and "fetched 10 file(s)" in result.output
    assert PASSWORD not in result.output
    assert all(PASSWORD not in p.read_text() for p in (tmp_path / "raw" / "logs").iterdir())
    result = CliRunner().invoke(app, [*args, "--swot-level", "l4"])
    assert result.exit_code == 2 and "l2 or l3" in result.output


def test_without_credentials_swot_is_skipped_with_a_warning(caplog, monkeypatch):
    monkeypatch.delenv("OCEANTACO_AVISO_USER", raising=False)
    settings = Settings(aviso_ftp_url="ftp://127.0.0.1:9")  # nothing listens there: no contact is made
    with caplog.at_level(logging.WARNING):
        plans = aviso.Aviso(settings).plan(SWOT, DAYS)
    assert [p.files for p in plans] == [(), (), ()]
    assert "OCEANTACO_AVISO_USER" in caplog.text


def test_a_user_without_password_is_refused_before_any_connection(monkeypatch):
    monkeypatch.delenv("OCEANTACO_AVISO_PASSWORD", raising=False)
    settings = Settings(aviso_ftp_url="ftp://127.0.0.1:9", aviso_user="me")
    with pytest.raises(PermissionError, match="OCEANTACO_AVISO_PASSWORD"):
        aviso.Aviso(settings).plan(SWOT, DAYS)


def test_credentials_in_the_url_are_refused_without_repeating_them():
    settings = Settings(aviso_ftp_url="ftp://me:leaky-secret@example.org", aviso_user="me")
    with pytest.raises(ValueError, match="must not contain credentials") as caught:
        aviso.Aviso(settings).source  # noqa: B018
    assert "leaky-secret" not in str(caught.value)
    assert not is_transient(caught.value)


def test_settings_mask_the_password():
    settings = Settings(aviso_user="u", aviso_password=SecretStr("masked-pw"))
    assert "masked-pw" not in repr(settings) and "masked-pw" not in str(settings.model_dump())
