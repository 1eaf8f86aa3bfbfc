"""The proxy family's config classes: what the adapter writes decodes; bad JSON names its path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rws import registry
from rws.config.decode import Module, ModuleValue, decode_module
from rws.errors import ConfigError
from rws.handlers.reverse_proxy.config import ReverseProxyConfig
from rws.rwsfile.adapt import adapt_text

HANDLER = Module("http.handlers", "handler")
CASES = Path(__file__).parents[2] / "rwsfile" / "cases"
GOLDEN = sorted(CASES.glob("reverse_proxy_*.json"))
HAS_NETWORK_PROXY = registry.find("caddy.network_proxy.url") is not None


def proxy_family(value: Any) -> list[dict[str, Any]]:
    """Every reverse_proxy / copy_response / copy_response_headers handler object inside `value`."""
    found = []
    if isinstance(value, dict):
        if value.get("handler") in ("reverse_proxy", "copy_response", "copy_response_headers"):
            found.append(value)
        for item in value.values():
            found.extend(proxy_family(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(proxy_family(item))
    return found


def uses_network_proxy(handler: dict[str, Any]) -> bool:
    return "network_proxy" in handler.get("transport", {})


def decode_handler(handler: dict[str, Any]) -> ModuleValue:
    return decode_module(HANDLER, handler, "handler")


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_outputs_decode(path):
    handlers = proxy_family(json.loads(path.read_text("utf-8")))
    assert handlers
    for handler in handlers:
        if uses_network_proxy(handler) and not HAS_NETWORK_PROXY:
            continue
        decoded = decode_handler(handler)
        assert decoded.id == f"http.handlers.{handler['handler']}"


@pytest.mark.skipif(not HAS_NETWORK_PROXY, reason="rws.registry does not list caddy.network_proxy.* yet")
def test_network_proxy_modules_decode():
    config, _ = adapt_text(":80\nreverse_proxy localhost:1 {\n\ttransport http {\n\t\tnetwork_proxy url http://p:3128\n\t}\n}\n")
    [handler] = proxy_family(config)
    transport = decode_handler(handler).config.transport
    assert transport.config.network_proxy.config.url == "http://p:3128"


def test_decoded_values_are_typed():
    text = (":80\nreverse_proxy https://a:8443 {\n\tlb_policy cookie {\n\t\tfallback first\n\t\tmax_age 90s\n\t}\n"
            "\tlb_try_duration 5s\n\thealth_uri /h\n\tflush_interval -1\n\t@e status 5xx\n\thandle_response @e {\n"
            "\t\tcopy_response 502\n\t}\n}\n")
    config, _ = adapt_text(text)
    [handler, _copy] = proxy_family(config)
    proxy: ReverseProxyConfig = decode_handler(handler).config
    assert proxy.upstreams[0].dial == "a:8443"
    assert proxy.load_balancing.try_duration == 5.0
    policy = proxy.load_balancing.selection_policy
    assert (policy.id, policy.config.max_age, policy.config.fallback.id) == (
        "http.reverse_proxy.selection_policies.cookie", 90.0, "http.reverse_proxy.selection_policies.first")
    assert proxy.transport.id == "http.reverse_proxy.transport.http"
    assert proxy.transport.config.tls is not None
    assert proxy.flush_interval < 0
    assert proxy.handle_response[0].match.status_code == (5,)
    assert proxy.handle_response[0].routes[0].handle[0].id == "http.handlers.copy_response"


def rp(**fields: Any) -> dict[str, Any]:
    return {"handler": "reverse_proxy", **fields}


BAD = [
    (rp(upstreams="localhost:1"), "handler.upstreams", "expected a list"),
    (rp(upstreams=[{"dial": 80}]), "handler.upstreams[0].dial", "expected a string"),
    (rp(upstream=[]), "handler.upstream", "did you mean 'upstreams'?"),
    (rp(flush_interval="soon"), "handler.flush_interval", "invalid duration"),
    (rp(trusted_proxies=["10.0.0.0/40"]), "handler.trusted_proxies[0]", "prefix length out of range"),
    (rp(health_checks={"active": {"expect_body": "("}}), "handler.health_checks.active.expect_body", "invalid regular expression"),
    (rp(health_checks={"active": {"port": 70000}}), "handler.health_checks.active.port", "port out of range"),
    (rp(health_checks={"passive": {"unhealthy_status": ["5xx"]}}), "handler.health_checks.passive.unhealthy_status[0]", "expected an integer"),
    (rp(handle_response=[{"status_code": "teapot"}]), "handler.handle_response[0].status_code", "bad status code"),
    (rp(handle_response=[{"match": {"status_code": ["5xx"]}}]), "handler.handle_response[0].match.status_code[0]", "expected an integer"),
    (rp(handle_response=[{"routes": [{"handle": [{"handler": "nope"}]}]}]),
     "handler.handle_response[0].routes[0].handle[0].handler", "unknown module"),
    (rp(rewrite={"uri": 1}), "handler.rewrite.uri", "expected a string"),
    (rp(headers={"request": {"set": {"A": "b"}}}), "handler.headers.request.set.A", "expected a list"),
    (rp(dynamic_upstreams={"source": "dns"}), "handler.dynamic_upstreams.source", "unknown module"),
    (rp(dynamic_upstreams={"source": "a", "resolver": {"addresses": ["1.1.1.1:53-54"]}}),
     "handler.dynamic_upstreams.resolver.addresses[0]", "exactly one address"),
    (rp(dynamic_upstreams={"source": "multi", "sources": [{"source": "srv", "refresh": "often"}]}),
     "handler.dynamic_upstreams.sources[0].refresh", "invalid duration"),
    (rp(load_balancing={"selection_policy": {"policy": "roundrobin"}}),
     "handler.load_balancing.selection_policy.policy", "did you mean 'round_robin'?"),
    (rp(load_balancing={"selection_policy": {"policy": "random_choose", "choose": 1}}),
     "handler.load_balancing.selection_policy.choose", "choose must be at least 2"),
    (rp(load_balancing={"selection_policy": {"policy": "weighted_round_robin", "weights": [2, -1]}}),
     "handler.load_balancing.selection_policy.weights[1]", "cannot be negative"),
    (rp(load_balancing={"selection_policy": {"policy": "weighted_round_robin", "weights": [0]}}),
     "handler.load_balancing.selection_policy.weights", "at least one upstream with a positive weight"),
    (rp(load_balancing={"selection_policy": {"policy": "query"}}), "handler.load_balancing.selection_policy.key", "required"),
    (rp(load_balancing={"selection_policy": {"policy": "header", "fallback": {"policy": "header"}}}),
     "handler.load_balancing.selection_policy.fallback.field", "required"),
    (rp(load_balancing={"selection_policy": {"policy": "cookie", "max_age": -1}}),
     "handler.load_balancing.selection_policy.max_age", "must not be negative"),
    (rp(load_balancing={"retry_match": [{"pathh": ["/"]}]}), "handler.load_balancing.retry_match[0].pathh", "unknown module"),
    (rp(transport={"protocol": "fastcgi"}), "handler.transport.protocol", "unknown module"),
    (rp(transport={"protocol": "http", "versions": ["1.0"]}), "handler.transport.versions", "unsupported HTTP version '1.0'"),
    (rp(transport={"protocol": "http", "versions": ["3", "2"]}), "handler.transport.versions", "no other HTTP versions"),
    (rp(transport={"protocol": "http", "proxy_protocol": "v3"}), "handler.transport.proxy_protocol", "v1 or v2"),
    (rp(transport={"protocol": "http", "local_address": "10.0.0.1:1-2"}), "handler.transport.local_address", "not a port range"),
    (rp(transport={"protocol": "http", "dial_timeout": True}), "handler.transport.dial_timeout", "expected a duration"),
    (rp(transport={"protocol": "http", "tls": {"renegotiation": "sometimes"}}), "handler.transport.tls.renegotiation", "invalid TLS renegotiation level"),
    (rp(transport={"protocol": "http", "tls": {"client_certificate_file": "c.pem"}}), "handler.transport.tls", "must be given together"),
    (rp(transport={"protocol": "http", "tls": {"ca": {"provider": "file", "pem_files": ["a"]}, "root_ca_pem_files": ["b"]}}),
     "handler.transport.tls.ca", "conflicting config for root CA pool"),
    (rp(transport={"protocol": "http", "keep_alive": {"enabled": "no"}}), "handler.transport.keep_alive.enabled", "expected a boolean"),
    ({"handler": "copy_response", "status_code": "abc"}, "handler.status_code", "bad status code"),
    ({"handler": "copy_response_headers", "include": ["A"], "exclude": ["B"]}, "handler",
     "cannot define both 'exclude' and 'include' lists at the same time"),
]


@pytest.mark.parametrize("value, path, message", BAD)
def test_bad_json_names_its_path(value, path, message):
    with pytest.raises(ConfigError) as info:
        decode_handler(value)
    assert info.value.path == path
    assert message in info.value.message


def test_placeholders_are_fine_where_caddy_resolves_them_per_request():
    decode_handler(rp(upstreams=[{"dial": "{http.request.host}:{http.vars.port}"}],
                      handle_response=[{"status_code": "{http.vars.status}"}]))
    decode_handler({"handler": "copy_response", "status_code": "{http.vars.status}"})
