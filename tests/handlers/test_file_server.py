"""`file_server`: the file server's directive, its hidden config files, and its config classes."""

from __future__ import annotations

import pytest

from rws.config.decode import Module, decode, decode_module
from rws.errors import ConfigError
from rws.handlers.file_server import FileServerConfig, clean_path, file_hidden, go_glob_match


@pytest.mark.parametrize("text", [
    ":80\nfile_server\n",
    ":80\nfile_server browse\n",
    ":80\nfile_server /static/* {\n\troot /srv\n\thide .git *.bak\n\tindex index.htm default.html\n}\n",
    ":80\nfile_server {\n\tbrowse /tpl.html\n\tprecompressed gzip br\n\tstatus 404\n\tdisable_canonical_uris\n\tpass_thru\n}\n",
    ":80\nfile_server {\n\thide Caddyfile\n}\n",
    ":80\nfile_server {\n\thide ./Caddyfile\n}\n",
    ":80\nfile_server {\n\thide *file\n}\n",
    ":80\nfile_server {\n\thide Cadd[xy]file\n}\n",
    ":80\nfile_server {\n\thide Cadd?file\n}\n",
    ":80\nfile_server {\n\thide /tmp\n}\n",
    ":80\nfile_server {\n\troot {http.vars.site}\n\tstatus {http.error.status_code}\n}\n",
    ":80\nroot * /srv\nfile_server\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


@pytest.mark.parametrize("filename", ["Caddyfile", "./Caddyfile", "conf/Caddyfile"])
def test_the_config_file_is_hidden_as_caddy_writes_it(same_as_caddy, tmp_path, filename):
    (tmp_path / "conf").mkdir()
    same_as_caddy(":80\nfile_server\n", filename)


def test_an_absolute_config_path_is_hidden_as_given(same_as_caddy, tmp_path):
    same_as_caddy(":80\nfile_server\n", str(tmp_path / "Caddyfile"))


def handler_of(site_handlers, body):
    [(handler, _)] = site_handlers(":80\n" + body, "Rwsfile")
    return handler


def test_hide_lines_accumulate_and_the_rwsfile_comes_last(site_handlers):
    handler = handler_of(site_handlers, "file_server {\n\thide a\n\thide b c\n}\n")
    assert handler["hide"] == ["a", "b", "c", "./Rwsfile"]


def test_browse_block_options(site_handlers):
    handler = handler_of(site_handlers, "file_server {\n\tbrowse {\n\t\treveal_symlinks\n\t\tsort size desc\n\t\tfile_limit 4000\n\t}\n}\n")
    assert handler["browse"] == {"reveal_symlinks": True, "sort": ["size", "desc"], "file_limit": 4000}


def test_precompressed_without_formats_means_br_zstd_gzip(site_handlers):
    handler = handler_of(site_handlers, "file_server {\n\tprecompressed\n}\n")
    assert handler["precompressed"] == {"br": {}, "zstd": {}, "gzip": {}}
    assert handler["precompressed_order"] == ["br", "zstd", "gzip"]


def test_fs_and_etag_file_extensions(site_handlers):
    handler = handler_of(site_handlers, "file_server {\n\tfs assets\n\tetag_file_extensions .etag .sha256\n}\n")
    assert handler["fs"] == "assets"
    assert handler["etag_file_extensions"] == [".etag", ".sha256"]


@pytest.mark.parametrize("text, line, message", [
    (":80\nfile_server x\n", 2, "wrong argument count or unexpected line ending after 'x'"),
    (":80\nfile_server browse x\n", 2, "wrong argument count"),
    (":80\nfile_server {\n\thid x\n}\n", 3, "unrecognized subdirective 'hid' (did you mean 'hide'?)"),
    (":80\nfile_server {\n\troot\n}\n", 3, "wrong argument count or unexpected line ending after 'root'"),
    (":80\nfile_server {\n\troot a b\n}\n", 3, "wrong argument count"),
    (":80\nfile_server {\n\thide\n}\n", 3, "wrong argument count"),
    (":80\nfile_server {\n\tindex\n}\n", 3, "wrong argument count"),
    (":80\nfile_server {\n\tfs a\n\tfs b\n}\n", 4, "file system already specified"),
    (":80\nfile_server {\n\tprecompressed gzip lzma\n}\n", 3, "unrecognized precompressed format 'lzma'"),
    (":80\nfile_server browse {\n\tbrowse\n}\n", 3, "browsing is already configured"),
    (":80\nfile_server {\n\tbrowse {\n\t\tsort bigness\n\t}\n}\n", 4, "unknown sort option 'bigness'"),
    (":80\nfile_server {\n\tbrowse {\n\t\tsort desc size\n\t}\n}\n", 4, "the first option must be one of the following"),
    (":80\nfile_server {\n\tbrowse {\n\t\tfile_limit many\n\t}\n}\n", 4, "file_limit should have an integer value"),
    (":80\nfile_server {\n\tbrowse {\n\t\tshow_hidden\n\t}\n}\n", 4, "unrecognized subdirective 'show_hidden'"),
    (":80\nfile_server {\n\tstatus abc\n}\n", 3, "bad status code 'abc'"),
    (":80\nfile_server {\n\tpass_thru yes\n}\n", 3, "wrong argument count"),
    (":80\nfile_server {\n\tetag_file_extensions\n}\n", 3, "wrong argument count"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


@pytest.mark.parametrize("pattern, name, expected", [
    ("*.bak", "a.bak", True),
    ("*.bak", "dir/a.bak", False),  # `*` does not cross a separator
    ("a?c", "abc", True),
    ("[a-c]x", "bx", True),
    ("[^a-c]x", "dx", True),
    ("[^a-c]x", "ax", False),
    ("\\*", "*", True),
    ("[", "[", False),  # malformed: matches nothing
    ("a\\", "a", False),
])
def test_go_glob_match(pattern, name, expected):
    assert go_glob_match(pattern, name) is expected


def test_clean_path_follows_go():
    assert clean_path("./Caddyfile") == "Caddyfile"
    assert clean_path("//x//y/../z") == "/x/z"
    assert clean_path("") == "."


def test_file_hidden_compares_components_and_prefixes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert file_hidden("conf/Rwsfile", [".git", "conf"])
    assert file_hidden("/srv/site/Rwsfile", ["/srv/site"])
    assert not file_hidden("/srv/sitex/Rwsfile", ["/srv/site"])
    assert not file_hidden("Rwsfile", [])


def test_config_decodes_precompressed_modules():
    value = {"handler": "file_server", "precompressed": {"gzip": {"level": 5}, "zstd": {}, "br": {}},
             "precompressed_order": ["br", "zstd", "gzip"], "canonical_uris": False, "status_code": 404}
    decoded = decode_module(Module("http.handlers", "handler"), value, "h")
    assert decoded.config.precompressed["gzip"].config.level == 5
    assert decoded.config.canonical_uris is False


@pytest.mark.parametrize("value, path", [
    ({"precompressed": {"lzma": {}}}, "h.precompressed.lzma"),
    ({"precompressed": {"br": {}}, "precompressed_order": ["gzip"]}, "h.precompressed_order[0]"),
    ({"browse": {"sort": ["desc"]}}, "h.browse.sort"),
    ({"status_code": "x"}, "h.status_code"),
    ({"hide": "x"}, "h.hide"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(FileServerConfig, value, "h")
    assert info.value.path == path
