"""The two install paths of the worker stack, rendered offline and checked: the Helm chart (helm/oceantaco)
and the kustomize base with its aws/gcp overlays (k8s/). Every object must pass the strict Kubernetes
schemas; beyond that the tests check what the manifests are for: the security context of the pods, the
cloud identities, the base job template each path hands the work pool, network policies that deny ingress
and open no unrestricted egress, the values schema, and that both paths deploy the same worker.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from k8s_tools import (
    BASE_JOB_TEMPLATE,
    REPO,
    documents,
    render_flow_run_job,
    run_tool,
    validate_strictly,
    without_worker_required_pod_fields,
)

CHART = REPO / "helm" / "oceantaco"
K8S = REPO / "k8s"
HELM_VALUES = {
    "default": [],
    "aws": ["-f", CHART / "ci" / "aws-values.yaml"],
    "gcp": ["-f", CHART / "ci" / "gcp-values.yaml"],
}
KUSTOMIZATIONS = {"base": K8S / "base", "aws": K8S / "overlays" / "aws", "gcp": K8S / "overlays" / "gcp"}
KUBE_VERSION = "1.33.0"
NAMESPACE = "oceantaco"
IMAGE = "ghcr.io/oceantaco/oceantaco:0.1.0"
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
IRSA = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/oceantaco-pipeline"}
WORKLOAD_IDENTITY = {
    "iam.gke.io/gcp-service-account": "oceantaco-pipeline@my-project.iam.gserviceaccount.com"
}
ANNOTATIONS = {"default": {}, "base": {}, "aws": IRSA, "gcp": WORKLOAD_IDENTITY}
GKE_METADATA = "169.254.169.254"
EXPECTED_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "NetworkPolicy"}
WORKER_POD = {"app.kubernetes.io/part-of": "oceantaco", "app.kubernetes.io/component": "worker"}


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("k8s-tools")


def helm_template(scratch: Path, *args: str | Path, namespace: str = NAMESPACE) -> list[dict]:
    common = ["oceantaco", CHART, "-n", namespace, "--kube-version", KUBE_VERSION]
    return documents(run_tool("helm", "template", *common, *args, scratch=scratch))


def sets(*assignments: str) -> list[str]:
    """`--set` arguments; an assignment whose value starts with [ or { is given as JSON (--set-json)."""
    return [
        arg
        for assignment in assignments
        for arg in ("--set-json" if assignment.split("=", 1)[1][:1] in ("[", "{") else "--set", assignment)
    ]


def kustomize(scratch: Path, name: str) -> list[dict]:
    return documents(run_tool("kubectl", "kustomize", KUSTOMIZATIONS[name], scratch=scratch))


@pytest.fixture(scope="module")
def helm_renders(scratch: Path) -> dict[str, list[dict]]:
    return {name: helm_template(scratch, *args) for name, args in HELM_VALUES.items()}


@pytest.fixture(scope="module")
def kustomize_renders(scratch: Path) -> dict[str, list[dict]]:
    return {name: kustomize(scratch, name) for name in KUSTOMIZATIONS}


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [
        o
        for o in objects
        if o["kind"] == kind and (name is None or strip_hash(o["metadata"]["name"]) == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def strip_hash(name: str) -> str:
    """Kustomize appends a content hash to generated ConfigMap names."""
    return re.sub(r"-[a-z0-9]{10}$", "", name) if name.startswith("oceantaco-") else name


def template_from(objects: list[dict]) -> tuple[str, dict]:
    configmap = one(objects, "ConfigMap", "oceantaco-base-job-template")
    text = configmap["data"]["base-job-template.json"]
    return text, json.loads(text)


def file_template() -> dict:
    return json.loads(BASE_JOB_TEMPLATE.read_text())


def expected_template(
    namespace: str = NAMESPACE,
    service_account: str = "oceantaco-pipeline",
    image: str = IMAGE,
    pull_policy: str = "IfNotPresent",
    secret: str = "oceantaco-credentials",
    node_selector: dict | None = None,
    tolerations: list | None = None,
) -> dict:
    """k8s/base-job-template.json with the defaults the chart sets, and nothing else changed."""
    template = file_template()
    props = template["variables"]["properties"]
    props["namespace"]["default"] = namespace
    props["service_account_name"]["default"] = service_account
    props["image"]["default"] = image
    props["image_pull_policy"]["default"] = pull_policy
    props["env_from"]["default"] = [{"secretRef": {"name": secret}}]
    if node_selector:
        props["node_selector"]["default"] = node_selector
    if tolerations:
        props["tolerations"]["default"] = tolerations
    return template


def prepared_job(template: dict, job_variables: dict | None = None) -> dict:
    """The Job the real worker submits for a flow run, as the API server stores it (without the pod
    fields only the worker needs)."""
    return without_worker_required_pod_fields(render_flow_run_job(template, job_variables or {}))


@pytest.fixture(scope="module")
def flow_run_pod_labels() -> dict[str, str]:
    """A flow-run pod's labels as the worker makes them (it adds to and overrides the template's)."""
    return prepared_job(file_template())["spec"]["template"]["metadata"]["labels"]


def pod_containers(deployment: dict) -> Iterator[dict]:
    spec = deployment["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


# ---------------------------------------------------------------------------------------------------------
# Helm chart
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", HELM_VALUES)
def test_helm_lint_strict(scratch: Path, values: str) -> None:
    args = ["--strict", "--kube-version", KUBE_VERSION, CHART, "-n", NAMESPACE, *HELM_VALUES[values]]
    out = run_tool("helm", "lint", *args, scratch=scratch)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("values", HELM_VALUES)
def test_helm_objects_are_valid(helm_renders: dict[str, list[dict]], values: str) -> None:
    objects = helm_renders[values]
    assert validate_strictly(objects) == len(objects)
    assert {o["kind"] for o in objects} >= EXPECTED_KINDS
    for obj in objects:
        assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "oceantaco"
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"} == {
        "oceantaco-worker",
        "oceantaco-pipeline",
    }


def check_worker_pod(deployment: dict) -> None:
    """Non-root uid/gid 10001, read-only root, no privilege escalation, no capabilities, RuntimeDefault
    seccomp, requests and limits on every container, /scratch writable."""
    spec = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert spec["serviceAccountName"] == "oceantaco-worker"
    assert spec["automountServiceAccountToken"] is True
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (10001, 10001, 10001)
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels.items() >= WORKER_POD.items()
    assert {v["name"]: v for v in spec["volumes"]}["scratch"]["emptyDir"]["sizeLimit"]
    containers = list(pod_containers(deployment))
    assert [c["name"] for c in containers] == ["sync-base-job-template", "prefect-worker"]
    for container in containers:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, container["name"]
        assert sc["readOnlyRootFilesystem"] is True, container["name"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), container["name"]
        assert {"name": "scratch", "mountPath": "/scratch"} in container["volumeMounts"]
    init, worker = containers
    assert init["command"] == [
        "prefect",
        "work-pool",
        "create",
        "oceantaco-k8s",
        "--type",
        "kubernetes",
        "--base-job-template",
        "/etc/oceantaco/base-job-template.json",
        "--overwrite",
    ]
    assert {"name": "base-job-template", "mountPath": "/etc/oceantaco", "readOnly": True} in init[
        "volumeMounts"
    ]
    assert worker["command"][:9] == [
        "prefect",
        "worker",
        "start",
        "--pool",
        "oceantaco-k8s",
        "--type",
        "kubernetes",
        "--with-healthcheck",
        "--install-policy",
    ]
    assert worker["livenessProbe"]["httpGet"] == {"path": "/health", "port": "healthcheck"}
    assert {"name": "healthcheck", "containerPort": 8080, "protocol": "TCP"} in worker["ports"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["PREFECT_WORKER_WEBSERVER_PORT"]["value"] == "8080"
    # the Role is namespaced, so the observer must watch only the pod's namespace
    assert env["PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }


@pytest.mark.parametrize("values", HELM_VALUES)
def test_helm_worker_security_and_resources(helm_renders: dict[str, list[dict]], values: str) -> None:
    deployment = one(helm_renders[values], "Deployment", "oceantaco-worker")
    check_worker_pod(deployment)
    assert all(c["image"] == IMAGE for c in pod_containers(deployment))


@pytest.mark.parametrize("values", HELM_VALUES)
def test_helm_service_accounts(helm_renders: dict[str, list[dict]], values: str) -> None:
    objects = helm_renders[values]
    flow_run = one(objects, "ServiceAccount", "oceantaco-pipeline")
    assert flow_run["automountServiceAccountToken"] is False
    assert flow_run["metadata"].get("annotations", {}) == ANNOTATIONS[values]
    worker = one(objects, "ServiceAccount", "oceantaco-worker")
    assert worker["automountServiceAccountToken"] is True
    assert "annotations" not in worker["metadata"]


def test_helm_api_config(helm_renders: dict[str, list[dict]]) -> None:
    """Self-hosted server: the URL, no key. Prefect Cloud: the workspace URL, the key from its Secret, and
    flow-run Jobs told to reference that Secret rather than carry the key."""

    def env_of(values: str) -> dict[str, dict]:
        worker = one(helm_renders[values], "Deployment")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e for e in worker["env"]}

    server = env_of("default")
    assert server["PREFECT_API_URL"]["value"] == "http://prefect-server.prefect.svc.cluster.local:4200/api"
    assert "PREFECT_API_KEY" not in server
    cloud = env_of("aws")
    assert cloud["PREFECT_API_URL"]["value"] == (
        "https://api.prefect.cloud/api/accounts/11111111-2222-3333-4444-555555555555"
        "/workspaces/66666666-7777-8888-9999-000000000000"
    )
    assert cloud["PREFECT_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "prefect-api-key", "key": "key"}
    }
    assert cloud["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_NAME"]["value"] == "prefect-api-key"
    assert cloud["PREFECT_INTEGRATIONS_KUBERNETES_WORKER_API_KEY_SECRET_KEY"]["value"] == "key"


def test_helm_worker_flags_from_values(scratch: Path) -> None:
    objects = helm_template(
        scratch,
        *sets(
            'worker.config.workQueues=["daily","backfill"]',
            "worker.config.limit=3",
            "worker.config.prefetchSeconds=30",
            "worker.config.queryInterval=5",
        ),
    )
    worker = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(worker["command"])
    assert "--prefetch-seconds 30 --work-queue daily --work-queue backfill --limit 3" in command
    assert {"name": "PREFECT_WORKER_QUERY_SECONDS", "value": "5"} in worker["env"]


@pytest.mark.parametrize(
    ("args", "namespace", "expected"),
    [
        pytest.param([], NAMESPACE, {}, id="default"),
        pytest.param(
            sets("credentials.existingSecret=my-creds"),
            NAMESPACE,
            {"secret": "my-creds"},
            id="existing-secret",
        ),
        pytest.param(
            sets(
                "worker.image.tag=9.9.9",
                "worker.image.pullPolicy=Always",
                "serviceAccounts.flowRun.name=runner",
            ),
            "pipelines",
            {
                "namespace": "pipelines",
                "image": "ghcr.io/oceantaco/oceantaco:9.9.9",
                "pull_policy": "Always",
                "service_account": "runner",
            },
            id="namespace-image-sa",
        ),
        pytest.param(
            HELM_VALUES["gcp"],
            NAMESPACE,
            {"node_selector": {"iam.gke.io/gke-metadata-server-enabled": "true"}},
            id="gcp-node-selector",
        ),
        pytest.param(
            sets('flowRun.tolerations=[{"key":"batch","operator":"Exists","effect":"NoSchedule"}]'),
            NAMESPACE,
            {"tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]},
            id="tolerations",
        ),
    ],
)
def test_helm_base_job_template_defaults(scratch: Path, args: list, namespace: str, expected: dict) -> None:
    """The ConfigMap is k8s/base-job-template.json with exactly the release's defaults set."""
    objects = helm_template(scratch, *args, namespace=namespace)
    _, template = template_from(objects)
    assert template == expected_template(**expected)
    worker = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert worker["volumes"][1]["configMap"]["name"] == "oceantaco-base-job-template"


def test_helm_template_makes_the_flow_run_job(scratch: Path) -> None:
    """The chart's template, filled in by the real worker, gives a valid Job with the release's defaults."""
    tolerations = [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    objects = helm_template(
        scratch,
        *HELM_VALUES["gcp"],
        *sets("credentials.existingSecret=my-creds", f"flowRun.tolerations={json.dumps(tolerations)}"),
        namespace="pipelines",
    )
    _, template = template_from(objects)
    job = prepared_job(template, {"cpu_request": "2", "memory_limit": "16Gi"})
    validate_strictly([job])
    assert job["metadata"]["namespace"] == "pipelines"
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "oceantaco-pipeline"
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"iam.gke.io/gke-metadata-server-enabled": "true"}
    assert pod["tolerations"] == tolerations
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["envFrom"] == [{"secretRef": {"name": "my-creds"}}]
    assert container["resources"]["requests"]["cpu"] == "2"
    assert container["resources"]["limits"]["memory"] == "16Gi"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "flow-run"


def test_helm_template_checksum_restarts_worker(scratch: Path, helm_renders: dict[str, list[dict]]) -> None:
    def checksum(objects: list[dict]) -> str:
        return one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"][
            "checksum/base-job-template"
        ]

    changed = helm_template(scratch, *sets("credentials.existingSecret=my-creds"))
    assert re.fullmatch(r"[0-9a-f]{64}", checksum(helm_renders["default"]))
    assert checksum(changed) != checksum(helm_renders["default"])
    assert checksum(helm_template(scratch)) == checksum(helm_renders["default"])


