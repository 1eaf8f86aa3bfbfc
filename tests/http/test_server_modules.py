"""Listener wrappers and the static trusted-proxy source, as `servers { ... }` writes them.

`http_redirect` and `tls` adapt as in Caddy 2.6.2 (compared with `caddy adapt`);
`proxy_protocol` and `trusted_proxies` are newer and are checked against the latest
Caddy's JSON shape.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rws import registry
from rws.config.decode import decode
from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text

CADDY = shutil.which("caddy")


def server_of(options: str) -> dict[str, Any]:
    config, _ = adapt_text("{\n\tservers {\n" + options + "\n\t}\n}\n:8080 {\n\trespond \"x\"\n}\n")
    server: dict[str, Any] = config["apps"]["http"]["servers"]["srv0"]
    return server


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
def test_redirect_and_tls_wrappers_adapt_like_caddy(tmp_path: Path) -> None:
    text = "{\n\tservers {\n\t\tlistener_wrappers {\n\t\t\thttp_redirect\n\t\t\ttls\n\t\t}\n\t}\n}\n:8080 {\n\trespond \"x\"\n}\n"
    source = tmp_path / "Caddyfile"
    source.write_text(text, "utf-8")
    result = subprocess.run([CADDY or "caddy", "adapt", "--config", str(source)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    config, _ = adapt_text(text)
    assert config == json.loads(result.stdout)


def test_proxy_protocol_wrapper() -> None:
    server = server_of(
        "\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\t\t\t\ttimeout 2s\n\t\t\t\tallow 10.0.0.0/8 192.168.0.0/16\n"
        "\t\t\t\tdeny 10.1.0.0/16\n\t\t\t\tfallback_policy reject\n\t\t\t}\n\t\t\ttls\n\t\t}"
    )
    assert server["listener_wrappers"] == [
        {"wrapper": "proxy_protocol", "timeout": 2_000_000_000, "allow": ["10.0.0.0/8", "192.168.0.0/16"],
         "deny": ["10.1.0.0/16"], "fallback_policy": "REJECT"},
        {"wrapper": "tls"},
    ]


def test_proxy_protocol_default_policy_is_left_out() -> None:
    server = server_of("\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\t\t\t\tfallback_policy IGNORE\n\t\t\t}\n\t\t}")
    assert server["listener_wrappers"] == [{"wrapper": "proxy_protocol"}]


def test_static_trusted_proxies() -> None:
    server = server_of("\t\ttrusted_proxies static private_ranges 1.2.3.0/24 2001:db8::1")
    assert server["trusted_proxies"] == {
        "source": "static",
        "ranges": ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1", "1.2.3.0/24", "2001:db8::1"],
    }


def test_adapted_wrappers_and_sources_decode() -> None:
    server = server_of(
        "\t\tlistener_wrappers {\n\t\t\thttp_redirect\n\t\t\tproxy_protocol {\n\t\t\t\ttimeout 1m\n\t\t\t}\n\t\t\ttls\n\t\t}\n"
        "\t\ttrusted_proxies static 10.0.0.0/8"
    )
    for wrapper in server["listener_wrappers"]:
        spec = registry.find(f"caddy.listeners.{wrapper['wrapper']}")
        assert spec is not None
        decode(spec.config, {k: v for k, v in wrapper.items() if k != "wrapper"}, "listener_wrappers[0]")
    spec = registry.find("http.ip_sources.static")
    assert spec is not None
    decode(spec.config, {"ranges": server["trusted_proxies"]["ranges"]}, "trusted_proxies")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("\t\ttrusted_proxies static 10.0.0.0/40", "Rwsfile:3: parsing CIDR expression '10.0.0.0/40'"),
        ("\t\ttrusted_proxies static localhost", "Rwsfile:3: invalid IP address: 'localhost'"),
        ("\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\t\t\t\tallow 10.0.0.1\n\t\t\t}\n\t\t}",
         "Rwsfile:5: parsing CIDR expression '10.0.0.1'"),
        ("\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\t\t\t\tfallback_policy maybe\n\t\t\t}\n\t\t}",
         "Rwsfile:5: maybe is invalid policy"),
        ("\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\t\t\t\ttimeout soon\n\t\t\t}\n\t\t}", "Rwsfile:5: bad duration value 'soon'"),
        ("\t\tlistener_wrappers {\n\t\t\tproxy_protocol {\n\t\t\t\ttimout 1s\n\t\t\t}\n\t\t}",
         "Rwsfile:5: unrecognized subdirective 'timout' (did you mean 'timeout'?)"),
        ("\t\tlistener_wrappers {\n\t\t\tproxy_protocol v2\n\t\t}", "Rwsfile:4: wrong argument count"),
    ],
)
def test_bad_server_module_is_an_error_at_its_line(options: str, message: str) -> None:
    with pytest.raises(RwsfileError) as info:
        server_of(options)
    assert message in str(info.value)
