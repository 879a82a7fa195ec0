"""A Kubernetes API a real prefect-kubernetes worker can submit Jobs to, with a test-only "kubelet".

kmock's KubernetesEmulator stores objects and serves the API; it lacks what the control plane and the
nodes do after a Job is created, so `FakeCluster` adds:

- the API server's defaults: `metadata.name` from `generateName`, `uid`, `creationTimestamp`;
- a kubelet that runs the Job's single container as a local process. Its environment is what the container
  would get: the image's ENV (read from the Dockerfile), every key of each `envFrom` Secret, then the
  container's `env`. The image's paths are mapped onto this machine: /opt/venv to the test virtualenv,
  /opt/oceantaco to the checkout, /scratch (the Job's emptyDir) to a fresh folder per Job. A Secret named
  in `envFrom` that does not exist fails the Job, as a pod that cannot start would. When the process ends,
  the Job's status says Complete or Failed.

It runs in a thread with its own event loop; `FakeCluster.serve()` yields it with its kubeconfig.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import secrets
import shlex
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import attrs
import kmock
from k8s_tools import REPO, dockerfile_stages, stage_env, stage_values

JOBS = kmock.resource("batch", "v1", "jobs")
SECRETS = kmock.resource("v1", "secrets")


@dataclass
class KubeletRun:
    """One Job's container as the kubelet ran it."""

    namespace: str
    job: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    exit_code: int | None = None
    output: str = ""
    started: float | None = None  # time.monotonic() when the container started and ended
    ended: float | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    process: asyncio.subprocess.Process | None = None


@dataclass
class Image:
    """What the kubelet takes from the image: its environment, working directory, user and command."""

    env: dict[str, str]
    workdir: str
    user: int
    cmd: list[str]

    @classmethod
    def from_dockerfile(cls) -> Image:
        runtime = dockerfile_stages()[-1]
        (workdir,) = stage_values(runtime, "WORKDIR")
        (user,) = stage_values(runtime, "USER")
        (cmd,) = stage_values(runtime, "CMD")
        return cls(stage_env(runtime), workdir, int(user.split(":")[0]), json.loads(cmd))


