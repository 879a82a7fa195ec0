"""The build flow: the changed TACO parts and a new catalog, audited before they go live."""

from __future__ import annotations

from prefect import flow, task

from flows.parameters import KeepReleases, Layout, Products, Root, Verify, check_root, described
from flows.retries import retry_network
from oceantaco import run_records, steps
from oceantaco.prefect_artifacts import current_run_id
from oceantaco.prefect_setup import BUILD_LIMIT, occupy_slot
from oceantaco.taco import DEFAULT_KEEP_RELEASES, BuildReport


@task(retries=1, retry_delay_seconds=30, retry_condition_fn=retry_network)
def build_taco(
    formatted_url: str, output_url: str, products: list[str], verify: bool, layout: str, keep_releases: int
) -> BuildReport:
    # One build at a time on the server: a build publishes a release and prunes old ones.
    with occupy_slot(BUILD_LIMIT):
        return steps.build(
            formatted_url,
            output_url,
            products=products,
            verify=verify,
            layout=layout,
            keep_releases=keep_releases,
        )


@flow(name="oceantaco-build")
@described
def build_flow(
    root: Root,
    products: Products = None,
    verify: Verify = True,
    layout: Layout = "zip",
    keep_releases: KeepReleases = DEFAULT_KEEP_RELEASES,
) -> BuildReport:
    """Build ``<root>/taco`` from ``<root>/formatted``: only months whose tiles changed are re-packed; the
    staged release is verified (with ``verify``) and only then published. The report is also saved under
    ``<root>/reports/<this run's id>/`` for a pipeline run waiting on this one."""
    roots = steps.Roots.under(check_root(root))
    tokens = [p.token for p in steps.select_products(products)]
    report = build_taco(roots.formatted, roots.taco, tokens, verify, layout, keep_releases)
    run_records.save(roots.reports, current_run_id(), run_records.StepReports(build=report))
    return report
