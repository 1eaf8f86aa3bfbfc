"""The request path can never reach a file outside the root, however it is spelled.

Every attack below is sent as a real request to a handler serving `site/`; next to that
root lies `outside.txt`, which must never come back. Statuses are Caddy's: a path that
cleans to something inside the root but missing is 404; one the OS refuses (a NUL byte,
a file used as a folder, a name too long) is 400.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from rws.handlers.file_server.paths import sanitized_path_join

from fs_helpers import make_request, write

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


@pytest.mark.parametrize("root, path, expected", [
    ("", "", "."),
    ("", "/", "."),
    ("", "//", "./"),
    ("", "/foo", "foo"),
    ("", "/foo/", "foo/"),
    ("/a", "/foo/bar", "/a/foo/bar"),
    ("", "/foo/../bar", "bar"),
    ("/a/b", "/foo/../bar", "/a/b/bar"),
    ("/a/b", "/..%2fbar", "/a/b/bar"),
    ("/a/b", "/%2e%2e%2fbar", "/a/b/bar"),
    ("/a/b", "/%2e%2e%2f%2e%2e%2f", "/a/b/"),
    ("/a/b", "/foo%2fbar", "/a/b/foo/bar"),
    ("/a/b", "/foo%252fbar", "/a/b/foo%2fbar"),
    ("/a/b", "/../../../../etc/passwd", "/a/b/etc/passwd"),
    ("/a/b", "/..%5c..%5cetc", "/a/b/..\\..\\etc"),  # a backslash is an ordinary name character
    ("/", "/../x", "/x"),
])
def test_sanitized_path_join_matches_caddy(root, path, expected):
    assert sanitized_path_join(root, unquote(path)) == expected


TRAVERSALS = [
    "/../outside.txt",
    "/../../../../../../outside.txt",
    "/docs/../../outside.txt",
    "/%2e%2e/outside.txt",
    "/%2E%2E/outside.txt",
    "/%2e%2e%2foutside.txt",
    "/..%2foutside.txt",
    "/..%2F..%2F..%2Foutside.txt",
    "/docs/%2e%2e/%2e%2e/outside.txt",
    "/.%2e/outside.txt",
    "/%252e%252e/outside.txt",
    "/..\\outside.txt",
    "/..%5coutside.txt",
    "/%c0%ae%c0%ae/outside.txt",
    "//../outside.txt",
    "/./../outside.txt",
    "http://example.com/../outside.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_attempts_find_nothing_outside_the_root(fetch_error, site, target):
    assert fetch_error({"root": str(site)}, target).status == 404


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_attempts_with_pass_thru_reach_the_next_handler(fetch, site, target):
    got = fetch({"root": str(site), "pass_thru": True}, target)
    assert got.status == 299 and got.body == b"next"


def test_a_file_with_the_outside_files_name_inside_the_root_is_what_gets_served(fetch, site):
    write(site / "outside.txt", "inside")
    assert fetch({"root": str(site)}, "/%2e%2e/outside.txt").body == b"inside"


def test_a_rewritten_path_is_sanitized_too(fetch_error, site):
    request = make_request("/hello.txt", path="/../outside.txt", raw_path="/../outside.txt")
    assert fetch_error({"root": str(site)}, request=request).status == 404


@pytest.mark.parametrize("target", ["/hello.txt%00", "/hello.txt%00.png", "/%00", "/docs/%00/index.html"])
def test_a_nul_byte_is_a_bad_request(fetch_error, site, target):
    assert fetch_error({"root": str(site)}, target).status == 400


def test_a_file_used_as_a_folder_is_a_bad_request(fetch_error, site):
    assert fetch_error({"root": str(site)}, "/hello.txt/x").status == 400


def test_a_name_longer_than_the_system_allows_is_a_bad_request(fetch_error, site):
    assert fetch_error({"root": str(site)}, "/" + "a" * 5000).status == 400


def test_an_index_name_cannot_climb_out_of_the_folder(fetch_error, site):
    error = fetch_error({"root": str(site), "index_names": ["../../outside.txt"], "canonical_uris": False}, "/plain/")
    assert error.status == 404


def test_a_symlink_inside_the_root_is_followed_as_in_caddy(fetch, site, tmp_path):
    os.symlink(tmp_path / "outside.txt", site / "link.txt")
    assert fetch({"root": str(site)}, "/link.txt").body == b"OUTSIDE"


def test_a_symlinked_folder_cannot_be_used_to_climb_with_dot_dot(fetch_error, site, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", site / "away")
    assert fetch_error({"root": str(site)}, "/away/../outside.txt").status == 404
    assert fetch_error({"root": str(site)}, "/away/%2e%2e/outside.txt").status == 404


def test_a_symlink_loop_is_a_bad_request(fetch_error, site):
    os.symlink(site / "loop", site / "loop")
    assert fetch_error({"root": str(site)}, "/loop").status == 400


def test_a_fifo_is_never_opened_for_serving(fetch_error, site):
    os.mkfifo(site / "pipe")
    assert fetch_error({"root": str(site)}, "/pipe").status == 404


_FORBIDDEN_CHECK = """
import asyncio, json, sys
from fs_helpers import make_handler, make_request, run
from rws.errors import HttpError
config, target = json.loads(sys.argv[1]), sys.argv[2]
try:
    asyncio.run(run(make_handler(config), make_request(target)))
except HttpError as exc:
    print(exc.status)
"""


def _status_as_unprivileged_user(root: Path, target: str, **config: object) -> int:
    """Run the handler in a child process that is subject to file modes: when the tests run
    as root, the child loses the capabilities that let root read any file (setpriv)."""
    command = [sys.executable, "-c", _FORBIDDEN_CHECK, json.dumps({"root": str(root), **config}), target]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout)


def test_an_unreadable_file_is_forbidden(site):
    (site / "hello.txt").chmod(0)
    assert _status_as_unprivileged_user(site, "/hello.txt") == 403


def test_an_unreadable_folder_is_forbidden(site):
    (site / "docs").chmod(0)
    try:
        assert _status_as_unprivileged_user(site, "/docs/guide.txt") == 403
    finally:
        (site / "docs").chmod(0o755)


def test_an_unreadable_folder_is_not_listed(site):
    (site / "plain").chmod(0)
    try:
        assert _status_as_unprivileged_user(site, "/plain/", browse={}) == 403
    finally:
        (site / "plain").chmod(0o755)
