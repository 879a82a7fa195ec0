"""What a Prefect server needs before the OceanTACO deployments run: ``oceantaco prefect setup``.

- one global concurrency limit per upstream provider (``cmems``, ``aviso``, ``argo-gdac``): every download
  task holds a slot of its provider's limit, so a large backfill never opens more transfers to a provider
  than it tolerates, however many flow runs and pods are active; and ``taco-build`` (1 slot), held by
  every build, so two runs never publish or prune releases at the same time;
- the automations in ``deploy/automations/*.yaml`` (the one shipped marks flow runs whose heartbeats stopped
  as Crashed);
- the work pools the deployments in ``prefect.yaml`` target: ``oceantaco-local`` (process, development) and
  ``oceantaco-k8s`` (Kubernetes, base job template ``k8s/base-job-template.json``, the one the Helm chart's
  worker also applies when it starts).

Everything is declarative and idempotent: what is missing is created, what differs from the definition is
updated in place (matched by name), what matches is left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolCreate,
    WorkPoolUpdate,
)
from prefect.concurrency.sync import concurrency
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger

from oceantaco.catalog import load_catalog

# catalog provider -> name of its global concurrency limit
PROVIDER_LIMITS: dict[str, str] = {"cmems": "cmems", "aviso": "aviso", "argo_gdac": "argo-gdac"}
# Concurrent download tasks per provider across all flow runs. Each task itself opens at most
# OCEANTACO_CMEMS_MAX_CONNECTIONS / OCEANTACO_AVISO_MAX_CONNECTIONS connections (4 by default); AVISO's FTP
# server allows few sessions per account, hence one task.
# A build publishes a release and prunes old ones: builds run one at a time on a server, so runs of
# different deployments on one root never publish over or prune under each other.
BUILD_LIMIT = "taco-build"
DEFAULT_LIMITS: dict[str, int] = {"cmems": 4, "aviso": 1, "argo-gdac": 4, BUILD_LIMIT: 1}
# Download task threads per flow run: every provider's default slots at once.
DOWNLOAD_THREADS = sum(DEFAULT_LIMITS[name] for name in PROVIDER_LIMITS.values())

LOCAL_POOL = "oceantaco-local"
KUBERNETES_POOL = "oceantaco-k8s"
PoolKind = Literal["local", "kubernetes"]

Action = Literal["created", "updated", "unchanged"]


def provider_limit(product_token: str) -> str:
    """Name of the concurrency limit a download of ``product_token`` occupies a slot of."""
    return PROVIDER_LIMITS[load_catalog()[product_token].provider]


# --- using the limits ----------------------------------------------------------------------------------

LIMIT_LOOKUP_SECONDS = 60.0  # how long a process trusts what it learnt about a limit's existence
_limits_seen: dict[str, tuple[float, bool]] = {}
_limits_lock = threading.Lock()
logger = logging.getLogger(__name__)


def _limit_is_active(name: str) -> tuple[bool, bool]:
    """(whether the server has an active global concurrency limit ``name``, whether the server was asked
    now); a process asks at most once a minute per limit."""
    now = time.monotonic()
    with _limits_lock:
        seen = _limits_seen.get(name)
    if seen is not None and now - seen[0] < LIMIT_LOOKUP_SECONDS:
        return seen[1], False
    with get_client(sync_client=True) as client:
        try:
            active = bool(client.read_global_concurrency_limit_by_name(name).active)
        except ObjectNotFound:
            active = False
    with _limits_lock:
        _limits_seen[name] = (now, active)
    return active, True


def forget_limits() -> None:
    """Ask the server again at the next ``occupy_slot`` (after limits were created or deleted)."""
    with _limits_lock:
        _limits_seen.clear()


@contextmanager
def occupy_slot(name: str) -> Iterator[None]:
    """Hold one slot of the global concurrency limit ``name`` while the block runs, waiting for a free one.

    Without that limit on the server (``oceantaco prefect setup`` not run, or the limit deactivated) the
    block runs at once and the run's log says so: Prefect 3.9 itself neither creates a missing limit nor
    blocks on it, it skips the slot with a warning, and so does this, without asking the server for a slot
    on every task (a write that a SQLite server answers slowly while it records the run).
    """
    active, asked = _limit_is_active(name)
    if active:
        with concurrency(name, occupy=1):
            yield
        return
    if asked:  # once a minute per process, not on every task
        try:
            run_logger = get_run_logger()
        except Exception:  # outside a flow or task run
            run_logger = logger
        run_logger.warning(
            "no active concurrency limit %r on the Prefect server: running without one; "
            "`oceantaco prefect setup` creates it",
            name,
        )
    yield


def parse_limits(specs: list[str]) -> dict[str, int]:
    """``["cmems=2", ...]`` over the defaults; unknown names and non-integer slots are refused."""
    limits = dict(DEFAULT_LIMITS)
    for spec in specs:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or name not in DEFAULT_LIMITS:
            raise ValueError(f"--limit {spec!r}: use NAME=SLOTS with NAME one of {', '.join(DEFAULT_LIMITS)}")
        try:
            slots = int(value)
        except ValueError:
            raise ValueError(f"--limit {spec!r}: SLOTS must be a whole number") from None
        if slots < 1:
            raise ValueError(f"--limit {spec!r}: SLOTS must be at least 1")
        limits[name] = slots
    return limits


def _checkout_path(relative: str) -> Path:
    """``relative`` in the checkout: the current directory's if there is one, else next to this package."""
    here = Path.cwd() / relative
    return here if here.exists() else Path(__file__).resolve().parents[1] / relative


