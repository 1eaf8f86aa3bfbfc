"""The `rws` command as a user runs it: a real process, its stdout, stderr and exit code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

ROOT = Path(__file__).resolve().parent.parent


def rws(*args: str, cwd: Path | None = None, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rws", *args],
        cwd=cwd or ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    result = rws("version")
    assert result.returncode == 0
    assert result.stdout.strip() == "0.1.0"


def test_adapt_the_example_prints_the_json_tree() -> None:
    result = rws("adapt", "--config", "Rwsfile.example", "--pretty")
    assert result.returncode == 0, result.stderr
    tree = json.loads(result.stdout)
    servers = tree["apps"]["http"]["servers"]
    assert {tuple(s["listen"]) for s in servers.values()} == {(":443",), (":80",), (":8080",)}
    assert tree["admin"] == {"listen": "localhost:2019"}
    assert "\t" in result.stdout


def test_adapt_defaults_to_rwsfile_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "Rwsfile").write_text(":8080 {\n\trespond hi\n}\n")
    result = rws("adapt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["apps"]["http"]["servers"]["srv0"]["listen"] == [":8080"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (":80 {\n\trespond hi\n\treverse_prxy localhost:9000\n}\n", "Rwsfile:3: unrecognized directive: reverse_prxy (did you mean 'reverse_proxy'?)"),
        (":80 {\n\trespond hi\n", "Rwsfile:"),
        ("{\n\tfoo_option\n}\n", "Rwsfile:2: unrecognized global option: foo_option"),
        (":80 {\n\timport missing.conf\n}\n", "Rwsfile:2: file to import not found: missing.conf"),
        (":80 {\n\trespond \"unterminated\n}\n", "Rwsfile:2: unterminated quoted string"),
    ],
)
def test_adapt_errors_are_one_line_with_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "Rwsfile").write_text(text)
    result = rws("adapt", "--config", "Rwsfile", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "Rwsfile").write_text(":80 {\n\tnope\n}\n")
    result = rws("--debug", "adapt", cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    result = rws("adapt", "--config", "nothing-here", cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "nothing-here" in result.stderr


def test_validate_accepts_a_good_config_and_rejects_a_bad_one(tmp_path: Path) -> None:
    (tmp_path / "Rwsfile").write_text(":8080 {\n\trespond hi\n}\n")
    ok = rws("validate", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "Valid configuration"
    (tmp_path / "Rwsfile").write_text(":8080 {\n\trespond hi 99999\n}\n")
    bad = rws("validate", cwd=tmp_path)
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1


def test_validate_json_names_the_json_path(tmp_path: Path) -> None:
    config = {"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [{"handle": [{"handler": "reverse_proxy", "upstreams": "localhost:8080"}]}]}}}}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = rws("validate", "--config", "config.json", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "apps.http.servers.srv0.routes[0].handle[0].upstreams: expected a list, got 'localhost:8080'"
    )


def test_fmt_prints_formatted_text_and_fails_on_unformatted_input(tmp_path: Path) -> None:
    (tmp_path / "Rwsfile").write_text(":80 {\n    respond   hi\n}\n")
    result = rws("fmt", cwd=tmp_path)
    assert result.stdout == ":80 {\n\trespond hi\n}\n"
    assert result.returncode == 1
    assert "not formatted" in result.stderr
    again = rws("fmt", "--overwrite", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "Rwsfile").read_text() == ":80 {\n\trespond hi\n}\n"
    assert rws("fmt", cwd=tmp_path).returncode == 0


def test_fmt_diff_and_stdin() -> None:
    result = rws("fmt", "--diff", "-", stdin=":80 {\n  respond hi\n}\n")
    assert "-   respond hi" in result.stdout or "- " in result.stdout
    assert "+ \trespond hi" in result.stdout


def test_list_modules_prints_every_module() -> None:
    from rws.registry import MODULES

    result = rws("list-modules")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert set(MODULES) <= set(lines)
    assert "http.handlers.reverse_proxy" in lines


def test_hash_password_is_a_bcrypt_hash_of_the_password() -> None:
    result = rws("hash-password", "--plaintext", "hunter2", "--bcrypt-cost", "4")
    assert result.returncode == 0
    hashed = result.stdout.strip()
    assert hashed.startswith("$2a$04$")
    assert bcrypt.checkpw(b"hunter2", hashed.encode())
    assert not bcrypt.checkpw(b"hunter3", hashed.encode())


def test_hash_password_reads_stdin_when_not_a_terminal() -> None:
    result = rws("hash-password", "--bcrypt-cost", "4", stdin="s3cret\n")
    assert result.returncode == 0
    assert bcrypt.checkpw(b"s3cret", result.stdout.strip().encode())


def test_environ_reports_the_data_directories(tmp_path: Path) -> None:
    result = rws("environ", env={"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    assert result.returncode == 0
    assert f"rws.AppDataDir={tmp_path / 'data' / 'rws'}" in result.stdout
    assert f"rws.ConfigAutosavePath={tmp_path / 'cfg' / 'rws' / 'autosave.json'}" in result.stdout


def test_adapter_caddyfile_alias_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "Caddyfile").write_text(":80 {\n\trespond hi\n}\n")
    result = rws("adapt", "--config", "Caddyfile", "--adapter", "caddyfile", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_pyz_runs_version_and_adapt(tmp_path: Path) -> None:
    build = subprocess.run(["scripts/build-pyz", sys.executable], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    pyz = ROOT / "dist" / "rws.pyz"
    env = {**os.environ, "SHIV_ROOT": str(tmp_path / "shiv")}
    version = subprocess.run([sys.executable, str(pyz), "version"], capture_output=True, text=True, timeout=120, env=env)
    assert version.stdout.strip() == "0.1.0", version.stderr
    adapted = subprocess.run([sys.executable, str(pyz), "adapt", "--config", str(ROOT / "Rwsfile.example")],
                             capture_output=True, text=True, timeout=120, env=env)
    assert adapted.returncode == 0, adapted.stderr
    assert json.loads(adapted.stdout)["apps"]["http"]["servers"]