def test_helm_existing_template_configmap(scratch: Path) -> None:
    objects = helm_template(scratch, *sets("worker.config.baseJobTemplate.existingConfigMapName=my-template"))
    validate_strictly(objects)
    assert not [o for o in objects if o["kind"] == "ConfigMap"]
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "base-job-template", "configMap": {"name": "my-template"}} in volumes


def test_helm_credentials_secret(scratch: Path, helm_renders: dict[str, list[dict]]) -> None:
    assert not [o for o in helm_renders["default"] if o["kind"] == "Secret"]
    objects = helm_template(
        scratch,
        *sets(
            "credentials.create=true",
            "credentials.stringData.OCEANTACO_AVISO_USER=someone",
            "credentials.stringData.OCEANTACO_AVISO_PASSWORD=s3cret",
        ),
    )
    validate_strictly(objects)
    secret = one(objects, "Secret", "oceantaco-credentials")
    assert secret["stringData"] == {"OCEANTACO_AVISO_USER": "someone", "OCEANTACO_AVISO_PASSWORD": "s3cret"}
    _, template = template_from(objects)
    assert template["variables"]["properties"]["env_from"]["default"] == [
        {"secretRef": {"name": "oceantaco-credentials"}}
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(sets("worker.apiConfig=bogus"), r"/worker/apiConfig'?: value must be one of", id="enum"),
        pytest.param(
            sets("worker.replicaCount=abc"),
            r"/worker/replicaCount'?: got string, want integer",
            id="type",
        ),
        pytest.param(sets("bogusKey=1"), r"additional properties 'bogusKey' not allowed", id="unknown-key"),
        pytest.param(sets("worker.image.pullPolicy=Sometimes"), r"/worker/image/pullPolicy", id="pull"),
        pytest.param(
            sets("worker.config.typo=1"),
            r"additional properties 'typo' not allowed",
            id="unknown-nested-key",
        ),
        pytest.param(
            sets("worker.apiConfig=cloud"),
            r"/worker/cloudApiConfig/(accountId|workspaceId)",
            id="cloud-needs-ids",
        ),
        pytest.param(
            sets("worker.cloudApiConfig.accountId=not-a-uuid"),
            r"/worker/cloudApiConfig/accountId",
            id="uuid",
        ),
        pytest.param(
            sets("networkPolicy.kubernetesApiCidr=0.0.0.0/0"),
            r"/networkPolicy/kubernetesApiCidr",
            id="no-open-api-cidr",
        ),
        pytest.param(
            sets("credentials.create=true", "credentials.existingSecret=x"),
            r"/credentials/existingSecret",
            id="create-xor-existing",
        ),
        pytest.param(
            sets("credentials.create=true"),
            r"needs at least one value in credentials.stringData",
            id="empty-secret",
        ),
    ],
)
def test_helm_rejects_bad_values(scratch: Path, args: list[str], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        helm_template(scratch, *args)


def key_paths(values: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in values.items():
        yield (*prefix, key)
        if isinstance(value, dict):
            yield from key_paths(value, (*prefix, key))


def test_values_schema_covers_every_value() -> None:
    """Every key of values.yaml, at every depth, is declared in values.schema.json; every object of the
    schema that is ours (not a Kubernetes structure passed through) refuses unknown keys."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    undeclared = []
    for path in key_paths(values):
        node = schema
        for key in path:
            # a declared property, or a key of a map whose values have a schema (e.g. matchLabels)
            node = node.get("properties", {}).get(key) or (
                node.get("additionalProperties")
                if isinstance(node.get("additionalProperties"), dict)
                else None
            )
            if node is None:
                undeclared.append(".".join(path))
                break
        else:
            assert "type" in node or "enum" in node, f"{'.'.join(path)} has no type"
    assert not undeclared, f"values without a schema: {undeclared}"

    passthrough = {"podSecurityContext", "containerSecurityContext"}

    def walk(node: dict, name: str) -> Iterator[str]:
        if "properties" in node and name not in passthrough and node.get("additionalProperties") is not False:
            yield name
        for key, child in node.get("properties", {}).items():
            yield from walk(child, key)

    assert not list(walk(schema, "")), "schema objects accepting unknown keys"


# ---------------------------------------------------------------------------------------------------------
# Kustomize
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomize_objects_are_valid(kustomize_renders: dict[str, list[dict]], name: str) -> None:
    objects = kustomize_renders[name]
    assert validate_strictly(objects) == len(objects)
    assert {o["kind"] for o in objects} >= EXPECTED_KINDS | {"Namespace"}
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "oceantaco"
        if obj["kind"] == "Namespace":
            assert obj["metadata"]["name"] == NAMESPACE
            assert obj["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    check_worker_pod(one(objects, "Deployment", "oceantaco-worker"))
    assert all(c["image"] == IMAGE for c in pod_containers(one(objects, "Deployment")))
    flow_run = one(objects, "ServiceAccount", "oceantaco-pipeline")
    assert flow_run["automountServiceAccountToken"] is False
    assert flow_run["metadata"].get("annotations", {}) == ANNOTATIONS[name]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_kustomize_configmap_is_the_template_file(
    kustomize_renders: dict[str, list[dict]], name: str
) -> None:
    text, template = template_from(kustomize_renders[name])
    assert text == BASE_JOB_TEMPLATE.read_text()
    assert template == file_template()
    deployment = one(kustomize_renders[name], "Deployment")
    configmap = one(kustomize_renders[name], "ConfigMap", "oceantaco-base-job-template")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["base-job-template"]["configMap"]["name"] == configmap["metadata"]["name"]


def test_kustomize_overlays_change_only_the_cloud_identity(kustomize_renders: dict[str, list[dict]]) -> None:
    """An overlay renders the base plus the service-account annotation (and, on gcp, the metadata-server
    egress) and nothing else."""
    base = kustomize_renders["base"]
    for name in ("aws", "gcp"):
        overlay = copy.deepcopy(kustomize_renders[name])
        sa = one(overlay, "ServiceAccount", "oceantaco-pipeline")
        assert sa["metadata"].pop("annotations") == ANNOTATIONS[name]
        egress = one(overlay, "NetworkPolicy", "oceantaco-flow-run")["spec"]["egress"]
        metadata_rules = [
            r
            for r in egress
            if any(f"{GKE_METADATA}/32" == p.get("ipBlock", {}).get("cidr") for p in r.get("to", []))
        ]
        assert bool(metadata_rules) == (name == "gcp")
        for rule in metadata_rules + [
            r for r in egress if r["to"][0].get("ipBlock", {}).get("cidr") == "169.254.169.252/32"
        ]:
            egress.remove(rule)
        assert overlay == base, f"overlay {name} differs from the base beyond its cloud identity"


# ---------------------------------------------------------------------------------------------------------
# Network policies (both install paths)
# ---------------------------------------------------------------------------------------------------------

ALL_RENDERS = [("helm", n) for n in HELM_VALUES] + [("kustomize", n) for n in KUSTOMIZATIONS]


@pytest.fixture(scope="module")
def renders(helm_renders: dict, kustomize_renders: dict) -> dict[tuple[str, str], list[dict]]:
    return {("helm", n): o for n, o in helm_renders.items()} | {
        ("kustomize", n): o for n, o in kustomize_renders.items()
    }


def selected(policy: dict, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert set(selector) <= {"matchLabels"}, "selectors here use matchLabels only"
    return selector.get("matchLabels", {}).items() <= labels.items()


def egress_rules(objects: list[dict], labels: dict[str, str]) -> list[dict]:
    return [
        rule
        for policy in objects
        if policy["kind"] == "NetworkPolicy"
        and selected(policy, labels)
        and "Egress" in policy["spec"]["policyTypes"]
        for rule in policy["spec"].get("egress", [])
    ]


def reaches(rules: list[dict], address: str, port: int) -> bool:
    """Whether some rule allows TCP/UDP to `address`:`port` by an ipBlock."""
    ip = ipaddress.ip_address(address)
    for rule in rules:
        blocks = [peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer]
        if any(
            ip in ipaddress.ip_network(b["cidr"])
            and not any(ip in ipaddress.ip_network(e) for e in b.get("except", []))
            for b in blocks
        ) and any(p["port"] <= port <= p.get("endPort", p["port"]) for p in rule["ports"]):
            return True
    return False


@pytest.mark.parametrize("render", ALL_RENDERS, ids=lambda r: "-".join(r))
def test_network_policies(
    renders: dict, flow_run_pod_labels: dict[str, str], render: tuple[str, str]
) -> None:
    """The policies as they apply to the worker pod and to a flow-run pod labelled by the real worker."""
    objects = renders[render]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    flow_run_pod = flow_run_pod_labels
    worker_pod = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]

    # ingress: denied for every pod of the stack, and no policy lets anything in
    for pod in (worker_pod, flow_run_pod):
        deny = [p for p in policies if selected(p, pod) and "Ingress" in p["spec"]["policyTypes"]]
        assert deny, f"no ingress policy selects {pod}"
    for policy in policies:
        assert not policy["spec"].get("ingress"), policy["metadata"]["name"]
        assert "Egress" in policy["spec"]["policyTypes"] or "egress" not in policy["spec"]

    # egress: no rule open to every destination or every port; 0.0.0.0/0 always minus the private ranges
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            name = policy["metadata"]["name"]
            assert rule.get("to") and rule.get("ports"), f"{name} has an unrestricted egress rule: {rule}"
            for peer in rule["to"]:
                assert peer, f"{name} has an empty peer (any destination)"
                block = peer.get("ipBlock")
                if block and block["cidr"] == "0.0.0.0/0":
                    assert set(block.get("except", [])) >= PRIVATE_RANGES, f"{name}: {block}"

    worker, flow_run = egress_rules(objects, worker_pod), egress_rules(objects, flow_run_pod)
    for rules in (worker, flow_run):
        dns = [r for r in rules if any(p["port"] == 53 for p in r["ports"])]
        assert dns and {p["protocol"] for r in dns for p in r["ports"]} == {"UDP", "TCP"}
        assert dns[0]["to"] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
        ]
        assert reaches(rules, "203.0.113.10", 443)  # Prefect Cloud, object storage
    assert all(reaches(flow_run, "203.0.113.10", port) for port in (80, 21, 1024, 40000, 65535))
    assert not any(reaches(worker, "203.0.113.10", port) for port in (80, 21, 40000))
    # only the worker reaches the Kubernetes API server, and never on other ports of that range
    api_server = {("helm", "aws"): "192.168.10.20", ("helm", "gcp"): "172.16.0.2"}.get(render, "10.0.0.1")
    assert reaches(worker, api_server, 443) and reaches(worker, api_server, 6443)
    assert not reaches(flow_run, api_server, 443) and not reaches(worker, api_server, 80)
    # GKE metadata server: the flow runs on gcp only, never the worker
    assert reaches(flow_run, GKE_METADATA, 988) == (render[1] == "gcp")
    assert reaches(flow_run, GKE_METADATA, 80) == (render[1] == "gcp")
    assert not reaches(worker, GKE_METADATA, 80)


def test_in_cluster_prefect_server_egress(renders: dict) -> None:
    """Default (in-cluster server) opens port 4200 to the prefect-server pods only; Cloud doesn't."""

    def server_rules(objects: list[dict]) -> list[dict]:
        return [r for r in egress_rules(objects, WORKER_POD) if any(p["port"] == 4200 for p in r["ports"])]

    for render in [("helm", "default"), ("kustomize", "base")]:
        (rule,) = server_rules(renders[render])
        assert rule["to"] == [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prefect"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prefect-server"}},
            }
        ]
    assert not server_rules(renders[("helm", "aws")])
    assert not server_rules(renders[("helm", "gcp")])


