"""Directory listings: JSON with Caddy's fields, text, HTML; sorting, paging, hiding, links."""

from __future__ import annotations

import html
import json
import os

import pytest
from fs_helpers import OLD, make_handler, make_request, write

from rws.errors import ConfigError
from rws.handlers.file_server.browse import go_file_mode

JSON = [("Accept", "application/json")]


@pytest.fixture
def listing_root(tmp_path):
    root = tmp_path / "list"
    write(root / "b.txt", "bb", mtime=OLD + 20)
    write(root / "A.txt", "a" * 2000, mtime=OLD + 10)
    write(root / "c.bin", "c" * 10, mtime=OLD + 30)
    write(root / "zdir" / "inner.txt", "i", mtime=OLD)
    os.utime(root / "zdir", (OLD + 5, OLD + 5))
    write(root / "adir" / "x.txt", "x", mtime=OLD)
    os.utime(root / "adir", (OLD + 40, OLD + 40))
    os.utime(root, (OLD, OLD))
    return root


def listing(fetch, root, target="/", headers=None, **browse):
    got = fetch({"root": str(root), "browse": browse}, target, headers=JSON + (headers or []))
    assert got.status == 200, got
    return got, json.loads(got.body)


def names(items):
    return [i["name"] for i in items]


def test_the_json_listing_has_caddys_fields(fetch, listing_root):
    got, items = listing(fetch, listing_root)
    assert got.header("Content-Type") == "application/json; charset=utf-8"
    assert got.body.endswith(b"]\n")
    by_name = {i["name"]: i for i in items}
    assert list(by_name["b.txt"]) == ["name", "size", "url", "mod_time", "mode", "is_dir", "is_symlink"]
    assert by_name["b.txt"] == {"name": "b.txt", "size": 2, "url": "./b.txt", "mod_time": "2020-09-13T12:27:00Z",
                                "mode": (listing_root / "b.txt").stat().st_mode & 0o777,
                                "is_dir": False, "is_symlink": False}
    assert by_name["adir/"]["is_dir"] is True
    assert by_name["adir/"]["url"] == "./adir/"
    assert by_name["adir/"]["mode"] == (1 << 31) | ((listing_root / "adir").stat().st_mode & 0o777)


def test_the_default_order_is_folders_first_then_by_name(fetch, listing_root):
    _, items = listing(fetch, listing_root)
    assert names(items) == ["adir/", "zdir/", "A.txt", "b.txt", "c.bin"]


@pytest.mark.parametrize("query, expected", [
    ("?sort=name", ["A.txt", "adir/", "b.txt", "c.bin", "zdir/"]),
    ("?sort=name&order=desc", ["zdir/", "c.bin", "b.txt", "adir/", "A.txt"]),
    ("?sort=size", ["adir/", "zdir/", "b.txt", "c.bin", "A.txt"]),
    ("?sort=size&order=desc", ["A.txt", "c.bin", "b.txt", "zdir/", "adir/"]),
    ("?sort=time", ["zdir/", "A.txt", "b.txt", "c.bin", "adir/"]),
    ("?sort=time&order=desc", ["adir/", "c.bin", "b.txt", "A.txt", "zdir/"]),
    ("?sort=namedirfirst&order=desc", ["c.bin", "b.txt", "A.txt", "zdir/", "adir/"]),  # Go reverses "folders first" too
])
def test_the_query_sorts_the_listing(fetch, listing_root, query, expected):
    _, items = listing(fetch, listing_root, "/" + query)
    assert names(items) == expected


def test_the_configured_sort_applies_and_the_query_overrides_it(fetch, listing_root):
    _, items = listing(fetch, listing_root, sort=["size", "desc"])
    assert names(items)[0] == "A.txt"
    _, items = listing(fetch, listing_root, "/?sort=name&order=asc", sort=["size", "desc"])
    assert names(items)[0] == "A.txt" and names(items)[1] == "adir/"


def test_a_sort_choice_is_remembered_in_cookies(fetch, listing_root):
    got, _ = listing(fetch, listing_root, "/?sort=time&order=desc")
    assert got.all("Set-Cookie") == ["sort=time; HttpOnly; SameSite=Lax", "order=desc; HttpOnly; SameSite=Lax"]


def test_the_cookies_sort_when_the_query_says_nothing(fetch, listing_root):
    got, items = listing(fetch, listing_root, headers=[("Cookie", "theme=dark; sort=size; order=desc")])
    assert names(items)[0] == "A.txt"
    assert got.all("Set-Cookie") == []


def test_an_unknown_sort_keeps_directory_order_and_sets_no_cookie(fetch, listing_root):
    got, items = listing(fetch, listing_root, "/?sort=colour")
    assert sorted(names(items)) == sorted(["adir/", "zdir/", "A.txt", "b.txt", "c.bin"])
    assert got.all("Set-Cookie") == []


