"""Fixtures for the handler tests: adapt through the real adapter, compare with Caddy itself.

- `adapt(text, filename="Rwsfile")`: the JSON config tree; every handler of the small
  handler modules in it must also decode with its module's config class.
- `site_handlers(text)`: the handler objects of the first server's routes, in order,
  each paired with its route's matcher sets (subroutes are walked).
- `same_as_caddy(text)`: adapt with rws and with the installed `caddy adapt` (run in a
  temporary directory on a file named `Caddyfile`) and require the same JSON.
- `adapt_error(text, line)`: the RwsfileError the text causes, checked to name the line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from rws.config.decode import Module, decode_module
from rws.rwsfile.adapt import adapt_text

CADDY = shutil.which("caddy")

# handlers whose config classes these tests check
SMALL_HANDLERS = frozenset({
    "static_response", "error", "file_server", "headers", "rewrite", "encode", "authentication",
    "vars", "map", "request_body", "metrics", "tracing",
})


def _walk_routes(routes: list[dict[str, Any]], matchers: list[Any]) -> Iterator[tuple[dict[str, Any], list[Any]]]:
    for route in routes:
        match = matchers + [route.get("match")] if route.get("match") else matchers
        for handler in route.get("handle", []):
            if handler.get("handler") == "subroute":
                yield from _walk_routes(handler.get("routes", []), match)
            else:
                yield handler, match


def handlers_of(config: dict[str, Any]) -> list[tuple[dict[str, Any], list[Any]]]:
    out = []
    for server in config.get("apps", {}).get("http", {}).get("servers", {}).values():
        out.extend(_walk_routes(server.get("routes", []), []))
    return out


def check_decodes(config: dict[str, Any]) -> None:
    for i, (handler, _) in enumerate(handlers_of(config)):
        if handler["handler"] in SMALL_HANDLERS:
            decode_module(Module("http.handlers", "handler"), handler, f"handler[{i}]")


@pytest.fixture
def adapt() -> Callable[..., dict[str, Any]]:
    def run(text: str, filename: str = "Rwsfile") -> dict[str, Any]:
        config, _warnings = adapt_text(text, filename)
        check_decodes(config)
        return config

    return run


@pytest.fixture
def site_handlers(adapt: Callable[..., dict[str, Any]]) -> Callable[..., list[tuple[dict[str, Any], list[Any]]]]:
    def run(text: str, filename: str = "Rwsfile") -> list[tuple[dict[str, Any], list[Any]]]:
        return handlers_of(adapt(text, filename))

    return run


@pytest.fixture
def same_as_caddy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    if CADDY is None:
        pytest.skip("caddy is not installed")
    monkeypatch.chdir(tmp_path)

    def run(text: str, filename: str = "Caddyfile") -> dict[str, Any]:
        (tmp_path / filename).write_text(text)
        proc = subprocess.run([CADDY, "adapt", "--config", filename], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        expected = json.loads(proc.stdout)
        config, _warnings = adapt_text(text, filename)
        assert config == expected
        check_decodes(config)
        return config

    return run
