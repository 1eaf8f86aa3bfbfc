"""Precompressed sidecars: which one a client gets, and how the response describes it."""

from __future__ import annotations

import gzip

import pytest
from fs_helpers import OLD, write

from rws.http.message import accepted_encodings

TEXT = b"hello, world\n" * 20
ALL = {"precompressed": {"br": {}, "zstd": {}, "gzip": {}}, "precompressed_order": ["br", "zstd", "gzip"]}


@pytest.fixture
def sidecars(site):
    write(site / "text.txt", TEXT)
    write(site / "text.txt.gz", gzip.compress(TEXT, mtime=0), mtime=OLD + 60)
    write(site / "text.txt.br", b"BROTLI-BYTES", mtime=OLD + 120)
    write(site / "text.txt.zst", b"ZSTD-BYTES", mtime=OLD + 180)
    return site


def fetch_text(fetch, site, accept: str | None, config=None, *more: tuple[str, str]):
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    return fetch({"root": str(site), **(ALL if config is None else config)}, "/text.txt",
                 headers=headers + list(more))


def test_the_gzip_sidecar_is_served_to_a_gzip_client(fetch, sidecars):
    got = fetch_text(fetch, sidecars, "gzip")
    assert gzip.decompress(got.body) == TEXT
    assert got.header("Content-Encoding") == "gzip"
    assert got.header("Content-Type") == "text/plain; charset=utf-8"
    assert got.header("Content-Length") == str(len(got.body))
    assert got.all("Vary") == ["Accept-Encoding"]


def test_the_sidecar_has_its_own_etag_but_the_files_last_modified(fetch, sidecars):
    plain = fetch_text(fetch, sidecars, None)
    zipped = fetch_text(fetch, sidecars, "gzip")
    assert zipped.header("ETag") not in (None, plain.header("ETag"))
    assert zipped.header("Last-Modified") == plain.header("Last-Modified") == "Sun, 13 Sep 2020 12:26:40 GMT"


@pytest.mark.parametrize("accept, encoding", [
    ("gzip, br", "br"),  # equal q: the configured order decides
    ("gzip, zstd", "zstd"),
    ("br;q=0.5, gzip", "gzip"),  # a higher q wins over the order
    ("br;q=0, gzip", "gzip"),  # q=0 refuses
    ("BR", "br"),
    ("*", None),  # only named encodings are matched, as in Caddy
    ("identity", None),
    ("deflate", None),
    ("gzip;q=0", None),
])
def test_the_client_preference_and_the_configured_order_choose_the_sidecar(fetch, sidecars, accept, encoding):
    got = fetch_text(fetch, sidecars, accept)
    assert got.header("Content-Encoding") == encoding
    if encoding is None:
        assert got.body == TEXT


def test_a_missing_sidecar_falls_back_to_the_next_accepted_one(fetch, sidecars):
    (sidecars / "text.txt.br").unlink()
    assert fetch_text(fetch, sidecars, "br, gzip").header("Content-Encoding") == "gzip"


def test_a_folder_named_like_a_sidecar_is_ignored(fetch, sidecars):
    (sidecars / "text.txt.br").unlink()
    (sidecars / "text.txt.br").mkdir()
    got = fetch_text(fetch, sidecars, "br")
    assert got.header("Content-Encoding") is None and got.body == TEXT


def test_sidecars_are_ignored_when_not_configured(fetch, sidecars):
    got = fetch_text(fetch, sidecars, "gzip", {})
    assert got.header("Content-Encoding") is None and got.body == TEXT


def test_only_configured_formats_are_used(fetch, sidecars):
    config = {"precompressed": {"gzip": {}}, "precompressed_order": ["gzip"]}
    assert fetch_text(fetch, sidecars, "br, gzip", config).header("Content-Encoding") == "gzip"


def test_a_websocket_handshake_gets_no_sidecar(fetch, sidecars):
    got = fetch_text(fetch, sidecars, "gzip", None, ("Sec-WebSocket-Key", "x"))
    assert got.header("Content-Encoding") is None


def test_a_range_of_a_sidecar_is_a_range_of_the_compressed_bytes(fetch, sidecars):
    got = fetch_text(fetch, sidecars, "br", None, ("Range", "bytes=0-5"))
    assert (got.status, got.body, got.header("Content-Encoding")) == (206, b"BROTLI", "br")
    assert got.header("Content-Range") == "bytes 0-5/12"


def test_not_modified_for_a_sidecar_drops_the_encoding(fetch, sidecars):
    etag = fetch_text(fetch, sidecars, "br").header("ETag")
    got = fetch_text(fetch, sidecars, "br", None, ("If-None-Match", etag))
    assert got.status == 304 and got.header("Content-Encoding") is None


def test_an_unsatisfiable_range_of_a_sidecar_drops_the_encoding(fetch, sidecars):
    got = fetch_text(fetch, sidecars, "br", None, ("Range", "bytes=100-"))
    assert got.status == 416 and got.header("Content-Encoding") is None


def test_a_sidecar_may_have_its_own_etag_file(fetch, sidecars):
    write(sidecars / "text.txt.gz.etag", '"gz-etag"')
    write(sidecars / "text.txt.etag", '"plain-etag"')
    config = {**ALL, "etag_file_extensions": [".etag"]}
    assert fetch_text(fetch, sidecars, "gzip", config).header("ETag") == '"gz-etag"'
    assert fetch_text(fetch, sidecars, None, config).header("ETag") == '"plain-etag"'


def test_an_index_file_has_sidecars_too(fetch, site):
    write(site / "docs" / "index.html.gz", gzip.compress(b"<h1>docs</h1>\n"))
    got = fetch({"root": str(site), **ALL}, "/docs/", headers=[("Accept-Encoding", "gzip")])
    assert got.header("Content-Encoding") == "gzip"
    assert got.header("Content-Type") == "text/html; charset=utf-8"


@pytest.mark.parametrize("header, order, expected", [
    ("", (), []),
    ("gzip, deflate, br", (), ["gzip", "deflate", "br"]),
    ("gzip, deflate, br", ("br", "gzip"), ["br", "gzip", "deflate"]),
    ("gzip;q=0.8, br;q=0.9", ("gzip",), ["br", "gzip"]),
    ("gzip;q=1.5, br;q=0.9", (), ["gzip", "br"]),  # an out-of-range q counts as 1
    ("gzip;Q=0, br", (), ["br"]),
    ("gzip;level=1;q=0, br", (), ["gzip", "br"]),  # only the first parameter is read
    ("gzip;q=0.000001", (), []),
])
def test_accepted_encodings_orders_like_caddy(header, order, expected):
    assert accepted_encodings(header, order) == expected
