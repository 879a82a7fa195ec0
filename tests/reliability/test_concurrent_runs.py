"""Concurrent runs on one root: format runs over overlapping dates, and a build while a format runs.

Each run is the real CLI in its own process, on the local S3 server, as two pods would be. Format runs
merge into the shared inventory (`--update-existing-inventory`, as the flows do): no row may be lost or
duplicated however their compactions interleave. A build racing a format publishes either nothing or a
release that verifies, and the next build matches the final inventory exactly.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from oceantaco.catalog import load_catalog
from oceantaco.inventory import FRAGMENT_SUFFIX, compact, read_inventory
from oceantaco.regions import REGION_NAMES
from oceantaco.steps import Roots, date_range
from oceantaco.storage import Storage
from oceantaco.synthetic import MirrorManifest, build_mirror
from oceantaco.taco import verify_output

DAYS = date_range(dt.date(2024, 1, 29), dt.date(2024, 2, 1))
PRODUCTS = ["l4_ssh", "l4_sst", "l4_sss", "glorys"]  # gridded: a tile in every region every day
OCEANTACO = str(Path(sys.executable).parent / "oceantaco")
ROUNDS = 3  # seeded rounds of racing format runs, each on a fresh inventory


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    return build_mirror(
        tmp_path_factory.mktemp("upstream"),
        DAYS,
        l4_resolution=1.0,
        grid_products=("l4_sst", "l4_sss", "glorys"),
        alongtrack_points=None,
    )


@pytest.fixture
def root(mirror: MirrorManifest, upstream_env, s3_bucket: str, tmp_path: Path) -> str:
    """A root whose raw files are downloaded (the format runs then race on formatted/ only)."""
    upstream_env(mirror.cmems_mirror, mirror.argo_gdac)
    root = f"{s3_bucket}/root"
    span = ["--start-date", DAYS[0].isoformat(), "--end-date", DAYS[-1].isoformat()]
    sources = [arg for p in PRODUCTS for arg in ("--sources", p)]
    command = [OCEANTACO, "download", "--download", *span, *sources, "--output-dir", Roots.under(root).raw]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return root


def format_command(root: str, days: list[dt.date], products: list[str]) -> list[str]:
    roots = Roots.under(root)
    span = ["--date-min", days[0].isoformat(), "--date-max", days[-1].isoformat()]
    only = [arg for p in products for arg in ("--only-vars", p)]
    return [
        OCEANTACO,
        "format",
        *span,
        *only,
        "--update-existing-inventory",
        "--processes",
        "1",
        "--data-dir",
        roots.raw,
        "--output-dir",
        roots.formatted,
    ]


def run_together(commands: list[list[str]], log: Path, starts: list[float]) -> list[int]:
    """Start every command (the i-th after starts[i] seconds) and wait for all; their exit codes."""
    processes = []
    with open(log, "ab") as out:
        began = time.monotonic()
        for command, start in sorted(zip(commands, starts, strict=True), key=lambda pair: pair[1]):
            time.sleep(max(0.0, start - (time.monotonic() - began)))
            processes.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
        return [p.wait(timeout=600) for p in processes]


def expected_rows(days: list[dt.date], products: list[str]) -> set[tuple[str, str, str]]:
    """(product, region, YYYYMMDD) of every tile: gridded products cover every region every day."""
    catalog = load_catalog()
    return {(catalog[p].data_source, r, f"{d:%Y%m%d}") for p in products for r in REGION_NAMES for d in days}


def inventory_rows(root: str) -> list[tuple[str, str, str]]:
    frame = read_inventory(Storage(Roots.under(root).formatted))
    return list(zip(frame["data_source"], frame["region"], frame["date_str"], strict=True))


def test_racing_format_runs_lose_and_duplicate_no_inventory_row(
    root: str, rng: random.Random, tmp_path: Path
) -> None:
    for round_ in range(ROUNDS):
        Storage(root).delete_tree("formatted")  # a fresh inventory: every round races from the start
        # One run per product over the first three days, and one over the last three days of two
        # products: overlapping dates, finishing within a fraction of a second of each other.
        commands = [format_command(root, DAYS[:3], [p]) for p in PRODUCTS]
        commands.append(format_command(root, DAYS[1:], PRODUCTS[:2]))
        starts = [rng.uniform(0.0, 0.5) for _ in commands]
        codes = run_together(commands, tmp_path / f"round{round_}.log", starts)
        assert codes == [0] * len(commands), (tmp_path / f"round{round_}.log").read_text()[-3000:]

        rows = inventory_rows(root)
        want = expected_rows(DAYS[:3], PRODUCTS) | expected_rows(DAYS[1:], PRODUCTS[:2])
        assert len(rows) == len(set(rows)), "duplicated inventory rows"
        assert set(rows) == want, f"round {round_}: lost {sorted(want - set(rows))[:5]}"


def compact_at_once(
    root: str, product: str, fragments: dict[str, bytes], barrier, env: dict[str, str]
) -> int:
    """In a process of its own: put this run's fragments in place, wait for the others, then compact."""
    os.environ.update(env)
    formatted = Storage(Roots.under(root).formatted)
    for key, data in fragments.items():
        formatted.write_bytes(key, data)
    barrier.wait(timeout=60)
    return len(compact(formatted, [load_catalog()[product]], DAYS, update_existing=True))


