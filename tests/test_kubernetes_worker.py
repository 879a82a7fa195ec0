"""A backfill through Kubernetes, without a cluster: the real `backfill`, `chunk` and `rebuild` deployments
from prefect.yaml, the real prefect-kubernetes worker (`prefect worker start --type kubernetes`) of the
oceantaco-k8s pool with our base job template, a fake API server with a test kubelet
(tests/fake_cluster.py), the local Prefect server, and a root on the local S3 server that the runs get, with
their credentials, only from the Secret the Jobs name in envFrom. The backfill's Job submits one Job per
chunk, which run at the same time, then one build Job."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tacoreader
from fake_cluster import JOBS, FakeCluster, secret
from k8s_tools import validate_strictly, without_worker_required_pod_fields
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import FlowRun, StateType
from prefect_helpers import (
    REPO,
    chunk_formatting,
    create_run,
    prefect_deploy,
    process_worker,
    subflow_runs,
    wait_for_final_state,
)

from oceantaco.regions import REGION_NAMES
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.synthetic import MirrorManifest, build_mirror
from oceantaco.taco import read_slots

pytestmark = [pytest.mark.prefect, pytest.mark.e2e]  # 5 Jobs as processes: `make test-e2e`

NAMESPACE = "oceantaco"
IMAGE = "ghcr.io/oceantaco/oceantaco:kmock-test"
CREDENTIALS = "oceantaco-credentials"


DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
FANNED_OUT = ("backfill", "chunk", "rebuild")  # what a backfill submits its chunks and build to
PRODUCTS = ["l4_ssh", "argo"]


@pytest.fixture(scope="module")
def three_days(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    return build_mirror(
        tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=1.0, grid_products=(), alongtrack_points=None
    )


@pytest.fixture
def root(kubernetes_pool: str, s3_bucket: str) -> str:
    """A root in a fresh bucket, and the backfill, chunk and rebuild deployments deployed for it."""
    root = f"{s3_bucket}/oceantaco"
    prefect_deploy(*FANNED_OUT, env={"OCEANTACO_IMAGE": IMAGE, "OCEANTACO_ROOT": root})
    with get_client(sync_client=True) as client:
        for name in FANNED_OUT:
            (deployment,) = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name]))
            )
            assert deployment.work_pool_name == kubernetes_pool and deployment.parameters["root"] == root
            # The image's /opt/oceantaco is the checkout here (the kubelet maps the image's other paths).
            client.update_deployment(
                deployment.id,
                DeploymentUpdate(
                    pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
                ),
            )
    return root


@pytest.fixture
def provider_settings(three_days: MirrorManifest, s3_server) -> dict[str, str]:
    """Everything a run needs beyond Prefect, as the Secret holds it: bucket endpoint and keys, upstream."""
    return {
        "AWS_ENDPOINT_URL": s3_server.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "kmock-secret-9f3e",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "OCEANTACO_CMEMS_MIRROR": three_days.cmems_mirror,
        "OCEANTACO_ARGO_GDAC": three_days.argo_gdac,
        # three chunk pods share this 2-core machine: one format process each, as a 1-CPU limit would give
        "OCEANTACO_FORMAT_PROCESSES": "1",
    }


@contextlib.contextmanager
def cluster_and_worker(
    tmp_path: Path, pool: str, provider_settings: dict[str, str]
) -> Iterator[tuple[FakeCluster, Path]]:
    """The fake cluster with the credentials Secret, and a Kubernetes worker of ``pool`` submitting to it;
    yields the cluster and the worker's log. The worker gets no bucket or upstream settings of its own."""
    worker_env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "OCEANTACO_"))
    }
    with FakeCluster.serve(tmp_path / "cluster") as (cluster, kubeconfig):
        cluster.apply(kubeconfig, secret(NAMESPACE, CREDENTIALS, provider_settings))
        log = tmp_path / "worker.log"
        worker_env |= {
            "KUBECONFIG": str(kubeconfig),
            "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED": "false",
        }
        with process_worker(pool, log, worker_type="kubernetes", env=worker_env, cwd=tmp_path):
            yield cluster, log


def backfill(**parameters: object) -> FlowRun:
    return create_run(
        "oceantaco-pipeline/backfill", start=DAYS[0], end=DAYS[-1], products=PRODUCTS, **parameters
    )


def l4_ssh_regions_per_day(root: str) -> dict[str, set[str]]:
    taco = Storage(Roots.under(root).taco)
    tacoreader.clear_cache()
    assert tacoreader.load(taco.url, cache=False).data["id"].to_pylist() == [f"{d:%Y_%m_%d}" for d in DAYS]
    regions: dict[str, set[str]] = {}
    for row in read_slots(taco):
        if row["available"] and row["slot"] == "l4_ssh.nc":
            regions.setdefault(row["day"], set()).add(row["region"])
    return regions


