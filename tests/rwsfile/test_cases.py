"""Golden pairs: every cases/<name>.rwsfile adapts to cases/<name>.json, or fails with the
message in cases/<name>.error (a substring of the one-line error, which names file:line).

These hold the latest Caddy's behaviour where it differs from the Caddy 2.6.2 that the
differential tests in tests/conformance/ run against.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text

CASES = Path(__file__).parent / "cases"
NAMES = sorted(p.stem for p in CASES.glob("*.rwsfile"))


def _pretty(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True)


@pytest.mark.parametrize("name", NAMES)
def test_case(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CASES)
    source = CASES / f"{name}.rwsfile"
    expected_json = CASES / f"{name}.json"
    expected_error = CASES / f"{name}.error"
    assert expected_json.exists() != expected_error.exists(), f"{name} needs exactly one of .json or .error"
    text = source.read_text("utf-8")
    if expected_error.exists():
        with pytest.raises(RwsfileError) as info:
            adapt_text(text, source.name)
        message = str(info.value)
        assert "\n" not in message
        assert expected_error.read_text("utf-8").strip() in message
        assert message.startswith(f"{source.name}:") or ":" in message.split(" ")[0]
        return
    got, _warnings = adapt_text(text, source.name)
    want = json.loads(expected_json.read_text("utf-8"))
    if got != want:
        diff = "\n".join(difflib.unified_diff(_pretty(want).splitlines(), _pretty(got).splitlines(), "expected", "rws", lineterm=""))
        pytest.fail(f"{name}: adapted JSON differs from the golden file\n{diff}")
