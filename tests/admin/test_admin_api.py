"""The admin API over real HTTP: reads, edits with Caddy's semantics, failed writes that
change nothing, /load, /adapt, /id/, and the Host/Origin checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest


def base_config() -> dict[str, Any]:
    return {"apps": {"http": {"servers": {"srv0": {"listen": ["127.0.0.1:0"], "routes": [{"@id": "first", "terminal": True}]}}}}}


@pytest.fixture
def server(serve: Any) -> Any:
    with serve(base_config(), admin=True) as running:
        yield running


def admin(server: Any, method: str, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    content = kwargs.pop("content", None)
    if body is not None:
        content = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    return httpx.request(method, server.admin_url(path), content=content, headers=headers, timeout=30, **kwargs)


def test_get_returns_the_config_with_an_etag(server: Any) -> None:
    response = admin(server, "GET", "/config/apps/http/servers/srv0/routes/0")
    assert response.status_code == 200
    assert response.json() == {"@id": "first", "terminal": True}
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["ETag"].startswith('"/config/apps/http/servers/srv0/routes/0 ')


def test_get_of_a_missing_key_is_null_and_a_bad_path_is_400(server: Any) -> None:
    assert admin(server, "GET", "/config/apps/nope").json() is None
    bad = admin(server, "GET", "/config/apps/http/servers/srv0/listen/9")
    assert bad.status_code == 400
    assert "error" in bad.json()


def test_patch_changes_the_running_server(server: Any) -> None:
    old_port = server.port()
    assert admin(server, "PATCH", "/config/apps/http/servers/srv0/listen", ["127.0.0.1:1", "127.0.0.1:1"]).status_code == 400
    response = admin(server, "POST", "/config/apps/http/servers/srv1", {"listen": ["127.0.0.1:0"]})
    assert response.status_code == 200, response.text
    assert httpx.get(server.url("/", "srv1")).status_code == 200
    assert server.port() == old_port


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/config/apps/http/servers/srv0", {"listen": ["127.0.0.1:0"]}, 409),
        ("PATCH", "/config/apps/http/servers/none", {"listen": []}, 404),
        ("DELETE", "/config/apps/http/servers/none", None, 404),
        ("PATCH", "/config/apps/http/servers/srv0/listen", "not-a-list", 400),
        ("POST", "/config/apps/http/servers/srv0/routes/0/handle", [{"handler": "bogus"}], 400),
        ("PATCH", "/config/apps/http/servers/srv0/listen/7", "127.0.0.1:0", 400),
    ],
)
def test_bad_writes_are_4xx_json_and_change_nothing(server: Any, method: str, path: str, body: Any, status: int) -> None:
    before = admin(server, "GET", "/config/").json()
    response = admin(server, method, path, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert admin(server, "GET", "/config/").json() == before
    assert httpx.get(server.url("/")).status_code == 200


def test_invalid_json_and_wrong_content_type_are_400(server: Any) -> None:
    bad_json = admin(server, "POST", "/config/apps/x", content="{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    form = admin(server, "POST", "/config/apps/x", content="a=b", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400
    assert "application/json" in form.json()["error"]


def test_if_match_mismatch_is_412_and_a_match_is_applied(server: Any) -> None:
    path = "/config/apps/http/servers/srv0/routes/0/terminal"
    etag = admin(server, "GET", path).headers["ETag"]
    stale = '"/config/apps/http/servers/srv0/routes/0/terminal 0000000000000000"'
    assert admin(server, "PATCH", path, False, headers={"If-Match": stale}).status_code == 412
    assert admin(server, "PATCH", path, False, headers={"If-Match": etag}).status_code == 200
    assert admin(server, "GET", path).json() is False


def test_id_shortcuts(server: Any) -> None:
    assert admin(server, "GET", "/id/first/terminal").json() is True
    assert admin(server, "PATCH", "/id/first/terminal", False).status_code == 200
    assert admin(server, "GET", "/config/apps/http/servers/srv0/routes/0/terminal").json() is False
    assert admin(server, "GET", "/id/unknown").status_code == 404


def test_load_accepts_json_and_rwsfile(server: Any) -> None:
    new = base_config()
    new["apps"]["http"]["servers"]["srv0"]["routes"] = []
    new["admin"] = {"listen": admin(server, "GET", "/config/admin/listen").json()}
    assert admin(server, "POST", "/load", new).status_code == 200
    assert admin(server, "GET", "/config/apps/http/servers/srv0/routes").json() == []
    listen = new["admin"]["listen"]
    text = f"{{\n\tadmin {listen}\n}}\nhttp://127.0.0.1:0 {{\n\tvars a 1\n}}\n"
    loaded = admin(server, "POST", "/load", content=text, headers={"Content-Type": "text/rwsfile"})
    assert loaded.status_code == 200, loaded.text
    tree = admin(server, "GET", "/config/").json()
    assert tree["apps"]["http"]["servers"]["srv0"]["listen"] == [":0"] or tree["apps"]["http"]["servers"]


def test_load_of_a_bad_rwsfile_is_400_with_the_line(server: Any) -> None:
    before = admin(server, "GET", "/config/").json()
    response = admin(server, "POST", "/load", content=":80 {\n\tnope\n}\n", headers={"Content-Type": "text/caddyfile"})
    assert response.status_code == 400
    assert "Rwsfile:2: unrecognized directive: nope" in response.json()["error"]
    assert admin(server, "GET", "/config/").json() == before


def test_adapt_returns_the_tree_without_loading_it(server: Any) -> None:
    response = admin(server, "POST", "/adapt", content=":8080 {\n\trespond hi\n}\n", headers={"Content-Type": "text/rwsfile"})
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["apps"]["http"]["servers"]["srv0"]["listen"] == [":8080"]
    assert admin(server, "GET", "/config/apps/http/servers/srv0/listen").json() == ["127.0.0.1:0"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example:2019"}, 403),
        ({"Origin": "http://evil.example"}, 403),
        ({"Upgrade": "websocket", "Connection": "Upgrade"}, 400),
        ({"Origin": "null"}, 400),
    ],
)
def test_foreign_host_and_origin_are_refused(server: Any, headers: dict[str, str], status: int) -> None:
    response = admin(server, "GET", "/config/", headers=headers)
    assert response.status_code == status
    assert "error" in response.json()


def test_same_origin_is_allowed_and_echoed(server: Any) -> None:
    url = httpx.URL(server.admin_url())
    origin = f"http://localhost:{url.port}"
    response = admin(server, "GET", "/config/", headers={"Origin": origin, "Host": f"localhost:{url.port}"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == origin


def test_unknown_paths_and_methods(server: Any) -> None:
    assert admin(server, "GET", "/nope").status_code == 404
    assert admin(server, "GET", "/load").status_code == 405
    assert admin(server, "GET", "/config", follow_redirects=False).status_code == 301


def test_every_successful_change_is_autosaved(serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with serve(base_config(), admin=True, autosave=True) as running:
        saved = tmp_path / "rws" / "autosave.json"
        assert json.loads(saved.read_text())["apps"]["http"]["servers"]["srv0"]["routes"][0]["@id"] == "first"
        admin(running, "PATCH", "/id/first/terminal", False)
        assert json.loads(saved.read_text())["apps"]["http"]["servers"]["srv0"]["routes"][0]["terminal"] is False
        admin(running, "PATCH", "/id/first/terminal", "bad")
        assert json.loads(saved.read_text())["apps"]["http"]["servers"]["srv0"]["routes"][0]["terminal"] is False
