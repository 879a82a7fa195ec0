"""``oceantaco prefect ...``: preparing a Prefect server for the OceanTACO deployments."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

prefect_app = typer.Typer(
    help="Prefect server set-up: concurrency limits, automations, work pools.", no_args_is_help=True
)
console = Console(stderr=True)


def _refuse(message: str) -> NoReturn:
    """One unwrapped line on stderr, exit 2 (bad usage or input), as the other commands do."""
    console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(2)


class Pools(StrEnum):
    all = "all"
    local = "local"
    kubernetes = "kubernetes"
    none = "none"


@prefect_app.command()
def setup(
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit",
            help="Slots of a concurrency limit, NAME=SLOTS (repeatable); defaults: cmems=4, aviso=1, "
            "argo-gdac=4 (download tasks per provider), taco-build=1 (builds at a time).",
        ),
    ] = None,
    automations: Annotated[
        Path | None,
        typer.Option(help="Automation YAML file or folder (default: deploy/automations)."),
    ] = None,
    # A plain str checked below: typer reports a bad enum value in a multi-line box.
    work_pools: Annotated[
        str,
        typer.Option(
            help="Work pools to create or update: local (oceantaco-local, process), kubernetes "
            "(oceantaco-k8s), all, none."
        ),
    ] = Pools.all.value,
    deploy_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with automations/ (default: ./deploy of the checkout)."),
    ] = None,
    base_job_template: Annotated[
        Path | None,
        typer.Option(help="Base job template of oceantaco-k8s (default: k8s/base-job-template.json)."),
    ] = None,
) -> None:
    """Create or update, idempotently, what the deployments need on the server at PREFECT_API_URL.

    One global concurrency limit per upstream provider (cmems, aviso, argo-gdac) that every download task
    occupies a slot of, and taco-build that serialises builds; the automations (flow runs whose heartbeats
    stopped are marked Crashed); the work pools that prefect.yaml targets.
    """
    import httpx

    from oceantaco import prefect_setup

    if work_pools not in set(Pools):
        _refuse(f"--work-pools {work_pools!r}: choose one of {', '.join(Pools)}")
    try:
        limits = prefect_setup.parse_limits(limit or [])
    except ValueError as exc:
        _refuse(str(exc))
    pool = Pools(work_pools)
    pools = {Pools.all: ["local", "kubernetes"], Pools.none: []}.get(pool, [pool.value])
    try:
        report = prefect_setup.setup(
            limits=limits,
            automations_path=automations,
            pools=pools,
            deploy_dir=deploy_dir,
            base_job_template=base_job_template,
        )
    except FileNotFoundError as exc:
        _refuse(
            f"{exc.filename or exc}: not found; pass an existing --automations, --deploy-dir or "
            "--base-job-template"
        )
    except ValueError as exc:
        _refuse(" ".join(str(exc).split()))
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # a wrong PREFECT_API_URL, or no server yet
        from prefect.settings import PREFECT_API_URL

        _refuse(
            f"cannot reach the Prefect API at {PREFECT_API_URL.value()} ({exc}); start the server "
            "(prefect server start) or set PREFECT_API_URL to it"
        )
    except Exception as exc:  # the API refused a definition
        console.print(f"[red]setup failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    table = Table("kind", "name", "action")
    for row in report.rows():
        table.add_row(*row)
    console.print(table)
