"""`map` at run time: literal and regexp inputs, `-` outputs, defaults, first value wins."""

from __future__ import annotations

import httpx

from rws.http.placeholders import lookup

from .conftest import Seen, build, request, run

MAP = {
    "handler": "map",
    "source": "{http.request.uri.path}",
    "destinations": ["{name}", "{kind}"],
    "mappings": [
        {"input": "/exact", "outputs": ["exact-{http.request.method}", None]},
        {"input_regexp": r"^/user/(?P<id>\d+)/(\w+)$", "outputs": ["user-${id}-$2-{not.expanded}", "user"]},
        {"input_regexp": "^/num", "outputs": [7, True]},
    ],
    "defaults": ["nobody", "{http.request.host}"],
}


def mapped(target: str, config: dict[str, object] = MAP) -> tuple[object, object]:
    req = request(target)
    seen = Seen()
    run(build(config), req, seen)
    assert seen.request is req
    return lookup(req, "name")[0], lookup(req, "kind")[0]


def test_a_literal_input_gives_outputs_with_placeholders_expanded() -> None:
    assert mapped("/exact")[0] == "exact-GET"


def test_a_null_output_falls_back_to_later_mappings_and_the_default() -> None:
    assert mapped("/exact")[1] == "example.com"


def test_a_regexp_input_expands_groups_and_not_placeholders() -> None:
    assert mapped("/user/42/edit") == ("user-42-edit-{not.expanded}", "user")


def test_regexps_search_anywhere_unless_anchored_and_outputs_become_text() -> None:
    assert mapped("/numbers") == ("7", "true")
    assert mapped("/x/user/1/a") == ("nobody", "example.com")


def test_without_defaults_an_unmapped_destination_is_known_and_empty() -> None:
    config = {**MAP, "defaults": []}
    req = request("/other")
    run(build(config), req)
    assert lookup(req, "name") == (None, True)


def test_an_earlier_value_of_a_destination_wins() -> None:
    req = request("/exact")
    req.values["name"] = "earlier"
    run(build(MAP), req)
    run(build({**MAP, "destinations": ["{name}", "{http.request.method}"]}), req)
    assert lookup(req, "name")[0] == "earlier"
    assert lookup(req, "http.request.method")[0] == "GET"


def test_map_over_a_socket(serve) -> None:
    site = (":80\nmap {path} {section} {\n\t~^/docs/(.*)$ \"docs:$1\"\n\t/ home\n\tdefault other\n}\n"
            "respond {section}\n")
    with serve(site) as server:
        assert [httpx.get(server.url(p)).text for p in ("/docs/a/b", "/", "/x")] == ["docs:a/b", "home", "other"]


def test_map_like_caddy(same_as_caddy_run) -> None:
    site = """
	map {http.request.uri.path} {mapped} {second} {
		~^/map/(?P<name>[a-z]+)/(\\d+)$ "${name}-${2}" "lit"
		/map/exact "exact" -
		default "def1" "def2"
	}
	respond "{mapped}|{second}"
	"""
    same_as_caddy_run(site, [("/map/abc/12", {}), ("/map/exact", {}), ("/map/zzz", {})])
