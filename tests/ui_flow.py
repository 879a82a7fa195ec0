"""A tiny flow that only `test_ui.py` deploys: typed date parameters like the pipeline's, no side effects.

The UI builds its run form from the deployment's parameter schema, so the dates show up there as date
fields; the flow returns the number of days in the range and writes nothing.
"""

from __future__ import annotations

import datetime
from typing import Annotated

from prefect import flow
from pydantic import Field

FLOW_NAME = "oceantaco-ui-check"

Start = Annotated[datetime.date, Field(description="First day of the range (inclusive).")]
End = Annotated[datetime.date, Field(description="Last day of the range (inclusive).")]


@flow(name=FLOW_NAME, persist_result=False)
def ui_check(start: Start, end: End) -> int:
    """Count the days from `start` to `end`, both included."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return (end - start).days + 1
