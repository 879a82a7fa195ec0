"""When a failed task is retried: only for errors a second attempt can fix."""

from __future__ import annotations

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from oceantaco.providers import is_transient


def _error(state: State) -> BaseException | None:
    try:
        state.result()
    except Exception as exc:
        return exc
    return None


def retry_download(task: Task, task_run: TaskRun, state: State) -> bool:
    """Downloads: timeouts, dropped connections, HTTP 429/5xx; never a missing file or refused login."""
    error = _error(state)
    return error is not None and is_transient(error)


def retry_network(task: Task, task_run: TaskRun, state: State) -> bool:
    """Bucket reads and writes: only a connection or timeout error in the cause chain. A corrupt or
    missing input fails the same way every time, so it is not retried."""
    link = _error(state)
    while link is not None:
        if isinstance(link, ConnectionError | TimeoutError):
            return True
        link = link.__cause__ or link.__context__
    return False
