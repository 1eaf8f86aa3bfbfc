"""The running `encode` handler: negotiation, what gets compressed, the header changes, and
streaming. Bodies are checked by decompressing them with the real libraries."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import socket
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import brotli  # type: ignore[import-untyped]
import httpx
import pytest
import zstandard

from rws.config.decode import Module, decode_module
from rws.errors import HttpError
from rws.handlers.encode_runtime import Encode
from rws.http.message import FileBody, Headers, Request, Response, accepted_encodings
from rws.http.routes import BuildContext
from rws.http.sniff import detect_content_type

TEXT = b"The quick brown fox jumps over the lazy dog. " * 40  # 1800 bytes, compressible


def build(**config: Any) -> Encode:
    config.setdefault("encodings", {"gzip": {}, "zstd": {}, "br": {}})
    value = decode_module(Module("http.handlers", "handler"), {"handler": "encode", **config}, "handle[0]")
    handler = BuildContext().build(value)
    assert isinstance(handler, Encode)
    return handler


def request(method: str = "GET", accept: str | None = "gzip", **headers: str) -> Request:
    fields = [("Host", "example.com")]
    if accept is not None:
        fields.append(("Accept-Encoding", accept))
    fields.extend((k.replace("_", "-"), v) for k, v in headers.items())
    return Request(method, "/", Headers(fields))


def responder(body: Any = TEXT, status: int = 200, **headers: str) -> Callable[[Request], Awaitable[Response]]:
    fields = [(k.replace("_", "-"), v) for k, v in headers.items()]

    async def respond(req: Request) -> Response:
        return Response(status, Headers(list(fields)), body)

    return respond


_loop: dict[str, asyncio.AbstractEventLoop] = {}


@pytest.fixture(autouse=True, scope="module")
def event_loop_for_module() -> Iterator[None]:
    """One loop for handling and for reading the body, which may still be streaming."""
    loop = _loop["current"] = asyncio.new_event_loop()
    yield
    loop.close()


def run(handler: Encode, req: Request, next: Callable[[Request], Awaitable[Response]]) -> Response:
    return _loop["current"].run_until_complete(handler.handle(req, next))


async def collect(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return b"".join([chunk async for chunk in body])


def body_of(response: Response) -> bytes:
    return _loop["current"].run_until_complete(collect(response.body))


def decode(name: str, data: bytes) -> bytes:
    if name == "gzip":
        return gzip.decompress(data)
    if name == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    assert name == "br"
    return bytes(brotli.decompress(data))


# --- negotiation -------------------------------------------------------------------------


def test_client_q_values_come_before_server_preference() -> None:
    assert accepted_encodings("gzip;q=1.0, zstd;q=0.5, br;q=0.8", ("zstd", "br", "gzip")) == ["gzip", "br", "zstd"]


def test_equal_q_values_follow_the_prefer_order() -> None:
    assert accepted_encodings("gzip, br, zstd", ("zstd", "br", "gzip")) == ["zstd", "br", "gzip"]
    assert accepted_encodings("gzip, br, zstd", ("gzip", "zstd")) == ["gzip", "zstd", "br"]


def test_q_zero_refuses_an_encoding_and_bad_q_counts_as_one() -> None:
    assert accepted_encodings("gzip;q=0, br;q=0.000", ("gzip", "br")) == []
    assert accepted_encodings("gzip;q=abc, br;q=0.5", ("br",)) == ["gzip", "br"]


def test_websocket_handshakes_accept_only_identity() -> None:
    assert accepted_encodings("gzip, identity", ("gzip",), websocket=True) == ["identity"]


@pytest.mark.parametrize("accept,expected", [
    ("gzip", "gzip"), ("zstd", "zstd"), ("br", "br"), ("gzip, deflate, br, zstd", "zstd"),
    ("gzip;q=0.9, br", "br"), ("GZIP", "gzip"),
])
def test_the_negotiated_encoding_compresses_the_body(accept: str, expected: str) -> None:
    response = run(build(), request(accept=accept), responder(Content_Type="text/html; charset=utf-8"))
    assert response.headers.get("Content-Encoding") == expected
    assert decode(expected, body_of(response)) == TEXT


def test_prefer_decides_between_equally_accepted_encodings() -> None:
    handler = build(prefer=["gzip", "br", "zstd"])
    response = run(handler, request(accept="zstd, br, gzip"), responder(Content_Type="text/plain"))
    assert response.headers.get("Content-Encoding") == "gzip"


def test_no_accept_encoding_or_unoffered_encodings_leave_the_response_alone() -> None:
    for accept in (None, "deflate", "identity", "gzip;q=0"):
        response = run(build(), request(accept=accept), responder(Content_Type="text/plain"))
        assert response.headers.get("Content-Encoding") is None
        assert response.body == TEXT
        assert response.headers.get("Vary") is None


def test_websocket_handshake_is_not_encoded() -> None:
    req = request(Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ==")
    response = run(build(), req, responder(Content_Type="text/plain"))
    assert response.headers.get("Content-Encoding") is None


# --- which responses are encoded -----------------------------------------------------------


def test_bodies_up_to_minimum_length_are_not_encoded() -> None:
    handler = build()
    short = run(handler, request(), responder(b"x" * 512, Content_Type="text/plain"))
    assert short.headers.get("Content-Encoding") is None and short.body == b"x" * 512
    longer = run(handler, request(), responder(b"x" * 513, Content_Type="text/plain"))
    assert longer.headers.get("Content-Encoding") == "gzip"


def test_minimum_length_is_configurable() -> None:
    response = run(build(minimum_length=10), request(), responder(b"y" * 11, Content_Type="text/plain"))
    assert gzip.decompress(body_of(response)) == b"y" * 11


@pytest.mark.parametrize("content_type", [
    "text/html", "text/css; charset=utf-8", "application/json", "application/javascript", "image/svg+xml",
    "application/wasm", "font/ttf", "application/vnd.api+json", "multipart/mixed; boundary=x",
])
def test_the_default_match_takes_compressible_types(content_type: str) -> None:
    response = run(build(), request(), responder(Content_Type=content_type))
    assert response.headers.get("Content-Encoding") == "gzip"


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream", "video/mp4", "application/zip",
                                          "font/woff2", "Text/html"])
def test_the_default_match_skips_other_types(content_type: str) -> None:
    response = run(build(), request(), responder(Content_Type=content_type))
    assert response.headers.get("Content-Encoding") is None
    assert response.body == TEXT


def test_a_missing_content_type_is_sniffed_from_the_body() -> None:
    html = b"  <!DOCTYPE html><html>" + TEXT
    response = run(build(), request(), responder(html))
    assert response.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert gzip.decompress(body_of(response)) == html
    binary = bytes(range(256)) * 4
    response = run(build(), request(), responder(binary))
    assert response.headers.get("Content-Type") == "application/octet-stream"
    assert response.headers.get("Content-Encoding") is None and response.body == binary


def test_a_configured_matcher_replaces_the_default() -> None:
    handler = build(match={"status_code": [2], "headers": {"X-Compress": ["yes*"]}})
    yes = run(handler, request(), responder(Content_Type="image/png", X_Compress="yes please"))
    assert yes.headers.get("Content-Encoding") == "gzip"
    no_header = run(handler, request(), responder(Content_Type="text/html"))
    assert no_header.headers.get("Content-Encoding") is None
    wrong_status = run(handler, request(), responder(status=404, X_Compress="yes"))
    assert wrong_status.headers.get("Content-Encoding") is None


def test_a_matcher_can_require_a_field_to_be_absent() -> None:
    handler = build(match={"headers": {"X-Raw": None}})
    assert run(handler, request(), responder()).headers.get("Content-Encoding") == "gzip"
    assert run(handler, request(), responder(X_Raw="1")).headers.get("Content-Encoding") is None


def test_an_already_encoded_response_is_not_encoded_again() -> None:
    response = run(build(), request(), responder(Content_Type="text/plain", Content_Encoding="br"))
    assert response.headers.get_all("Content-Encoding") == ["br"]
    assert response.body == TEXT


def test_no_transform_on_the_request_or_response_prevents_encoding() -> None:
    req = request(Cache_Control="no-cache, no-transform")
    assert run(build(), req, responder(Content_Type="text/plain")).headers.get("Content-Encoding") is None
    resp = run(build(), request(), responder(Content_Type="text/plain", Cache_Control="public, no-transform"))
    assert resp.headers.get("Content-Encoding") is None and resp.body == TEXT


def test_partial_content_is_never_encoded() -> None:
    response = run(build(), request(), responder(status=206, Content_Type="text/plain", Content_Range="bytes 0-1799/5000",
                                                 Accept_Ranges="bytes"))
    assert response.headers.get("Content-Encoding") is None
    assert response.headers.get("Accept-Ranges") == "bytes"


def test_connect_and_informational_responses_pass_through() -> None:
    connect = run(build(), request("CONNECT"), responder(Content_Type="text/plain"))
    assert connect.headers.get("Content-Encoding") is None
    switching = run(build(), request(), responder(b"", status=101, Upgrade="websocket"))
    assert switching.headers.get("Content-Encoding") is None


def test_errors_from_inner_handlers_propagate_unencoded() -> None:
    async def fail(req: Request) -> Response:
        raise HttpError(502, "upstream down")

    with pytest.raises(HttpError):
        run(build(), request(), fail)


# --- header changes ------------------------------------------------------------------------


def test_encoding_rewrites_the_representation_headers() -> None:
    response = run(build(), request(), responder(Content_Type="text/plain", Content_Length=str(len(TEXT)),
                                                 Accept_Ranges="bytes", ETag='"v1"', Vary="Origin"))
    headers = response.headers
    assert headers.get("Content-Encoding") == "gzip"
    assert "Content-Length" not in headers and "Accept-Ranges" not in headers
    assert headers.get("ETag") == '"v1-gzip"'
    assert headers.get_all("Vary") == ["Origin", "Accept-Encoding"]


def test_vary_is_not_repeated_and_weak_etags_are_kept() -> None:
    response = run(build(), request(accept="br"), responder(Content_Type="text/plain", Vary="origin, accept-encoding",
                                                            ETag='W/"v1"'))
    assert response.headers.get_all("Vary") == ["origin, accept-encoding"]
    assert response.headers.get("ETag") == 'W/"v1"'


def test_not_modified_gets_vary_without_encoding() -> None:
    response = run(build(), request(), responder(b"", status=304, ETag='"v1"'))
    assert response.headers.get("Vary") == "Accept-Encoding"
    assert response.headers.get("Content-Encoding") is None


def test_inner_handlers_see_their_own_etag_in_conditional_headers() -> None:
    seen: dict[str, list[str]] = {}

    async def inner(req: Request) -> Response:
        seen["inm"] = req.headers.get_all("If-None-Match")
        seen["im"] = req.headers.get_all("If-Match")
        return Response(304, Headers())

    req = request(accept="gzip", If_None_Match='"a-gzip", W/"b-gzip", "c-zstd"', If_Match='"a-gzip"')
    run(build(), req, inner)
    assert seen == {"inm": ['"a", W/"b-gzip", "c-zstd"'], "im": ['"a"']}
    assert req.headers.get("If-None-Match") == '"a-gzip", W/"b-gzip", "c-zstd"'  # the original is not changed


def test_head_gets_the_encoded_headers_and_no_body() -> None:
    """The body of an encoded HEAD answer is the encoder's closing bytes: the server sends
    none of it, but takes its length for Content-Length, as Go's server counts what the
    encoder wrote (20 for an empty gzip stream)."""
    response = run(build(), request("HEAD"), responder(b"", Content_Type="text/plain", Content_Length="5000"))
    assert response.headers.get("Content-Encoding") == "gzip"
    assert "Content-Length" not in response.headers
    assert isinstance(response.body, bytes) and len(response.body) == 20 and gzip.decompress(response.body) == b""
    with_body = run(build(), request("HEAD"), responder(Content_Type="text/plain"))
    assert with_body.headers.get("Content-Encoding") == "gzip"
    assert isinstance(with_body.body, bytes) and gzip.decompress(with_body.body) == b""


def test_head_with_a_short_declared_length_is_not_encoded() -> None:
    response = run(build(), request("HEAD"), responder(b"", Content_Type="text/plain", Content_Length="100"))
    assert response.headers.get("Content-Encoding") is None
    assert response.headers.get("Content-Length") == "100"


# --- streaming -----------------------------------------------------------------------------


async def chunks(*parts: bytes, gate: asyncio.Event | None = None, closed: list[bool] | None = None,
                 gate_after: int = 1) -> AsyncIterator[bytes]:
    try:
        for i, part in enumerate(parts):
            if gate is not None and i == gate_after:
                await gate.wait()
            yield part
    finally:
        if closed is not None:
            closed.append(True)


def test_a_stream_is_compressed_chunk_by_chunk_and_each_chunk_can_be_decoded_at_once() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        parts = (TEXT, b"second part " * 10, b"third part " * 10)

        async def inner(req: Request) -> Response:
            return Response(200, Headers([("Content-Type", "text/plain")]), chunks(*parts, gate=gate))

        response = await build().handle(request(), inner)
        assert response.headers.get("Content-Encoding") == "gzip"
        body = response.body
        assert not isinstance(body, (bytes, FileBody))
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        first = await anext(body)  # available before the source yields its second chunk
        assert decoder.decompress(first) == parts[0]
        gate.set()
        second = await anext(body)
        assert decoder.decompress(second) == parts[1]
        rest = b"".join([c async for c in body])
        assert decoder.decompress(rest) + decoder.flush() == parts[2]
        assert decoder.eof

    asyncio.run(scenario())


def test_small_chunks_are_gathered_until_minimum_length_decides() -> None:
    parts = [b"a" * 100] * 6  # 600 bytes in all, no part over 512 on its own
    response = run(build(), request(), responder(chunks(*parts), Content_Type="text/plain"))
    assert response.headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body_of(response)) == b"".join(parts)


def test_a_short_stream_passes_through_unchanged() -> None:
    closed: list[bool] = []
    response = run(build(), request(), responder(chunks(b"abc", b"def", closed=closed), Content_Type="text/plain",
                                                 Content_Length="6"))
    assert response.headers.get("Content-Encoding") is None
    assert response.headers.get("Content-Length") == "6"
    assert body_of(response) == b"abcdef"
    assert closed == [True]


def test_a_long_stream_that_is_not_matched_keeps_every_byte() -> None:
    parts = (b"\x00" * 400, b"\x01" * 400, b"\x02" * 400)
    response = run(build(), request(), responder(chunks(*parts), Content_Type="image/png"))
    assert response.headers.get("Content-Encoding") is None
    assert body_of(response) == b"".join(parts)


def test_a_declared_length_decides_on_the_first_chunk() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def inner(req: Request) -> Response:
            headers = Headers([("Content-Type", "text/plain"), ("Content-Length", "2000")])
            return Response(200, headers, chunks(b"x" * 10, b"y" * 1990, gate=gate))

        response = await build().handle(request(), inner)  # would hang if it waited for 512 bytes
        assert response.headers.get("Content-Encoding") == "gzip"
        gate.set()
        assert gzip.decompress(await collect(response.body)) == b"x" * 10 + b"y" * 1990

    asyncio.run(scenario())


def test_server_sent_events_are_encoded_from_the_first_event() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        events = (b"data: one\n\n", b"data: two\n\n")

        async def inner(req: Request) -> Response:
            return Response(200, Headers([("Content-Type", "text/event-stream")]), chunks(*events, gate=gate))

        response = await build().handle(request(accept="zstd"), inner)
        assert response.headers.get("Content-Encoding") == "zstd"
        decoder = zstandard.ZstdDecompressor().decompressobj()
        assert decoder.decompress(await anext(response.body)) == events[0]  # type: ignore[arg-type]
        gate.set()
        assert decoder.decompress(await collect(response.body)) == events[1]

    asyncio.run(scenario())


def test_file_bodies_are_compressed_in_chunks_and_closed(tmp_path: Path) -> None:
    data = os.urandom(50_000).hex().encode() * 3  # 300 kB of text
    path = tmp_path / "big.txt"
    path.write_bytes(b"HEAD" + data + b"TAIL")
    file = path.open("rb")
    response = run(build(), request(accept="br"), responder(FileBody(file, 4, len(data)), Content_Type="text/plain"))
    assert response.headers.get("Content-Encoding") == "br"
    assert not isinstance(response.body, FileBody)
    out = body_of(response)
    assert brotli.decompress(out) == data
    assert file.closed


def test_a_file_body_without_content_type_is_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "page"
    path.write_bytes(b"<html>" + TEXT)
    response = run(build(), request(), responder(FileBody(path.open("rb"), 0, len(TEXT) + 6)))
    assert response.headers.get("Content-Type") == "text/html; charset=utf-8"
    assert gzip.decompress(body_of(response)) == b"<html>" + TEXT


def test_short_or_unmatched_file_bodies_stay_file_bodies(tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"small")
    body = FileBody(path.open("rb"), 0, 5)
    response = run(build(), request(), responder(body, Content_Type="text/plain", Content_Length="5"))
    assert response.body is body and not body.file.closed
    body.file.close()


# --- encoder settings ----------------------------------------------------------------------


@pytest.mark.parametrize("level", [-3, -2, -1, 1, 5, 9])
def test_gzip_levels(level: int) -> None:
    handler = build(encodings={"gzip": {"level": level}})
    assert gzip.decompress(body_of(run(handler, request(), responder(Content_Type="text/plain")))) == TEXT


@pytest.mark.parametrize("level", ["fastest", "default", "better", "BEST"])
def test_zstd_levels_use_a_128k_window(level: str) -> None:
    data = os.urandom(200_000).hex().encode()
    handler = build(encodings={"zstd": {"level": level}})
    out = body_of(run(handler, request(accept="zstd"), responder(data, Content_Type="text/plain")))
    assert zstandard.ZstdDecompressor().decompressobj().decompress(out) == data
    assert zstandard.get_frame_parameters(out).window_size <= 128 * 1024


def test_zstd_checksum_can_be_disabled() -> None:
    with_sum = body_of(run(build(encodings={"zstd": {}}), request(accept="zstd"), responder(Content_Type="text/plain")))
    without = body_of(run(build(encodings={"zstd": {"checksum": False}}), request(accept="zstd"),
                          responder(Content_Type="text/plain")))
    assert zstandard.get_frame_parameters(with_sum).has_checksum
    assert not zstandard.get_frame_parameters(without).has_checksum


@pytest.mark.parametrize("quality,lgwin", [(0, 10), (6, 0), (11, 24)])
def test_brotli_quality_and_window(quality: int, lgwin: int) -> None:
    config: dict[str, Any] = {"quality": quality}
    if lgwin:
        config["lgwin"] = lgwin
    handler = build(encodings={"br": config})
    assert brotli.decompress(body_of(run(handler, request(accept="br"), responder(Content_Type="text/plain")))) == TEXT


def test_concurrent_zstd_streams_do_not_mix() -> None:
    async def scenario() -> None:
        handler = build(encodings={"zstd": {}})
        a_parts, b_parts = (b"A" * 600, b"a" * 700), (b"B" * 600, b"b" * 700)

        async def respond(parts: tuple[bytes, ...]) -> Response:
            return await handler.handle(request(accept="zstd"), responder(chunks(*parts), Content_Type="text/plain"))

        ra, rb = await respond(a_parts), await respond(b_parts)
        out_a, out_b = [], []
        for _ in range(3):  # interleave the two streams
            out_a.append(await anext(ra.body))  # type: ignore[arg-type]
            out_b.append(await anext(rb.body))  # type: ignore[arg-type]
        dctx = zstandard.ZstdDecompressor()
        assert dctx.decompressobj().decompress(b"".join(out_a)) == b"".join(a_parts)
        assert dctx.decompressobj().decompress(b"".join(out_b)) == b"".join(b_parts)

    asyncio.run(scenario())


# --- content sniffing ----------------------------------------------------------------------


@pytest.mark.parametrize("data,expected", [
    (b"", "text/plain; charset=utf-8"),
    (b"hello", "text/plain; charset=utf-8"),
    (b"\n <HtMl>x", "text/html; charset=utf-8"),
    (b"<htmlx", "text/plain; charset=utf-8"),
    (b"<?xml version='1.0'?>", "text/xml; charset=utf-8"),
    (b"%PDF-1.4", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n....", "image/png"),
    (b"GIF89a...", "image/gif"),
    (b"\xff\xd8\xff\xe0", "image/jpeg"),
    (b"RIFF\x01\x02\x03\x04WEBPVP8 ", "image/webp"),
    (b"\x1f\x8b\x08\x00", "application/x-gzip"),
    (b"\x00asm\x01\x00\x00\x00", "application/wasm"),
    (b"wOF2....", "font/woff2"),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4"),
    (b"\xef\xbb\xbfhi", "text/plain; charset=utf-8"),
    (b"\x00\x01\x02binary", "application/octet-stream"),
])
def test_sniffing_matches_go(data: bytes, expected: str) -> None:
    assert detect_content_type(data) == expected


# --- over real sockets ---------------------------------------------------------------------

LONG = "hello world " * 100

SITE = """:80 {
	encode %s
	@cached header If-None-Match "\\"v7\\""
	respond @cached 304
	header Content-Type text/plain
	header ETag "\\"v7\\""
	respond "%s"
}
"""


def curl(url: str, *args: str) -> tuple[str, bytes]:
    """Response head and (decoded) body as curl sees them."""
    out = subprocess.run(["curl", "-s", "-S", "-D", "-", "--compressed", *args, url], capture_output=True,
                         timeout=30, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    return head.decode(), body


@pytest.mark.parametrize("encoding", ["gzip", "zstd", "br"])
def test_curl_decodes_what_rws_encodes(serve: Any, encoding: str) -> None:
    with serve(SITE % ("zstd br gzip", LONG)) as server:
        head, body = curl(server.url("/"), "-H", f"Accept-Encoding: {encoding}")
    assert f"\r\nContent-Encoding: {encoding}\r\n" in head
    assert "\r\nVary: Accept-Encoding\r\n" in head
    assert f'\r\nETag: "v7-{encoding}"\r\n' in head
    assert body == LONG.encode()


def test_a_client_sending_back_the_encoded_etag_gets_not_modified(serve: Any) -> None:
    with serve(SITE % ("gzip", LONG)) as server:
        first = httpx.get(server.url("/"), headers={"Accept-Encoding": "gzip"})
        again = httpx.get(server.url("/"), headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
    assert first.headers["ETag"] == '"v7-gzip"'
    assert again.status_code == 304
    assert again.headers["Vary"] == "Accept-Encoding"


def test_raw_bytes_on_the_wire_are_the_compressed_body(serve: Any) -> None:
    with serve(SITE % ("zstd gzip", LONG)) as server:
        with httpx.stream("GET", server.url("/"), headers={"Accept-Encoding": "zstd"}) as response:
            raw = b"".join(response.iter_raw())
            assert response.headers["Content-Encoding"] == "zstd"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(raw) == LONG.encode()
    assert len(raw) < len(LONG) // 10


def test_short_responses_go_out_unencoded(serve: Any) -> None:
    with serve(SITE % ("gzip", "short")) as server:
        head, body = curl(server.url("/"), "-H", "Accept-Encoding: gzip")
    assert "Content-Encoding" not in head and body == b"short"


# --- the same requests against Caddy -------------------------------------------------------

CADDY = shutil.which("caddy")

DIFF_SITE = """{
	admin off
	auto_https off
}
:%d {
	encode zstd gzip
	@png path /png
	header @png Content-Type image/png
	header Content-Type text/plain
	@short path /short
	respond @short "short"
	respond "%s"
}
"""


@pytest.fixture(scope="module")
def caddy_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if CADDY is None:
        pytest.skip("caddy is not installed")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path_factory.mktemp("caddy")
    (folder / "Caddyfile").write_text(DIFF_SITE % (port, LONG))
    proc = subprocess.Popen([CADDY, "run", "--config", "Caddyfile", "--adapter", "caddyfile"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("path,accept", [
    ("/", "gzip"), ("/", "zstd"), ("/", "gzip, zstd"), ("/", "zstd;q=0.5, gzip"), ("/", "gzip;q=0, zstd;q=0"),
    ("/", "br"), ("/", "identity"), ("/", "*"), ("/png", "gzip"), ("/short", "gzip"),
])
def test_negotiation_and_choice_match_caddy(serve: Any, caddy_url: str, path: str, accept: str) -> None:
    def observe(base: str) -> tuple[int, str | None, str | None, bytes]:
        response = httpx.get(base + path, headers={"Accept-Encoding": accept})
        return response.status_code, response.headers.get("Content-Encoding"), response.headers.get("Vary"), \
            response.content

    with serve(DIFF_SITE.split("}\n", 1)[1] % (80, LONG)) as server:
        ours = observe(server.url("").rstrip("/"))
    assert ours == observe(caddy_url)
