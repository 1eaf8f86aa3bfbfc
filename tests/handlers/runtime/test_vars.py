"""`vars` at run time: typed values, placeholders in names and string values."""

from __future__ import annotations

import httpx

from rws.http.placeholders import render

from .conftest import Seen, build, request, run


def test_values_keep_their_json_types_and_strings_expand_placeholders() -> None:
    req = request("/p")
    seen = Seen()
    handler = build({"handler": "vars", "n": 1, "f": 1.5, "b": True, "none": None, "list": [1, "a"],
                     "s": "{http.request.uri.path}-{unknown}"})
    run(handler, req, seen)
    assert req.vars == {"n": 1, "f": 1.5, "b": True, "none": None, "list": [1, "a"], "s": "/p-"}
    assert seen.request is req


def test_names_expand_placeholders() -> None:
    req = request(X_Name="dynamic")
    run(build({"handler": "vars", "{http.request.header.X-Name}": "v"}), req)
    assert req.vars == {"dynamic": "v"}


def test_vars_are_placeholders_and_shared_by_request_copies() -> None:
    req = request()
    run(build({"handler": "vars", "root": "/srv", "on": True}), req)
    copy = req.with_changes(method="POST")
    assert render("{http.vars.root} {http.vars.on}", copy) == "/srv true"


def test_setting_the_user_id_sets_its_placeholder_too() -> None:
    req = request()
    run(build({"handler": "vars", "http.auth.user.id": "alice"}), req)
    assert req.values["http.auth.user.id"] == "alice"


def test_vars_over_a_socket(serve) -> None:
    with serve(':80\nvars {\n\tgreeting "hi {path}"\n\tcount 3\n}\nrespond "{vars.greeting} {vars.count}"\n') as server:
        assert httpx.get(server.url("/there")).text == "hi /there 3"


def test_vars_like_caddy(same_as_caddy_run) -> None:
    site = """
	vars foo "{http.request.uri.path}-x"
	vars {http.request.header.X-Name} 42
	vars flag true
	respond "{vars.foo}|{vars.bar}|{vars.flag}|{vars.missing}"
	"""
    same_as_caddy_run(site, [("/v", {}), ("/v", {"headers": {"X-Name": "bar"}})])
