"""Waiting for mapped tasks without letting one failure stop its siblings."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.futures import PrefectFuture


def settle(futures: list[PrefectFuture], what: str) -> tuple[list, int]:
    """Results of the completed tasks and the number that failed; failures are logged with their message."""
    results, failed = [], 0
    for future in futures:
        future.wait()
        state = future.state
        if state.is_completed():
            results.append(future.result())
        else:
            failed += 1
            get_run_logger().error("%s failed: %s", what, state.message)
    return results, failed
