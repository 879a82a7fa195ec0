"""Progress of long CLI loops: a rich bar on a terminal, plain log lines everywhere else.

Kubernetes (and CI) collect a pod's stdout/stderr line by line: a live bar redrawn with carriage returns
and cursor codes turns into one unreadable line, or thousands. So the bar is drawn only when the console
writes to a terminal; otherwise one line is printed each time another ``every_percent`` of the work is
done (so every item when there are few), and at least every ``heartbeat_seconds`` so a quiet log still
shows the process is alive. Lines carry counts and elapsed time, and never contain ``\\r``.

    with progress(len(pairs), "format", console=console) as advance:
        for token, day, result in ...:
            advance(item=f"{token} {day}")
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Advance(Protocol):
    """Records ``n`` more finished items; ``item`` names the last one (shown in the bar or the log line)."""

    def __call__(self, n: int = 1, *, item: str | None = None) -> None: ...


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class _LineReporter:
    """The non-terminal form: a line per ``every_percent`` step crossed, or after ``heartbeat`` seconds."""

    def __init__(
        self, total: int, description: str, console: Console, every_percent: float, heartbeat: float
    ) -> None:
        self.total, self.description, self.console = total, description, console
        self.every_percent, self.heartbeat = every_percent, heartbeat
        self.started = self.last_line = time.monotonic()
        self.completed = self.reported = 0

    def _step(self, completed: int) -> int:
        if self.total <= 0:
            return completed
        return math.floor(100.0 * completed / self.total / self.every_percent)

    def __call__(self, n: int = 1, *, item: str | None = None) -> None:
        before, self.completed = self.completed, self.completed + n
        now = time.monotonic()
        if self._step(self.completed) > self._step(before) or now - self.last_line >= self.heartbeat:
            self.line(item)

    def line(self, item: str | None = None, *, suffix: str = "") -> None:
        now = time.monotonic()
        elapsed = now - self.started
        text = f"{self.description}: {self.completed}/{self.total}"
        if self.total > 0:
            text += f" ({100.0 * self.completed / self.total:.0f}%)"
        text += f", elapsed {_clock(elapsed)}"
        if 0 < self.completed < self.total:
            text += f", eta {_clock(elapsed / self.completed * (self.total - self.completed))}"
        if item:
            text += f", last: {item}"
        # soft_wrap: a long item name must not be wrapped onto a second line at the console's width
        self.console.print(text + suffix, markup=False, highlight=False, soft_wrap=True)
        self.reported, self.last_line = self.completed, now


@contextmanager
def progress(
    total: int,
    description: str,
    *,
    console: Console | None = None,
    every_percent: float = 10.0,
    heartbeat_seconds: float = 60.0,
) -> Iterator[Advance]:
    """Report progress of ``total`` items; yields ``advance(n=1, *, item=None)``.

    On a terminal (``console.is_terminal``) a rich bar with counts, elapsed and remaining time and the last
    item; otherwise plain lines (see the module docstring), plus a closing line if the last one is stale,
    also when the loop raises. ``total`` may be 0 (nothing to do).
    """
    console = console or Console(stderr=True)
    if console.is_terminal:
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[item]}", style="dim"),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task(description, total=total, item="")

            def advance(n: int = 1, *, item: str | None = None) -> None:
                bar.update(task, advance=n, **({"item": item} if item is not None else {}))

            yield advance
        return
    lines = _LineReporter(total, description, console, every_percent, heartbeat_seconds)
    try:
        yield lines
    except BaseException:
        lines.line(suffix=", stopped by an error")
        raise
    if lines.reported != lines.completed or lines.completed == 0:
        lines.line(suffix=", done")