def test_simultaneous_compactions_keep_every_row(root: str, tmp_path: Path) -> None:
    """The narrowest race: runs whose fragments land at once and whose compactions start together."""
    subprocess.run(format_command(root, DAYS, PRODUCTS), capture_output=True, timeout=600, check=True)
    formatted = Storage(Roots.under(root).formatted)
    fragments = {k: formatted.read_bytes(k) for k in formatted.list(suffix=FRAGMENT_SUFFIX)}
    want = set(inventory_rows(root))
    assert want == expected_rows(DAYS, PRODUCTS)
    runs = [{k: v for k, v in fragments.items() if k.startswith(f"{p}/")} for p in PRODUCTS]
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    context = multiprocessing.get_context("spawn")
    n = len(PRODUCTS)
    for round_ in range(ROUNDS):
        Storage(root).delete_tree("formatted")
        barrier = context.Manager().Barrier(n)
        with ProcessPoolExecutor(n, mp_context=context) as pool:
            counts = list(pool.map(compact_at_once, [root] * n, PRODUCTS, runs, [barrier] * n, [env] * n))
        rows = inventory_rows(root)
        assert len(rows) == len(set(rows)), "duplicated inventory rows"
        assert set(rows) == want, f"round {round_}: lost {len(want - set(rows))} row(s); runs saw {counts}"


def test_a_build_racing_a_format_publishes_a_consistent_release(root: str, tmp_path: Path) -> None:
    roots = Roots.under(root)
    first = format_command(root, DAYS[:2], PRODUCTS)
    assert subprocess.run(first, capture_output=True, timeout=600).returncode == 0
    build = [OCEANTACO, "build", "--data-dir", roots.formatted, "--output-dir", roots.taco]

    # The rest of the days are formatted while two builds run, one after the other.
    log = tmp_path / "race.log"
    with open(log, "ab") as out:
        formatting = subprocess.Popen(format_command(root, DAYS[2:], PRODUCTS), stdout=out, stderr=out)
        builds = [subprocess.run(build, stdout=out, stderr=out, timeout=600).returncode for _ in range(2)]
        assert formatting.wait(timeout=600) == 0, log.read_text()[-3000:]
    # A racing build may refuse (exit 1: its audit caught a tile changed under it) but never corrupts.
    assert set(builds) <= {0, 1}, log.read_text()[-3000:]
    taco = Storage(roots.taco)
    if taco.exists("CURRENT"):
        report = verify_output(taco, load_catalog())
        assert not report.failures, report.failures

    final = subprocess.run(build, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stdout[-3000:]
    inventory = read_inventory(Storage(roots.formatted))
    report = verify_output(taco, load_catalog(), inventory=inventory)
    assert not report.failures, report.failures
    assert report.days == len(DAYS)