@attrs.define(kw_only=True)
class FakeCluster(kmock.KubernetesEmulator):
    scratch_root: Path
    runs: list[KubeletRun] = attrs.field(factory=list)

    async def _handle(self, request: kmock.Request) -> object:
        creating = request.action == kmock.action.CREATE and isinstance(request.data, dict)
        if creating:
            metadata = request.data.setdefault("metadata", {})
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        response = await super()._handle(request)
        if creating and request.resource == JOBS:
            metadata = request.data["metadata"]
            asyncio.get_running_loop().create_task(self._kubelet(metadata["namespace"], metadata["name"]))
        return response

    def stored(self, resource: kmock.resource, namespace: str, name: str) -> dict:
        return self.objects[resource, namespace, name].raw

    # --- the kubelet -------------------------------------------------------------------------------------

    async def _kubelet(self, namespace: str, name: str) -> None:
        job = self.stored(JOBS, namespace, name)
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        image = Image.from_dockerfile()
        scratch = self.scratch_root / name
        scratch.mkdir(parents=True)
        image_paths = {
            "/opt/venv": str(Path(sys.prefix)),
            "/opt/oceantaco": str(REPO),
            "/scratch": str(scratch),
        }

        def local(value: str) -> str:
            for inside, outside in image_paths.items():
                value = value.replace(inside, outside)
            return value

        env = {"PATH": f"{Path(sys.prefix) / 'bin'}:/usr/bin:/bin"}
        env |= {key: local(value) for key, value in image.env.items() if key != "PATH"}
        run = KubeletRun(namespace, name, [], env, Path(local(image.workdir)))
        self.runs.append(run)
        try:
            for source in container.get("envFrom", []):
                secret = self.stored(SECRETS, namespace, source["secretRef"]["name"])
                env |= {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        except KeyError as missing:
            run.output = f"CreateContainerConfigError: secret {missing} not found"
            return await self._finish(namespace, name, run, succeeded=False)
        env |= {item["name"]: local(item.get("value", "")) for item in container.get("env", [])}
        if pod.get("securityContext", {}).get("runAsNonRoot") and image.user == 0:
            run.output = "CreateContainerConfigError: container has runAsNonRoot and image will run as root"
            return await self._finish(namespace, name, run, succeeded=False)
        argv = (container.get("command") or []) + (container.get("args") or image.cmd)
        run.argv = [local(arg) for arg in argv]
        run.started = time.monotonic()
        run.process = process = await asyncio.create_subprocess_exec(
            *run.argv,
            cwd=run.cwd,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        run.ended = time.monotonic()
        run.exit_code = process.returncode
        run.output = output.decode(errors="replace")
        await self._finish(namespace, name, run, succeeded=process.returncode == 0)

    async def _finish(self, namespace: str, name: str, run: KubeletRun, *, succeeded: bool) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = "Complete" if succeeded else "Failed"
        status = {
            "succeeded" if succeeded else "failed": 1,
            "conditions": [{"type": condition, "status": "True", "lastTransitionTime": now}],
        }
        if succeeded:
            status["completionTime"] = now
        async with self._lock:
            self.objects[JOBS, namespace, name].patch({"status": status})
        run.finished.set()

    def wait_for_jobs(self, timeout: float) -> None:
        """Until every Job's container has ended and its status is written."""
        deadline = time.monotonic() + timeout
        for run in list(self.runs):
            if not run.finished.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"Job {run.namespace}/{run.job} still running after {timeout} s")

    # --- running it --------------------------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def serve(cls, scratch_root: Path) -> Iterator[tuple[FakeCluster, Path]]:
        """Start the API on a free 127.0.0.1 port; yields the cluster and a kubeconfig file for it."""
        scratch_root.mkdir(parents=True, exist_ok=True)
        cluster = cls(scratch_root=scratch_root)
        cluster.resources.load_bundled()
        ready: asyncio.Future | None = None
        started = threading.Event()
        address: dict[str, object] = {}

        async def main() -> None:
            nonlocal ready
            ready = asyncio.get_running_loop().create_future()
            async with cluster, kmock.Server(cluster, host="127.0.0.1") as server:
                address["url"] = str(server.url).rstrip("/")
                started.set()
                await ready

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        try:
            if not started.wait(30):
                raise RuntimeError("the fake Kubernetes API did not start")
            kubeconfig = scratch_root / "kubeconfig.json"
            kubeconfig.write_text(json.dumps(_kubeconfig(str(address["url"]))))
            yield cluster, kubeconfig
        finally:
            for run in cluster.runs:  # a pod outliving its test is killed, as the node's would be
                if run.process is not None and run.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        run.process.kill()
            if ready is not None:
                loop.call_soon_threadsafe(ready.set_result, None)
            thread.join(30)

    def apply(self, kubeconfig: Path, obj: dict) -> None:
        """POST an object, as `kubectl create` would (used for the credentials Secret)."""
        server = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
        namespace = obj["metadata"]["namespace"]
        path = {"Secret": "api/v1", "Namespace": "api/v1"}[obj["kind"]]
        request = urllib.request.Request(
            f"{server}/{path}/namespaces/{namespace}/{obj['kind'].lower()}s",
            data=json.dumps(obj).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer test"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201), response.status

    def describe(self) -> str:
        """What the kubelet ran, for assertion messages."""
        return "\n".join(
            f"--- {run.namespace}/{run.job} exit {run.exit_code}: {shlex.join(run.argv)}\n"
            + run.output[-3000:]
            for run in self.runs
        )


def _kubeconfig(server: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server}}],
        "users": [{"name": "worker", "user": {"token": "test"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "worker"}}],
        "current-context": "fake",
    }


def secret(namespace: str, name: str, values: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }
