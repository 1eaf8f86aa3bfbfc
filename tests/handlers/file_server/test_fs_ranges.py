"""Range requests: single ranges, multipart/byteranges, and unsatisfiable ranges (416)."""

from __future__ import annotations

import re

import pytest
from fs_helpers import make_request

from rws.handlers.file_server.content import ByteRange, InvalidRange, parse_range


@pytest.fixture
def ranged(fetch, site):
    def run(value: str, target: str = "/digits.txt", method: str = "GET", **config):
        return fetch({"root": str(site), **config}, target, method=method, headers=[("Range", value)])

    return run


@pytest.mark.parametrize("value, body, content_range", [
    ("bytes=0-4", b"01234", "bytes 0-4/10"),
    ("bytes=5-", b"56789", "bytes 5-9/10"),
    ("bytes=-3", b"789", "bytes 7-9/10"),
    ("bytes=-20", b"0123456789", "bytes 0-9/10"),
    ("bytes=8-100", b"89", "bytes 8-9/10"),
    ("bytes=0-0", b"0", "bytes 0-0/10"),
    ("bytes= 2 - 3 ", b"23", "bytes 2-3/10"),
    ("bytes=,3-4,", b"34", "bytes 3-4/10"),
    ("bytes=12-,3-4", b"34", "bytes 3-4/10"),  # a range past the end is dropped when others remain
])
def test_one_range_is_a_partial_response(ranged, value, body, content_range):
    got = ranged(value)
    assert got.status == 206
    assert got.body == body
    assert got.header("Content-Range") == content_range
    assert got.header("Content-Length") == str(len(body))
    assert got.header("Content-Type") == "text/plain; charset=utf-8"
    assert got.header("Accept-Ranges") == "bytes"


def test_several_ranges_are_a_multipart_response(ranged):
    got = ranged("bytes=0-1,4-5")
    assert got.status == 206
    content_type = got.header("Content-Type")
    match = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]{60})", content_type or "")
    assert match, content_type
    b = match.group(1)
    assert got.body == (
        f"--{b}\r\nContent-Range: bytes 0-1/10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n01"
        f"\r\n--{b}\r\nContent-Range: bytes 4-5/10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n45"
        f"\r\n--{b}--\r\n").encode()
    assert got.header("Content-Length") == str(len(got.body))
    assert got.header("Content-Range") is None


def test_multipart_parts_of_a_file_without_type_have_an_empty_type_like_go(ranged):
    got = ranged("bytes=0-0,2-2", target="/noext")
    assert b"Content-Type: \r\n\r\nr" in got.body


def test_a_multipart_body_is_streamed_and_closes_its_file(ranged, no_leaks):
    assert ranged("bytes=0-1,4-5").status == 206


def test_ranges_adding_up_to_more_than_the_file_are_ignored(ranged):
    got = ranged("bytes=0-,0-")
    assert (got.status, got.body) == (200, b"0123456789")


@pytest.mark.parametrize("value", ["bytes=10-", "bytes=100-200", "bytes=10-,20-"])
def test_a_range_past_the_end_is_not_satisfiable(ranged, value):
    got = ranged(value)
    assert got.status == 416
    assert got.header("Content-Range") == "bytes */10"
    assert got.body == b"invalid range: failed to overlap\n"
    assert got.header("Content-Type") == "text/plain; charset=utf-8"
    assert got.header("X-Content-Type-Options") == "nosniff"
    assert got.header("Content-Length") == str(len(got.body))
    for name in ("ETag", "Last-Modified", "Accept-Ranges"):
        assert got.header(name) is None, name


@pytest.mark.parametrize("value", [
    "bytes=5-2", "bytes=abc", "items=0-1", "bytes=0-1-2", "bytes=--1", "bytes=-", "bytes=1",
    "bytes=0-99999999999999999999", "bytes=-1x",
])
def test_a_malformed_range_is_not_satisfiable(ranged, value):
    got = ranged(value)
    assert (got.status, got.body) == (416, b"invalid range\n")
    assert got.header("Content-Range") is None


def test_an_empty_range_list_serves_the_whole_file(ranged):
    assert ranged("bytes=").status == 200


def test_a_range_on_an_empty_file_serves_it_whole(ranged):
    got = ranged("bytes=0-10", target="/empty.txt")
    assert (got.status, got.body) == (200, b"")


def test_head_with_a_range_has_the_partial_headers_and_no_body(ranged):
    got = ranged("bytes=0-4", method="HEAD")
    assert (got.status, got.body, got.header("Content-Length")) == (206, b"", "5")


def test_the_status_override_applies_to_partial_responses_like_caddy(ranged):
    got = ranged("bytes=0-4", status_code=404)
    assert (got.status, got.body) == (404, b"01234")


def test_a_range_inside_error_routes_still_answers_with_the_errors_status(fetch, site):
    from rws.errors import HttpError

    request = make_request("/digits.txt", headers=[("Range", "bytes=0-1")], error=HttpError(500))
    got = fetch({"root": str(site)}, request=request)
    assert (got.status, got.body) == (500, b"01")


def test_parse_range_reads_like_go():
    assert parse_range("", 10) == []
    assert parse_range("bytes=+1-+2", 10) == [ByteRange(1, 2)]
    assert parse_range("bytes=-0", 10) == [ByteRange(10, 0)]
    with pytest.raises(InvalidRange) as info:
        parse_range("bytes=20-", 10)
    assert info.value.no_overlap