def default_deploy_dir() -> Path:
    return _checkout_path("deploy")


def default_base_job_template() -> Path:
    return _checkout_path("k8s/base-job-template.json")


# --- concurrency limits --------------------------------------------------------------------------------


def ensure_concurrency_limits(client: SyncPrefectClient, limits: dict[str, int]) -> dict[str, Action]:
    """Create or update (limit, active) each global concurrency limit; slots in use are never touched."""
    done: dict[str, Action] = {}
    for name, slots in limits.items():
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            done[name] = "created"
            continue
        if existing.limit == slots and existing.active:
            done[name] = "unchanged"
        else:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=slots, active=True)
            )
            done[name] = "updated"
    return done


# --- automations ---------------------------------------------------------------------------------------


def load_automations(path: Path) -> list[AutomationCore]:
    """Automations from a YAML file or every ``*.yaml`` of a folder.

    A file holds ``automations: [...]``, a list, or one automation: the format of
    ``prefect automation create --from-file``.
    """
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    automations = []
    for file in files:
        data = yaml.safe_load(file.read_text())
        if isinstance(data, dict) and "automations" in data:
            data = data["automations"]
        for item in data if isinstance(data, list) else [data]:
            automations.append(AutomationCore.model_validate(item))
    names = [a.name for a in automations]
    if len(set(names)) != len(names):
        raise ValueError(f"automation names must be unique, got {names}")
    return automations


def _definition(automation: AutomationCore) -> dict[str, Any]:
    return AutomationCore.model_validate(automation.model_dump()).model_dump(mode="json")


def ensure_automations(client: SyncPrefectClient, automations: list[AutomationCore]) -> dict[str, Action]:
    """Create each automation, or update the one of that name in place; extra copies of a name are deleted."""
    done: dict[str, Action] = {}
    for automation in automations:
        existing = client.read_automations_by_name(automation.name)
        if not existing:
            client.create_automation(automation)
            done[automation.name] = "created"
            continue
        first, *copies = sorted(existing, key=lambda a: str(a.id))
        for copy in copies:
            client.delete_automation(copy.id)
        if _definition(first) == _definition(automation) and not copies:
            done[automation.name] = "unchanged"
        else:
            client.update_automation(first.id, automation)
            done[automation.name] = "updated"
    return done


# --- work pools ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkPoolSpec:
    name: str
    type: str
    base_job_template: dict[str, Any]
    description: str


def work_pool_specs(kinds: list[PoolKind], base_job_template: Path) -> list[WorkPoolSpec]:
    specs = []
    if "local" in kinds:
        from prefect.workers.process import ProcessWorker

        specs.append(
            WorkPoolSpec(
                LOCAL_POOL,
                "process",
                ProcessWorker.get_default_base_job_template(),
                "Development: flow runs as local processes from the checkout (prefect.yaml *-local).",
            )
        )
    if "kubernetes" in kinds:
        template = json.loads(base_job_template.read_text())
        specs.append(
            WorkPoolSpec(
                KUBERNETES_POOL,
                "kubernetes",
                template,
                "Production: one Kubernetes Job per flow run from the pipeline image.",
            )
        )
    return specs


def ensure_work_pools(client: SyncPrefectClient, specs: list[WorkPoolSpec]) -> dict[str, Action]:
    """Create each pool, or bring an existing one's base job template and description to the definition."""
    done: dict[str, Action] = {}
    for spec in specs:
        try:
            existing = client.read_work_pool(spec.name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=spec.name,
                    type=spec.type,
                    base_job_template=spec.base_job_template,
                    description=spec.description,
                )
            )
            done[spec.name] = "created"
            continue
        if existing.type != spec.type:
            raise ValueError(
                f"work pool {spec.name!r} exists with type {existing.type!r}, not {spec.type!r}; "
                "delete it (prefect work-pool delete) and run the setup again"
            )
        if existing.base_job_template == spec.base_job_template and existing.description == spec.description:
            done[spec.name] = "unchanged"
        else:
            client.update_work_pool(
                spec.name,
                WorkPoolUpdate(base_job_template=spec.base_job_template, description=spec.description),
            )
            done[spec.name] = "updated"
    return done


# --- all of it -----------------------------------------------------------------------------------------


@dataclass
class SetupReport:
    concurrency_limits: dict[str, Action] = field(default_factory=dict)
    automations: dict[str, Action] = field(default_factory=dict)
    work_pools: dict[str, Action] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, str, str]]:
        return [
            *(("concurrency limit", n, a) for n, a in self.concurrency_limits.items()),
            *(("automation", n, a) for n, a in self.automations.items()),
            *(("work pool", n, a) for n, a in self.work_pools.items()),
        ]


def setup(
    *,
    limits: dict[str, int] | None = None,
    automations_path: Path | None = None,
    pools: list[PoolKind] | tuple[PoolKind, ...] = ("local", "kubernetes"),
    deploy_dir: Path | None = None,
    base_job_template: Path | None = None,
) -> SetupReport:
    """Apply the concurrency limits, automations and work pools to the server at PREFECT_API_URL.

    Definitions are read and validated before anything is written.
    """
    deploy_dir = deploy_dir or default_deploy_dir()
    automations = load_automations(automations_path or deploy_dir / "automations")
    specs = work_pool_specs(list(pools), base_job_template or default_base_job_template())
    report = SetupReport()
    with get_client(sync_client=True) as client:
        report.concurrency_limits = ensure_concurrency_limits(client, limits or DEFAULT_LIMITS)
        report.automations = ensure_automations(client, automations)
        report.work_pools = ensure_work_pools(client, specs)
    return report
