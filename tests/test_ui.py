"""The Prefect UI in headless Chromium: open the backfill deployment, start a custom run from its form, see it
complete and find its report.

Runs against the one server that `make test` starts (the UI is served at the API's host:port, without
/api). `backfill-local` is deployed by `prefect deploy` from the real prefect.yaml (the same flow and
parameters as `backfill`, on the process pool instead of Kubernetes, which does not run here), a process
worker runs what the UI submits against the one-day `tiny_mirror` upstream, and the run writes a TACO
under the root typed into the form.

Chromium is Debian's (`apt-get install chromium`), driven by the PyPI playwright package; playwright never
downloads a browser of its own here.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import tacoreader
from prefect.client.orchestration import get_client
from prefect_helpers import (
    LOCAL_DEPLOYMENTS,
    TINY_DAY,
    prefect_deploy,
    process_worker,
    wait_for_final_state,
)

from oceantaco import prefect_setup
from oceantaco.steps import Roots

CHROMIUM = Path("/usr/bin/chromium")
# The closed network refuses Chromium's background connections; these flags keep it from trying.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PIPELINE, DEPLOYMENT = "oceantaco-pipeline", "backfill-local"
DAY = TINY_DAY.isoformat()  # the one day of the `tiny_mirror` upstream
RUN_TIMEOUT = 180.0  # seconds from "Submit" to a final state of the flow run
UI_TIMEOUT_MS = 20_000  # for each browser step

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (it comes with `pip install -e '.[test]'`)"
)
if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.ui,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not found: Debian's chromium package is not installed"
    ),
]


# ---------------------------------------------------------------------------------------------------------
# Driving the UI (Prefect 3.9's default UI, the "V2" one that the server root redirects to)
# ---------------------------------------------------------------------------------------------------------


def run_deployment_from_ui(
    page: Page,
    ui_url: str,
    flow_name: str,
    deployment_name: str,
    parameters: Mapping[str, str | Sequence[str]],
) -> str:
    """Start a run of `flow_name/deployment_name` through the UI's "Run" -> "Custom run" form.

    Each entry of `parameters` is typed into that parameter's form field: "YYYY-MM-DD" for a date picker,
    the text for a text or number box, "true"/"false" for a switch, an option (or a list of options) for
    a select. For a union such as `date | None` the first type other than None is chosen first. Parameters
    left out keep the form's defaults. Ends on the new run's page and returns the id of that flow run.
    """
    page.goto(ui_url)  # the server redirects its root to the default UI
    page.get_by_role("link", name="Deployments", exact=True).click()
    deployment_link = page.get_by_role("link", name=deployment_name, exact=True)
    flow_label = page.get_by_text(flow_name, exact=True)
    row = page.get_by_role("row").filter(has=deployment_link).filter(has=flow_label)
    row.get_by_role("link", name=deployment_name, exact=True).click()

    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run", exact=True).click()
    for name, value in parameters.items():
        _fill_parameter(page, name, value)
    # A select's list or a date picker still open would take the click meant for Submit.
    sync_api.expect(page.get_by_role("listbox")).to_have_count(0)
    sync_api.expect(page.get_by_role("dialog")).to_have_count(0)
    page.get_by_role("button", name="Submit", exact=True).click()

    # A toast "<run name> scheduled to start now" links to the new run's page: .../runs/flow-run/<id>
    view_run = page.get_by_role("link", name="View run", exact=True)
    href = view_run.get_attribute("href") or ""
    match = re.search(r"/flow-run/([0-9a-f-]{36})$", href)
    assert match, f"no flow run link in the toast after Submit (href {href!r})"
    view_run.click()
    page.wait_for_url(re.compile(re.escape(match.group(0))))
    return match.group(1)


def _parameter_field(page: Page, name: str) -> Locator:
    """The form block of one parameter: its label ("name" or "name (Optional)"), menu and input widget."""
    label = page.locator("label").filter(has_text=re.compile(rf"^{re.escape(name)}( \(Optional\))?$"))
    label.wait_for()
    return label.locator("xpath=ancestor::div[.//fieldset][1]")


def _fill_parameter(page: Page, name: str, value: str | Sequence[str]) -> None:
    field = _parameter_field(page, name)
    tabs = field.get_by_role("tab")
    if tabs.count():  # a union (anyOf): one tab per type; pick the first that is not None
        tabs.filter(has_not_text=re.compile(r"^None$")).first.click()

    date_picker = field.locator("button[aria-haspopup='dialog']")
    select = field.locator("[aria-haspopup='listbox']")
    switch = field.get_by_role("switch")
    text_box = field.locator("input:not([type='hidden']), textarea")

    if date_picker.count():
        # The picker's popover has a "yyyy-MM-dd" text box above the calendar.
        _expect_single(date_picker, name, value)
        date_picker.click()
        popover = page.locator(f"[id='{date_picker.get_attribute('aria-controls')}']")
        box = popover.get_by_role("textbox")
        box.fill(str(value))
        box.press("Enter")
        page.keyboard.press("Escape")
        sync_api.expect(popover).to_be_hidden()
    elif select.count():
        for option in [value] if isinstance(value, str) else value:
            if select.get_attribute("aria-expanded") != "true":
                select.click()
            page.get_by_role("option", name=option, exact=True).click()
        if select.get_attribute("aria-expanded") == "true":
            page.keyboard.press("Escape")
    elif switch.count():
        wanted = str(value).strip().lower() in {"true", "1", "yes", "on"}
        if (switch.get_attribute("aria-checked") == "true") != wanted:
            switch.click()
    elif text_box.count():
        _expect_single(text_box, name, value)
        text_box.fill(str(value))
    else:
        raise AssertionError(f"no date picker, select, switch or text box for parameter {name!r} in the form")


def _expect_single(widget: Locator, name: str, value: str | Sequence[str]) -> None:
    if not isinstance(value, str):
        raise TypeError(f"parameter {name!r} takes one value in the form, got {value!r}")
    assert widget.count() == 1, f"parameter {name!r}: {widget.count()} input widgets in its form field"


# ---------------------------------------------------------------------------------------------------------
# Fixtures: the UI of the `make test` server, a process pool, the tiny deployment, a worker, a browser
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def ui_url() -> str:
    """The UI's root URL; fails (does not skip) when the server serves no usable UI."""
    api_url = os.environ["PREFECT_API_URL"].rstrip("/")
    url = api_url.removesuffix("/api")
    try:
        with urllib.request.urlopen(f"{url}/ui-settings", timeout=10) as response:
            settings = json.load(response)
    except (OSError, ValueError) as exc:
        pytest.fail(
            f"the Prefect server at {url} serves no UI ({exc}): start it with the UI enabled "
            "(not PREFECT_UI_ENABLED=false)"
        )
    if not settings.get("available_uis"):
        pytest.fail(f"the Prefect server at {url} serves no UI: start it without PREFECT_UI_ENABLED=false")
    if (settings.get("api_url") or "").rstrip("/") != api_url:
        pytest.fail(
            f"the Prefect UI at {url} would call the API at {settings.get('api_url')!r}, not {api_url}: "
            "start the server with PREFECT_UI_API_URL set to its API URL"
        )
    return url


