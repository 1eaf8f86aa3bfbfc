"""Conditional requests, as Go's ServeContent answers them (RFC 9110 section 13)."""

from __future__ import annotations

import pytest

ETAG = '"c5m8nwso7bwg-d"'  # hello.txt
LAST_MODIFIED = "Sun, 13 Sep 2020 12:26:40 GMT"
EARLIER = "Sat, 12 Sep 2020 12:26:40 GMT"
LATER = "Mon, 14 Sep 2020 12:26:40 GMT"


@pytest.fixture
def get(fetch, site):
    def run(*headers: tuple[str, str], method: str = "GET", target: str = "/hello.txt"):
        return fetch({"root": str(site)}, target, method=method, headers=list(headers))

    return run


@pytest.mark.parametrize("value", [
    ETAG, "W/" + ETAG, "*", f'"other", {ETAG}', f'"a",,  {ETAG} ,"b"',
])
def test_if_none_match_that_matches_is_not_modified(get, value):
    got = get(("If-None-Match", value))
    assert (got.status, got.body) == (304, b"")


def test_not_modified_keeps_the_validator_and_drops_the_representation_headers(get):
    got = get(("If-None-Match", ETAG))
    assert got.header("ETag") == ETAG
    assert got.all("Vary") == ["Accept-Encoding"]
    for name in ("Content-Type", "Content-Length", "Last-Modified", "Accept-Ranges"):
        assert got.header(name) is None, name


@pytest.mark.parametrize("value", ['"other"', "W/\"other\"", "not-quoted", '"unterminated'])
def test_if_none_match_that_does_not_match_serves_the_file(get, value):
    assert get(("If-None-Match", value)).status == 200


def test_head_is_not_modified_too(get):
    assert get(("If-None-Match", ETAG), method="HEAD").status == 304


@pytest.mark.parametrize("value", [
    LAST_MODIFIED, LATER, "Sunday, 13-Sep-20 12:26:40 GMT", "Sun Sep 13 12:26:40 2020", "sun, 13 sep 2020 12:26:40 GMT",
])
def test_if_modified_since_at_or_after_the_modification_is_not_modified(get, value):
    assert get(("If-Modified-Since", value)).status == 304


@pytest.mark.parametrize("value", [EARLIER, "yesterday", "Sun, 13 Sep 2020 12:26:39 GMT", "Sun, 31 Feb 2020 12:26:40 GMT"])
def test_if_modified_since_before_or_unreadable_serves_the_file(get, value):
    assert get(("If-Modified-Since", value)).status == 200


def test_if_none_match_takes_precedence_over_if_modified_since(get):
    assert get(("If-None-Match", '"other"'), ("If-Modified-Since", LATER)).status == 200


@pytest.mark.parametrize("value, status", [
    (ETAG, 200), ("*", 200), (f'"x", {ETAG}', 200), ('"other"', 412), ("W/" + ETAG, 412), ("garbage", 412),
])
def test_if_match_compares_strongly(get, value, status):
    assert get(("If-Match", value)).status == status


def test_a_failed_precondition_has_no_body_and_keeps_the_validators(get):
    got = get(("If-Match", '"other"'))
    assert (got.status, got.body) == (412, b"")
    assert got.header("ETag") == ETAG and got.header("Last-Modified") == LAST_MODIFIED


@pytest.mark.parametrize("value, status", [(EARLIER, 412), (LAST_MODIFIED, 200), (LATER, 200), ("junk", 200)])
def test_if_unmodified_since(get, value, status):
    assert get(("If-Unmodified-Since", value)).status == status


def test_if_match_takes_precedence_over_if_unmodified_since(get):
    assert get(("If-Match", ETAG), ("If-Unmodified-Since", EARLIER)).status == 200


@pytest.mark.parametrize("value, status", [
    (ETAG, 206), ('"other"', 200), ("W/" + ETAG, 200), (LAST_MODIFIED, 206), (LATER, 200), ("junk", 200),
])
def test_if_range_keeps_the_range_only_while_the_file_is_unchanged(get, value, status):
    got = get(("Range", "bytes=0-4"), ("If-Range", value))
    assert got.status == status
    assert got.body == (b"hello" if status == 206 else b"hello, world\n")


def test_conditions_use_an_etag_set_by_an_earlier_handler(fetch, site):
    from fs_helpers import make_request

    request = make_request("/hello.txt", headers=[("If-Match", '"custom"')])
    request.response_headers.set("ETag", '"custom"')
    assert fetch({"root": str(site)}, request=request).status == 200
