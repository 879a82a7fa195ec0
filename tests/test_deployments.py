"""The deployments as Prefect runs them, against the real server `make test` starts (PREFECT_API_URL):
`prefect deploy` from the real prefect.yaml, a backfill run by a process worker, what the server stores for
every deployment, the Kubernetes job they render to, `oceantaco prefect setup`, the provider concurrency
limits and the crashed-run automation."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
import tacoreader
from k8s_tools import render_flow_run_job, validate_strictly, without_worker_required_pod_fields
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.concurrency.sync import concurrency
from prefect.events import emit_event
from prefect.logging.handlers import APILogHandler
from prefect.states import Completed, Running
from prefect_helpers import (
    REPO,
    TINY_DAY,
    artifacts_of,
    prefect_deploy,
    process_worker,
    subflow_runs,
    wait_for_final_state,
)
from typer.testing import CliRunner

from flows.download import download_flow
from oceantaco import prefect_setup
from oceantaco.cli import app
from oceantaco.regions import REGION_NAMES
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.taco import read_slots

pytestmark = pytest.mark.prefect

DAY = TINY_DAY
PIPELINE, BUILD, CHUNK_FLOW = "oceantaco-pipeline", "oceantaco-build", "oceantaco-chunk"


# ---------------------------------------------------------------------------------------------------------
# helpers: the setup applied for this module (and removed after it), `prefect deploy`, a process worker
# ---------------------------------------------------------------------------------------------------------


def _names(client: SyncPrefectClient) -> dict[str, set[str]]:
    return {
        "limits": {limit.name for limit in client.read_global_concurrency_limits(limit=200)},
        "automations": {a.name for a in client.read_automations()},
        "pools": {pool.name for pool in client.read_work_pools()},
    }


@dataclass
class ZombieProbe:
    """Two flow runs, each with one heartbeat, watched by a copy of the shipped crashed-run automation cut
    to 10 s and matched to them only; one of them then completes."""

    zombie: UUID
    finished: UUID
    automation: UUID


def arm_zombie_probe(client: SyncPrefectClient) -> ZombieProbe:
    (shipped,) = prefect_setup.load_automations(REPO / "deploy" / "automations")
    zombie, finished = (client.create_flow_run(download_flow, name=n) for n in ("zombie", "finished"))
    ids = [f"prefect.flow-run.{run.id}" for run in (zombie, finished)]
    trigger = shipped.trigger.model_copy(
        update={"within": dt.timedelta(seconds=10), "match": {"prefect.resource.id": ids}}
    )
    automation = client.create_automation(
        shipped.model_copy(update={"name": f"test-{zombie.id}", "trigger": trigger})
    )
    return ZombieProbe(zombie.id, finished.id, automation)


def start_heartbeats(client: SyncPrefectClient, probe: ZombieProbe) -> None:
    for run_id in (probe.zombie, probe.finished):
        client.set_flow_run_state(run_id, Running())
        emit_event(
            event="prefect.flow-run.heartbeat", resource={"prefect.resource.id": f"prefect.flow-run.{run_id}"}
        )
    client.set_flow_run_state(probe.finished, Completed())


@pytest.fixture(scope="module")
def server_setup() -> Iterator[tuple[prefect_setup.SetupReport, ZombieProbe]]:
    """`oceantaco prefect setup` applied once for this module, and the crashed-run probe armed (its 10 s
    window passes while the other tests run). Afterwards the deployments this module made and whatever it
    created are deleted, so other tests find the server as they would have."""
    with get_client(sync_client=True) as client:
        before = _names(client)
        probe = arm_zombie_probe(client)
        armed = time.monotonic()
        report = prefect_setup.setup()
        time.sleep(max(0.0, 2.0 - (time.monotonic() - armed)))  # the server loads the new automation
        start_heartbeats(client, probe)
    prefect_setup.forget_limits()
    yield report, probe
    with get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            if deployment.work_pool_name in (prefect_setup.LOCAL_POOL, prefect_setup.KUBERNETES_POOL):
                client.delete_deployment(deployment.id)
        after = _names(client)
        for name in after["limits"] - before["limits"]:
            client.delete_global_concurrency_limit_by_name(name)
        for automation in client.read_automations():
            if automation.name in after["automations"] - before["automations"]:
                client.delete_automation(automation.id)
        for name in after["pools"] - before["pools"]:
            client.delete_work_pool(name)
    prefect_setup.forget_limits()


IMAGE = f"registry.example/oceantaco:{uuid.uuid4().hex[:12]}"
ROOT = "s3://oceantaco-test/root"


@pytest.fixture(scope="module")
def deployed(server_setup) -> None:
    """`prefect deploy --all` from the real prefect.yaml, with the image and root CI would give."""
    prefect_deploy(env={"OCEANTACO_IMAGE": IMAGE, "OCEANTACO_ROOT": ROOT})


# ---------------------------------------------------------------------------------------------------------
# 1. a backfill deployed from prefect.yaml and run by a process worker
# ---------------------------------------------------------------------------------------------------------


def test_backfill_deployed_from_prefect_yaml_runs_on_a_process_worker(
    deployed, tiny_mirror, upstream_env, tmp_path, record_property
):
    upstream_env(tiny_mirror.cmems_mirror, tiny_mirror.argo_gdac)  # the worker and its flow run inherit it
    root = tmp_path / "root"

    started = time.monotonic()
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{PIPELINE}/backfill-local")
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"start": DAY, "end": DAY, "root": str(root), "products": ["l4_ssh", "argo"]},
        )
    # The backfill submits its chunk and then its build to the same pool: the worker serves all three.
    with process_worker(prefect_setup.LOCAL_POOL, tmp_path / "worker.log"):
        state = wait_for_final_state(run.id, timeout=600).state
    elapsed = time.monotonic() - started
    record_property("trigger_to_completion_seconds", round(elapsed, 1))
    print(f"backfill-local: trigger to completion {elapsed:.1f} s")
    assert state.type == StateType.COMPLETED, (state, (tmp_path / "worker.log").read_text()[-4000:])
    children = subflow_runs(run.id)
    assert [len(children[flow]) for flow in ("oceantaco-chunk", "oceantaco-build")] == [1, 1]
    taco = Storage(Roots.under(str(root)).taco)
    tacoreader.clear_cache()
    assert tacoreader.load(taco.url, cache=False).data["id"].to_pylist() == [f"{DAY:%Y_%m_%d}"]
    available = {(r["region"], r["slot"]) for r in read_slots(taco) if r["available"]}
    assert {region for region, slot in available if slot == "l4_ssh.nc"} == set(REGION_NAMES)
    argo_regions = {region for region, slot in available if slot == "argo.nc"}
    assert argo_regions

    # The run's report: counts from the mirror and the TACO, not from the report code.
    artifacts = artifacts_of(run.id)
    summary = artifacts["oceantaco-run-summary"].data.splitlines()
    for line in (
        "**Status:** OK",
        f"| files fetched | {len(tiny_mirror.argo_files) + 1} |",  # every Argo profile + one L4 map
        "| (product, day) formatted | 2 |",
        f"| tiles written | {len(REGION_NAMES) + len(argo_regions)} |",
        "| parts written | 1 |",
    ):
        assert line in summary, (line, summary)
    assert any(line.startswith(("| download |", "| format |", "| build |")) for line in summary)
    (row,) = json.loads(artifacts["oceantaco-coverage"].data)
    assert row["date"] == DAY.isoformat()
    assert {k: v for k, v in row.items() if k not in ("date", "tiles") and v} == {
        "l4_ssh": len(REGION_NAMES),
        "argo": len(argo_regions),
    }
    assert row["tiles"] == len(REGION_NAMES) + len(argo_regions)
    heatmap = root / "reports" / str(run.id) / "coverage.png"
    assert heatmap.read_bytes().startswith(b"\x89PNG")
    assert artifacts["oceantaco-coverage-heatmap"].data == heatmap.as_uri()
    assert f"[{taco.url}]" in artifacts["oceantaco-dataset"].data


# ---------------------------------------------------------------------------------------------------------
# 2. every deployment as the server stores it, and the Kubernetes Job its job variables render to
# ---------------------------------------------------------------------------------------------------------

# Pipeline runs only wait on their chunks and build: a small pod. A chunk pod's CPU limit and memory fit two
# 1.25 GiB format processes beside its flow process (tests/test_chunks.py checks the arithmetic).
ORCHESTRATOR = {
    "cpu_request": "250m",
    "cpu_limit": "1",
    "memory_request": "1Gi",
    "memory_limit": "2Gi",
    "scratch_size": "2Gi",
}
CHUNK = {
    "cpu_request": "2",
    "cpu_limit": "2",
    "memory_request": "4Gi",
    "memory_limit": "4Gi",
    "scratch_size": "8Gi",
    "active_deadline_seconds": 7200,
}
BUILD_POD = {
    "cpu_request": "1",
    "cpu_limit": "2",
    "memory_request": "4Gi",
    "memory_limit": "8Gi",
    "scratch_size": "50Gi",
}
WINDOW = {"start": None, "end": None}
EXPECTED = {
    # name: (flow, schedules, parameters without root, concurrency limit, resources)
    "daily-update": (
        PIPELINE,
        [("0 6 * * *", "UTC")],
        {**WINDOW, "last_n_days": 7, "lag_days": 1, "verify": True},
        1,
        ORCHESTRATOR,
    ),
    "backfill": (PIPELINE, [], {"verify": True}, None, ORCHESTRATOR),
    "reprocess": (
        PIPELINE,
        [("0 3 2 * *", "UTC")],
        {**WINDOW, "last_n_days": 180, "lag_days": 30, "verify": True},
        1,
        ORCHESTRATOR,
    ),
    "rebuild": (BUILD, [], {"verify": True}, None, BUILD_POD),
    "chunk": (CHUNK_FLOW, [], {}, None, CHUNK),
}
JOB_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "60", "PREFECT_LOGGING_EXTRA_LOGGERS": "oceantaco"}
# On Kubernetes also scratch on the emptyDir, and an evicted pod's run rescheduled rather than crashed.
K8S_ENV = {**JOB_ENV, "TMPDIR": "/scratch", "PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR": "reschedule"}


def test_every_deployment_as_the_server_stores_it_and_its_kubernetes_job(deployed):
    image, root = IMAGE, ROOT
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(prefect_setup.KUBERNETES_POOL)
        for name, (flow, schedules, parameters, limit, resources) in EXPECTED.items():
            for local in (False, True):
                deployment = client.read_deployment_by_name(f"{flow}/{name}{'-local' if local else ''}")
                where = deployment.name
                assert [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules] == schedules
                assert all(s.active is not local for s in deployment.schedules), where  # dev: never scheduled
                assert deployment.parameters == {
                    **parameters,
                    "root": "oceantaco-data" if local else root,
                }, where
                stored_limit = deployment.global_concurrency_limit
                assert (stored_limit.limit if stored_limit else None) == limit, where
                properties = deployment.parameter_openapi_schema["properties"]
                assert all(p.get("description") for p in properties.values()), where  # the UI form says what
                if local:
                    assert deployment.work_pool_name == prefect_setup.LOCAL_POOL
                    assert deployment.job_variables == {"env": JOB_ENV}
                    assert deployment.pull_steps == [
                        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
                    ]
                    continue
                assert deployment.work_pool_name == prefect_setup.KUBERNETES_POOL
                assert deployment.pull_steps == [
                    {"prefect.deployments.steps.set_working_directory": {"directory": "/opt/oceantaco"}}
                ]
                assert deployment.job_variables == {
                    "image": image,
                    "image_pull_policy": "IfNotPresent",
                    "namespace": "oceantaco",
                    "service_account_name": "oceantaco-pipeline",
                    "env_from": [{"secretRef": {"name": "oceantaco-credentials"}}],
                    "env": K8S_ENV,
                    "finished_job_ttl": 86400,
                    **resources,
                }, where

                flow_run = FlowRun(name="t", flow_id=deployment.flow_id, deployment_id=deployment.id)
                manifest = render_flow_run_job(
                    pool.base_job_template, deployment.job_variables, flow_run, deployment
                )
                validate_strictly([without_worker_required_pod_fields(manifest)])
                with pytest.raises(AssertionError, match="completions"):  # the only strict finding
                    validate_strictly([manifest])
                pod = manifest["spec"]["template"]["spec"]
                (container,) = pod["containers"]
                env = {e["name"]: e.get("value") for e in container["env"]}
                assert K8S_ENV.items() <= env.items(), where
                assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
                assert container["args"] == ["prefect", "flow-run", "execute"]
                assert manifest["metadata"]["namespace"] == "oceantaco"
                assert (
                    manifest["spec"]["backoffLimit"] == 0
                    and manifest["spec"]["ttlSecondsAfterFinished"] == 86400
                )
                assert pod["serviceAccountName"] == "oceantaco-pipeline" and pod["restartPolicy"] == "Never"
                assert pod["automountServiceAccountToken"] is False  # flow runs never call the K8s API
                assert pod["securityContext"] == {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 10001,
                    "fsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                }
                assert container["securityContext"] == {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                }
                assert container["image"] == image
                assert container["resources"] == {
                    "requests": {
                        "cpu": resources["cpu_request"],
                        "memory": resources["memory_request"],
                        "ephemeral-storage": resources["scratch_size"],
                    },
                    "limits": {"cpu": resources["cpu_limit"], "memory": resources["memory_limit"]},
                }
                assert container["envFrom"] == [{"secretRef": {"name": "oceantaco-credentials"}}]
                assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
                assert pod["volumes"] == [
                    {"name": "scratch", "emptyDir": {"sizeLimit": resources["scratch_size"]}}
                ]
                labels = manifest["spec"]["template"]["metadata"]["labels"]
                assert labels["app.kubernetes.io/component"] == "flow-run"  # what the NetworkPolicy selects
                assert labels["prefect.io/flow-run-id"] == str(flow_run.id)
                assert "{{" not in str(manifest)  # every placeholder was filled or dropped
                assert "nodeSelector" not in pod
                deadline = resources.get("active_deadline_seconds")  # chunks only
                assert manifest["spec"].get("activeDeadlineSeconds") == deadline


# ---------------------------------------------------------------------------------------------------------
# 3. `oceantaco prefect setup`, the provider limits and the crashed-run automation
# ---------------------------------------------------------------------------------------------------------


def test_prefect_setup_is_idempotent(server_setup):
    report, _ = server_setup
    assert set(report.concurrency_limits) == {"cmems", "aviso", "argo-gdac", "taco-build"}
    for _ in range(2):
        result = CliRunner().invoke(app, ["prefect", "setup"])
        assert result.exit_code == 0, result.output
        assert "created" not in result.output and "updated" not in result.output
        assert result.output.count("unchanged") == 7  # 4 limits, 1 automation, 2 work pools
    with get_client(sync_client=True) as client:
        limits = {
            name: client.read_global_concurrency_limit_by_name(name) for name in prefect_setup.DEFAULT_LIMITS
        }
        assert {name: (lim.limit, lim.active) for name, lim in limits.items()} == {
            "cmems": (4, True),
            "aviso": (1, True),
            "argo-gdac": (4, True),
            "taco-build": (1, True),
        }
        (automation,) = client.read_automations_by_name("oceantaco-crashed-runs")
        assert automation.trigger.posture == "Proactive"
        assert automation.trigger.after == {"prefect.flow-run.heartbeat"}
        assert automation.trigger.within == dt.timedelta(minutes=5)
        assert [(a.type, a.state) for a in automation.actions] == [
            ("change-flow-run-state", StateType.CRASHED)
        ]
        assert client.read_work_pool(prefect_setup.LOCAL_POOL).type == "process"
        assert client.read_work_pool(prefect_setup.KUBERNETES_POOL).type == "kubernetes"

    result = CliRunner().invoke(app, ["prefect", "setup", "--limit", "cmems=x"])
    assert result.exit_code == 2 and "SLOTS must be a whole number" in result.output


def _set_limit(name: str, slots: int) -> None:
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=slots))


def _running_task_runs(client: SyncPrefectClient, flow_run_name: str) -> list[str]:
    runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[flow_run_name])))
    if not runs:
        return []
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0].id])))
    return [t.name for t in tasks if t.state_type == StateType.RUNNING]


def test_a_download_task_waits_for_a_slot_of_its_provider(server_setup, tiny_mirror, upstream_env, tmp_path):
    upstream_env(tiny_mirror.cmems_mirror, tiny_mirror.argo_gdac)
    root = str(tmp_path / "root")
    raw = Storage(Roots.under(root).raw)
    name = f"slot-{uuid.uuid4().hex[:8]}"
    run = download_flow.with_options(flow_run_name=name)
    outcome: dict = {}
    _set_limit("argo-gdac", 1)
    prefect_setup.forget_limits()
    try:
        with concurrency("argo-gdac", occupy=1), get_client(sync_client=True) as client:  # a run holds it
            flow = threading.Thread(
                target=lambda: outcome.update(report=run(DAY, DAY, root, ["argo"])), daemon=True
            )
            flow.start()
            deadline = time.monotonic() + 60
            while _running_task_runs(client, name) != ["plan-argo"]:  # the listing task has started...
                assert time.monotonic() < deadline and flow.is_alive()
                time.sleep(0.2)
            time.sleep(1)
            assert flow.is_alive() and not raw.list("argo")  # ... and waits for the slot: nothing listed
            released = time.monotonic()
        flow.join(timeout=180)
        assert not flow.is_alive()
        waited = time.monotonic() - released
    finally:
        _set_limit("argo-gdac", prefect_setup.DEFAULT_LIMITS["argo-gdac"])
    report = outcome["report"]
    assert not report.errors and report.files and all(f["status"] == "ok" for f in report.files)
    assert any(key.endswith(".nc") for key in raw.list("argo"))
    print(f"download ran {waited:.1f} s after the slot was released")


def test_a_download_runs_without_its_limit_and_warns(server_setup, tiny_mirror, upstream_env, tmp_path):
    """Prefect 3.9 neither creates a missing limit nor blocks on it: it skips the slot with a warning. The
    flows do the same (without asking for a slot on every task): a server without `oceantaco prefect
    setup` still downloads, each task bounded by its own connection pool and backoff, and the run's log
    says the limit is missing."""
    upstream_env(tiny_mirror.cmems_mirror, tiny_mirror.argo_gdac)
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name("argo-gdac")
    prefect_setup.forget_limits()
    try:
        state = download_flow(DAY, DAY, str(tmp_path / "root"), ["argo"], return_state=True)
    finally:
        with get_client(sync_client=True) as client:
            prefect_setup.ensure_concurrency_limits(client, prefect_setup.DEFAULT_LIMITS)
        prefect_setup.forget_limits()
    assert state.is_completed() and state.result().summary["failed"] == 0
    APILogHandler().flush()
    run_id = state.state_details.flow_run_id
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
            warned = [log for log in logs if "no active concurrency limit 'argo-gdac'" in log.message]
            if warned or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert len(warned) == 1 and "oceantaco prefect setup" in warned[0].message  # once, not per task


def test_the_automation_marks_a_run_crashed_when_its_heartbeats_stop(server_setup):
    """The shipped definition, with `within` cut to 10 s and matched to two runs of this module only (armed
    by the fixture): the run whose heartbeats stopped is marked Crashed, the one that finished is not."""
    _, probe = server_setup
    deadline = time.monotonic() + 90
    with get_client(sync_client=True) as client:
        while (zombie := client.read_flow_run(probe.zombie)).state.type != StateType.CRASHED:
            assert time.monotonic() < deadline, f"the zombie run was not marked Crashed: {zombie.state}"
            time.sleep(1)
        assert "No heartbeat" in zombie.state.message
        assert client.read_flow_run(probe.finished).state.type == StateType.COMPLETED
