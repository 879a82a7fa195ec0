"""Flow parameters and wiring rules that need no server: the date window ("last N days" with a publication
lag, or an explicit range), parameter descriptions, retry conditions, setup definitions. The dry run goes
through Prefect (marked `prefect`)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Completed, Failed
from prefect.utilities.callables import parameter_schema

from flows import fanout
from flows.build import build_flow
from flows.chunk import chunk_flow
from flows.parameters import check_root, resolve_window
from flows.pipeline import pipeline
from flows.retries import retry_download, retry_network
from oceantaco import prefect_setup
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.synthetic import build_mirror

REPO = Path(__file__).resolve().parents[1]
TODAY = dt.date(2026, 3, 10)
D = dt.date


# --- 4. the date window ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("last_n_days", "lag_days", "today", "expected"),
    [
        (7, 1, TODAY, (D(2026, 3, 3), D(2026, 3, 9))),  # the daily-update: a week ending yesterday
        (1, 0, TODAY, (TODAY, TODAY)),  # no lag: today only
        (180, 30, TODAY, (D(2025, 8, 13), D(2026, 2, 8))),  # the monthly reprocess window
        (3, 1, D(2026, 1, 1), (D(2025, 12, 29), D(2025, 12, 31))),  # across a year boundary
        (2, 0, D(2024, 3, 1), (D(2024, 2, 29), D(2024, 3, 1))),  # a leap day
    ],
)
def test_last_n_days_ends_lag_days_before_today(last_n_days, lag_days, today, expected):
    first, last = resolve_window(None, None, last_n_days, lag_days, today)
    assert (first, last) == expected
    assert (last - first).days + 1 == last_n_days


def test_an_explicit_range_is_taken_as_given_and_ignores_the_lag():
    assert resolve_window(D(2024, 1, 1), D(2024, 1, 4), None, 5, TODAY) == (D(2024, 1, 1), D(2024, 1, 4))
    assert resolve_window(D(2024, 1, 1), D(2024, 1, 1), None, 0, TODAY) == (D(2024, 1, 1), D(2024, 1, 1))


@pytest.mark.parametrize(
    ("start", "end", "last_n_days", "message"),
    [
        (D(2024, 1, 1), D(2024, 1, 2), 3, "not both"),
        (D(2024, 1, 1), None, 3, "not both"),
        (None, None, None, "give start and end"),
        (D(2024, 1, 1), None, None, "give start and end"),
        (D(2024, 1, 2), D(2024, 1, 1), None, "before start date"),
        (None, None, 0, "last_n_days must be >= 1"),
    ],
)
def test_a_window_that_is_neither_or_both_is_refused(start, end, last_n_days, message):
    with pytest.raises(ValueError, match=message):
        resolve_window(start, end, last_n_days, 1, TODAY)


def test_a_root_with_an_unresolved_deploy_placeholder_is_refused():
    with pytest.raises(ValueError, match="unresolved placeholder"):
        check_root("{{ $OCEANTACO_ROOT }}")
    assert check_root("s3://bucket/oceantaco") == "s3://bucket/oceantaco"


# --- parameters as the UI shows them ----------------------------------------------------------------------


def test_every_deployed_flow_parameter_has_a_description_and_type():
    for flow in (pipeline, build_flow, chunk_flow):
        properties = parameter_schema(flow).model_dump()["properties"]
        assert all(spec.get("description") for spec in properties.values()), flow.name
    properties = parameter_schema(pipeline).model_dump()["properties"]
    assert properties["products"]["anyOf"][0]["items"]["enum"][:2] == ["glorys", "l4_ssh"]
    assert properties["swot_level"]["anyOf"][0]["enum"] == ["l2", "l3"]
    assert properties["start"]["anyOf"][0]["format"] == "date"
    assert properties["last_n_days"]["anyOf"][0]["minimum"] == 1
    assert properties["days_per_chunk"]["minimum"] == 1 and properties["max_parallel_chunks"]["minimum"] == 1


# --- retries: transient errors only ------------------------------------------------------------------------


def _failed(exc: BaseException):
    return Failed(data=exc)


def test_bucket_tasks_retry_network_errors_only():
    try:
        raise OSError("read failed") from ConnectionResetError("peer reset")
    except OSError as exc:
        wrapped = exc
    assert retry_network(None, None, _failed(wrapped))
    assert retry_network(None, None, _failed(TimeoutError()))
    assert not retry_network(None, None, _failed(OSError("Unable to open file (truncated file)")))
    assert not retry_network(None, None, _failed(ValueError("bad input")))


def test_download_tasks_retry_what_the_providers_call_transient():
    assert retry_download(None, None, _failed(TimeoutError()))
    assert not retry_download(None, None, _failed(FileNotFoundError("no such dataset")))
    assert not retry_download(None, None, _failed(PermissionError("login refused")))


# --- setup definitions ------------------------------------------------------------------------------------


def test_limits_are_named_after_providers_and_overridable():
    assert {prefect_setup.provider_limit(t) for t in ("l4_ssh", "glorys")} == {"cmems"}
    assert prefect_setup.provider_limit("l3_swot") == "aviso"
    assert prefect_setup.provider_limit("argo") == "argo-gdac"
    assert prefect_setup.parse_limits(["cmems=2"]) == {**prefect_setup.DEFAULT_LIMITS, "cmems": 2}
    for bad in ("nasa=2", "cmems", "cmems=0", "cmems=two"):
        with pytest.raises(ValueError):
            prefect_setup.parse_limits([bad])


def test_the_shipped_automation_crashes_runs_whose_heartbeats_stop():
    (automation,) = prefect_setup.load_automations(REPO / "deploy" / "automations")
    trigger = automation.trigger
    assert trigger.posture == "Proactive" and trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {"prefect.flow-run.*"} and trigger.for_each == {"prefect.resource.id"}
    assert trigger.within == dt.timedelta(seconds=300)  # 5 heartbeats of the 60 s set in prefect.yaml
    assert [a.type for a in automation.actions] == ["change-flow-run-state"]
    assert automation.actions[0].state == "CRASHED"
    heartbeat = re.search(r'PREFECT_FLOWS_HEARTBEAT_FREQUENCY: "(\d+)"', (REPO / "prefect.yaml").read_text())
    assert heartbeat and int(heartbeat.group(1)) * 3 <= trigger.within.total_seconds()


def test_the_kubernetes_template_declares_every_variable_it_uses():
    template = json.loads(prefect_setup.default_base_job_template().read_text())
    used = set(re.findall(r"{{\s*([\w]+)\s*}}", json.dumps(template["job_configuration"])))
    assert used == set(template["variables"]["properties"])


# --- the dry run ----------------------------------------------------------------------------------------


@pytest.mark.prefect
def test_a_dry_run_plans_and_fetches_nothing(tmp_path, upstream_env):
    day = D(2024, 1, 31)
    mirror = build_mirror(
        tmp_path / "upstream", [day], l4_resolution=1.0, grid_products=(), alongtrack_points=None
    )
    upstream_env(mirror.cmems_mirror, mirror.argo_gdac)
    root = str(tmp_path / "root")
    report = pipeline(day, day, root, ["l4_ssh", "argo"], dry_run=True)
    assert report.dry_run and not report.errors and not report.files
    assert {(p["product"], p["day"]) for p in report.planned} == {("l4_ssh", str(day)), ("argo", str(day))}
    summary = report.summary
    assert summary["planned_files"] == len(mirror.argo_files) + 1 and summary["planned_bytes"] > 0
    raw = Storage(Roots.under(root).raw)
    assert [key.split("/")[0] for key in raw.list()] == ["logs"]  # only the plan, saved as JSON


# --- the fan-out's view of its chunk runs ---------------------------------------------------------------


@pytest.mark.prefect
def test_the_states_of_more_chunk_runs_than_one_api_page_are_all_read_and_a_deleted_one_is_none():
    with get_client(sync_client=True) as client:
        runs = [client.create_flow_run(build_flow, name=f"page-{i}") for i in range(fanout.READ_BATCH + 5)]
        client.set_flow_run_state(runs[-1].id, Completed(), force=True)
        client.delete_flow_run(runs[0].id)
        ids = [str(run.id) for run in runs]
        try:
            found = fanout.current_runs(client, ids)
        finally:
            for run in runs[1:]:
                client.delete_flow_run(run.id)
    assert list(found) == ids
    assert found[ids[0]] is None
    assert all(found[i] is not None and str(found[i].id) == i for i in ids[1:])
    assert found[ids[-1]].state.is_completed() and not found[ids[1]].state.is_final()
