"""A flow run through Kubernetes, without a cluster: the real `backfill` deployment from prefect.yaml, the
real prefect-kubernetes worker (`prefect worker start --type kubernetes`) of the oceantaco-k8s pool with our
base job template, a fake API server with a test kubelet (tests/fake_cluster.py), the local Prefect server,
and a root on the local S3 server that the run gets, with its credentials, only from the Secret the Job
names in envFrom."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import tacoreader
from fake_cluster import JOBS, FakeCluster, secret
from k8s_tools import validate_strictly, without_worker_required_pod_fields
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentUpdate
from prefect.client.schemas.objects import StateType
from prefect_helpers import PREFECT, REPO, TINY_DAY, prefect_deploy, wait_for_final_state

from oceantaco.regions import REGION_NAMES
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.taco import read_slots

pytestmark = pytest.mark.prefect

NAMESPACE = "oceantaco"
IMAGE = "ghcr.io/oceantaco/oceantaco:kmock-test"
CREDENTIALS = "oceantaco-credentials"


def test_a_kubernetes_worker_runs_a_backfill_as_a_job(
    tmp_path: Path, kubernetes_pool: str, tiny_mirror, s3_bucket: str, s3_server
) -> None:
    root = f"{s3_bucket}/oceantaco"
    prefect_deploy("backfill", env={"OCEANTACO_IMAGE": IMAGE, "OCEANTACO_ROOT": root})
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("oceantaco-pipeline/backfill")
        assert deployment.work_pool_name == kubernetes_pool and deployment.parameters["root"] == root
        # The image's /opt/oceantaco is the checkout here (the kubelet maps the image's other paths).
        client.update_deployment(
            deployment.id,
            DeploymentUpdate(
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
            ),
        )
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"start": TINY_DAY, "end": TINY_DAY, "products": ["l4_ssh", "argo"]}
        )

    # Everything the run needs beyond Prefect comes from the Secret: bucket endpoint and keys, upstream.
    provider_settings = {
        "AWS_ENDPOINT_URL": s3_server.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "kmock-secret-9f3e",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "OCEANTACO_CMEMS_MIRROR": tiny_mirror.cmems_mirror,
        "OCEANTACO_ARGO_GDAC": tiny_mirror.argo_gdac,
    }
    worker_env = {
        key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "OCEANTACO_"))
    }
    started = time.monotonic()
    with FakeCluster.serve(tmp_path / "cluster") as (cluster, kubeconfig):
        cluster.apply(kubeconfig, secret(NAMESPACE, CREDENTIALS, provider_settings))
        log = tmp_path / "worker.log"
        with open(log, "wb") as out:
            worker = subprocess.run(
                [PREFECT, "worker", "start", "--pool", kubernetes_pool, "--type", "kubernetes", "--run-once"],
                cwd=tmp_path,
                env={
                    **worker_env,
                    "KUBECONFIG": str(kubeconfig),
                    "PREFECT_WORKER_QUERY_SECONDS": "1",
                    "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_ENABLED": "false",
                },
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=180,
            )
        worker_log = log.read_text()
        assert worker.returncode == 0, worker_log[-4000:]
        final = wait_for_final_state(run.id, timeout=300)
        cluster.wait_for_jobs(timeout=60)
        elapsed = time.monotonic() - started
        print(f"kubernetes worker + fake cluster: trigger to completion {elapsed:.1f} s")

        assert final.state.type == StateType.COMPLETED, (final.state, cluster.describe())
        ((namespace, name),) = [(run.namespace, run.job) for run in cluster.runs]
        assert final.infrastructure_pid == f"{NAMESPACE}:{name}"
        job = cluster.stored(JOBS, namespace, name)

    # The Job the worker submitted: our template, the deployment's job variables, Prefect's own additions.
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
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}  # backfill: large
    assert provider_settings["AWS_SECRET_ACCESS_KEY"] not in str(job) + worker_log

    # What the kubelet ran: `prefect flow-run execute` with the Secret's keys and scratch on the emptyDir.
    (kubelet,) = cluster.runs
    assert kubelet.exit_code == 0 and kubelet.argv[1:] == ["flow-run", "execute"]
    assert provider_settings.items() <= kubelet.env.items()
    assert kubelet.env["PREFECT__FLOW_RUN_ID"] == str(run.id)
    scratch = tmp_path / "cluster" / name
    assert kubelet.env["TMPDIR"] == str(scratch) and kubelet.env["HOME"] == str(scratch)

    # ... and the run's output, in the bucket.
    taco = Storage(Roots.under(root).taco)
    tacoreader.clear_cache()
    assert tacoreader.load(taco.url, cache=False).data["id"].to_pylist() == [f"{TINY_DAY:%Y_%m_%d}"]
    available = {(r["region"], r["slot"]) for r in read_slots(taco) if r["available"]}
    assert {region for region, slot in available if slot == "l4_ssh.nc"} == set(REGION_NAMES)
