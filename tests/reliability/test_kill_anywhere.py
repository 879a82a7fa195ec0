"""Kill -9 anywhere: a pod can die at any instruction, and the next run must converge to the same dataset.

A 3-day run of all 11 products (10 from a Copernicus Marine mirror, SWOT from a local AVISO FTP server,
Argo from a GDAC tree) goes to a root on the local S3 server twice:

- **reference**: download -> format -> build, each step once, uninterrupted;
- **killed**: each step is started as the real CLI in its own process group and SIGKILLed (the group, as
  a pod's end kills every process in it) after a seeded delay, then started again, and again killed, until
  a run of the step finishes by itself. Each restart resumes from what the bucket holds, so successive
  kills land on work not yet done.

After every kill: every object under a final name is complete (identical to the reference's object of
that name, so nothing partial is ever visible), the inventory has no duplicate rows and lists only tiles
that exist, and a live TACO release, if any, opens and verifies. At the end the raw files, tiles,
inventory and TACO parts are identical to the reference (sha256), and nothing else is left behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from services import FTPService, start_ftp_server

from oceantaco.catalog import load_catalog
from oceantaco.inventory import INVENTORY_NAME, read_inventory
from oceantaco.steps import Roots
from oceantaco.storage import Storage
from oceantaco.synthetic import MirrorManifest, build_mirror
from oceantaco.synthetic_sparse import swot_day, write_swot_pass
from oceantaco.taco import verify_output

DAYS = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
SWOT_L3 = "swot_products/l3_karin_nadir/l3_lr_ssh/v2_0_1/Basic"  # AVISO's folder of SWOT L3 passes
AVISO_USER, AVISO_PASSWORD = "kill-test", "kill-test-password"
OCEANTACO = str(Path(sys.executable).parent / "oceantaco")
# Kill points per step (at least 20 in all). A step is killed this many times at most; once its run
# finishes before the drawn delay, the step is done and its remaining kill points are not used.
KILLS = {"download": 8, "format": 10, "build": 10}
STARTUP_SECONDS = 1.5  # interpreter, imports, bucket check: a kill earlier than this hits no work
STEP_TIMEOUT = 300
# Objects that differ between two correct runs by design: run logs and reports (named by their start
# time), release folders (named by their publication time) and the AVISO listing cache (stamped with
# the time it was listed).
RUN_SPECIFIC = re.compile(r"(^|/)logs/|^taco/releases/|^taco/CURRENT$|^taco/\.tacocat/|^raw/[^/]+/catalog/")


def step_argv(step: str, root: str) -> list[str]:
    roots = Roots.under(root)
    first, last = DAYS[0].isoformat(), DAYS[-1].isoformat()
    if step == "download":
        span = ["--start-date", first, "--end-date", last]
        return ["download", "--download", *span, "--output-dir", roots.raw]
    if step == "format":
        span = ["--date-min", first, "--date-max", last, "--update-existing-inventory"]
        return ["format", *span, "--data-dir", roots.raw, "--output-dir", roots.formatted, "--processes", "2"]
    span = ["--start-date", first, "--end-date", last]
    return ["build", *span, "--data-dir", roots.formatted, "--output-dir", roots.taco, "--keep-releases", "2"]


def start_step(step: str, root: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [OCEANTACO, *step_argv(step, root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the format workers die with it
        )


def run_step(step: str, root: str, log: Path) -> None:
    process = start_step(step, root, log)
    assert process.wait(timeout=STEP_TIMEOUT) == 0, f"{step} failed:\n{log.read_text()[-3000:]}"


def run_or_kill(step: str, root: str, log: Path, delay: float) -> bool:
    """Start the step and SIGKILL its process group after ``delay`` seconds; False if it finished first."""
    process = start_step(step, root, log)
    try:
        code = process.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return True
    assert code == 0, f"{step} failed:\n{log.read_text()[-3000:]}"
    return False


# --- what a root holds ---------------------------------------------------------------------------------


@dataclass
class Snapshot:
    objects: dict[str, str]  # key -> sha256 of every object but the run-specific ones
    inventory: pd.DataFrame | None
    others: list[str] = field(default_factory=list)  # run-specific keys and inventory fragments


def snapshot(root: str) -> Snapshot:
    storage = Storage(root)
    keys = storage.list()
    stable = [k for k in keys if not RUN_SPECIFIC.search(k) and not k.endswith(".inventory.parquet")]
    objects = {k: storage.sha256(k) for k in stable if k != f"formatted/{INVENTORY_NAME}"}
    inventory_key = f"formatted/{INVENTORY_NAME}"
    inventory = read_inventory(storage.child("formatted")) if inventory_key in keys else None
    return Snapshot(objects, inventory, [k for k in keys if k not in stable])


def comparable(inventory: pd.DataFrame) -> pd.DataFrame:
    """The inventory without the time each tile was written (which differs between any two runs)."""
    frame = inventory.drop(columns=["processed_at"]).apply(lambda column: column.map(repr))
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def upstream_digests(files: list[Path]) -> dict[str, str]:
    """sha256 of every upstream file by file name (names are unique: they carry product, day, hour)."""
    names = Counter(p.name for p in files)
    assert max(names.values()) == 1
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@dataclass
class Probe:
    """The checks after a kill, and what they found."""

    reference: Snapshot
    upstream: dict[str, str]
    checked: Counter = field(default_factory=Counter)

    def after_kill(self, root: str) -> None:
        now = snapshot(root)
        for key, digest in now.objects.items():
            area = key.split("/", 1)[0]
            if area == "raw" and key.rsplit("/", 1)[-1] in self.upstream:
                assert digest == self.upstream[key.rsplit("/", 1)[-1]], f"partial raw file {key}"
            else:  # a tile, a day's Argo index, a TACO part: only ever the complete object
                assert key in self.reference.objects, f"{key} is not an object of a complete run"
                assert digest == self.reference.objects[key], f"partial or different object {key}"
            self.checked[area] += 1
        if now.inventory is not None:
            rows = now.inventory
            assert not rows.duplicated(["data_source", "output_id", "region", "date_str"]).any(), (
                "duplicate rows"
            )
            tiles = {k.removeprefix("formatted/") for k in now.objects if k.startswith("formatted/")}
            missing = set(rows["relative_path"]) - tiles
            assert not missing, f"inventory lists tiles that do not exist: {sorted(missing)[:5]}"
            self.checked["inventory rows"] += len(rows)
        taco = Storage(Roots.under(root).taco)
        if taco.exists("CURRENT"):
            report = verify_output(taco, load_catalog(), payloads=False)
            assert not report.failures, report.failures
            self.checked["live releases verified"] += 1


# --- the test ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> MirrorManifest:
    return build_mirror(tmp_path_factory.mktemp("upstream"), DAYS, l4_resolution=1.0, alongtrack_points=200)


@pytest.fixture(scope="module")
def aviso(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FTPService, list[Path]]]:
    """An AVISO-like FTP server with two short SWOT L3 passes per day, and the pass files."""
    tree = tmp_path_factory.mktemp("aviso")
    # A pass crossing midnight belongs to both days: written once.
    passes = {(c, p, t) for day in DAYS for c, p, t in swot_day(day, n_passes=2, n_lines=50)}
    files = [
        write_swot_pass(tree / SWOT_L3 / f"cycle_{c:03d}", c, p, t, n_lines=50) for c, p, t in sorted(passes)
    ]
    with start_ftp_server(tree, AVISO_USER, AVISO_PASSWORD) as service:
        yield service, files


def test_kill_9_anywhere_then_rerun_converges_to_the_uninterrupted_result(
    mirror: MirrorManifest,
    aviso: tuple[FTPService, list[Path]],
    upstream_env,
    monkeypatch: pytest.MonkeyPatch,
    s3_bucket: str,
    rng: random.Random,
    tmp_path: Path,
) -> None:
    upstream_env(mirror.cmems_mirror, mirror.argo_gdac)  # the CLI processes inherit it
    server, swot_passes = aviso
    monkeypatch.setenv("OCEANTACO_AVISO_FTP_URL", server.url)
    monkeypatch.setenv("OCEANTACO_AVISO_USER", AVISO_USER)
    monkeypatch.setenv("OCEANTACO_AVISO_PASSWORD", AVISO_PASSWORD)
    log = tmp_path / "steps.log"

    reference_root = f"{s3_bucket}/reference"
    durations = {}
    for step in KILLS:
        started = time.monotonic()
        run_step(step, reference_root, log)
        durations[step] = time.monotonic() - started
    reference = snapshot(reference_root)
    assert reference.inventory is not None and len(reference.inventory) > 0

    swot_tiles = [k for k in reference.objects if k.startswith("formatted/l3_swot/") and k.endswith(".nc")]
    assert swot_tiles, "the reference run made no SWOT tile"
    probe = Probe(reference, upstream_digests([*mirror.files, *swot_passes]))
    killed_root = f"{s3_bucket}/killed"
    kills: list[tuple[str, float]] = []
    for step, budget in KILLS.items():
        # Each restart skips the work already done, so each kill lands within what is left of the
        # uninterrupted step's time (at most 70 % of it, so that most kills land before the end).
        # A restart also re-checks what is done, so the estimate never drops below a quarter of the step.
        full = max(durations[step] - STARTUP_SECONDS, 0.5)
        left = full
        for _ in range(budget):
            worked = rng.uniform(0.1, 0.7) * left
            if not run_or_kill(step, killed_root, log, STARTUP_SECONDS + worked):
                break
            kills.append((step, round(STARTUP_SECONDS + worked, 2)))
            probe.after_kill(killed_root)
            left = max(left - worked, full / 4)
        else:
            run_step(step, killed_root, log)  # the run after the last kill

    print(f"kills: {len(kills)} {kills}; checked after kills: {dict(probe.checked)}")
    assert len(kills) >= 20, f"only {len(kills)} kills landed before their step finished: {kills}"
    assert {step for step, _ in kills} == set(KILLS)

    final = snapshot(killed_root)
    assert final.objects == reference.objects  # raw files, tiles, day indexes, TACO parts: same bytes
    pd.testing.assert_frame_equal(comparable(final.inventory), comparable(reference.inventory))
    taco = Storage(Roots.under(killed_root).taco)
    report = verify_output(taco, load_catalog())  # every payload's sha256
    assert not report.failures, report.failures
    # Killed builds' staged releases are gone: only the kept ones (--keep-releases 2) remain.
    releases = {k.split("/")[2] for k in final.others if k.startswith("taco/releases/")}
    assert 1 <= len(releases) <= 2, releases
