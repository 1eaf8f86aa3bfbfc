"""Matcher config classes: what the adapter writes decodes; bad values name their JSON path."""

from __future__ import annotations

from typing import Any

import pytest

from rws import registry
from rws.config.decode import ModuleValue, decode
from rws.errors import ConfigError
from rws.http.config import RouteConfig
from rws.http.matchers.host import validate_hosts
from rws.http.matchers.logic import ExpressionConfig
from rws.http.matchers.path import RegexpConfig
from rws.http.regexp import compile_regexp
from rws.http.matchers.request import validate_methods
from rws.rwsfile.adapt import adapt_text

DEFINITIONS = [
    "@m path /a /b*",
    "@m path",
    "@m path_regexp ^/a/(.*)",
    "@m host a.example.com *.example.net",
    "@m method GET POST",
    "@m protocol https",
    "@m tls early_data",
    "@m tls",
    "@m {\n\theader X-A 1\n\theader !X-Gone\n}",
    "@m header_regexp X-A ^a",
    "@m query a=1 b=*",
    "@m query \"\"",
    "@m remote_ip private_ranges fe80::1%eth0",
    "@m client_ip 10.0.0.0/8",
    "@m not {\n\tpath /a\n\tnot method GET\n}",
    "@m file {\n\troot /srv\n\ttry_files {path} =404\n\ttry_policy most_recently_modified\n\tsplit_path .php\n}",
    "@m vars foo bar",
    "@m vars_regexp {http.request.uri} ^/a",
]


def first_match(routes: list[Any]) -> Any:
    """The match list of the first route that has one (a host matcher wraps the site's routes)."""
    for route in routes:
        if "match" in route:
            return route["match"]
        for handler in route.get("handle", []):
            found = first_match(handler.get("routes", []))
            if found is not None:
                return found
    return None


@pytest.mark.parametrize("definition", DEFINITIONS)
def test_adapted_matcher_decodes_with_its_config(definition: str) -> None:
    config, _ = adapt_text(f":80\n{definition}\nrespond @m \"x\"\n")
    (matcher_set,) = first_match(config["apps"]["http"]["servers"]["srv0"]["routes"])
    for name, value in matcher_set.items():
        spec = registry.find(f"http.matchers.{name}")
        assert spec is not None
        decode(spec.config, value, f"match[0].{name}")


def test_route_decodes_matchers_through_the_registry() -> None:
    route = decode(RouteConfig, {"match": [{"path": ["/a"], "not": [{"method": ["GET"]}]}]}, "routes[0]")
    (matcher_set,) = route.match
    assert matcher_set["path"] == ModuleValue("http.matchers.path", ("/a",))
    negated = matcher_set["not"].config[0]["method"]
    assert negated == ModuleValue("http.matchers.method", ("GET",))


def test_expression_decodes_in_both_forms() -> None:
    spec = registry.find("http.matchers.expression")
    assert spec is not None
    assert decode(spec.config, "path('/a')", "e") == "path('/a')"
    assert decode(spec.config, {"expr": "path('/a')", "name": "m"}, "e") == ExpressionConfig(expr="path('/a')", name="m")


def bad(name: str, value: Any) -> ConfigError:
    spec = registry.find(f"http.matchers.{name}")
    assert spec is not None
    with pytest.raises(ConfigError) as info:
        decode(spec.config, value, f"routes[0].match[0].{name}")
    return info.value


def test_unknown_matcher_module_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        decode(RouteConfig, {"match": [{"paht": ["/a"]}]}, "routes[0]")
    assert str(info.value) == "routes[0].match[0].paht: unknown module 'http.matchers.paht' (did you mean 'path'?)"


@pytest.mark.parametrize(
    ("name", "value", "path", "message"),
    [
        ("path", "/a", "routes[0].match[0].path", "expected a list, got '/a'"),
        ("path_regexp", {"pattern": "(a"}, "routes[0].match[0].path_regexp.pattern", "compiling matcher regexp '(a'"),
        ("path_regexp", {"name": "-", "pattern": "a"}, "routes[0].match[0].path_regexp.name", "invalid regexp name"),
        ("path_regexp", {"patern": "a"}, "routes[0].match[0].path_regexp.patern", "unknown field (did you mean 'pattern'?)"),
        ("header_regexp", {"X": {"pattern": "[a"}}, "routes[0].match[0].header_regexp.X.pattern", "compiling matcher regexp"),
        ("vars_regexp", {"k": {"pattern": "a)"}}, "routes[0].match[0].vars_regexp.k.pattern", "compiling matcher regexp"),
        ("remote_ip", {"ranges": ["10.0.0.0/40"]}, "routes[0].match[0].remote_ip.ranges[0]", "parsing CIDR expression"),
        ("client_ip", {"ranges": ["nope"]}, "routes[0].match[0].client_ip.ranges[0]", "invalid IP address: 'nope'"),
        ("protocol", "http/4", "routes[0].match[0].protocol", "expected one of"),
        ("tls", {"handshake_complete": "no"}, "routes[0].match[0].tls.handshake_complete", "expected a boolean"),
        ("file", {"try_policy": "random"}, "routes[0].match[0].file.try_policy", "unknown try policy 'random'"),
        ("header", {"X": "a"}, "routes[0].match[0].header.X", "expected a list"),
        ("query", ["a=1"], "routes[0].match[0].query", "expected an object"),
        ("not", {"path": ["/a"]}, "routes[0].match[0].not", "expected a list"),
        ("expression", 5, "routes[0].match[0].expression", "expected a string"),
    ],
)
def test_bad_matcher_config_names_its_path(name: str, value: Any, path: str, message: str) -> None:
    error = bad(name, value)
    assert error.path == path
    assert message in error.message


def test_placeholder_ranges_are_left_for_run_time() -> None:
    spec = registry.find("http.matchers.remote_ip")
    assert spec is not None
    decode(spec.config, {"ranges": ["{env.TRUSTED}"]}, "m")


def test_host_and_method_lists_have_builder_checks() -> None:
    with pytest.raises(ConfigError, match=r"host at index 0 is repeated at index 1"):
        validate_hosts(("Example.com", "example.COM"), "match[0].host")
    with pytest.raises(ConfigError) as info:
        validate_methods(("GET", "B@D"), "match[0].method")
    assert info.value.path == "match[0].method[1]"


def test_re2_spellings_compile() -> None:
    assert compile_regexp(r"(?<id>\d+)\z").fullmatch("42").group("id") == "42"  # type: ignore[union-attr]
    assert decode(RegexpConfig, {"name": "n", "pattern": r"^/(?P<x>.*)$"}, "p") == RegexpConfig(name="n", pattern=r"^/(?P<x>.*)$")
