"""``oceantaco`` command line: the seed pipeline's three steps plus ``run`` (Prefect) and ``demo``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from oceantaco import steps
from oceantaco.catalog import load_catalog
from oceantaco.chunks import DEFAULT_DAYS_PER_CHUNK
from oceantaco.cli_prefect import prefect_app
from oceantaco.duplicates import RESOLUTION_RULES
from oceantaco.formatting import FormatResult
from oceantaco.inventory import INVENTORY_NAME
from oceantaco.progress import progress
from oceantaco.providers import aviso, cmems
from oceantaco.settings import Settings
from oceantaco.storage import Storage, StorageUnreachableError
from oceantaco.taco import DEFAULT_KEEP_RELEASES, LAYOUTS
from oceantaco.verify import TacoVerificationError

app = typer.Typer(help="Build the OceanTACO dataset: download -> format -> build.", no_args_is_help=True)
app.add_typer(prefect_app, name="prefect")
console = Console(stderr=True)


def _days(start: str, end: str, names: tuple[str, str] = ("--start-date", "--end-date")) -> list[dt.date]:
    try:
        return steps.date_range(_date(start, names[0]), _date(end, names[1]))
    except ValueError as exc:
        _refuse(f"{exc}; swap {names[0]} and {names[1]}")


def _date(value: str | None, option: str) -> dt.date | None:
    # Checked here rather than by a typer callback: typer boxes its BadParameter messages over several lines.
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _refuse(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2024-01-31")


def _refuse(message: str) -> NoReturn:
    """One line on stderr (never wrapped at the terminal width, no markup parsing of the message), exit 2."""
    console.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(2)


def _reachable(*roots: str | None) -> None:
    """Refuse, before any work, bucket roots that cannot be used (no bucket, no endpoint, no credentials)."""
    for root in roots:
        if root is None:
            continue
        try:
            Storage(root).check_reachable()
        except StorageUnreachableError as exc:
            _refuse(str(exc))
        except ValueError as exc:  # fsspec: unknown protocol or malformed URL
            _refuse(f"{root}: {exc}")


def _cmems_credentials(tokens: list[str], settings: Settings) -> None:
    """Refuse up front when Copernicus Marine products need the toolbox and its account is not set."""
    catalog = load_catalog()
    toolbox = [t for t in tokens if catalog[t].provider == "cmems"] if settings.cmems_mirror is None else []
    if toolbox:
        try:
            cmems.require_credentials(", ".join(toolbox))
        except cmems.CmemsCredentialsError as exc:
            _refuse(str(exc))


def _products(names: list[str] | None) -> list[str]:
    try:
        return [p.token for p in steps.select_products(names or None)]
    except KeyError as exc:
        _refuse(str(exc).strip("\"'"))


@app.command()
def download(
    start_date: Annotated[str, typer.Option(help="Start date (inclusive), YYYY-MM-DD.")] = "2024-01-01",
    end_date: Annotated[str, typer.Option(help="End date (inclusive), YYYY-MM-DD.")] = "2024-01-04",
    output_dir: Annotated[str, typer.Option(help="Raw root: local path or bucket URL.")] = "./ssh_state_data",
    log_dir: Annotated[str | None, typer.Option(help="Report directory (default <output-dir>/logs).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be fetched (default).")
    ] = False,
    do_download: Annotated[bool, typer.Option("--download", help="Fetch the files.")] = False,
    weekly_batches: Annotated[bool, typer.Option(help="Plan and fetch in 7-day spans.")] = False,
    continue_on_error: Annotated[bool, typer.Option(help="Go on with other products if one fails.")] = False,
    sources: Annotated[
        list[str] | None, typer.Option(help="Products to fetch (default: all implemented).")
    ] = None,
    aviso_ftp_user: Annotated[
        str | None, typer.Option(help="AVISO FTP user (default: OCEANTACO_AVISO_USER).")
    ] = None,
    aviso_ftp_pass: Annotated[
        str | None,
        typer.Option(
            help="AVISO FTP password; visible in the process list: prefer OCEANTACO_AVISO_PASSWORD."
        ),
    ] = None,
    swot_level: Annotated[
        str | None, typer.Option(help="SWOT level: l3 (into l3_swot/) or l2 (into l2_swot/); default l3.")
    ] = None,
    refresh_catalog: Annotated[
        bool,
        typer.Option(
            "--refresh-catalog", help="Re-list the AVISO server even if its cached catalog is fresh."
        ),
    ] = False,
) -> None:
    """Fetch raw upstream files into the raw root, in the original pipeline's layout."""
    if aviso_ftp_pass:
        console.print(
            "[yellow]warning:[/yellow] --aviso-ftp-pass puts the password in the process list and the "
            "shell history; set OCEANTACO_AVISO_PASSWORD instead"
        )
    if swot_level not in (None, "l2", "l3"):
        _refuse(f"--swot-level must be l2 or l3, not {swot_level!r}")
    if dry_run and do_download:
        _refuse("--dry-run and --download are mutually exclusive")
    days = _days(start_date, end_date)
    products = _products(sources)
    _reachable(output_dir, log_dir)
    raw = Storage(output_dir)
    settings = aviso.apply_cli_options(
        Settings(),
        raw.url,
        user=aviso_ftp_user,
        password=aviso_ftp_pass,
        level=swot_level,
        refresh_catalog=refresh_catalog,
        dry_run=not do_download,
    )
    _cmems_credentials(products, settings)  # planning asks the toolbox too, so also on a dry run
    report = steps.DownloadReport(started=steps.timestamp(), dry_run=not do_download)
    logs = Storage(log_dir) if log_dir else raw.child("logs")
    spans = [days[i : i + 7] for i in range(0, len(days), 7)] if weekly_batches else [days]
    with (
        steps.run_log(logs, f"download_log_{report.started}.log") as log,
        progress(
            len(products) * len(days), "download" if do_download else "plan", console=console
        ) as advance,
    ):
        log.info("download %s..%s of %s into %s", days[0], days[-1], ", ".join(products), raw.url)
        for token in products:
            done = 0
            try:
                for span in spans:
                    for plan in steps.plan_downloads(token, span, settings):
                        report.add_plan(plan)
                        log.info(
                            "%s %s: %d file(s), %d bytes", token, plan.day, len(plan.files), plan.total_bytes
                        )
                        if do_download:
                            outcomes = steps.fetch_day(plan, raw.url, settings)
                            report.add_outcomes(plan, outcomes)
                            for failed in (o for o in outcomes if o.status == "failed"):
                                log.error(
                                    "%s %s: %s failed: %s", token, plan.day, failed.raw_key, failed.error
                                )
                        done += 1
                        advance(item=f"{token} {plan.day}")
            except Exception as exc:
                advance(len(days) - done, item=f"{token} failed")
                report.add_error(token, exc)
                log.error("%s failed: %s: %s", token, type(exc).__name__, exc)
                console.print(f"[red]{token} failed:[/red] {type(exc).__name__}: {exc}")
                if not continue_on_error:
                    break
        log.info("summary: %s", report.summary)
    table = Table("product", "days", "files", "MB")
    for token in products:
        rows = [p for p in report.planned if p["product"] == token]
        table.add_row(
            token,
            str(len(rows)),
            str(sum(r["files"] for r in rows)),
            f"{sum(r['bytes'] for r in rows) / 1e6:.1f}",
        )
    console.print(table)
    summary = report.summary
    where = report.save(logs)
    if do_download:
        console.print(
            f"fetched {summary['ok']} file(s), {summary['bytes_transferred'] / 1e6:.1f} MB; "
            f"skipped {summary['skipped']} already present; failed {summary['failed']}. Report: {where}"
        )
    else:
        console.print(
            f"dry run: would fetch up to {summary['planned_files']} file(s), "
            f"{summary['planned_bytes'] / 1e6:.1f} MB. Report: {where}"
        )
    if summary["failed"]:
        raise typer.Exit(1)


