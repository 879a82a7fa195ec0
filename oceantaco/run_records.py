"""The step reports of one flow run, stored under ``<root>/reports/<run id>/`` for the run that waits on it.

A chunk or build running in its own pod cannot hand its Python result to the parent flow (Prefect's
results stay in the pod unless result storage is configured), so each saves its reports as JSON in the
storage root, keyed by its own flow run id, which the parent knows. The write is one object, replaced
whole; a re-run of the same flow run (Prefect reschedules an evicted pod under the same id) replaces it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from oceantaco.chunks import ChunkOutcome
from oceantaco.steps import DownloadReport, FormatReport
from oceantaco.storage import Storage
from oceantaco.taco import BuildReport
from oceantaco.verify import VerifyReport

RECORD_NAME = "step_reports.json"


@dataclass
class StepReports:
    download: DownloadReport | None = None
    format: FormatReport | None = None
    build: BuildReport | None = None


def record_key(run_id: str) -> str:
    """Key of a run's record under the reports folder."""
    return f"{run_id}/{RECORD_NAME}"


def save(reports_url: str, run_id: str, reports: StepReports) -> str:
    body = {name: (asdict(value) if value is not None else None) for name, value in vars(reports).items()}
    storage = Storage(reports_url)
    storage.write_bytes(record_key(run_id), json.dumps(body, default=str).encode())
    return storage.url_of(record_key(run_id))


def _build_report(data: dict) -> BuildReport:
    verify = data.get("verify")
    values = {
        f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
        for f in fields(BuildReport)
        if f.name in data
    }
    values["verify"] = (
        VerifyReport(**{**verify, "failures": tuple(verify["failures"])}) if verify is not None else None
    )
    return BuildReport(**values)


def load(reports_url: str, run_id: str) -> StepReports | None:
    """The record ``run_id`` saved, or None when it saved none (its pod died before the end)."""
    storage = Storage(reports_url)
    if not storage.exists(record_key(run_id)):
        return None
    body = json.loads(storage.read_bytes(record_key(run_id)))
    return StepReports(
        download=DownloadReport(**body["download"]) if body.get("download") else None,
        format=FormatReport(**body["format"]) if body.get("format") else None,
        build=_build_report(body["build"]) if body.get("build") else None,
    )


def combine(records: list[StepReports]) -> StepReports:
    """One download and one format report over several chunks (rows in chunk order); no build."""
    downloads = [r.download for r in records if r.download is not None]
    formats = [r.format for r in records if r.format is not None]
    download = format = None
    if downloads:
        download = DownloadReport(started=min(d.started for d in downloads), dry_run=False)
        for d in downloads:
            download.planned += d.planned
            download.files += d.files
            download.errors += d.errors
    if formats:
        format = FormatReport(started=min(f.started for f in formats))
        for f in formats:
            format.days += f.days
    return StepReports(download=download, format=format)


def collect(reports_url: str, outcomes: list[ChunkOutcome]) -> StepReports:
    """The combined reports of the chunks' last attempts; marks each outcome ``reported`` or not."""
    records = []
    for outcome in outcomes:
        record = load(reports_url, outcome.run_id) if outcome.run_id is not None else None
        outcome.reported = record is not None
        records += [record] if record is not None else []
    return combine(records)
