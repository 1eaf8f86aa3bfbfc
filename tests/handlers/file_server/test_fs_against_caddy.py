"""Differential checks: the same files and requests sent to the installed Caddy (2.6.2, over a
real socket) and to our handler give the same status, Content-Type, Last-Modified,
Content-Range, Location and listing JSON.

Only behaviour that Caddy 2.6.2 shares with the latest Caddy is compared. Known
differences, pinned by the other tests instead: the ETag value (latest: nanoseconds and a
dash; both are strong, quoted ETags), `Vary: Accept-Encoding` on every file, 405 for
other methods, the query kept by canonical redirects, 400 for paths the OS refuses,
the validators dropped from 416 responses, and Last-Modified on listings.
"""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from fs_helpers import write

from rws.errors import HttpError

CADDY = shutil.which("caddy")
pytestmark = pytest.mark.skipif(CADDY is None, reason="caddy is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("diff") / "root"
    for name, data in [
        ("hello.txt", "hello, world\n"), ("page.html", "<p>x</p>"), ("style.css", "b{}"), ("app.js", "1"),
        ("data.json", "{}"), ("pic.svg", "<svg/>"), ("pic.png", "png"), ("font.woff2", "w"), ("noext", "raw"),
        ("digits.txt", "0123456789"), ("docs/index.html", "<h1>docs</h1>"), ("docs/guide.txt", "g"),
        ("list/a.txt", "a" * 300), ("list/B.md", "b"), ("list/sub/x", "x"), ("secret.key", "k"),
    ]:
        write(root / name, data)
    write(root / "zipped.txt", "zipped " * 50)
    write(root / "zipped.txt.gz", gzip.compress(b"zipped " * 50, mtime=0))
    return root


def _routes(root: Path) -> list[dict[str, Any]]:
    return [
        {"match": [{"path": ["/list/*"]}], "handle": [{"handler": "file_server", "root": str(root), "browse": {}}]},
        {"match": [{"path": ["/zipped.txt"]}], "handle": [{"handler": "file_server", "root": str(root),
                                                           "precompressed": {"gzip": {}}, "precompressed_order": ["gzip"]}]},
        {"handle": [{"handler": "file_server", "root": str(root), "hide": ["*.key"]}]},
    ]


def handler_config(target: str, root: Path) -> dict[str, Any]:
    path = target.split("?")[0]
    for route in _routes(root):
        match = route.get("match")
        if match is None or path.startswith(match[0]["path"][0].rstrip("*")):
            config = dict(route["handle"][0])
            del config["handler"]
            return config
    raise AssertionError(target)


@pytest.fixture(scope="module")
def caddy(tree: Path) -> Iterator[int]:
    port = _free_port()
    config = {"admin": {"disabled": True}, "apps": {"http": {"servers": {"diff": {
        "listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True}, "routes": _routes(tree)}}}}}
    config_file = tree.parent / "caddy.json"
    config_file.write_text(json.dumps(config))
    proc = subprocess.Popen([str(CADDY), "run", "--config", str(config_file)], stderr=subprocess.PIPE, text=True,
                            cwd=tree.parent)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # readiness: Caddy says when it serves
            if "serving initial configuration" in line:
                break
        else:
            raise AssertionError("caddy exited before serving")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def caddy_get(port: int, target: str, method: str = "GET", headers: dict[str, str] | None = None
              ) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def both(fetch, caddy: int, tree: Path, target: str, method: str = "GET", **headers: str):
    fields = {k.replace("_", "-"): v for k, v in headers.items()}
    theirs = caddy_get(caddy, target, method, fields)
    try:
        got = fetch(handler_config(target, tree), target, method=method, headers=list(fields.items()))
        ours: tuple[int, Any, bytes] = (got.status, got.headers, got.body)
    except HttpError as exc:
        ours = (exc.status, None, b"")
    return theirs, ours


COMPARED = ("Content-Type", "Last-Modified", "Content-Range", "Location", "Content-Encoding", "Accept-Ranges")


def assert_same(theirs, ours, names=COMPARED):
    assert ours[0] == theirs[0]
    if ours[1] is None:
        return
    for name in names:
        assert ours[1].get(name) == theirs[1].get(name), name


@pytest.mark.parametrize("target", [
    "/hello.txt", "/page.html", "/style.css", "/app.js", "/data.json", "/pic.svg", "/pic.png", "/font.woff2",
    "/noext", "/docs/", "/docs", "/docs/guide.txt", "/nope", "/secret.key", "/../hello.txt", "/%2e%2e/%2e%2e/etc/passwd",
    "/docs/../hello.txt", "//docs",
])
def test_plain_requests_match_caddy(fetch, caddy, tree, target):
    theirs, ours = both(fetch, caddy, tree, target)
    assert_same(theirs, ours)
    assert ours[2] == theirs[2]


def test_etags_are_strong_quoted_validators_in_both(fetch, caddy, tree):
    theirs, ours = both(fetch, caddy, tree, "/hello.txt")
    for etag in (theirs[1]["ETag"], ours[1].get("ETag")):
        assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2


def test_head_matches_caddy(fetch, caddy, tree):
    theirs, ours = both(fetch, caddy, tree, "/hello.txt", "HEAD")
    assert_same(theirs, ours, COMPARED + ("Content-Length",))


@pytest.mark.parametrize("value", ["bytes=0-4", "bytes=5-", "bytes=-3", "bytes=8-100", "bytes=10-", "bytes=5-2",
                                   "bytes=0-,0-", "items=1-2"])
def test_ranges_match_caddy(fetch, caddy, tree, value):
    theirs, ours = both(fetch, caddy, tree, "/digits.txt", Range=value)
    unsatisfiable = theirs[0] == 416  # latest Caddy (Go >= 1.23) drops the validators from a 416
    assert_same(theirs, ours, tuple(n for n in COMPARED if not (unsatisfiable and n == "Last-Modified")))
    assert ours[2] == theirs[2]


def test_a_multipart_range_has_the_same_length_as_caddys(fetch, caddy, tree):
    theirs, ours = both(fetch, caddy, tree, "/digits.txt", Range="bytes=0-1,4-5")
    assert ours[0] == theirs[0] == 206
    assert ours[1].get("Content-Length") == theirs[1]["Content-Length"]
    assert ours[1].get("Content-Type").startswith("multipart/byteranges; boundary=")


@pytest.mark.parametrize("name, value", [
    ("If-Modified-Since", "Sun, 13 Sep 2020 12:26:40 GMT"),
    ("If-Modified-Since", "Sat, 12 Sep 2020 12:26:40 GMT"),
    ("If-Unmodified-Since", "Sat, 12 Sep 2020 12:26:40 GMT"),
    ("If-None-Match", "*"),
    ("If-Match", '"nope"'),
    ("If-Match", "*"),
])
def test_conditional_requests_match_caddy(fetch, caddy, tree, name, value):
    theirs, ours = both(fetch, caddy, tree, "/hello.txt", **{name: value})
    assert_same(theirs, ours, ("Last-Modified",) if theirs[0] != 304 else ())


def test_each_servers_own_etag_makes_a_304(fetch, caddy, tree):
    theirs = caddy_get(caddy, "/hello.txt")[1]["ETag"]
    ours = fetch(handler_config("/hello.txt", tree), "/hello.txt").header("ETag")
    assert caddy_get(caddy, "/hello.txt", headers={"If-None-Match": theirs})[0] == 304
    assert fetch(handler_config("/hello.txt", tree), "/hello.txt", headers=[("If-None-Match", ours)]).status == 304


@pytest.mark.parametrize("query", ["", "?sort=name", "?sort=size&order=desc", "?sort=time", "?sort=name&limit=2&offset=1"])
def test_the_json_listing_matches_caddy(fetch, caddy, tree, query):
    theirs, ours = both(fetch, caddy, tree, "/list/" + query, Accept="application/json")
    assert ours[0] == theirs[0] == 200
    assert ours[1].get("Content-Type") == theirs[1]["Content-Type"]
    assert json.loads(ours[2]) == json.loads(theirs[2])


def test_the_listing_redirect_matches_caddy(fetch, caddy, tree):
    theirs, ours = both(fetch, caddy, tree, "/list")
    assert_same(theirs, ours)


def test_a_precompressed_sidecar_matches_caddy(fetch, caddy, tree):
    theirs, ours = both(fetch, caddy, tree, "/zipped.txt", Accept_Encoding="gzip")
    assert_same(theirs, ours, COMPARED + ("Vary", "Content-Length"))
    assert ours[2] == theirs[2]
