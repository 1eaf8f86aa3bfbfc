"""`map`: the map handler."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.map import MapConfig


@pytest.mark.parametrize("text", [
    ":80\nmap {host} {a} {b} {\n\tx y z\n\t~^w(.*)$ ${1} -\n\tdefault d\n}\n",
    ":80\nmap {path} {dest} {\n\t/a 1\n\t/b 2.5\n\t\"/c\" \"3\"\n\t/d true\n}\n",
    ":80\nmap /x {query.q} {out} {\n\tone 1\n}\n",
    ":80\nmap {host} {a} {b} {\n\tx\n\tdefault\n}\n",
    ":80\nmap {host} {a}\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_typed_outputs_and_null(site_handlers):
    [(handler, _)] = site_handlers(":80\nmap {host} {a} {b} {\n\texample.com true 3\n\t~.*\\.net$ - `7`\n\tdefault \"unknown\"\n}\n")
    assert handler == {
        "handler": "map", "source": "{http.request.host}", "destinations": ["{a}", "{b}"],
        "mappings": [{"input": "example.com", "outputs": [True, 3]}, {"input_regexp": ".*\\.net$", "outputs": [None, "7"]}],
        "defaults": ["unknown", ""],
    }


@pytest.mark.parametrize("text, line, message", [
    (":80\nmap\n", 2, "wrong argument count or unexpected line ending after 'map'"),
    (":80\nmap {host}\n", 2, "missing destination argument(s)"),
    (":80\nmap {host} {path} {\n\ta b\n}\n", 2, "destination {path} conflicts with an Rwsfile placeholder shorthand"),
    (":80\nmap {host} out {\n\ta b\n}\n", 2, "destination 'out' must be a placeholder and only a placeholder"),
    (":80\nmap {host} {a} {\n\ta b c\n}\n", 3, "too many outputs"),
    (":80\nmap {host} {a} {\n\tdefault x\n\tdefault y\n}\n", 4, "defaults already defined"),
    (":80\nmap {host} {a} {\n\tdefault x y\n}\n", 3, "too many defaults"),
    (":80\nmap {host} {a} {\n\ta 1\n\ta 2\n}\n", 4, "duplicate input 'a'"),
    (":80\nmap {host} {a} {\n\t~( 1\n}\n", 3, "invalid regular expression '('"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


@pytest.mark.parametrize("value, path", [
    ({"destinations": ["out"]}, "h.destinations[0]"),
    ({"destinations": ["{a}"], "defaults": ["x", "y"]}, "h.defaults"),
    ({"destinations": ["{a}"], "mappings": [{"input": "x", "outputs": [1, 2]}]}, "h.mappings[0].outputs"),
    ({"destinations": ["{a}"], "mappings": [{"input": "x", "outputs": [1]}, {"input": "x", "outputs": [2]}]}, "h.mappings[1]"),
    ({"destinations": ["{a}"], "mappings": [{"input": "x", "input_regexp": "y", "outputs": [1]}]}, "h.mappings[0]"),
    ({"destinations": ["{a}"], "mappings": [{"input_regexp": "[", "outputs": [1]}]}, "h.mappings[0].input_regexp"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(MapConfig, value, "h")
    assert info.value.path == path
