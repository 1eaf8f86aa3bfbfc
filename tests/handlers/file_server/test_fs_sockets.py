"""The file server over real sockets: rws started in-process (`serve`), real clients (httpx,
curl, raw sockets for paths a client library would normalise)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fs_helpers import write


def site_config(root: Path, **handler: object) -> dict[str, object]:
    return {"apps": {"http": {"servers": {"files": {"listen": ["127.0.0.1:0"], "routes": [
        {"handle": [{"handler": "file_server", "root": str(root), **handler}]}]}}}}}


def raw_get(port: int, target: str) -> bytes:
    """Send a request line exactly as written and read the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_file_over_http(serve, site):
    with serve(site_config(site)) as server:
        response = httpx.get(server.url("/hello.txt"))
    assert response.status_code == 200
    assert response.content == b"hello, world\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "13"
    assert response.headers["etag"] == '"c5m8nwso7bwg-d"'
    assert response.headers["last-modified"] == "Sun, 13 Sep 2020 12:26:40 GMT"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["vary"] == "Accept-Encoding"


def test_a_large_file_arrives_intact(serve, site):
    data = bytes(range(256)) * 40_000  # ~10 MB
    write(site / "big.bin", data)
    with serve(site_config(site)) as server:
        response = httpx.get(server.url("/big.bin"), timeout=30)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()


def _read_response(sock: socket.socket, pause_every: int = 0) -> tuple[bytes, bytes]:
    """One response with a Content-Length: its head and body; with `pause_every`, the
    reader sleeps after each that many bytes, a slow client that fills the socket."""
    buffered = b""
    while b"\r\n\r\n" not in buffered:
        buffered += sock.recv(65536)
    head, _, body = buffered.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    since_pause = len(body)
    parts = [body]
    received = len(body)
    while received < length:
        chunk = sock.recv(min(65536, length - received))
        assert chunk, "connection closed before the body ended"
        parts.append(chunk)
        received += len(chunk)
        since_pause += len(chunk)
        if pause_every and since_pause >= pause_every:
            since_pause = 0
            time.sleep(0.002)
    return head, b"".join(parts)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_files_and_ranges_to_a_slow_client_on_one_connection(serve, site, loop):
    """Bodies over the in-memory size go out with sendfile while the socket takes them and
    through the transport when it is full: a slow reader gets every byte, a range from an
    offset is exact, and the connection stays usable for the next response."""
    data = hashlib.sha256(b"seed").digest() * 200_000  # 6.4 MB of varied bytes
    write(site / "big.bin", data)
    with serve(site_config(site), loop=loop) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=30) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = _read_response(sock, pause_every=512 * 1024)
            assert head.startswith(b"HTTP/1.1 200 ") and body == data
            sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a\r\nRange: bytes=1000001-3500000\r\n\r\n")
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 206 ") and body == data[1000001:3500001]
            sock.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 ") and body == b"hello, world\n"


def test_head_over_http_has_the_length_and_no_body(serve, site):
    with serve(site_config(site)) as server:
        response = httpx.head(server.url("/hello.txt"))
    assert response.status_code == 200
    assert response.headers["content-length"] == "13"
    assert response.content == b""


def test_a_range_over_http(serve, site):
    with serve(site_config(site)) as server:
        single = httpx.get(server.url("/digits.txt"), headers={"Range": "bytes=2-5"})
        multi = httpx.get(server.url("/digits.txt"), headers={"Range": "bytes=0-0,9-9"})
        beyond = httpx.get(server.url("/digits.txt"), headers={"Range": "bytes=20-"})
    assert (single.status_code, single.content, single.headers["content-range"]) == (206, b"2345", "bytes 2-5/10")
    assert multi.status_code == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(multi.headers["content-length"]) == len(multi.content)
    assert b"\r\nContent-Range: bytes 9-9/10\r\n" in multi.content
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, "bytes */10")


def test_not_modified_over_http(serve, site):
    with serve(site_config(site)) as server:
        etag = httpx.get(server.url("/hello.txt")).headers["etag"]
        response = httpx.get(server.url("/hello.txt"), headers={"If-None-Match": etag})
    assert (response.status_code, response.content) == (304, b"")


def test_a_post_is_not_allowed_over_http(serve, site):
    with serve(site_config(site)) as server:
        response = httpx.post(server.url("/hello.txt"), content=b"x")
    assert response.status_code == 405
    assert response.headers.get("allow") == "GET, HEAD"


def test_a_folder_redirect_over_http(serve, site):
    with serve(site_config(site)) as server:
        response = httpx.get(server.url("/docs?x=1"))
    assert (response.status_code, response.headers["location"]) == (308, "/docs/?x=1")


def test_a_missing_file_over_http(serve, site):
    with serve(site_config(site)) as server:
        assert httpx.get(server.url("/nope")).status_code == 404


@pytest.mark.parametrize("target", [
    "/../outside.txt", "/%2e%2e/outside.txt", "/..%2foutside.txt", "/docs/../../outside.txt", "//../outside.txt",
    "/%2e%2e%5coutside.txt",
])
def test_traversal_over_a_raw_socket(serve, site, target):
    with serve(site_config(site)) as server:
        response = raw_get(server.port(), target)
    assert response.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400"))
    assert b"OUTSIDE" not in response


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("target", ["/../outside.txt", "/%2e%2e/%2e%2e/outside.txt", "/docs/%2e%2e/%2e%2e/outside.txt"])
def test_traversal_with_curl_path_as_is(serve, site, target):
    with serve(site_config(site)) as server:
        proc = subprocess.run(["curl", "-s", "--path-as-is", "-o", "-", "-w", "\n%{http_code}", server.url(target)],
                              capture_output=True, timeout=30)
    body, _, status = proc.stdout.rpartition(b"\n")
    assert status == b"404" and b"OUTSIDE" not in body


def test_a_precompressed_sidecar_over_http(serve, site):
    write(site / "app.js.gz", gzip.compress(b"console.log(1)\n"))
    config = site_config(site, precompressed={"gzip": {}}, precompressed_order=["gzip"])
    with serve(config) as server:
        response = httpx.get(server.url("/app.js"), headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == b"console.log(1)\n"  # decoded by httpx
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"


def test_a_json_listing_over_http(serve, site):
    with serve(site_config(site, browse={})) as server:
        response = httpx.get(server.url("/plain/"), headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert [item["name"] for item in json.loads(response.content)] == ["readme.md"]


def test_an_rwsfile_site_with_an_error_page(serve, site):
    write(site / "404.html", "<h1>gone</h1>")
    rwsfile = f""":80 {{
	root * {site}
	file_server
	handle_errors {{
		rewrite * /404.html
		file_server
	}}
}}
"""
    with serve(rwsfile) as server:
        response = httpx.get(server.url("/missing"))
        hidden = httpx.get(server.url("/Rwsfile"))
    assert (response.status_code, response.content) == (404, b"<h1>gone</h1>")
    assert hidden.status_code == 404


def test_an_unknown_type_has_no_content_type_on_the_wire(serve, site):
    with serve(site_config(site)) as server:
        response = raw_get(server.port(), "/noext")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-type:" not in head.lower()
    assert body == b"raw"
