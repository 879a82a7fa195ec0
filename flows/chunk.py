"""The chunk flow: download + format of a span of days, the unit of work one pod runs."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ProcessPoolTaskRunner

from flows.download import download_flow
from flows.format import format_flow
from flows.parameters import FirstDay, LastDay, Products, Root, SwotLevel, check_root, described
from oceantaco import run_records, steps
from oceantaco.prefect_artifacts import current_run_id
from oceantaco.resources import current_budget
from oceantaco.run_report import failure_message
from oceantaco.settings import Settings


@flow(name="oceantaco-chunk")
@described
def chunk_flow(
    start: FirstDay, end: LastDay, root: Root, products: Products = None, swot_level: SwotLevel = None
) -> run_records.StepReports:
    """Download and format ``start``..``end`` under ``root``: what one pod of a pipeline run does.

    Format tasks run in worker processes, as many as the pod's CPU and memory limits allow (1.25 GiB each),
    largest products first. The reports are saved under ``<root>/reports/<this run's id>/`` for the
    pipeline run waiting on this one. Fails at the end if a file or a (product, day) failed; the others
    are formatted and listed first.
    """
    roots = steps.Roots.under(check_root(root))
    download = download_flow(start, end, root, products, swot_level)
    processes = current_budget().format_processes(Settings().format_processes)
    in_processes = format_flow.with_options(task_runner=ProcessPoolTaskRunner(max_workers=processes))
    format = in_processes(start, end, root, products)
    reports = run_records.StepReports(download=download, format=format)
    run_records.save(roots.reports, current_run_id(), reports)
    failed = failure_message(download, format)
    if failed:
        raise RuntimeError(failed)
    return reports
