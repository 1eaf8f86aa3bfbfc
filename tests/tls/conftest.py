"""Fixtures for the TLS tests: adapt through the real adapter, compare with Caddy itself.

- `adapt(text)`: the JSON config tree; its `apps.tls`, `apps.pki` and every server's
  `tls_connection_policies` must also decode with rws.tls.config's classes.
- `tls_view(config)`: just the TLS parts of a config (apps.tls, apps.pki, and per server
  the connection policies and automatic_https), what these tests compare.
- `same_tls_as_caddy(text)`: adapt with rws and with the installed `caddy adapt` (in a
  temporary directory, on a file named `Caddyfile`) and require the same TLS parts.
- `adapt_error(text, line)`: the RwsfileError the text causes, checked to name the line.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from rws.config.decode import decode
from rws.rwsfile.adapt import adapt_text
from rws.tls.config import ConnectionPolicyConfig, PKIAppConfig, TLSAppConfig

CADDY = shutil.which("caddy")


def tls_view(config: dict[str, Any]) -> dict[str, Any]:
    apps = config.get("apps", {})
    view: dict[str, Any] = {k: apps[k] for k in ("tls", "pki") if k in apps}
    automate = view.get("tls", {}).get("certificates", {}).get("automate")
    if automate:  # Caddy 2.6.2 lists these in map order; the latest sorts them
        view["tls"]["certificates"]["automate"] = sorted(automate)
    for name, server in apps.get("http", {}).get("servers", {}).items():
        parts = {k: server[k] for k in ("tls_connection_policies", "automatic_https") if k in server}
        if parts:
            view[f"server {name}"] = parts
    return view


def check_decodes(config: dict[str, Any]) -> None:
    apps = config.get("apps", {})
    if "tls" in apps:
        decode(TLSAppConfig, apps["tls"], "apps.tls")
    if "pki" in apps:
        decode(PKIAppConfig, apps["pki"], "apps.pki")
    for name, server in apps.get("http", {}).get("servers", {}).items():
        for i, policy in enumerate(server.get("tls_connection_policies", [])):
            decode(ConnectionPolicyConfig, policy, f"apps.http.servers.{name}.tls_connection_policies[{i}]")


@pytest.fixture
def adapt() -> Callable[[str], dict[str, Any]]:
    def run(text: str) -> dict[str, Any]:
        config, _warnings = adapt_text(text, "Rwsfile")
        check_decodes(config)
        return config

    return run


@pytest.fixture
def same_tls_as_caddy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dict[str, Any]]:
    if CADDY is None:
        pytest.skip("caddy is not installed")
    monkeypatch.chdir(tmp_path)

    def run(text: str) -> dict[str, Any]:
        (tmp_path / "Caddyfile").write_text(text)
        proc = subprocess.run([CADDY, "adapt", "--config", "Caddyfile"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        expected = tls_view(json.loads(proc.stdout))
        config, _warnings = adapt_text(text, "Caddyfile")
        assert tls_view(config) == expected
        check_decodes(config)
        return config

    return run