def test_a_kubernetes_worker_runs_a_backfill_as_one_job_per_chunk_then_one_build_job(
    tmp_path: Path, kubernetes_pool: str, root: str, provider_settings: dict[str, str]
) -> None:
    run = backfill(days_per_chunk=1)
    started = time.monotonic()
    with cluster_and_worker(tmp_path, kubernetes_pool, provider_settings) as (cluster, log):
        final = wait_for_final_state(run.id, timeout=400)
        cluster.wait_for_jobs(timeout=60)
        elapsed = time.monotonic() - started
        print(f"kubernetes worker, 3 chunk Jobs + build Job: trigger to completion {elapsed:.1f} s")
        assert final.state.type == StateType.COMPLETED, (
            final.state,
            cluster.describe(),
            log.read_text()[-3000:],
        )
        jobs = {kubelet.env["PREFECT__FLOW_RUN_ID"]: kubelet for kubelet in cluster.runs}
        stored = {run_id: cluster.stored(JOBS, k.namespace, k.job) for run_id, k in jobs.items()}
        assert provider_settings["AWS_SECRET_ACCESS_KEY"] not in str(stored) + log.read_text()

    # One Job for the backfill, one per chunk with that chunk's days, one for the build; nothing else.
    children = subflow_runs(run.id)
    chunks, (build,) = children["oceantaco-chunk"], children["oceantaco-build"]
    assert sorted(c.parameters["start"] for c in chunks) == [d.isoformat() for d in DAYS]
    assert all(c.parameters["end"] == c.parameters["start"] for c in chunks)
    assert set(jobs) == {str(r.id) for r in (final, *chunks, build)}
    assert all(kubelet.exit_code == 0 for kubelet in jobs.values()), cluster.describe()
    assert final.infrastructure_pid == f"{NAMESPACE}:{jobs[str(run.id)].job}"

    # The chunk pods ran at the same time, and the build pod after the last of them.
    chunk_pods = [jobs[str(c.id)] for c in chunks]
    assert max(k.started for k in chunk_pods) < min(k.ended for k in chunk_pods)
    assert jobs[str(build.id)].started > max(k.ended for k in chunk_pods)

    # Each Job is sized for its kind of work: a small waiting parent, bounded chunk pods with a deadline.
    def limits(run_id: str) -> dict:
        (container,) = stored[run_id]["spec"]["template"]["spec"]["containers"]
        return container["resources"]["limits"]

    assert limits(str(run.id)) == {"cpu": "1", "memory": "2Gi"}
    assert all(limits(str(c.id)) == {"cpu": "2", "memory": "4Gi"} for c in chunks)
    assert all(stored[str(c.id)]["spec"]["activeDeadlineSeconds"] == 7200 for c in chunks)
    assert limits(str(build.id)) == {"cpu": "2", "memory": "8Gi"}

    # The Job the worker submitted for the backfill: our template, the deployment's job variables, Prefect's
    # own additions.
    job = stored[str(run.id)]
    validate_strictly([without_worker_required_pod_fields(job)])
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert job["metadata"]["namespace"] == NAMESPACE
    assert job["status"]["succeeded"] == 1
    assert job["spec"]["template"]["metadata"]["labels"]["prefect.io/flow-run-id"] == str(run.id)
    assert pod["serviceAccountName"] == "oceantaco-pipeline"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == IMAGE and container["args"] == ["prefect", "flow-run", "execute"]
    assert container["envFrom"] == [{"secretRef": {"name": CREDENTIALS}}]

    # What the kubelet ran: `prefect flow-run execute` with the Secret's keys and scratch on the emptyDir.
    kubelet = jobs[str(run.id)]
    assert kubelet.argv[1:] == ["flow-run", "execute"]
    assert provider_settings.items() <= kubelet.env.items()
    scratch = tmp_path / "cluster" / kubelet.job
    assert kubelet.env["TMPDIR"] == str(scratch) and kubelet.env["HOME"] == str(scratch)
    assert kubelet.env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "reschedule"

    # ... and the run's output, in the bucket.
    assert l4_ssh_regions_per_day(root) == {f"{d:%Y_%m_%d}": set(REGION_NAMES) for d in DAYS}


def test_an_evicted_chunk_pod_is_rescheduled_under_the_same_run_and_the_backfill_completes(
    tmp_path: Path, kubernetes_pool: str, root: str, provider_settings: dict[str, str]
) -> None:
    run = backfill(days_per_chunk=2)  # 2 chunks
    with cluster_and_worker(tmp_path, kubernetes_pool, provider_settings) as (cluster, log):
        victim = str(chunk_formatting(run.id, timeout=300))
        (pod,) = [k for k in cluster.runs if k.env["PREFECT__FLOW_RUN_ID"] == victim]
        evicted_at = time.monotonic()
        os.kill(pod.process.pid, signal.SIGTERM)  # what the kubelet sends a container it evicts
        final = wait_for_final_state(run.id, timeout=400)
        cluster.wait_for_jobs(timeout=60)
        assert final.state.type == StateType.COMPLETED, (
            final.state,
            cluster.describe(),
            log.read_text()[-3000:],
        )
        pods = [k for k in cluster.runs if k.env["PREFECT__FLOW_RUN_ID"] == victim]

    # The evicted pod put its run back to Scheduled and the worker started it again in a new Job: the same
    # flow run, run twice, so the backfill had nothing to resubmit.
    assert len(pods) == 2 and pods[1].exit_code == 0 and pods[1].started > evicted_at
    chunks = subflow_runs(run.id)["oceantaco-chunk"]
    assert len(chunks) == 2 and all(c.state.type == StateType.COMPLETED for c in chunks)
    (evicted,) = [c for c in chunks if str(c.id) == victim]
    assert evicted.run_count == 2
    assert len(subflow_runs(run.id)["oceantaco-build"]) == 1
    assert l4_ssh_regions_per_day(root) == {f"{d:%Y_%m_%d}": set(REGION_NAMES) for d in DAYS}
