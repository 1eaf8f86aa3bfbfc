"""`encode`: the encode handler and its gzip, zstd and br encoders."""

from __future__ import annotations

import pytest

from rws.config.decode import Module, decode, decode_module
from rws.errors import ConfigError
from rws.handlers.encode import EncodeConfig


@pytest.mark.parametrize("text", [
    ":80\nencode gzip\n",
    ":80\nencode zstd gzip\n",
    ":80\nencode /x gzip zstd {\n\tminimum_length 256\n}\n",
    ":80\nencode {\n\tgzip 5\n\tzstd\n}\n",
    ":80\nencode zstd {\n\tmatch {\n\t\tstatus 2xx 404\n\t\theader Content-Type text/*\n\t\theader content-type application/json*\n\t}\n}\n",
    ":80\nencode gzip {\n\tmatch header Content-Type text/*\n}\n",
    ":80\nencode gzip {\n\tmatch status 200\n}\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_no_formats_means_zstd_then_gzip(site_handlers):
    [(handler, _)] = site_handlers(":80\nencode\n")
    assert handler == {"handler": "encode", "encodings": {"zstd": {}, "gzip": {}}, "prefer": ["zstd", "gzip"]}


def test_br_is_an_encoding(site_handlers):
    [(handler, _)] = site_handlers(":80\nencode br gzip\n")
    assert handler["encodings"] == {"br": {}, "gzip": {}}
    assert handler["prefer"] == ["br", "gzip"]


def test_br_quality_and_window(site_handlers):
    [(handler, _)] = site_handlers(":80\nencode {\n\tbr 5 22\n}\n")
    assert handler["encodings"] == {"br": {"quality": 5, "lgwin": 22}}


def test_block_encoders_come_before_line_encoders_in_preference(site_handlers):
    [(handler, _)] = site_handlers(":80\nencode gzip {\n\tzstd\n}\n")
    assert handler["prefer"] == ["zstd", "gzip"]


def test_zstd_level_and_checksum(site_handlers):
    [(handler, _)] = site_handlers(":80\nencode {\n\tzstd {\n\t\tlevel Best\n\t\tdisable_checksum\n\t}\n}\n")
    assert handler["encodings"] == {"zstd": {"level": "Best", "checksum": False}}


@pytest.mark.parametrize("text, line, message", [
    (":80\nencode gzip lzma\n", 2, "unrecognized encoding 'lzma'"),
    (":80\nencode gzip gzip\n", 2, "encoding 'gzip' is given more than once"),
    (":80\nencode gzip {\n\tgzip 5\n}\n", 2, "encoding 'gzip' is given more than once"),
    (":80\nencode {\n\tgzp\n}\n", 3, "unrecognized subdirective 'gzp' (did you mean 'gzip'?)"),
    (":80\nencode gzip {\n\tminimum_length x\n}\n", 3, "bad minimum_length 'x': expected an integer"),
    (":80\nencode gzip {\n\tminimum_length\n}\n", 3, "wrong argument count"),
    (":80\nencode {\n\tgzip x\n}\n", 3, "bad gzip level 'x': expected an integer"),
    (":80\nencode {\n\tgzip 42\n}\n", 3, "quality too high; must be <= 9"),
    (":80\nencode {\n\tgzip 1 2\n}\n", 3, "wrong argument count"),
    (":80\nencode {\n\tzstd fastest best\n}\n", 3, "wrong argument count"),
    (":80\nencode {\n\tzstd turbo\n}\n", 3, "unexpected compression level, use one of 'fastest', 'default', 'better', 'best'"),
    (":80\nencode {\n\tzstd best {\n\t\tlevel fastest\n\t}\n}\n", 4, "compression level already specified"),
    (":80\nencode {\n\tzstd {\n\t\tchecksum\n\t}\n}\n", 4, "unrecognized subdirective 'checksum'"),
    (":80\nencode {\n\tbr 12\n}\n", 3, "br quality must be from 0 to 11"),
    (":80\nencode {\n\tbr 5 30\n}\n", 3, "br window size (lgwin) must be from 10 to 24"),
    (":80\nencode gzip {\n\tmatch {\n\t\tstatus abc\n\t}\n}\n", 4, "bad status value 'abc'"),
    (":80\nencode gzip {\n\tmatch {\n\t\tfoo bar\n\t}\n}\n", 4, "unrecognized response matcher 'foo'"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


def test_config_decodes_encoders():
    value = {"handler": "encode", "encodings": {"gzip": {"level": 5}, "zstd": {"level": "better", "checksum": False}, "br": {"quality": 4}},
             "prefer": ["br", "zstd", "gzip"], "minimum_length": 100, "match": {"status_code": [2], "headers": {"Content-Type": ["text/*"]}}}
    decoded = decode_module(Module("http.handlers", "handler"), value, "h")
    assert decoded.config.encodings["zstd"].config.checksum is False


@pytest.mark.parametrize("value, path", [
    ({"encodings": {"lzma": {}}}, "h.encodings.lzma"),
    ({"encodings": {"gzip": {"level": 10}}}, "h.encodings.gzip.level"),
    ({"encodings": {"zstd": {"level": "turbo"}}}, "h.encodings.zstd.level"),
    ({"encodings": {"br": {"lgwin": 5}}}, "h.encodings.br.lgwin"),
    ({"encodings": {"gzip": {}}, "prefer": ["zstd"]}, "h.prefer[0]"),
    ({"encodings": {"gzip": {}}, "prefer": ["gzip", "gzip"]}, "h.prefer[1]"),
    ({"match": {"status_code": ["2xx"]}}, "h.match.status_code[0]"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(EncodeConfig, value, "h")
    assert info.value.path == path