# ---------------------------------------------------------------------------------------------------------
# The two install paths agree
# ---------------------------------------------------------------------------------------------------------


def essentials(deployment: dict) -> dict:
    spec = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return {
        "replicas": deployment["spec"]["replicas"],
        "strategy": deployment["spec"]["strategy"],
        "pod_labels": {k: labels[k] for k in WORKER_POD},
        "service_account": spec["serviceAccountName"],
        "automount": spec["automountServiceAccountToken"],
        "pod_security": spec["securityContext"],
        "volumes": [
            {k: ({"name": strip_hash(v["name"])} if k == "configMap" else v) for k, v in volume.items()}
            for volume in spec["volumes"]
        ],
        "containers": [
            {
                k: c.get(k)
                for k in (
                    "name",
                    "image",
                    "imagePullPolicy",
                    "command",
                    "args",
                    "securityContext",
                    "resources",
                    "volumeMounts",
                    "ports",
                    "livenessProbe",
                )
            }
            for c in pod_containers(deployment)
        ],
    }


def test_helm_and_kustomize_deploy_the_same_worker(renders: dict) -> None:
    helm = one(renders[("helm", "default")], "Deployment")
    kustomized = one(renders[("kustomize", "base")], "Deployment")
    assert essentials(helm) == essentials(kustomized)

    # environment: the same settings; the kustomize base takes PREFECT_API_URL from its ConfigMap and an
    # optional API key (Cloud or not), the chart sets them per worker.apiConfig (compare with Cloud)
    cloud = one(renders[("helm", "aws")], "Deployment")
    for helm_container, kustomize_container in zip(
        pod_containers(cloud), pod_containers(kustomized), strict=True
    ):
        helm_env = {e["name"]: e for e in helm_container["env"]}
        kustomize_env = {e["name"]: e for e in kustomize_container["env"]}
        assert helm_env.pop("PREFECT_API_URL")
        assert helm_env.keys() == kustomize_env.keys()
        for name, entry in helm_env.items():
            if name != "PREFECT_API_KEY":
                assert entry == kustomize_env[name], name
        assert kustomize_env["PREFECT_API_KEY"]["valueFrom"]["secretKeyRef"] == {
            **helm_env["PREFECT_API_KEY"]["valueFrom"]["secretKeyRef"],
            "optional": True,
        }
        (config_ref,) = kustomize_container["envFrom"]
        assert strip_hash(config_ref["configMapRef"]["name"]) == "oceantaco-worker-config"

    # the same Role for the worker
    helm_role = one(renders[("helm", "default")], "Role", "oceantaco-worker")
    assert helm_role["rules"] == one(renders[("kustomize", "base")], "Role", "oceantaco-worker")["rules"]
    # and the same network policies, by name and rules (the chart's prefectApi / API CIDR defaults = base)
    for policy in [o for o in renders[("helm", "default")] if o["kind"] == "NetworkPolicy"]:
        twin = one(renders[("kustomize", "base")], "NetworkPolicy", policy["metadata"]["name"])
        assert policy["spec"] == twin["spec"], policy["metadata"]["name"]