@pytest.mark.parametrize("query, expected", [
    ("?sort=name&limit=2", ["A.txt", "adir/"]),
    ("?sort=name&offset=3", ["c.bin", "zdir/"]),
    ("?sort=name&offset=1&limit=2", ["adir/", "b.txt"]),
    ("?sort=name&offset=9", ["A.txt", "adir/", "b.txt", "c.bin", "zdir/"]),
    ("?sort=name&limit=-1", ["A.txt", "adir/", "b.txt", "c.bin", "zdir/"]),
])
def test_offset_and_limit_page_through_the_listing(fetch, listing_root, query, expected):
    _, items = listing(fetch, listing_root, "/" + query)
    assert names(items) == expected


def test_file_limit_caps_the_entries_read(fetch, listing_root):
    _, items = listing(fetch, listing_root, file_limit=2)
    assert len(items) == 2


def test_hidden_entries_are_left_out(fetch, site):
    got = fetch({"root": str(site), "browse": {}, "hide": [".git", "*.key"]}, "/", headers=JSON)
    listed = names(json.loads(got.body))
    assert ".git/" not in listed and "secret.key" not in listed and "hello.txt" in listed


def test_an_absolute_hide_entry_leaves_that_file_out_of_its_listing(fetch, site):
    got = fetch({"root": str(site), "browse": {}, "hide": [str(site / "hello.txt")]}, "/", headers=JSON)
    assert "hello.txt" not in names(json.loads(got.body))


def test_a_hidden_folder_is_not_listed(fetch_error, site):
    assert fetch_error({"root": str(site), "browse": {}, "hide": ["plain"]}, "/plain/").status == 404


def test_a_folder_with_an_index_file_serves_the_index(fetch, site):
    assert fetch({"root": str(site), "browse": {}}, "/docs/").body == b"<h1>docs</h1>\n"


def test_a_listing_needs_the_trailing_slash(fetch, site):
    got = fetch({"root": str(site), "browse": {}, "canonical_uris": False}, "/plain?x=1")
    assert (got.status, got.header("Location")) == (308, "/plain/?x=1")


def test_a_fully_stripped_path_is_redirected_to_the_slash(fetch, site):
    request = make_request("/static", path="", raw_path="")
    got = fetch({"root": str(site / "plain"), "browse": {}}, request=request)
    assert (got.status, got.header("Location")) == (308, "/static/")


def test_symlinks_are_marked_and_followed(fetch, listing_root, tmp_path):
    write(tmp_path / "target.txt", "t" * 123)
    (tmp_path / "target-dir").mkdir()
    os.symlink(tmp_path / "target.txt", listing_root / "link")
    os.symlink(tmp_path / "target-dir", listing_root / "dirlink")
    os.symlink(tmp_path / "nowhere", listing_root / "broken")
    _, items = listing(fetch, listing_root)
    by_name = {i["name"]: i for i in items}
    assert by_name["link"]["is_symlink"] is True and by_name["link"]["size"] == 123
    assert by_name["link"]["mode"] == (1 << 27) | 0o777
    assert by_name["dirlink/"]["is_dir"] is True and by_name["dirlink/"]["url"] == "./dirlink/"
    assert by_name["broken"]["is_dir"] is False
    assert "symlink_path" not in by_name["link"]


def test_reveal_symlinks_shows_where_they_point(fetch, listing_root, tmp_path):
    os.symlink("../elsewhere.txt", listing_root / "link")
    _, items = listing(fetch, listing_root, reveal_symlinks=True)
    assert {i["name"]: i.get("symlink_path") for i in items}["link"] == "../elsewhere.txt"


@pytest.mark.parametrize("name, url", [
    ("a b.txt", "./a%20b.txt"),
    ("q?.txt", "./q%3F.txt"),
    ("h#.txt", "./h%23.txt"),
    ("c:d.txt", "./c:d.txt"),
    ("p%.txt", "./p%25.txt"),
    ("caf\u00e9.txt", "./caf%C3%A9.txt"),
    ("x$&+,;=@.txt", "./x$&+,;=@.txt"),
    ("(1)!.txt", "./%281%29%21.txt"),
])
def test_entry_urls_are_escaped_like_go(fetch, tmp_path, name, url):
    write(tmp_path / "esc" / name, "x")
    _, items = listing(fetch, tmp_path / "esc")
    assert items[0]["url"] == url and items[0]["name"] == name


def test_json_escapes_html_characters_like_go(fetch, tmp_path):
    write(tmp_path / "esc" / "<b>&.txt", "x")
    got, items = listing(fetch, tmp_path / "esc")
    assert items[0]["name"] == "<b>&.txt"
    assert b"\\u003cb\\u003e\\u0026.txt" in got.body


def test_a_name_that_is_not_utf8_is_listed_with_a_replacement_character(fetch, tmp_path):
    folder = tmp_path / "bytes"
    folder.mkdir()
    with open(os.path.join(os.fsencode(folder), b"bad\xff.txt"), "wb"):
        pass
    _, items = listing(fetch, folder)
    assert items[0]["name"] == "bad\ufffd.txt" and items[0]["url"] == "./bad%FF.txt"


