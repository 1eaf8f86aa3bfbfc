"""`request_body` at run time: the size limit while reading, and replacing the body."""

from __future__ import annotations

import asyncio

import pytest

from rws.errors import HttpError
from rws.http.message import BufferedBody, Request, Response

from .conftest import build, request, run


def with_body(data: bytes, **headers: str) -> Request:
    req = request("/upload", method="POST", **headers)
    req.body = BufferedBody(data)
    return req


class Reader:
    """A `next` that reads the body in chunks of `size` (-1: all at once)."""

    def __init__(self, size: int = -1) -> None:
        self.size = size
        self.data = b""
        self.request: Request | None = None

    async def __call__(self, req: Request) -> Response:
        self.request = req
        if self.size < 0:
            self.data = await req.body.read()
        else:
            async for chunk in _chunks(req, self.size):
                self.data += chunk
        return Response(200, req.response_headers, b"read")


async def _chunks(req: Request, size: int):  # type: ignore[no-untyped-def]
    while chunk := await req.body.read(size):
        yield chunk


@pytest.mark.parametrize("size", [-1, 1, 3, 100])
def test_a_body_up_to_the_limit_reads_whole(size: int) -> None:
    reader = Reader(size)
    run(build({"handler": "request_body", "max_size": 5}), with_body(b"12345"), reader)
    assert reader.data == b"12345"


@pytest.mark.parametrize("size", [-1, 1, 4, 100])
def test_reading_past_the_limit_is_a_413(size: int) -> None:
    with pytest.raises(HttpError) as info:
        run(build({"handler": "request_body", "max_size": 5}), with_body(b"123456"), Reader(size))
    assert info.value.status == 413


def test_the_read_past_the_limit_gives_the_bytes_up_to_it_then_every_read_fails() -> None:
    """As Go's MaxBytesReader (whose Read returns those bytes and the error together)."""
    async def go() -> list[object]:
        outcomes: list[object] = []
        seen: list[Request] = []

        async def keep(req: Request) -> Response:
            seen.append(req)
            return Response(200)

        response = await build({"handler": "request_body", "max_size": 2}).handle(with_body(b"abcdef"), keep)
        for _ in range(3):
            try:
                outcomes.append(await seen[0].body.read(10))
            except HttpError as exc:
                outcomes.append(exc.status)
        outcomes.append(response.close)
        return outcomes

    assert asyncio.run(go()) == [b"ab", 413, 413, False]


def test_a_handler_that_does_not_read_never_sees_the_limit() -> None:
    response = run(build({"handler": "request_body", "max_size": 1}), with_body(b"too long"))
    assert response.status == 200


def test_set_replaces_the_body_and_its_length() -> None:
    reader = Reader()
    handler = build({"handler": "request_body", "set": "path={http.request.uri.path} {nope}"})
    original = with_body(b"original", Transfer_Encoding="chunked")
    run(handler, original, reader)
    assert reader.data == b"path=/upload "
    assert reader.request is not None and reader.request.content_length == 13
    assert reader.request.headers.get("Content-Length") == "13" and "Transfer-Encoding" not in reader.request.headers


def test_set_and_max_size_together_limit_the_new_body() -> None:
    handler = build({"handler": "request_body", "set": "0123456789", "max_size": 4})
    with pytest.raises(HttpError) as info:
        run(handler, with_body(b""), Reader())
    assert info.value.status == 413


def test_a_limited_body_that_nobody_reads_is_no_error_like_caddy(same_as_caddy_run) -> None:
    # No handler that reads bodies runs here (the proxy is not served yet), so over a
    # socket the limit shows only as not getting in the way.
    site = "\trequest_body {\n\t\tmax_size 4\n\t}\n\trespond \"ok\"\n"
    same_as_caddy_run(site, [("/", {"method": "POST", "content": b"0123456789"})])