@pytest.fixture
def local_pool() -> Iterator[str]:
    """The process pool of the -local deployments, as `oceantaco prefect setup` makes it (removed after
    if this test made it)."""
    with get_client(sync_client=True) as client:
        actions = prefect_setup.ensure_work_pools(
            client, prefect_setup.work_pool_specs(["local"], prefect_setup.default_base_job_template())
        )
        try:
            yield prefect_setup.LOCAL_POOL
        finally:
            if actions[prefect_setup.LOCAL_POOL] == "created":
                client.delete_work_pool(prefect_setup.LOCAL_POOL)


@pytest.fixture
def backfill_deployment(local_pool: str) -> Iterator[str]:
    """`backfill-local`, with the `chunk-local` and `rebuild-local` deployments its runs submit to, deployed
    by `prefect deploy` from the real prefect.yaml (deleted after)."""
    prefect_deploy(*LOCAL_DEPLOYMENTS)
    try:
        yield DEPLOYMENT
    finally:
        with get_client(sync_client=True) as client:
            for deployment in client.read_deployments():
                if deployment.name in LOCAL_DEPLOYMENTS:
                    client.delete_deployment(deployment.id)


@pytest.fixture
def worker(local_pool: str, tiny_mirror, upstream_env, tmp_path: Path) -> Iterator[Path]:
    """A process worker on the pool whose flow runs read the tiny upstream mirror; yields its log file."""
    upstream_env(tiny_mirror.cmems_mirror, tiny_mirror.argo_gdac)  # the worker's flow runs inherit it
    log = tmp_path / "worker.log"
    with process_worker(local_pool, log):
        yield log


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


# ---------------------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_backfill_run_from_the_ui_completes_and_shows_its_report(
    ui_url: str, backfill_deployment: str, worker: Path, page: Page, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    form = {"start": DAY, "end": DAY, "root": str(root), "products": ["l4_ssh", "argo"]}
    refused: list[str] = []  # API calls the UI made that failed, to explain a form that did not submit
    page.on(
        "response",
        lambda r: refused.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None,
    )
    try:
        run_id = run_deployment_from_ui(page, ui_url, PIPELINE, backfill_deployment, form)
    except Exception as exc:
        page.screenshot(path=tmp_path / "ui-failure.png", full_page=True)
        raise AssertionError(
            f"{exc}\nfailed API calls: {refused}\nscreenshot: {tmp_path / 'ui-failure.png'}"
        ) from exc

    run = wait_for_final_state(run_id, RUN_TIMEOUT)
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"{PIPELINE}/{backfill_deployment}")

    state = run.state.type.value if run.state else None
    worker_log = worker.read_text(errors="replace")[-3000:]
    assert state == "COMPLETED", f"flow run {run_id} from the UI ended {state}; worker log:\n{worker_log}"
    assert run.deployment_id == deployment.id
    typed = {k: v for k, v in run.parameters.items() if k in form}
    assert typed == form  # exactly what was typed into the form (dates as ISO strings)
    taco = Roots.under(str(root)).taco
    tacoreader.clear_cache()
    assert tacoreader.load(taco, cache=False).data["id"].to_pylist() == [DAY.replace("-", "_")]

    page.reload()  # the run's page, opened from the toast
    sync_api.expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
    page.get_by_role("tab", name="Artifacts").click()  # the run report, as a user finds it
    sync_api.expect(page.get_by_text("oceantaco-run-summary").first).to_be_visible()
