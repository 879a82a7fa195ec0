"""``oceantaco prefect ...``: preparing a Prefect server for the OceanTACO deployments."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

prefect_app = typer.Typer(
    help="Prefect server set-up: concurrency limits, automations, work pools.", no_args_is_help=True
)
console = Console(stderr=True)


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
    work_pools: Annotated[
        Pools,
        typer.Option(help="Work pools to create or update: oceantaco-local (process), oceantaco-k8s, both."),
    ] = Pools.all,
    deploy_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with automations/ and work-pools/ (default: ./deploy of the checkout)."),
    ] = None,
) -> None:
    """Create or update, idempotently, what the deployments need on the server at PREFECT_API_URL.

    One global concurrency limit per upstream provider (cmems, aviso, argo-gdac) that every download task
    occupies a slot of, and taco-build that serialises builds; the automations (flow runs whose heartbeats
    stopped are marked Crashed); the work pools that prefect.yaml targets.
    """
    from oceantaco import prefect_setup

    try:
        limits = prefect_setup.parse_limits(limit or [])
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    pools = {Pools.all: ["local", "kubernetes"], Pools.none: []}.get(work_pools, [work_pools.value])
    try:
        report = prefect_setup.setup(
            limits=limits, automations_path=automations, pools=pools, deploy_dir=deploy_dir
        )
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # the API is unreachable or refused a definition
        console.print(f"[red]setup failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    table = Table("kind", "name", "action")
    for row in report.rows():
        table.add_row(*row)
    console.print(table)
