"""The GitHub Actions workflows (.github/workflows): valid against GitHub's workflow schema, clean under
zizmor's security audit, consistent with the repository (the README's test command, the Dockerfile's build
arguments, the production deployments of prefect.yaml), and the rebuild workflow's trigger script run for
real against the local Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from k8s_tools import dockerfile_stages, stage_values
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.sorting import FlowRunSort
from prefect_helpers import REPO, prefect_deploy

WORKFLOWS = REPO / ".github" / "workflows"
BIN = Path(sys.executable).parent


def workflow(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); the workflow keeps GitHub's meaning
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    document["on"] = document.pop(True)
    return document


def steps(document: dict, job: str) -> list[dict]:
    return document["jobs"][job]["steps"]


def step(document: dict, job: str, name: str) -> dict:
    (found,) = [s for s in steps(document, job) if s.get("name") == name]
    return found


def test_the_workflows_follow_githubs_schema_and_pass_the_security_audit():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["ci.yml", "rebuild.yml", "release.yml"]
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    # Offline: every action pinned to a commit, no template injection, least-privilege tokens, no
    # credentials persisted by checkout.
    audit = subprocess.run(
        [BIN / "zizmor", "--offline", "--no-progress", "--format", "plain", WORKFLOWS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert audit.returncode == 0 and "No findings" in audit.stdout, audit.stdout + audit.stderr


def test_ci_runs_the_readme_test_command_with_the_images_python():
    ci = workflow("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["permissions"] == {"contents": "read"}
    commands = [s["run"] for s in steps(ci, "test") if "run" in s]
    assert commands == ["make test"]
    assert "make test" in (REPO / "README.md").read_text()
    python = next(
        s["with"]["python-version"] for s in steps(ci, "test") if "setup-python" in s.get("uses", "")
    )
    assert python in (REPO / "requirements.lock").read_text().splitlines()[0]  # "... for CPython 3.11 ..."


def test_release_builds_the_image_on_tags_and_deploys_production_with_its_tag():
    release = workflow("release.yml")
    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read"}
    image_job, deploy_job = release["jobs"]["image"], release["jobs"]["deploy"]
    assert image_job["permissions"]["id-token"] == "write"  # OIDC to AWS / Google Cloud, no stored keys
    assert "id-token" not in deploy_job.get("permissions", {})
    build = step(release, "image", "Build and push")
    assert build["with"]["push"] is True and build["with"]["context"] == "."
    build_args = dict(line.split("=", 1) for line in build["with"]["build-args"].splitlines())
    declared = {arg.split("=")[0] for arg in stage_values(dockerfile_stages()[-1], "ARG")}
    assert set(build_args) <= declared and build_args["VERSION"] == "${{ github.ref_name }}"
    assert build["with"]["tags"] == "${{ steps.tag.outputs.image }}"
    assert image_job["outputs"]["image"] == "${{ steps.tag.outputs.image }}"

    assert deploy_job["needs"] == "image"
    env = deploy_job["env"]
    assert env["OCEANTACO_IMAGE"] == "${{ needs.image.outputs.image }}"  # what prefect.yaml reads
    assert env["PREFECT_API_KEY"] == "${{ secrets.PREFECT_API_KEY }}"
    assert "{{ $OCEANTACO_IMAGE }}" in (REPO / "prefect.yaml").read_text()
    deploy = step(release, "deploy", "prefect deploy")["run"].split()
    assert deploy[:3] == ["prefect", "--no-prompt", "deploy"]
    names = {deploy[i + 1] for i, arg in enumerate(deploy) if arg == "--name"}
    production = {
        d["name"]
        for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
        if not d["name"].endswith("-local")
    }
    assert names == production
    for document in (release, workflow("rebuild.yml")):  # secrets reach scripts only through env
        for job in document["jobs"]:
            assert all("secrets." not in s.get("run", "") for s in steps(document, job))


REBUILD_SCRIPT = step(workflow("rebuild.yml"), "trigger", "Run the deployment and follow it")["run"]


def _rebuild(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", REBUILD_SCRIPT],
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "FOLLOW": "false", "VERIFY": "true", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _newest_run(deployment_name: str):
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(deployment_name)
        (run,) = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=1,
        )
    return run


@pytest.mark.prefect
def test_rebuild_workflow_reaches_the_deployments(kubernetes_pool):
    rebuild = workflow("rebuild.yml")
    assert rebuild["on"]["schedule"] == [{"cron": "0 4 * * 0"}]
    assert set(rebuild["on"]["workflow_dispatch"]["inputs"]) == {
        "deployment",
        "start",
        "end",
        "verify",
        "follow",
    }
    prefect_deploy(
        "backfill",
        "rebuild",
        env={"OCEANTACO_IMAGE": "registry.example/oceantaco:wf", "OCEANTACO_ROOT": "s3://b/r"},
    )

    done = _rebuild({"DEPLOYMENT": "backfill", "START": "2024-01-01", "END": "2024-01-03", "VERIFY": "false"})
    assert done.returncode == 0, done.stdout + done.stderr
    run = _newest_run("oceantaco-pipeline/backfill")
    assert run.parameters["start"] == "2024-01-01" and run.parameters["end"] == "2024-01-03"
    assert run.parameters["verify"] is False and run.state.is_scheduled()

    done = _rebuild({"DEPLOYMENT": "rebuild"})  # what the schedule runs
    assert done.returncode == 0, done.stdout + done.stderr
    run = _newest_run("oceantaco-build/rebuild")
    assert run.parameters["verify"] is True and run.parameters["root"] == "s3://b/r"

    for bad in ({"START": "2024-1-1", "END": "2024-01-03"}, {"START": "", "END": ""}):
        refused = _rebuild({"DEPLOYMENT": "backfill", **bad})
        assert refused.returncode == 2
        assert "::error::backfill needs start and end as YYYY-MM-DD" in refused.stdout
