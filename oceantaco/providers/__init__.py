"""Upstream providers: one small class per service behind one protocol, registered by name.

A provider knows two things about its service: what to fetch for a set of days (``plan``) and how the
fetched files are laid out in the raw area (``fetch`` writes that layout, ``raw_inputs`` reads it back for
the format step). The catalog names each product's provider.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.client
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, TypeVar

from oceantaco.catalog import Product
from oceantaco.settings import Settings
from oceantaco.storage import Storage, WriteResult

logger = logging.getLogger(__name__)

# Retry policy of the generic fetch; module constants so that tests can shorten the waits.
ATTEMPTS = 3  # tries per file (and per listing) on transient errors
BACKOFF_SECONDS = 0.5  # base of the exponential backoff with full jitter
RETRY_AFTER_CAP_SECONDS = 60.0  # a server's Retry-After is honoured up to this long


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


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Client-library errors meaning the connection broke (reset, closed early, body cut short).

    They are not builtin ``ConnectionError``s: aiohttp (fsspec's HTTP) raises ``ClientPayloadError`` for a
    body shorter than its Content-Length and ``ClientConnectionError`` for a dropped socket; botocore
    (s3fs, the Copernicus Marine toolbox) its ``HTTPClientError`` family; http.client ``IncompleteRead``.
    """
    found: list[type[BaseException]] = [http.client.IncompleteRead]
    try:
        import aiohttp

        found += [aiohttp.ClientPayloadError, aiohttp.ClientConnectionError]
    except ImportError:  # pragma: no cover - fsspec's HTTP needs it, but a local-only install may lack it
        pass
    try:
        from botocore.exceptions import HTTPClientError, ResponseStreamingError

        found += [HTTPClientError, ResponseStreamingError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def _chain(error: BaseException) -> Iterator[BaseException]:
    link: BaseException | None = error
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        # ``raise ... from None`` hides the context: the new error replaces it (e.g. a classified 550).
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)


def http_status(error: BaseException) -> int | None:
    """The HTTP status of the first response error in ``error``'s cause chain, if any.

    fsspec's HTTP wraps a failed HEAD-then-GET in a ``FileNotFoundError`` whose cause holds the real status
    (503, 429…), so the chain is searched, not just the outermost error.
    """
    for link in _chain(error):
        status = getattr(link, "status", None)  # aiohttp.ClientResponseError
        if status is None:
            response = getattr(link, "response", None)
            if isinstance(response, dict):  # botocore ClientError
                status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            else:  # requests.HTTPError
                status = getattr(response, "status_code", None)
        if isinstance(status, int) and 100 <= status < 600:
            return status
    return None


def retry_after(error: BaseException) -> float | None:
    """Seconds a 429/503 answer asked the client to wait (``Retry-After``: seconds or an HTTP date)."""
    for link in _chain(error):
        headers = getattr(link, "headers", None)
        if headers is None:
            response = getattr(link, "response", None)
            if isinstance(response, dict):
                headers = response.get("ResponseMetadata", {}).get("HTTPHeaders")
        value = headers.get("Retry-After") or headers.get("retry-after") if headers else None
        if not value:
            continue
        value = str(value).strip()
        if value.isdigit():
            return float(value)
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
    return None


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: timeouts, refused, reset or dropped connections, bodies cut short, HTTP
    408/429/5xx.

    fsspec reports a refused HTTP connection, or a HEAD and GET both answered 503, as FileNotFoundError, so
    a connection or timeout error, a transport error or a retryable HTTP status anywhere in the cause chain
    makes the error transient; another 4xx status makes it permanent; otherwise the outermost type decides.
    """
    if isinstance(error, DownloadError):
        return error.transient
    transport = _transport_errors()
    for link in _chain(error):
        if isinstance(link, (ConnectionError, TimeoutError, *transport)):
            return True
    status = http_status(error)
    if status is not None:
        return status in (408, 429) or status >= 500
    return not isinstance(error, PERMANENT_ERRORS)


# Retries a transport made inside one call (an FTP transfer resumed after a drop, a toolbox call tried
# again), counted per thread so that ``fetch`` can report them in the file's ``attempts``.
_transport_retries = threading.local()


def note_retry() -> None:
    """Record that the transport retried part of the current file's transfer after a transient failure."""
    _transport_retries.count = getattr(_transport_retries, "count", 0) + 1


def _retries_noted() -> int:
    return getattr(_transport_retries, "count", 0)


@dataclass(frozen=True)
class FileOutcome:
    raw_key: str
    status: Literal["ok", "skipped", "failed"]
    bytes: int = 0
    seconds: float = 0.0
    error: str | None = None
    transient: bool = False  # for failures: whether a retry may succeed
    attempts: int = 1  # tries it took (transient errors are retried with backoff)
    # Retries inside those tries: transports that resume (FTP REST after a drop) or retry on their own (the
    # Copernicus Marine toolbox) recover without failing the try; each recovery counts here.
    transport_retries: int = 0


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


def with_retries(
    call: Callable[[], T], *, attempts: int | None = None, backoff_seconds: float | None = None
) -> tuple[T, int]:
    """``call()`` and the number of tries it took: transient errors (timeouts, dropped connections, HTTP
    429/5xx) are retried with exponential backoff and full jitter, permanent ones raised at once.

    A 429/503 answer's ``Retry-After`` is honoured, up to ``RETRY_AFTER_CAP_SECONDS``: the server said when
    it will serve again, and asking sooner only earns another refusal.
    """
    attempts = ATTEMPTS if attempts is None else attempts
    backoff_seconds = BACKOFF_SECONDS if backoff_seconds is None else backoff_seconds
    for attempt in range(1, attempts + 1):
        try:
            return call(), attempt
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                exc.attempts = attempt  # type: ignore[attr-defined]  # for the caller's report
                raise
            delay = random.uniform(0, backoff_seconds * 2 ** (attempt - 1))
            asked = retry_after(exc)
            if asked is not None:
                delay = max(delay, min(asked, RETRY_AFTER_CAP_SECONDS))
            logger.warning(
                "%s: %s; try %d of %d in %.2f s%s",
                type(exc).__name__,
                str(exc)[:200] or "no message",
                attempt + 1,
                attempts,
                delay,
                f" (server asked Retry-After {asked:g} s)" if asked is not None else "",
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def fetch(
    plan: DayPlan,
    source: Storage,
    raw: Storage,
    *,
    attempts: int | None = None,
    backoff_seconds: float | None = None,
) -> list[FileOutcome]:
    """Copy a day's files into the raw root, then its sidecars; a failed file fails only itself.

    Skips files already present with the source's size, so a re-run after a crash fetches only what is
    missing. A transient error (timeout, dropped connection, body cut short, HTTP 429/5xx) is retried up to
    ``attempts`` times (default ``ATTEMPTS``) with exponential backoff and full jitter; a permanent one
    fails at once. A file's ``transport_retries`` counts the retries its transport made inside those
    tries (FTP resumes, toolbox retries). A short read never lands under the file's name:
    ``Storage.copy_from`` stages the bytes and checks their length before publishing. Sidecars are written
    only when every file is there.
    """
    outcomes = []
    for remote in plan.files:
        started = time.perf_counter()
        noted = _retries_noted()

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
                    transport_retries=_retries_noted() - noted,
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
                transport_retries=_retries_noted() - noted,
            )
        )
    if all(o.status != "failed" for o in outcomes):
        for key, data in plan.sidecars.items():
            raw.write_bytes(key, data)
    return outcomes
