"""Bad command-line input: every refusal is ONE line saying what is wrong and how to fix it, exit code 2,
and no Python traceback anywhere in the output.

Faults: malformed dates, an end before the start, unknown products or choices, an unreachable bucket (an
S3 endpoint on a closed 127.0.0.1 port, a bucket missing on the moto server), missing credentials (S3
without keys, Copernicus Marine without an account) and an unreachable Prefect API.

A representative set runs the installed ``oceantaco`` as a real subprocess (a traceback printed by the
interpreter itself, past typer, is caught there), all started at once to keep the suite fast; the rest of
the matrix goes through typer's CliRunner in-process.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from services import Service, free_port
from typer.testing import CliRunner

from oceantaco.cli import app
from oceantaco.synthetic import build_mirror

DAY = dt.date(2024, 3, 1)
OCEANTACO = str(Path(sys.executable).parent / "oceantaco")
RANGE = ["--start-date", "2024-03-01", "--end-date", "2024-03-02"]
FORMAT_RANGE = ["--date-min", "2024-03-01", "--date-max", "2024-03-02"]
CLOSED = "closed"  # marker: point AWS_ENDPOINT_URL (or PREFECT_API_URL) at a port nobody listens on
NO_KEYS = "no-keys"  # marker: the moto endpoint, but no AWS keys in the environment
MISSING_BUCKET = "s3://oceantaco-no-such-bucket/root"
CLOSED_BUCKET = "s3://oceantaco-closed/root"
CMEMS_FIX = "COPERNICUSMARINE_SERVICE_PASSWORD"
S3_FIX = "AWS_ENDPOINT_URL"


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    needles: tuple[str, ...]  # what the one line must name: the culprit and the fix
    env: str | None = None  # CLOSED, NO_KEYS or None (the moto server with keys, or no bucket at all)


def case(*args: str, needles: tuple[str, ...], env: str | None = None) -> Case:
    return Case(args, needles, env)


# Run as real processes: one per command and fault category, across download/format/build/verify/run/prefect.
SUBPROCESS_CASES = {
    "download-malformed-date": case(
        "download", "--start-date", "2024-13-01", needles=("--start-date", "'2024-13-01'", "YYYY-MM-DD")
    ),
    "format-end-before-start": case(
        "format", "--date-min", "2024-03-02", "--date-max", "2024-03-01", needles=("before start", "swap")
    ),
    "build-malformed-end": case("build", "--end-date", "2024-02-30", needles=("--end-date", "YYYY-MM-DD")),
    "run-unknown-product": case(
        "run", *RANGE, "--root", "/nonexistent/root", "--products", "sst9", needles=("sst9", "known:")
    ),
    "download-closed-endpoint": case(
        "download", *RANGE, "--output-dir", CLOSED_BUCKET, needles=(CLOSED_BUCKET, S3_FIX), env=CLOSED
    ),
    "build-missing-bucket": case(
        "build", "--data-dir", MISSING_BUCKET, "--output-dir", "/tmp/x", needles=(MISSING_BUCKET, "not exist")
    ),
    "verify-missing-bucket": case("verify", MISSING_BUCKET, needles=(MISSING_BUCKET, "create it")),
    "format-s3-without-keys": case(
        "format",
        *FORMAT_RANGE,
        "--data-dir",
        MISSING_BUCKET,
        needles=("credentials", "AWS_ACCESS_KEY_ID"),
        env=NO_KEYS,
    ),
    "download-without-cmems-account": case(
        "download",
        *RANGE,
        "--download",
        "--output-dir",
        "/tmp/x",
        "--sources",
        "l4_ssh",
        needles=(CMEMS_FIX,),
    ),
    "prefect-setup-bad-limit": case(
        "prefect", "setup", "--limit", "cmems", needles=("'cmems'", "NAME=SLOTS")
    ),
    "prefect-setup-unreachable-api": case(
        "prefect", "setup", needles=("Prefect API", "PREFECT_API_URL"), env=CLOSED
    ),
}

# In-process (CliRunner): the rest of the matrix.
RUNNER_CASES = {
    "download-malformed-end": case(
        "download", "--end-date", "tomorrow", needles=("--end-date", "YYYY-MM-DD")
    ),
    "download-end-before-start": case(
        "download", "--start-date", "2024-03-02", "--end-date", "2024-03-01", needles=("before start",)
    ),
    "download-unknown-product": case("download", "--sources", "nonsense", needles=("nonsense", "known:")),
    "download-bad-swot-level": case("download", "--swot-level", "l4", needles=("l2 or l3",)),
    "download-missing-bucket": case("download", "--output-dir", MISSING_BUCKET, needles=("not exist",)),
    "download-log-dir-closed": case(
        "download", "--output-dir", "/tmp/x", "--log-dir", CLOSED_BUCKET, needles=(S3_FIX,), env=CLOSED
    ),
    "download-dry-run-without-cmems-account": case(
        "download", "--output-dir", "/tmp/x", "--sources", "glorys", needles=(CMEMS_FIX, "glorys")
    ),
    "format-malformed-date": case("format", "--date-min", "01/03/2024", needles=("--date-min", "YYYY-MM-DD")),
    "format-unknown-product": case("format", "--only-vars", "nonsense", needles=("nonsense",)),
    "format-missing-bucket": case(
        "format", *FORMAT_RANGE, "--output-dir", MISSING_BUCKET, needles=("exist",)
    ),
    "format-closed-endpoint": case(
        "format", *FORMAT_RANGE, "--data-dir", CLOSED_BUCKET, needles=(S3_FIX,), env=CLOSED
    ),
    "build-malformed-start": case("build", "--start-date", "2024-1-1", needles=("--start-date",)),
    "build-end-before-start": case(
        "build", "--start-date", "2024-03-02", "--end-date", "2024-03-01", needles=("before start", "swap")
    ),
    "build-bad-layout": case("build", "--layout", "tar", needles=("zip, folder",)),
    "build-closed-endpoint": case(
        "build", "--data-dir", CLOSED_BUCKET, needles=(CLOSED_BUCKET, S3_FIX), env=CLOSED
    ),
    "build-inventory-missing-bucket": case(
        "build", "--inventory-path", f"{MISSING_BUCKET}/inv.parquet", needles=("not exist",)
    ),
    "build-without-keys": case(
        "build", "--output-dir", MISSING_BUCKET, needles=("AWS_ACCESS_KEY_ID",), env=NO_KEYS
    ),
    "verify-closed-endpoint": case("verify", CLOSED_BUCKET, needles=(CLOSED_BUCKET, S3_FIX), env=CLOSED),
    "verify-without-keys": case("verify", MISSING_BUCKET, needles=("credentials",), env=NO_KEYS),
    "run-malformed-date": case(
        "run",
        "--start-date",
        "bad",
        "--end-date",
        "2024-03-01",
        "--root",
        "/tmp/x",
        needles=("--start-date", "YYYY-MM-DD"),
    ),
    "run-end-before-start": case(
        "run",
        "--start-date",
        "2024-03-02",
        "--end-date",
        "2024-03-01",
        "--root",
        "/tmp/x",
        needles=("before start",),
    ),
    "run-closed-endpoint": case(
        "run", *RANGE, "--root", CLOSED_BUCKET, needles=(CLOSED_BUCKET, S3_FIX), env=CLOSED
    ),
    "run-missing-bucket": case(
        "run", *RANGE, "--root", MISSING_BUCKET, needles=(MISSING_BUCKET, "not exist")
    ),
    "run-without-cmems-account": case("run", *RANGE, "--root", "/tmp/x", needles=(CMEMS_FIX,)),
    "run-no-days-per-chunk": case(
        "run", *RANGE, "--root", "/tmp/x", "--days-per-chunk", "0", needles=("--days-per-chunk 0", "least 1")
    ),
    "prefect-setup-bad-work-pools": case(
        "prefect", "setup", "--work-pools", "bogus", needles=("'bogus'", "all")
    ),
    "prefect-setup-bad-slots": case("prefect", "setup", "--limit", "cmems=0", needles=("at least 1",)),
    "prefect-setup-missing-automations": case(
        "prefect", "setup", "--automations", "/nonexistent/automations", needles=("/nonexistent/automations",)
    ),
}


def _clean_env(s3: Service, fault: str | None, closed_port: int) -> dict[str, str]:
    """The environment of one run: moto with keys, no upstream settings, no Copernicus Marine account."""
    drop = ("OCEANTACO_", "COPERNICUSMARINE_", "AWS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        AWS_ENDPOINT_URL=s3.url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
        # No instance-metadata lookups nor ~/.aws files: "no keys" must mean no keys, at once.
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        COLUMNS="80",  # a narrow terminal: rich must still not wrap the message onto a second line
        PREFECT_API_URL=os.environ.get("PREFECT_API_URL", f"http://127.0.0.1:{closed_port}/api"),
    )
    if fault == CLOSED:
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{closed_port}"
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{closed_port}/api"
    elif fault == NO_KEYS:
        del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    return env


def assert_one_line_refusal(code: int, output: str, needles: tuple[str, ...]) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], (needle, output)


@pytest.fixture(scope="module")
def closed_port() -> int:
    return free_port()  # nothing listens there: connections are refused at once


@pytest.fixture(scope="module")
def subprocess_outputs(s3_server: Service, closed_port: int) -> Iterator[dict[str, tuple[int, str]]]:
    """(exit code, stdout + stderr) of every SUBPROCESS_CASES run, started together (interpreter start-up
    and imports dominate each run)."""

    def run(item: tuple[str, Case]) -> tuple[str, tuple[int, str]]:
        name, c = item
        done = subprocess.run(
            [OCEANTACO, *c.args],
            env=_clean_env(s3_server, c.env, closed_port),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return name, (done.returncode, done.stdout + done.stderr)

    with ThreadPoolExecutor(4) as pool:
        yield dict(pool.map(run, SUBPROCESS_CASES.items()))


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_a_real_process_refuses_in_one_line(
    name: str, subprocess_outputs: dict[str, tuple[int, str]]
) -> None:
    code, output = subprocess_outputs[name]
    assert_one_line_refusal(code, output, SUBPROCESS_CASES[name].needles)


@pytest.mark.parametrize("name", list(RUNNER_CASES))
def test_refuses_in_one_line(
    name: str, s3_server: Service, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = RUNNER_CASES[name]
    for key in [k for k in os.environ if k.startswith(("OCEANTACO_", "COPERNICUSMARINE_", "AWS_"))]:
        monkeypatch.delenv(key)
    for key, value in _clean_env(s3_server, c.env, closed_port).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, list(c.args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert_one_line_refusal(result.exit_code, result.output, c.needles)


def test_a_reachable_bucket_is_not_refused(s3_bucket: str, tmp_path: Path, upstream_env) -> None:
    """The check lets a good root through: a dry run of L4 SSH from a mirror into an existing bucket."""
    mirror = build_mirror(
        tmp_path / "upstream", [DAY], l4_resolution=1.0, grid_products=(), alongtrack_points=None
    )
    upstream_env(mirror.cmems_mirror, mirror.argo_gdac)
    span = ["--start-date", DAY.isoformat(), "--end-date", DAY.isoformat()]
    result = CliRunner().invoke(
        app, ["download", *span, "--output-dir", f"{s3_bucket}/raw", "--sources", "l4_ssh"]
    )
    assert result.exit_code == 0, result.output
    assert "dry run: would fetch up to 1 file(s)" in " ".join(result.output.split())
