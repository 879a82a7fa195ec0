"""The Prefect UI in headless Chromium: open a deployment, start a custom run from the form, see it complete.

Runs against the one server that `make test` starts (the UI is served at the API's host:port, without
/api). The test deploys its own tiny flow (`tests/ui_flow.py`) as `backfill` to a process pool of its own
and starts a process worker for it, so the run that the UI creates is really executed.
`run_deployment_from_ui` does not depend on that flow: it fills any deployment's run form.

Chromium is Debian's (`apt-get install chromium`), driven by the PyPI playwright package; playwright never
downloads a browser of its own here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.workers.process import ProcessWorker
from ui_flow import FLOW_NAME

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
TESTS_DIR = Path(__file__).resolve().parent
RUN_TIMEOUT = 90.0  # seconds from "Submit" to a final state of the flow run
UI_TIMEOUT_MS = 20_000  # for each browser step

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (it comes with `pip install -e '.[test]'`)"
)
if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = [
    pytest.mark.prefect,
    pytest.mark.ui,
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
def work_pool() -> Iterator[str]:
    """A process work pool of this test's own (the worker below polls only it)."""
    name = f"ui-check-{uuid.uuid4().hex[:8]}"
    template = ProcessWorker.get_default_base_job_template()
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="process", base_job_template=template))
        try:
            yield name
        finally:
            client.delete_work_pool(name)


@pytest.fixture
def ui_deployment(work_pool: str) -> Iterator[tuple[str, str]]:
    """(flow name, deployment name): `ui_flow.py` deployed as `backfill`; flow and runs deleted after."""
    source = flow.from_source(source=str(TESTS_DIR), entrypoint="ui_flow.py:ui_check")
    deployment_id = source.deploy(
        name="backfill", work_pool_name=work_pool, print_next_steps=False, ignore_warnings=True
    )
    try:
        yield FLOW_NAME, "backfill"
    finally:
        with get_client(sync_client=True) as client:
            flow_id = client.read_deployment(deployment_id).flow_id
            client.delete_flow(flow_id)  # with its deployments and flow runs


@pytest.fixture
def worker(work_pool: str, tmp_path: Path) -> Iterator[Path]:
    """`prefect worker start` for the pool, polling every second; yields its log file."""
    log_path = tmp_path / "worker.log"
    prefect = str(Path(sys.executable).parent / "prefect")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [prefect, "worker", "start", "--pool", work_pool, "--type", "process"],
            env={**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield log_path
        finally:
            _stop_worker(process)


def _stop_worker(process: subprocess.Popen[bytes]) -> None:
    """One SIGINT makes the worker announce its shutdown, a second one ends it; SIGKILL as a last resort."""
    for wait in (5.0, 15.0):
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the worker's session: any flow run process left behind
    process.wait()


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


@pytest.mark.timeout(240)
def test_custom_run_from_the_ui_completes(
    ui_url: str, ui_deployment: tuple[str, str], worker: Path, page: Page, tmp_path: Path
) -> None:
    flow_name, deployment_name = ui_deployment
    dates = {"start": "2024-01-30", "end": "2024-02-01"}
    try:
        run_id = run_deployment_from_ui(page, ui_url, flow_name, deployment_name, dates)
    except Exception:
        page.screenshot(path=tmp_path / "ui-failure.png", full_page=True)
        raise

    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + RUN_TIMEOUT
        run = client.read_flow_run(uuid.UUID(run_id))
        while not (run.state and run.state.is_final()) and time.monotonic() < deadline:
            time.sleep(0.5)
            run = client.read_flow_run(run.id)
        deployment = client.read_deployment_by_name(f"{flow_name}/{deployment_name}")

    state = run.state.type.value if run.state else None
    worker_log = worker.read_text(errors="replace")[-3000:]
    assert state == "COMPLETED", f"flow run {run_id} from the UI ended {state}; worker log:\n{worker_log}"
    assert run.deployment_id == deployment.id
    assert run.parameters == dates  # exactly the dates typed into the form, as ISO strings

    page.reload()  # the run's page, opened from the toast
    sync_api.expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
