"""A long run split into date chunks that run apart (one pod each), and the bookkeeping of their attempts.

A chunk is a span of consecutive days whose download + format runs as one unit: it can be retried alone
(the work is idempotent: fetched files are skipped, unchanged tiles are not rewritten) and it bounds what
one pod holds. ``ChunkTracker`` decides, without talking to anything, which chunk starts next, which
attempt ended how, and which chunk is tried again: at most ``max_parallel`` are in flight, a chunk whose
pod was lost (Crashed, or no final state before its deadline) is resubmitted up to ``max_attempts`` times,
a chunk that Failed (its flow ran and a day failed inside) or was Cancelled by a person is not.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass, field

# One week per chunk: the daily update is one chunk, and an 856-day backfill is 123 chunks, about 4 waves
# on 32 pods (the README's "On Kubernetes" has the measurements behind it).
DEFAULT_DAYS_PER_CHUNK = 7

# Prefect state types (``StateType`` values) as strings, so this module needs no Prefect import.
COMPLETED, FAILED, CRASHED, CANCELLED = "COMPLETED", "FAILED", "CRASHED", "CANCELLED"
TIMED_OUT = "TIMED_OUT"  # our own: the attempt had no final state by its deadline
# Worth another attempt: the pod died (eviction, spot reclaim, OOM) or vanished without a word.
RESUBMITTED_ON = frozenset({CRASHED, TIMED_OUT})


@dataclass(frozen=True)
class Chunk:
    """Days ``first``..``last`` (inclusive) of a run; ``index`` counts from 0 in date order."""

    index: int
    first: dt.date
    last: dt.date

    @property
    def name(self) -> str:
        return f"chunk-{self.index:04d}_{self.first:%Y%m%d}-{self.last:%Y%m%d}"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


def split_days(first: dt.date, last: dt.date, days_per_chunk: int) -> list[Chunk]:
    """Consecutive chunks of ``days_per_chunk`` days covering ``first``..``last``; the last may be shorter."""
    if days_per_chunk < 1:
        raise ValueError(f"days_per_chunk must be at least 1, not {days_per_chunk}")
    if last < first:
        raise ValueError(f"end date {last} is before start date {first}")
    chunks = []
    start = first
    while start <= last:
        end = min(last, start + dt.timedelta(days=days_per_chunk - 1))
        chunks.append(Chunk(len(chunks), start, end))
        start = end + dt.timedelta(days=1)
    return chunks


@dataclass
class ChunkOutcome:
    """How a chunk ended: the state of its last attempt, and every attempt's run id and end state."""

    chunk: Chunk
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (run id, state type) in order
    message: str | None = None
    reported: bool = False  # its last attempt saved its step reports (their failures are counted there)

    @property
    def state(self) -> str | None:
        return self.attempts[-1][1] if self.attempts else None

    @property
    def run_id(self) -> str | None:
        return self.attempts[-1][0] if self.attempts else None

    @property
    def ok(self) -> bool:
        return self.state == COMPLETED


class ChunkTracker:
    """Which chunk to start next and what each attempt's end means (see the module docstring)."""

    def __init__(self, chunks: list[Chunk], *, max_parallel: int, max_attempts: int) -> None:
        if max_parallel < 1 or max_attempts < 1:
            raise ValueError(
                f"max_parallel and max_attempts must be >= 1, not {max_parallel}, {max_attempts}"
            )
        self.max_parallel = max_parallel
        self.max_attempts = max_attempts
        self.outcomes = {chunk.index: ChunkOutcome(chunk) for chunk in chunks}
        self._waiting: deque[Chunk] = deque(chunks)
        self._in_flight: dict[str, Chunk] = {}  # run id -> chunk

    @property
    def in_flight(self) -> dict[str, Chunk]:
        return dict(self._in_flight)

    @property
    def finished(self) -> bool:
        return not self._waiting and not self._in_flight

    def next_to_start(self) -> list[tuple[Chunk, int]]:
        """(chunk, attempt number from 1) for as many waiting chunks as free places allow; call
        ``started`` for each once it is submitted."""
        free = self.max_parallel - len(self._in_flight)
        picked = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
        return [(chunk, len(self.outcomes[chunk.index].attempts) + 1) for chunk in picked]

    def started(self, chunk: Chunk, run_id: str) -> None:
        self._in_flight[run_id] = chunk

    def ended(self, run_id: str, state: str, message: str | None = None) -> bool:
        """Record the final ``state`` of attempt ``run_id``; True when the chunk goes back to the queue."""
        chunk = self._in_flight.pop(run_id)
        outcome = self.outcomes[chunk.index]
        outcome.attempts.append((run_id, state))
        outcome.message = message
        again = state in RESUBMITTED_ON and len(outcome.attempts) < self.max_attempts
        if again:
            self._waiting.appendleft(chunk)  # first in line: it holds the run back the longest
        return again

    def results(self) -> list[ChunkOutcome]:
        return [self.outcomes[index] for index in sorted(self.outcomes)]


def chunk_summary(outcomes: list[ChunkOutcome]) -> list[str]:
    """One line per chunk that did not complete, naming its days, last state and attempts."""
    return [
        f"{o.chunk.name} ({o.chunk.first}..{o.chunk.last}): {o.state or 'never started'} after "
        f"{len(o.attempts)} attempt(s)" + (f": {o.message}" if o.message else "")
        for o in outcomes
        if not o.ok
    ]
