"""Waiting for mapped tasks without letting one failure stop its siblings."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture


def settle(futures: list[PrefectFuture], what: str) -> list[Any | BaseException]:
    """Each task's result, or the exception it ended with, in the order of ``futures``; failures are logged
    with their message so the flow run's log names every (product, day) that failed."""
    settled: list[Any | BaseException] = []
    for future in futures:
        future.wait()
        state = future.state
        if state.is_completed():
            settled.append(future.result())
            continue
        error = state.result(raise_on_failure=False)
        if not isinstance(error, BaseException):  # crashed or cancelled runs carry no exception
            error = RuntimeError(state.message or state.name)
        get_run_logger().error("%s failed: %s", what, state.message)
        settled.append(error)
    return settled
