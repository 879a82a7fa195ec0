"""The pipeline image's Dockerfile, checked without a Docker engine: parsed by dockerfile-parse, every
path it copies exists and survives .dockerignore, its user and scratch paths are the ones the Kubernetes
job template and the Helm chart assume, and requirements.lock is current."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib

import pytest
from dockerfile_parse import DockerfileParser
from k8s_tools import BASE_JOB_TEMPLATE, REPO, dockerfile_stages, stage_env, stage_values
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from oceantaco import prefect_setup

JOB_TEMPLATE = json.loads(BASE_JOB_TEMPLATE.read_text())


def dockerignored(relative: str) -> bool:
    """Docker's rule: the last .dockerignore pattern matching the path (or a parent of it) decides."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = relative.rstrip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.lstrip("!").rstrip("/").removeprefix("**/")
        if any(
            fnmatch.fnmatchcase(c, glob) or fnmatch.fnmatchcase(c.split("/")[-1], glob) for c in candidates
        ):
            ignored = not negated
    return ignored


def test_two_stages_from_a_slim_python_matching_the_lock():
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    build, runtime = dockerfile_stages()
    base = re.fullmatch(r"ARG PYTHON_IMAGE=(\S+)", parser.structure[4]["content"].strip())
    assert base, "the base image is one ARG, used by both stages"
    image = base.group(1)
    assert re.fullmatch(r"python:3\.\d+-slim-\w+", image), image
    assert stage_values(build, "FROM") == ["${PYTHON_IMAGE} AS build"] and stage_values(runtime, "FROM") == [
        "${PYTHON_IMAGE}"
    ]
    lock_python = re.search(r"CPython (\d+\.\d+)", (REPO / "requirements.lock").read_text()).group(1)
    assert image.startswith(f"python:{lock_python}-")
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert lock_python.startswith("3.") and int(lock_python.split(".")[1]) >= int(required.split(".")[1])


def test_dependencies_are_installed_from_the_lock_before_the_code_is_copied():
    build, _ = dockerfile_stages()
    steps = [f"{i['instruction']} {i['value']}" for i in build]
    lock_copy = next(n for n, s in enumerate(steps) if s.startswith("COPY requirements.lock"))
    lock_install = next(n for n, s in enumerate(steps) if "-r /tmp/requirements.lock" in s)
    code_copy = next(n for n, s in enumerate(steps) if s.startswith("COPY oceantaco"))
    assert lock_copy < lock_install < code_copy
    assert "--no-deps" in steps[lock_install] and "--only-binary=:all:" in steps[lock_install]
    assert stage_env(build)["PIP_NO_CACHE_DIR"] == "1"


def test_the_runtime_stage_has_no_build_tools_and_runs_as_the_job_templates_user():
    _, runtime = dockerfile_stages()
    runs = " ".join(stage_values(runtime, "RUN"))
    assert "pip install" not in runs and "apt-get" not in runs  # no compilers, no package caches
    (user,) = stage_values(runtime, "USER")
    uid, gid = (int(x) for x in user.split(":"))  # numeric, so runAsNonRoot can be verified by the kubelet
    pod_security = JOB_TEMPLATE["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert uid != 0 and (uid, gid) == (
        pod_security["securityContext"]["runAsUser"],
        pod_security["securityContext"]["runAsGroup"],
    )
    assert f"--uid {uid}" in runs and f"--gid {gid}" in runs


def test_every_path_written_at_run_time_is_under_the_scratch_volume():
    _, runtime = dockerfile_stages()
    pod = JOB_TEMPLATE["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (mount,) = pod["containers"][0]["volumeMounts"]
    scratch = mount["mountPath"]
    variables = stage_env(runtime)
    for name in ("HOME", "TMPDIR", "PREFECT_HOME", "MPLCONFIGDIR"):
        assert variables[name] == scratch or variables[name].startswith(f"{scratch}/"), name
    assert variables["PYTHONDONTWRITEBYTECODE"] == "1"  # the code's folders are read-only
    assert variables["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert variables["PREFECT_LOGGING_EXTRA_LOGGERS"] == "oceantaco"


def test_the_code_sits_where_prefect_yaml_pulls_it_and_the_worker_serves_the_pool():
    import yaml

    _, runtime = dockerfile_stages()
    pull = yaml.safe_load((REPO / "prefect.yaml").read_text())["pull"]
    assert stage_values(runtime, "WORKDIR") == [
        pull[0]["prefect.deployments.steps.set_working_directory"]["directory"]
    ]
    (command,) = stage_values(runtime, "CMD")
    argv = json.loads(command)
    assert argv[:3] == ["prefect", "worker", "start"]
    assert argv[argv.index("--pool") + 1] == prefect_setup.KUBERNETES_POOL
    assert argv[argv.index("--type") + 1] == "kubernetes"


def test_the_image_carries_its_version():
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    _, runtime = dockerfile_stages()
    assert any(v.startswith("VERSION=") for v in stage_values(runtime, "ARG"))
    assert "${VERSION}" in " ".join(stage_values(runtime, "LABEL"))
    assert parser.labels["org.opencontainers.image.version"] == "0.0.0.dev0"  # the ARG's default


def test_every_copied_path_exists_and_is_in_the_build_context():
    copied = []
    for stage in dockerfile_stages():
        for value in stage_values(stage, "COPY"):
            if value.startswith("--from"):
                continue
            *sources, _ = value.split()
            copied += sources
    assert {"requirements.lock", "oceantaco", "flows", "prefect.yaml"} <= set(copied)
    for source in copied:
        assert (REPO / source).exists(), source
        assert not dockerignored(source), f"{source} is excluded by .dockerignore"
    assert dockerignored(".venv") and dockerignored("tests") and dockerignored("oceantaco/__pycache__")


def test_the_lock_pins_exactly_what_the_runtime_dependencies_need():
    sys.path.insert(0, str(REPO / "scripts"))
    from lock_requirements import runtime_closure

    lines = (REPO / "requirements.lock").read_text().splitlines()
    locked = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert locked == runtime_closure("oceantaco"), "stale: run scripts/lock_requirements.py"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        requirement = Requirement(line)
        version = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{line} vs {version}"
    assert "pytest" not in locked and "moto" not in locked  # test extras stay out of the image


@pytest.mark.e2e
def test_the_lock_resolves_to_wheels_only_from_the_package_index():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--only-binary=:all:",
            "--no-deps",
            "-r",
            str(REPO / "requirements.lock"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
