"""Typed flow parameters (they become the deployment forms in the Prefect UI) and the date window rule.

A run covers either an explicit date range (``start`` and ``end``, inclusive) or the ``last_n_days`` days
that end ``lag_days`` before the run's scheduled day: near-real-time products are published a day or so
after the day they describe, so a daily schedule asks for days that should exist by now.
"""

from __future__ import annotations

import datetime as dt
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from pydantic import Field
from pydantic.fields import FieldInfo

from oceantaco.catalog import load_catalog

# Product tokens in slot order, as a Literal so the UI offers a multi-select of exactly these.
ProductToken = Literal[tuple(load_catalog().slot_order)]  # type: ignore[valid-type]

Start = Annotated[
    dt.date | None,
    Field(description="First day, inclusive (UTC). Leave empty and set last_n_days for a rolling window."),
]
End = Annotated[
    dt.date | None,
    Field(description="Last day, inclusive (UTC). Leave empty and set last_n_days for a rolling window."),
]
FirstDay = Annotated[dt.date, Field(description="First day, inclusive (UTC).")]
LastDay = Annotated[dt.date, Field(description="Last day, inclusive (UTC).")]
Root = Annotated[
    str,
    Field(
        description="Storage root: a local path or a bucket URL (s3://bucket/prefix, gs://bucket/prefix); "
        "raw/, formatted/ and taco/ go under it.",
        min_length=1,
    ),
]
Products = Annotated[
    list[ProductToken] | None,  # type: ignore[valid-type]
    Field(description="Products to process; empty means all 11 in slot order."),
]
Verify = Annotated[
    bool,
    Field(
        description="Audit the staged release with tacoreader (every new payload's sha256) before it "
        "goes live."
    ),
]
LastNDays = Annotated[
    int | None,
    Field(
        description="Rolling window instead of start/end: this many days, ending lag_days before the run's "
        "scheduled day.",
        ge=1,
        le=3660,
    ),
]
LagDays = Annotated[
    int,
    Field(
        description="Publication lag of near-real-time products, in days: the rolling window ends this many "
        "days before the scheduled day (0 = up to today). Ignored with start/end.",
        ge=0,
        le=3660,
    ),
]
SwotLevel = Annotated[
    Literal["l2", "l3"] | None,
    Field(description="SWOT product to download: l3 (LR SSH) or l2; empty = OCEANTACO_SWOT_LEVEL (l3)."),
]
DryRun = Annotated[
    bool,
    Field(
        description="Only plan the downloads (files and bytes per product and day); fetch, format and "
        "build nothing."
    ),
]
Layout = Annotated[
    Literal["zip", "folder"],
    Field(description="TACO layout: monthly .tacozip parts + .tacocat (zip) or the published FOLDER tree."),
]
KeepReleases = Annotated[
    int, Field(description="How many newest releases (and the parts they reference) to keep.", ge=1)
]
DaysPerChunk = Annotated[
    int,
    Field(
        description="Days per chunk: each chunk's download + format runs as its own flow run (its own "
        "Kubernetes Job on oceantaco-k8s), retried alone if its pod is lost.",
        ge=1,
        le=366,
    ),
]
MaxParallelChunks = Annotated[
    int,
    Field(description="Chunks running at the same time (pods, on Kubernetes); the rest wait.", ge=1, le=512),
]
ChunkTimeoutMinutes = Annotated[
    int,
    Field(
        description="A chunk run without a final state this long after it was submitted is cancelled and "
        "tried again (at most 3 attempts in all).",
        ge=1,
    ),
]

DEFAULT_LAG_DAYS = 1
DEFAULT_MAX_PARALLEL_CHUNKS = 32
DEFAULT_CHUNK_TIMEOUT_MINUTES = 150  # the chunk Job's 2 h deadline, plus time to get a node

F = TypeVar("F", bound=Callable)


def described(fn: F) -> F:
    """Add an ``Args:`` section built from the parameters' ``Field(description=...)`` to the docstring.

    Prefect's parameter schema (the form of a deployment in the UI) takes each parameter's description from
    the flow's docstring and drops the one in ``Annotated`` metadata; this keeps the types the one source.
    """
    hints = typing.get_type_hints(fn, include_extras=True)
    lines = []
    for name in inspect.signature(fn).parameters:
        for meta in getattr(hints.get(name), "__metadata__", ()):
            if isinstance(meta, FieldInfo) and meta.description:
                lines.append(f"    {name}: {meta.description}")
    if lines:
        fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\nArgs:\n" + "\n".join(lines)
    return fn


def resolve_window(
    start: dt.date | None,
    end: dt.date | None,
    last_n_days: int | None,
    lag_days: int,
    today: dt.date,
) -> tuple[dt.date, dt.date]:
    """The inclusive (first, last) days a run covers.

    Either ``start`` and ``end`` (``lag_days`` is then ignored), or ``last_n_days`` ending ``lag_days``
    before ``today``; anything else is refused with a message saying what to give.
    """
    if last_n_days is not None:
        if start is not None or end is not None:
            raise ValueError("give either start and end, or last_n_days, not both")
        if last_n_days < 1 or lag_days < 0:
            raise ValueError(f"last_n_days must be >= 1 and lag_days >= 0, not {last_n_days}, {lag_days}")
        last = today - dt.timedelta(days=lag_days)
        return last - dt.timedelta(days=last_n_days - 1), last
    if start is None or end is None:
        raise ValueError("give start and end (inclusive dates), or last_n_days for a rolling window")
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    return start, end


def check_root(root: str) -> str:
    """Refuse a root that still holds a ``{{ $VAR }}`` placeholder: it was deployed without that variable."""
    if "{{" in root or "}}" in root:
        raise ValueError(
            f"storage root {root!r} holds an unresolved placeholder: set the variable when running "
            "`prefect deploy`, or pass root explicitly"
        )
    return root