def test_last_modified_is_the_newest_of_the_folder_and_its_entries(fetch, listing_root):
    got, _ = listing(fetch, listing_root)
    assert got.header("Last-Modified") == "Sun, 13 Sep 2020 12:27:20 GMT"  # adir, OLD + 40
    assert got.all("Vary") == ["Accept, Accept-Encoding"]


def test_a_listing_not_modified_since_is_304(fetch, listing_root):
    got = fetch({"root": str(listing_root), "browse": {}}, "/",
                headers=[("If-Modified-Since", "Sun, 13 Sep 2020 12:27:20 GMT")])
    assert (got.status, got.body) == (304, b"")
    got = fetch({"root": str(listing_root), "browse": {}}, "/",
                headers=[("If-Modified-Since", "Sun, 13 Sep 2020 12:27:19 GMT")])
    assert got.status == 200


def test_the_text_listing_is_an_aligned_table(fetch, listing_root):
    got = fetch({"root": str(listing_root), "browse": {}}, "/?sort=name", headers=[("Accept", "text/plain")])
    assert got.header("Content-Type") == "text/plain; charset=utf-8"
    adir, zdir = (_human((listing_root / d).stat().st_size) for d in ("adir", "zdir"))
    assert got.body.decode() == (
        "Name\tSize\tModified\n"
        "----\t----\t--------\n"
        "A.txt\t2.0 KiB\tSeptember 13, 2020 at 12:26:50\n"
        f"adir/\t{adir}\tSeptember 13, 2020 at 12:27:20\n"
        "b.txt\t2 B\tSeptember 13, 2020 at 12:27:00\n"
        "c.bin\t10 B\tSeptember 13, 2020 at 12:27:10\n"
        f"zdir/\t{zdir}\tSeptember 13, 2020 at 12:26:45\n"
    )


def test_text_columns_are_padded_with_tabs_to_the_widest_cell(fetch, tmp_path):
    write(tmp_path / "t" / "a-much-longer-file-name.txt", "x" * 1536)
    write(tmp_path / "t" / "b", "x")
    got = fetch({"root": str(tmp_path / "t"), "browse": {}}, "/?sort=name", headers=[("Accept", "text/plain")])
    lines = got.body.decode().splitlines()
    assert lines[0] == "Name\t\t\t\tSize\tModified"
    assert lines[2].startswith("a-much-longer-file-name.txt\t1.5 KiB\t")
    assert lines[3].startswith("b\t\t\t\t1 B\t")


def _human(size: int) -> str:
    from rws.handlers.file_server.listing_page import human_size

    return human_size(size)


@pytest.mark.parametrize("size, text", [
    (0, "0 B"), (9, "9 B"), (10, "10 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (10 * 1024, "10 KiB"), (10 * 1024 + 600, "11 KiB"), (5 * 1024**3, "5.0 GiB"),
])
def test_human_sizes_match_go_humanize(size, text):
    assert _human(size) == text


def test_the_html_listing_links_every_entry_and_the_parent(fetch, listing_root):
    got = fetch({"root": str(listing_root), "browse": {}}, "/adir/")
    page = got.body.decode()
    assert got.header("Content-Type") == "text/html; charset=utf-8"
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="en">' in page
    assert '<a href="./x.txt">x.txt</a>' in page
    assert '<a href="../">Parent folder</a>' in page
    assert "<title>Index of /adir/</title>" in page
    assert '<li><a href="../">/</a></li><li aria-current="page">adir</li>' in page


def test_the_root_listing_has_no_parent_link(fetch, listing_root):
    page = fetch({"root": str(listing_root), "browse": {}}, "/").body.decode()
    assert "Parent folder" not in page


def test_the_html_listing_escapes_names(fetch, tmp_path):
    write(tmp_path / "esc" / "<img src=x onerror=alert(1)>", "x")
    page = fetch({"root": str(tmp_path / "esc"), "browse": {}}, "/").body.decode()
    assert "<img" not in page
    assert html.escape("<img src=x onerror=alert(1)>") in page


def test_the_html_listing_marks_the_sorted_column(fetch, listing_root):
    page = fetch({"root": str(listing_root), "browse": {}}, "/?sort=size&order=desc").body.decode()
    assert '<th scope="col" class="size" aria-sort="descending"><a href="?sort=size&amp;order=asc">Size</a></th>' in page


def test_a_listing_answers_any_method_like_caddy(fetch, listing_root):
    assert fetch({"root": str(listing_root), "browse": {}}, "/", method="POST").status == 200


def test_a_head_listing_has_no_body(fetch, listing_root):
    got = fetch({"root": str(listing_root), "browse": {}}, "/", method="HEAD")
    assert got.status == 200 and got.body == b"" and int(got.header("Content-Length")) > 0


def test_a_custom_template_file_is_refused_when_the_handler_is_built():
    with pytest.raises(ConfigError) as info:
        make_handler({"browse": {"template_file": "listing.tpl"}})
    assert info.value.path == "browse.template_file"


def test_go_file_mode_bits():
    assert go_file_mode(0o100644) == 0o644
    assert go_file_mode(0o041777) == (1 << 31) | (1 << 20) | 0o777
    assert go_file_mode(0o104755) == (1 << 23) | 0o755