@app.command("format")
def format_(
    date_min: Annotated[str, typer.Option(help="Start date (inclusive), YYYY-MM-DD.")] = "2024-01-01",
    date_max: Annotated[str, typer.Option(help="End date (inclusive), YYYY-MM-DD.")] = "2024-01-04",
    data_dir: Annotated[str, typer.Option(help="Raw root (download output).")] = "./ssh_state_data",
    output_dir: Annotated[
        str, typer.Option(help="Formatted root: tiles + inventory.")
    ] = "./formatted_ssh_data",
    inventory_path: Annotated[
        str, typer.Option(help="Inventory file name under --output-dir.")
    ] = INVENTORY_NAME,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1, help="Worker processes.")] = 2,
    include_l3_swot: Annotated[bool, typer.Option("--include-l3-swot/--no-include-l3-swot")] = True,
    include_l3_ssh: Annotated[bool, typer.Option("--include-l3-ssh/--no-include-l3-ssh")] = True,
    include_argo: Annotated[bool, typer.Option("--include-argo/--no-include-argo")] = True,
    only_vars: Annotated[
        list[str] | None, typer.Option(help="Only these products (token or output id).")
    ] = None,
    update_existing_inventory: Annotated[
        bool, typer.Option(help="Merge into the existing inventory.")
    ] = False,
) -> None:
    """Cut raw files into regional NetCDF tiles and write the inventory."""
    days = _days(date_min, date_max, ("--date-min", "--date-max"))
    flags = (("l3_swot", include_l3_swot), ("l3_ssh", include_l3_ssh), ("argo", include_argo))
    excluded = {token for token, keep in flags if not keep}
    products = [t for t in _products(only_vars) if t not in excluded]
    _reachable(data_dir, output_dir)
    formatted = Storage(output_dir)
    pairs = [(t, d) for t in products for d in days]
    table = Table("product", "day", "status", "tiles written", "unchanged")
    report = steps.FormatReport(started=steps.timestamp())
    with progress(len(pairs), "format", console=console) as advance:
        for token, day, result in steps.format_many(pairs, Storage(data_dir).url, formatted.url, processes):
            report.add(token, day, result)
            advance(item=f"{token} {day}")
            if isinstance(result, FormatResult):
                table.add_row(
                    token, str(day), result.status, str(result.tiles_written), str(result.tiles_unchanged)
                )
            else:
                table.add_row(token, str(day), "[red]failed[/red]", "-", "-")
    console.print(table)
    rows = steps.compact_inventory(
        formatted.url,
        products,
        days,
        inventory_path=inventory_path,
        update_existing=update_existing_inventory,
    )
    console.print(f"inventory: {formatted.url_of(inventory_path)} ({rows} rows)")
    console.print(f"report: {report.save(formatted.child('logs'))}")
    if report.failures:
        console.print("[red]failed:[/red]\n  " + "\n  ".join(report.failures))
        raise typer.Exit(1)


