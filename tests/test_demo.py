"""`oceantaco demo` (what `make demo` runs) keeps working: offline, into a replaced folder."""

import io

import pytest
from rich.console import Console

from oceantaco.demo import DEMO_DAYS, run_demo
from oceantaco.regions import REGION_NAMES
from oceantaco.storage import Storage
from oceantaco.taco import read_slots

# The whole demo (three days, both products, a full Prefect pipeline run) is end-to-end: `make test-e2e`.
pytestmark = [pytest.mark.prefect, pytest.mark.e2e]


def test_demo_builds_three_days_of_both_products(tmp_path, monkeypatch):
    for name in ("OCEANTACO_CMEMS_MIRROR", "OCEANTACO_ARGO_GDAC"):
        monkeypatch.setenv(name, "restored-after-the-test")  # the demo points these at its mirror
    output = tmp_path / "demo-output"
    output.mkdir()
    (output / "stale.txt").write_text("from an earlier run")
    printed = io.StringIO()

    report = run_demo(output, Console(file=printed, width=200))

    assert not (output / "stale.txt").exists()
    assert report.days == len(DEMO_DAYS) == 3 and not report.verify.failures
    rows = read_slots(Storage(report.url))
    assert {r["day"] for r in rows} == {f"{d:%Y_%m_%d}" for d in DEMO_DAYS}
    for slot in ("l4_ssh.nc", "argo.nc"):
        places = {(r["day"], r["region"]) for r in rows if r["slot"] == slot and r["available"]}
        assert len(places) == 3 * len(REGION_NAMES)
    assert f"tacoreader.load('{report.url}')" in printed.getvalue()
