"""Upstream providers: one small class per service behind one protocol, registered by name.

A provider knows two things about its service: what to fetch for a set of days (``plan``) and how the
fetched files are laid out in the raw area (``fetch`` writes that layout, ``raw_inputs`` reads it back for
the format step). The catalog names each product's provider.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeVar

from oceantaco.catalog import Product
from oceantaco.settings import Settings
from oceantaco.storage import Storage, WriteResult


@dataclass(frozen=True)
class RemoteFile:
    source_key: str  # key under the provider's source root
    raw_key: str  # key under the raw root, in the original pipeline's layout
    size: int | None = None  # bytes, when the source lists it


@dataclass(frozen=True)
class DayPlan:
    """Everything one (product, day) download needs; plain data so a Prefect task can take it."""

    product: str
    day: dt.date
    files: tuple[RemoteFile, ...]
    # Small objects written after every file arrived, e.g. the Argo per-day index: its presence marks the
    # day complete.
    sidecars: dict[str, bytes] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)


# Errors a retry cannot fix: a missing file or index, refused access, bad input, unimplemented features.
PERMANENT_ERRORS = (FileNotFoundError, PermissionError, NotImplementedError, ValueError, KeyError)


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: timeouts, refused or dropped connections, server errors.

    fsspec reports a refused HTTP connection as FileNotFoundError, so a connection or timeout error
    anywhere in the cause chain makes the error transient; otherwise the outermost type decides.
    """
    if isinstance(error, DownloadError):
        return error.transient
    link: BaseException | None = error
    while link is not None:
        if isinstance(link, ConnectionError | TimeoutError):
            return True
        link = link.__cause__ or link.__context__
    return not isinstance(error, PERMANENT_ERRORS)


@dataclass(frozen=True)
class FileOutcome:
    raw_key: str
    status: Literal["ok", "skipped", "failed"]
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    transient: bool = False  # for failures: whether a retry may succeed
    attempts: int = 1  # tries it took (transient errors are retried with backoff)


class DownloadError(RuntimeError):
    """Some files of a day failed; ``outcomes`` holds every file's outcome (so a report still counts the
    ones that arrived) and ``transient`` says whether a retry may fetch the rest."""

    def __init__(self, plan: DayPlan, outcomes: list[FileOutcome]) -> None:
        self.plan, self.outcomes = plan, outcomes
        failed = [o for o in outcomes if o.status == "failed"]
        self.transient = any(o.transient for o in failed)
        super().__init__(f"{plan.product} {plan.day}: {len(failed)} file(s) failed, first: {failed[0].error}")

    def __reduce__(self) -> tuple:  # picklable although __init__ does not take the message
        return (DownloadError, (self.plan, self.outcomes))


class Provider(Protocol):
    name: ClassVar[str]
    source: Storage  # root the plan's ``source_key``s are relative to

    def plan(self, product: Product, days: list[dt.date]) -> list[DayPlan]: ...

    def raw_inputs(self, product: Product, day: dt.date, raw: Storage) -> list[str]: ...


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    _REGISTRY[cls.name] = cls
    return cls


def get_provider(name: str, settings: Settings) -> Provider:
    # Import for the registration side effect: each module registers its class.
    from oceantaco.providers import argo_gdac, aviso, cmems  # noqa: F401

    try:
        return _REGISTRY[name](settings)
    except KeyError:
        raise NotImplementedError(f"provider {name!r} is not implemented yet") from None


T = TypeVar("T")


def with_retries(call: Callable[[], T], *, attempts: int = 3, backoff_seconds: float = 0.5) -> tuple[T, int]:
    """``call()`` and the number of tries it took: transient errors (timeouts, dropped connections, HTTP
    429/5xx) are retried with exponential backoff and full jitter, permanent ones raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return call(), attempt
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                exc.attempts = attempt  # type: ignore[attr-defined]  # for the caller's report
                raise
            time.sleep(random.uniform(0, backoff_seconds * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


def fetch(
    plan: DayPlan, source: Storage, raw: Storage, *, attempts: int = 3, backoff_seconds: float = 0.5
) -> list[FileOutcome]:
    """Copy a day's files into the raw root, then its sidecars; a failed file fails only itself.

    Skips files already present with the source's size, so a re-run after a crash fetches only what is
    missing. A transient error (timeout, dropped connection, HTTP 429/5xx) is retried up to ``attempts``
    times with exponential backoff and full jitter; a permanent one fails at once. Sidecars are written only
    when every file is there.
    """
    outcomes = []
    for remote in plan.files:
        started = time.perf_counter()

        def copy(remote: RemoteFile = remote) -> WriteResult:
            return raw.copy_from(source, remote.source_key, remote.raw_key, expected_size=remote.size)

        try:
            result, tries = with_retries(copy, attempts=attempts, backoff_seconds=backoff_seconds)
        except Exception as exc:  # one bad file must not stop the others
            outcomes.append(
                FileOutcome(
                    remote.raw_key,
                    "failed",
                    error=f"{type(exc).__name__}: {exc}",
                    transient=is_transient(exc),
                    attempts=getattr(exc, "attempts", 1),
                )
            )
            continue
        outcomes.append(
            FileOutcome(
                remote.raw_key,
                "ok" if result.written else "skipped",
                result.size if result.written else 0,
                time.perf_counter() - started,
                attempts=tries,
            )
        )
    if all(o.status != "failed" for o in outcomes):
        for key, data in plan.sidecars.items():
            raw.write_bytes(key, data)
    return outcomes
