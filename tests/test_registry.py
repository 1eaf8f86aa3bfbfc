"""The registry lists every module, and every declaration it names exists and is typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rws import registry
from rws.rwsfile.directives import directive_table

ROOT = Path(__file__).resolve().parent.parent


def test_every_registry_entry_imports_and_declares_its_own_id() -> None:
    specs = registry.all_specs()
    assert [s.id for s in specs] == list(registry.MODULES)


def test_every_directive_of_the_standard_order_that_rws_supports_is_declared() -> None:
    table = directive_table()
    for name in ("respond", "file_server", "root", "reverse_proxy", "handle", "handle_path", "handle_errors",
                 "route", "redir", "rewrite", "uri", "header", "request_header", "encode", "basic_auth",
                 "basicauth", "forward_auth", "log", "skip_log", "log_skip", "tls", "bind", "abort", "error",
                 "vars", "map", "request_body", "try_files", "metrics", "tracing", "method", "invoke"):
        assert name in table, name


def test_rws_passes_mypy_strict() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "rws"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_runtime_builder_named_by_a_module_exists() -> None:
    import importlib

    for spec in registry.all_specs():
        if spec.runtime is None:
            continue
        path, _, attr = spec.runtime.partition(":")
        assert callable(getattr(importlib.import_module(path), attr)), spec.runtime


def test_the_server_modules_of_this_build_can_all_run() -> None:
    runnable = {spec.id for spec in registry.all_specs() if spec.runtime}
    for module_id in ("http.handlers.static_response", "http.handlers.file_server", "http.handlers.subroute",
                      "http.handlers.headers", "http.handlers.rewrite", "http.handlers.encode",
                      "http.handlers.authentication", "http.matchers.path", "http.matchers.host"):
        assert module_id in runnable
