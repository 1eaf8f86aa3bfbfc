"""Request matchers in the Rwsfile: every type, line and block forms, merging, errors.

Where Caddy 2.6.2 and the latest Caddy adapt a matcher the same way, the test runs the
installed `caddy adapt` and compares; behaviour that changed since 2.6.2 is pinned by the
golden pairs tests/rwsfile/cases/matcher_*.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text

CADDY = shutil.which("caddy")


def adapt(text: str) -> dict[str, Any]:
    config, _warnings = adapt_text(text)
    return config


def caddy_adapt(text: str, tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "Caddyfile"
    source.write_text(text, "utf-8")
    result = subprocess.run([CADDY or "caddy", "adapt", "--config", str(source)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def matchers_of(config: dict[str, Any]) -> list[Any]:
    """The matcher lists of the routes of the one server, in order."""
    routes = config["apps"]["http"]["servers"]["srv0"]["routes"]
    return [route.get("match") for route in routes]


def one_matcher(definition: str) -> Any:
    """The matcher set produced by a named matcher definition (one `respond` using it)."""
    sets = matchers_of(adapt(f":80\n\n{definition}\nrespond @m \"x\"\n"))
    assert len(sets) == 1 and len(sets[0]) == 1
    return sets[0][0]


# --- differential: forms on which Caddy 2.6.2 and the latest Caddy agree -------------------

AGREED = {
    "path_single": "@m path /a",
    "path_many_and_merged": "@m {\n\tpath /a /b*\n\tpath *.txt\n}",
    "path_empty_is_null": "@m path",
    "method": "@m method GET post",
    "method_block": "@m {\n\tmethod GET\n\tmethod HEAD\n}",
    "header_canonical_names": "@m header content-type text/html",
    "header_merge_and_absent": "@m {\n\theader X-A 1\n\theader x-a 2\n\theader !x-gone\n\theader X-B *\n}",
    "header_placeholder_name_kept": "@m header x-{http.request.host} on",
    "query_merge": "@m {\n\tquery a=1 a=2 b=\n\tquery b=3\n}",
    "query_empty": "@m query \"\"",
    "remote_ip": "@m remote_ip 10.0.0.0/8 ::1 fe80::1%eth0 private_ranges",
    "remote_ip_merged": "@m {\n\tremote_ip 1.1.1.1\n\tremote_ip 2.2.2.0/24\n}",
    "protocol": "@m protocol http/2+",
    "protocol_grpc": "@m protocol grpc",
    "not_line": "@m not path /a",
    "not_lines_and_blocks": "@m {\n\tnot path /a\n\tnot {\n\t\tpath /b\n\t\tmethod POST\n\t}\n}",
    "not_nested_regexp_unnamed": "@m not path_regexp ^/x",
    "path_regexp_named": "@m path_regexp myre ^/re/(?P<id>[0-9]+)/(.*)$",
    "header_regexp_named": "@m header_regexp hre X-Token ^t-(.*)",
    "header_regexp_two_fields": "@m {\n\theader_regexp n1 X-A ^a\n\theader_regexp n2 X-B ^b\n}",
    "vars": "@m vars {http.request.uri} /a /b",
    "vars_merged": "@m {\n\tvars foo 1\n\tvars foo 2\n\tvars bar x\n}",
    "vars_regexp_named": "@m vars_regexp vre {http.request.uri} ^/a",
    "file_empty": "@m file",
    "file_args": "@m file {path} {path}/ =404",
    "file_block": "@m file {\n\troot /srv\n\ttry_files {path} /index.php\n\ttry_policy smallest_size\n\tsplit_path .php .cgi\n}",
    "file_first_exist_fallback": "@m file {\n\ttry_policy first_exist_fallback\n}",
    "several_types_and": "@m {\n\tpath /api/*\n\tmethod POST\n\theader Content-Type application/json\n}",
}


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
@pytest.mark.parametrize("name", sorted(AGREED))
def test_matcher_adapts_like_caddy(name: str, tmp_path: Path) -> None:
    text = f":80 {{\n{AGREED[name]}\nrespond @m \"x\"\n}}\n"
    assert adapt(text) == caddy_adapt(text, tmp_path)


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
def test_host_matcher_adapts_like_caddy(tmp_path: Path) -> None:
    text = ":80 {\n@m host example.com *.Example.net\nrespond @m \"x\"\n}\n"
    assert adapt(text) == caddy_adapt(text, tmp_path)


# --- the latest Caddy's forms (also pinned by golden pairs) --------------------------------


def test_unnamed_regexp_takes_the_matcher_name() -> None:
    assert one_matcher("@m path_regexp ^/a") == {"path_regexp": {"name": "m", "pattern": "^/a"}}


def test_regexp_inside_not_has_no_default_name() -> None:
    assert one_matcher("@m not header_regexp X ^a") == {"not": [{"header_regexp": {"X": {"pattern": "^a"}}}]}


@pytest.mark.parametrize(
    "definition",
    ["@m expression `path('/a')`", '@m "method(\'GET\')"', '@m expression {http.request.uri.path} == "/a"'],
)
def test_expression_matchers_are_refused_at_their_line(definition: str) -> None:
    with pytest.raises(RwsfileError) as info:
        adapt(f":80 {{\n\trespond x\n{definition}\n}}\n")
    assert str(info.value).startswith("Rwsfile:3: the expression (CEL) matcher is not supported")


def test_client_ip_expands_private_ranges() -> None:
    assert one_matcher("@m client_ip private_ranges") == {
        "client_ip": {"ranges": ["192.168.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "127.0.0.1/8", "fd00::/8", "::1"]}
    }


def test_tls_matcher_forms() -> None:
    assert one_matcher("@m tls") == {"tls": {}}
    assert one_matcher("@m tls early_data") == {"tls": {"handshake_complete": False}}


def test_vars_regexp_later_line_replaces_earlier_for_same_key() -> None:
    got = one_matcher("@m {\n\tvars_regexp k ^a\n\tvars_regexp k ^b\n}")
    assert got == {"vars_regexp": {"k": {"name": "m", "pattern": "^b"}}}


def test_path_shorthand_placeholders_are_expanded_in_matchers() -> None:
    assert one_matcher("@m file {path}.html") == {"file": {"try_files": ["{http.request.uri.path}.html"]}}


# --- errors ----------------------------------------------------------------------------------


def adapt_error(definition: str) -> str:
    with pytest.raises(RwsfileError) as info:
        adapt(f":80\n\n{definition}\nrespond @m \"x\"\n")
    return str(info.value)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ("@m pth /a", "Rwsfile:3: unrecognized matcher type 'pth' (did you mean 'path'?)"),
        ("@m path_regexp ^/(a", "Rwsfile:3: compiling matcher regexp '^/(a'"),
        ("@m header_regexp X [z-a]", "Rwsfile:3: compiling matcher regexp '[z-a]'"),
        ("@m vars_regexp k a{2,1}", "Rwsfile:3: compiling matcher regexp 'a{2,1}'"),
        ("@m remote_ip 10.0.0.0/33", "Rwsfile:3: parsing CIDR expression '10.0.0.0/33'"),
        ("@m remote_ip 10.0.0.256", "Rwsfile:3: invalid IP address: '10.0.0.256'"),
        ("@m client_ip example.com", "Rwsfile:3: invalid IP address: 'example.com'"),
        ("@m client_ip 10.0.0.0/08", "Rwsfile:3: parsing CIDR expression '10.0.0.0/08'"),
        ("@m {\n\tpath_regexp ^/a\n\tpath_regexp ^/b\n}", "Rwsfile:5: regular expression can only be used once per named matcher"),
        ("@m remote_ip forwarded", "Rwsfile:3: the 'forwarded' option is no longer supported; use the 'client_ip' matcher"),
        ("@m protocol htp", "Rwsfile:3: unknown protocol 'htp'"),
        ("@m protocol http https", "Rwsfile:3: expected exactly one protocol"),
        ("@m method GE/T", "Rwsfile:3: invalid HTTP method 'GE/T'"),
        ("@m header", "Rwsfile:3: malformed header matcher: expected field"),
        ("@m header X", "Rwsfile:3: malformed header matcher: expected both field and value"),
        ("@m header !", "Rwsfile:3: malformed header matcher: must have field name following ! character"),
        ("@m vars k", "Rwsfile:3: malformed vars matcher: expected at least one value to match against"),
        ("@m path_regexp a b c", "Rwsfile:3: wrong argument count"),
        ("@m header_regexp X", "Rwsfile:3: wrong argument count"),
        ("@m file {\n\ttry_policy biggest\n}", "Rwsfile:4: unknown try policy 'biggest'"),
        ("@m file {\n\troots /srv\n}", "Rwsfile:4: unrecognized subdirective 'roots' (did you mean 'root'?)"),
        ("@m host a.com A.COM", "Rwsfile:3: host at index 0 is repeated at index 1: 'A.COM'"),
        ("@m expression", "Rwsfile:3: the expression (CEL) matcher is not supported"),
        ("@m not", "Rwsfile:3: malformed not matcher: expected a matcher to negate"),
        ("@m not pth /a", "Rwsfile:3: unrecognized matcher type 'pth'"),
        ("@m method GET {\n\tPOST\n}", "malformed method matcher: blocks are not supported"),
    ],
)
def test_bad_matcher_is_an_error_at_its_line(definition: str, message: str) -> None:
    assert message in adapt_error(definition)
