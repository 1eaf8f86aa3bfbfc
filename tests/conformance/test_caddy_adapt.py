"""Differential conformance: `rws adapt` must print the same JSON as `caddy adapt`.

Every cases/<name>.rwsfile is adapted by both tools with the same argument string
(`--config <name>.rwsfile`), the same working directory (the cases directory) and the
same environment. Both standard outputs are parsed as JSON and compared as values.

The corpus only holds constructs on which Caddy 2.6.2 (the Debian package CI installs)
and the latest Caddy agree, so the expected output is whatever `caddy` prints here.
See README.md beside this file for what was left out and why.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"
NAMES = sorted(p.stem for p in CASES.glob("*.rwsfile"))
MIN_CASES = 80
TIMEOUT = 60

# The only environment variables the corpus reads with {$NAME}; every other
# RWS_* name used in a case must be unset so that its {$NAME:default} applies.
TEST_ENV = {
    "RWS_TEST_HOST": "example.org",
    "RWS_TEST_PORT": "9443",
    "RWS_TEST_BODY": "hello world",
}

CADDY = shutil.which("caddy")

if CADDY is None:
    pytest.skip("caddy is not on PATH (CI installs it)", allow_module_level=True)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RWS_")}
    env.update(TEST_ENV)
    return env


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=CASES,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _adapt(tool: str, argv: list[str]) -> object:
    __tracebackhide__ = True
    proc = _run(argv)
    if proc.returncode != 0:
        pytest.fail(f"{tool} adapt exited {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"{tool} adapt printed something that is not JSON ({exc})\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}")


def _pretty(value: object) -> list[str]:
    return json.dumps(value, indent=1, sort_keys=True).splitlines()


@pytest.mark.parametrize("name", NAMES)
def test_adapt_matches_caddy(name: str) -> None:
    __tracebackhide__ = True
    config = f"{name}.rwsfile"
    want = _adapt("caddy", [CADDY, "adapt", "--config", config])
    got = _adapt("rws", [sys.executable, "-m", "rws", "adapt", "--config", config])
    if got != want:
        diff = "\n".join(difflib.unified_diff(_pretty(want), _pretty(got), "caddy adapt", "rws adapt", lineterm=""))
        pytest.fail(f"{config}: rws adapt differs from caddy adapt\n{diff}")


def test_corpus_size() -> None:
    assert len(NAMES) >= MIN_CASES, f"only {len(NAMES)} cases in {CASES}"


def test_corpus_cases_start_with_comment() -> None:
    missing = [n for n in NAMES if not (CASES / f"{n}.rwsfile").read_text("utf-8").startswith("#")]
    assert not missing, f"cases without a leading one-line comment: {missing}"