@app.command()
def build(
    data_dir: Annotated[str, typer.Option(help="Formatted root (tiles).")] = "./formatted_ssh_data",
    output_dir: Annotated[str, typer.Option(help="TACO output: local path or bucket URL.")] = "./tortilla",
    inventory_path: Annotated[
        str | None,
        typer.Option(help="Inventory parquet: path or URL (default <data-dir>/file_inventory.parquet)."),
    ] = None,
    include_l3_swot: Annotated[bool, typer.Option("--include-l3-swot/--no-include-l3-swot")] = True,
    include_argo: Annotated[bool, typer.Option("--include-argo/--no-include-argo")] = True,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Audit the new release before publishing it.")
    ] = True,
    start_date: Annotated[str | None, typer.Option(help="Only days from this date (inclusive).")] = None,
    end_date: Annotated[str | None, typer.Option(help="Only days up to this date (inclusive).")] = None,
    analyze_duplicates_only: Annotated[
        bool, typer.Option("--analyze-duplicates-only", help="Analyse duplicates and exit; build nothing.")
    ] = False,
    duplicate_report_path: Annotated[
        str | None, typer.Option(help="Write the duplicate analysis as parquet (path or URL).")
    ] = None,
    resolve_duplicates: Annotated[
        str | None,
        typer.Option(
            help="Rule for duplicate rows: 'newest' (newest processing time wins). Default: refuse."
        ),
    ] = None,
    layout: Annotated[
        str,
        typer.Option(help="'zip': monthly .tacozip parts + .tacocat; 'folder': the published FOLDER tree."),
    ] = "zip",
    keep_releases: Annotated[
        int, typer.Option(min=1, help="Published releases (and the parts they use) kept for rollback.")
    ] = DEFAULT_KEEP_RELEASES,
) -> None:
    """Package the formatted tiles as TACO (monthly parts plus a catalog), audit, then publish them."""
    if layout not in LAYOUTS:
        _refuse(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if resolve_duplicates is not None and resolve_duplicates not in RESOLUTION_RULES:
        _refuse(f"--resolve-duplicates {resolve_duplicates!r}: choose one of {', '.join(RESOLUTION_RULES)}")
    excluded = {t for t, keep in (("l3_swot", include_l3_swot), ("argo", include_argo)) if not keep}
    products = [t for t in _products(None) if t not in excluded]
    start, end = _date(start_date, "--start-date"), _date(end_date, "--end-date")
    if start is not None and end is not None and end < start:
        _refuse(f"end date {end} is before start date {start}; swap --start-date and --end-date")
    _reachable(data_dir, output_dir, inventory_path, duplicate_report_path)
    selection = {"products": products, "start": start, "end": end}
    try:
        if analyze_duplicates_only:
            check = steps.analyze_duplicates(
                data_dir, inventory_url=inventory_path, report_path=duplicate_report_path, **selection
            )
            console.print(check.summary())
            if duplicate_report_path is not None:
                console.print(f"report: {duplicate_report_path}")
            return
        report = steps.build(
            data_dir,
            output_dir,
            inventory_url=inventory_path,
            verify=verify,
            layout=layout,
            keep_releases=keep_releases,
            resolve_duplicates=resolve_duplicates,
            duplicate_report_path=duplicate_report_path,
            **selection,
        )
    except (FileNotFoundError, ValueError) as exc:
        _refuse(str(exc))
    except TacoVerificationError as exc:
        console.print(f"[red]verification failed; the previous release stays live:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(report.summary())


@app.command(name="verify")
def verify_command(
    output: Annotated[str, typer.Argument(help="Dataset root: local path or bucket URL.")],
    inventory_path: Annotated[
        str | None,
        typer.Option(help="Check against this inventory (path or URL) instead of the release manifest."),
    ] = None,
) -> None:
    """Verify the live release: structure, metadata, every payload's sha256, a sample opened with xarray."""
    _reachable(output, inventory_path)
    try:
        report = steps.verify(output, inventory_url=inventory_path)
    except FileNotFoundError as exc:
        _refuse(str(exc))
    except TacoVerificationError as exc:
        console.print(f"[red]verification failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(report.summary())


@app.command()
def run(
    start_date: Annotated[str, typer.Option(help="Start date (inclusive), YYYY-MM-DD.")],
    end_date: Annotated[str, typer.Option(help="End date (inclusive), YYYY-MM-DD.")],
    root: Annotated[str, typer.Option(help="Storage root: raw/, formatted/ and taco/ go under it.")],
    products: Annotated[list[str] | None, typer.Option(help="Products (default: all implemented).")] = None,
    verify: Annotated[bool, typer.Option("--verify/--no-verify")] = True,
    days_per_chunk: Annotated[
        int,
        typer.Option(
            help="Days downloaded and formatted together before the next chunk; each chunk formats in a "
            "pool of processes sized to this machine's CPUs and memory.",
        ),
    ] = DEFAULT_DAYS_PER_CHUNK,
) -> None:
    """Run download -> format -> build as one Prefect flow (local embedded server unless PREFECT_API_URL).

    On one machine the chunks run one after the other; a deployment of the same flow fans them out.
    """
    # Bad input is refused before importing Prefect and starting a server, which takes seconds.
    tokens = _products(products)
    days = _days(start_date, end_date)
    if days_per_chunk < 1:
        _refuse(f"--days-per-chunk {days_per_chunk}: give at least 1 (default {DEFAULT_DAYS_PER_CHUNK})")
    _reachable(root)
    _cmems_credentials(tokens, Settings())
    from flows.pipeline import pipeline

    try:
        report = pipeline(days[0], days[-1], root, tokens, verify, days_per_chunk=days_per_chunk)
    except Exception as exc:  # the flow run's own log has the details
        console.print(f"[red]pipeline failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    console.print(report.summary())


@app.command()
def demo(
    output: Annotated[Path, typer.Option(help="Demo folder (replaced on each run).")] = Path("demo-output"),
) -> None:
    """Run the whole pipeline offline on a synthetic 3-day upstream mirror."""
    from oceantaco.demo import run_demo

    run_demo(output, console)
