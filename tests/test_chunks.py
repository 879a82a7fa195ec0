"""Chunking a run, deciding attempts, sizing a pod's format processes, and the reports a chunk leaves for
its parent: pure library code, no server."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from pathlib import Path

import pytest

from oceantaco import run_records
from oceantaco.catalog import load_catalog
from oceantaco.chunks import COMPLETED, CRASHED, FAILED, TIMED_OUT, ChunkTracker, split_days
from oceantaco.resources import FORMAT_PROCESS_PEAK_BYTES, GIB, Budget, current_budget
from oceantaco.steps import DownloadReport, FormatReport
from oceantaco.taco import BuildReport
from oceantaco.verify import VerifyReport

D = dt.date


# --- splitting --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "size", "expected"),
    [
        (D(2024, 1, 1), D(2024, 1, 6), 2, [(1, 2), (3, 4), (5, 6)]),
        (D(2024, 1, 1), D(2024, 1, 7), 3, [(1, 3), (4, 6), (7, 7)]),  # the last chunk is shorter
        (D(2024, 1, 1), D(2024, 1, 1), 7, [(1, 1)]),
    ],
)
def test_chunks_cover_the_window_once_in_order(first, last, size, expected):
    chunks = split_days(first, last, size)
    assert [(c.first.day, c.last.day) for c in chunks] == expected
    assert [c.index for c in chunks] == list(range(len(expected)))
    assert sum(c.days for c in chunks) == (last - first).days + 1


def test_a_core_period_backfill_splits_into_weeks_across_a_leap_day():
    # The published Core period has 856 daily indices; starting 2023-03-29 it runs over 2024-02-29.
    first = D(2023, 3, 29)
    chunks = split_days(first, first + dt.timedelta(days=855), 7)
    assert len(chunks) == 123 and chunks[-1].days == 856 - 122 * 7
    assert any(c.first <= D(2024, 2, 29) <= c.last and c.days == 7 for c in chunks)
    assert all(b.first - a.last == dt.timedelta(days=1) for a, b in itertools.pairwise(chunks))
    assert len({c.name for c in chunks}) == len(chunks)


def test_bad_chunk_sizes_and_reversed_windows_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        split_days(D(2024, 1, 1), D(2024, 1, 2), 0)
    with pytest.raises(ValueError, match="before start"):
        split_days(D(2024, 1, 2), D(2024, 1, 1), 1)


# --- attempts ---------------------------------------------------------------------------------------------


def test_at_most_max_parallel_chunks_are_in_flight():
    tracker = ChunkTracker(split_days(D(2024, 1, 1), D(2024, 1, 5), 1), max_parallel=2, max_attempts=3)
    first = tracker.next_to_start()
    assert [(c.index, attempt) for c, attempt in first] == [(0, 1), (1, 1)]
    for chunk, _ in first:
        tracker.started(chunk, f"run-{chunk.index}")
    assert tracker.next_to_start() == []  # both places taken
    tracker.ended("run-0", COMPLETED)
    (third,) = tracker.next_to_start()
    assert third[0].index == 2


def test_a_crashed_chunk_goes_first_in_line_and_a_failed_one_is_not_tried_again():
    tracker = ChunkTracker(split_days(D(2024, 1, 1), D(2024, 1, 3), 1), max_parallel=1, max_attempts=3)
    ((chunk0, _),) = tracker.next_to_start()
    tracker.started(chunk0, "a")
    assert tracker.ended("a", CRASHED, "pod evicted") is True
    ((again, attempt),) = tracker.next_to_start()
    assert (again.index, attempt) == (0, 2)
    tracker.started(again, "b")
    assert tracker.ended("b", COMPLETED) is False
    ((chunk1, _),) = tracker.next_to_start()
    tracker.started(chunk1, "c")
    assert tracker.ended("c", FAILED, "1 (product, day) format failure(s)") is False
    ((chunk2, _),) = tracker.next_to_start()
    tracker.started(chunk2, "d")
    assert tracker.ended("d", TIMED_OUT) is True
    results = tracker.results()
    assert [(o.chunk.index, o.attempts) for o in results[:2]] == [
        (0, [("a", CRASHED), ("b", COMPLETED)]),
        (1, [("c", FAILED)]),
    ]
    assert results[0].ok and not results[1].ok and results[1].message.startswith("1 (product")


def test_a_chunk_lost_on_every_attempt_ends_after_max_attempts():
    tracker = ChunkTracker(split_days(D(2024, 1, 1), D(2024, 1, 1), 1), max_parallel=4, max_attempts=3)
    runs = 0
    while not tracker.finished:
        for chunk, _ in tracker.next_to_start():
            runs += 1
            tracker.started(chunk, f"r{runs}")
            tracker.ended(f"r{runs}", CRASHED)
    (outcome,) = tracker.results()
    assert runs == 3 and outcome.state == CRASHED and not outcome.ok


# --- a pod's budget ---------------------------------------------------------------------------------------


def _cgroup(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return tmp_path


def test_the_budget_follows_the_cgroup_v2_quota_and_memory_limit(tmp_path):
    # A Kubernetes limit of cpu: 1500m, memory: 4Gi as the kubelet writes it for cgroup v2.
    root = _cgroup(tmp_path, {"cpu.max": "150000 100000", "memory.max": str(4 * GIB)})
    budget = current_budget(root)
    assert budget.cpus == min(2, len(os.sched_getaffinity(0)))
    assert budget.memory_bytes == 4 * GIB


def test_the_budget_reads_cgroup_v1_and_unlimited_means_none(tmp_path):
    root = _cgroup(
        tmp_path,
        {
            "cpu/cpu.cfs_quota_us": "-1",
            "cpu/cpu.cfs_period_us": "100000",
            "memory/memory.limit_in_bytes": "9223372036854771712",  # v1's "no limit"
        },
    )
    budget = current_budget(root)
    assert budget.memory_bytes is None
    assert budget.cpus == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpus", "memory", "requested", "expected"),
    [
        (2, 4 * GIB, None, 2),  # the chunk pod: CPU-bound
        (8, 4 * GIB, None, 2),  # memory-bound: (4 - 0.75) GiB holds 2 workers of 1.25 GiB
        (8, 5 * GIB, None, 3),  # ... (5 - 0.75) GiB holds 3
        (8, None, None, 8),
        (8, None, 2, 2),  # the setting lowers it
        (2, None, 16, 2),  # ... never raises it
        (1, GIB // 2, None, 1),  # always at least one
    ],
)
def test_format_processes_fit_the_cpus_and_the_memory(cpus, memory, requested, expected):
    assert Budget(cpus, memory).format_processes(requested) == expected


def test_the_per_process_allowance_covers_every_products_measured_peak():
    peaks = {p.token: p.format_peak_rss_mb * 1e6 for p in load_catalog().ordered()}
    assert max(peaks.values()) < FORMAT_PROCESS_PEAK_BYTES, peaks


# --- reports a chunk leaves for its parent ----------------------------------------------------------------


def _download(started: str, product: str) -> DownloadReport:
    report = DownloadReport(started=started, dry_run=False)
    report.planned.append({"product": product, "day": "2024-01-01", "files": 1, "bytes": 10})
    report.files.append({"product": product, "day": "2024-01-01", "status": "ok", "bytes": 10})
    return report


def test_a_saved_record_loads_back_equal_and_chunks_combine_in_order(tmp_path):
    reports = str(tmp_path / "reports")
    verify = VerifyReport(1, 8, 8, 1, 0, 0.5, failures=("x",))
    build = BuildReport(
        "u", "zip", "r1", True, 1, 8, 80, ("p1",), (), 8, ("old",), 1.0, verify, duplicates_dropped=("d",)
    )
    first = run_records.StepReports(
        download=_download("20240101_000000_000001", "l4_ssh"),
        format=FormatReport(started="20240101_000000_000002", days=[{"product": "l4_ssh", "status": "ok"}]),
    )
    second = run_records.StepReports(download=_download("20240101_000000_000000", "argo"), build=build)
    run_records.save(reports, "run-1", first)
    run_records.save(reports, "run-2", second)
    assert run_records.load(reports, "run-1") == first
    assert run_records.load(reports, "run-2") == second
    assert run_records.load(reports, "never-saved") is None

    combined = run_records.combine([first, second])
    assert combined.download.started == "20240101_000000_000000"
    assert [f["product"] for f in combined.download.files] == ["l4_ssh", "argo"]
    assert combined.download.summary["ok"] == 2
    assert combined.format.days == first.format.days and combined.build is None
