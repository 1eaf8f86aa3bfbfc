"""The pure config-tree edits behind /config/ and /id/, with the latest Caddy's semantics.

The sequence tables work like caddyserver/caddy's admin_test.go TestUnsyncedConfigAccess:
each row edits the tree left by the row before and states the whole tree afterwards; a row
that fails states its status and leaves the tree as it was.
"""

from __future__ import annotations

import contextlib
import copy
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rws.config import tree
from rws.config.tree import JSON
from rws.errors import AdminError

Row = tuple[str, str, JSON, JSON, int | None]  # method, path, value, whole tree after, error status

CADDY_ROWS: list[Row] = [  # the sequence of admin_test.go's table, with our own keys and values
    ("POST", "", {"name": "site", "hosts": ["h1", "h2", "h3"]}, {"name": "site", "hosts": ["h1", "h2", "h3"]}, None),
    ("POST", "name", "edge", {"name": "edge", "hosts": ["h1", "h2", "h3"]}, None),
    ("POST", "site", {"port": "8080", "mode": "fast"}, {"name": "edge", "site": {"port": "8080", "mode": "fast"}, "hosts": ["h1", "h2", "h3"]}, None),
    ("DELETE", "site/mode", None, {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3"]}, None),
    ("DELETE", "site/mode", None, {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3"]}, 404),
    ("POST", "hosts", "h5", {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3", "h5"]}, None),
    ("PUT", "hosts/3", "h4", {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3", "h4", "h5"]}, None),
    ("DELETE", "hosts/3", None, {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3", "h5"]}, None),
    ("PATCH", "hosts/3", "h4", {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3", "h4"]}, None),
    ("POST", "hosts/...", ["h6", "h7", "h8"], {"name": "edge", "site": {"port": "8080"}, "hosts": ["h1", "h2", "h3", "h4", "h6", "h7", "h8"]}, None),
]

OBJECT_ROWS: list[Row] = [  # starting from {"nul": None, "list": ["a", "b"]}
    ("PUT", "a/b/c", 1, {"nul": None, "list": ["a", "b"], "a": {"b": {"c": 1}}}, None),
    ("PUT", "a/b/c", 2, {"nul": None, "list": ["a", "b"], "a": {"b": {"c": 1}}}, 409),
    ("PATCH", "a/b/d", 2, {"nul": None, "list": ["a", "b"], "a": {"b": {"c": 1}}}, 404),
    ("PATCH", "a/b/c", 2, {"nul": None, "list": ["a", "b"], "a": {"b": {"c": 2}}}, None),
    ("DELETE", "a/b/c", None, {"nul": None, "list": ["a", "b"], "a": {"b": {}}}, None),
    ("POST", "a/x/y", 1, {"nul": None, "list": ["a", "b"], "a": {"b": {}}}, 400),
    ("PUT", "nul/x", 1, {"nul": {"x": 1}, "list": ["a", "b"], "a": {"b": {}}}, None),
    ("POST", "a/b/...", "flat", {"nul": {"x": 1}, "list": ["a", "b"], "a": {"b": "flat"}}, None),
    ("PUT", "a/b/...", "again", {"nul": {"x": 1}, "list": ["a", "b"], "a": {"b": "flat"}}, 409),
    ("DELETE", "a", None, {"nul": {"x": 1}, "list": ["a", "b"]}, None),
]

ARRAY_ROWS: list[Row] = [  # starting from {"list": ["a", "b"]}
    ("POST", "list", ["x"], {"list": ["a", "b", ["x"]]}, None),
    ("DELETE", "list/2", None, {"list": ["a", "b"]}, None),
    ("PUT", "list/2", "c", {"list": ["a", "b", "c"]}, None),
    ("PUT", "list/0", "_", {"list": ["_", "a", "b", "c"]}, None),
    ("PUT", "list/5", "z", {"list": ["_", "a", "b", "c"]}, 400),
    ("PATCH", "list/4", "z", {"list": ["_", "a", "b", "c"]}, 400),
    ("POST", "list/99", "d", {"list": ["_", "a", "b", "c", "d"]}, None),
    ("POST", "list/7/...", ["e"], {"list": ["_", "a", "b", "c", "d", "e"]}, None),
    ("POST", "list/...", "f", {"list": ["_", "a", "b", "c", "d", "e"]}, 400),
    ("DELETE", "list/01", None, {"list": ["_", "a", "b", "c", "d", "e"]}, 400),
    ("PATCH", "list/0", {"k": 1}, {"list": [{"k": 1}, "a", "b", "c", "d", "e"]}, None),
    ("POST", "list/0/k", 2, {"list": [{"k": 2}, "a", "b", "c", "d", "e"]}, None),
    ("PUT", "list/0/m/n", 3, {"list": [{"k": 2, "m": {"n": 3}}, "a", "b", "c", "d", "e"]}, None),
]

ROOT_ROWS: list[Row] = [  # starting from no config at all
    ("PUT", "", {"a": 1}, None, 409),
    ("PATCH", "", {"a": 1}, {"a": 1}, None),
    ("POST", "", [1], [1], None),
    ("POST", "", 2, [1, 2], None),
    ("POST", "...", [3, 4], [1, 2, 3, 4], None),
    ("PUT", "0", 0, [0, 1, 2, 3, 4], None),
    ("PATCH", "4", 5, [0, 1, 2, 3, 5], None),
    ("DELETE", "0", None, [1, 2, 3, 5], None),
    ("DELETE", "", None, None, None),
    ("POST", "/", {"b": 2}, {"b": 2}, None),
]


def run_rows(start: JSON, rows: list[Row]) -> None:
    current = start
    for number, (method, path, value, expected, status) in enumerate(rows):
        if status is None:
            current = tree.apply(current, method, path, value)
        else:
            with pytest.raises(AdminError) as info:
                tree.apply(current, method, path, value)
            assert info.value.status == status, f"row {number}: {info.value.message}"
        assert current == expected, f"row {number}: {method} {path!r}"


def test_edits_follow_caddys_own_table() -> None:
    run_rows(None, CADDY_ROWS)


def test_object_keys_are_created_replaced_and_removed_as_in_caddy() -> None:
    run_rows({"nul": None, "list": ["a", "b"]}, OBJECT_ROWS)


def test_array_elements_are_appended_inserted_replaced_and_removed_as_in_caddy() -> None:
    run_rows({"list": ["a", "b"]}, ARRAY_ROWS)


def test_the_root_behaves_as_a_key_that_always_exists() -> None:
    run_rows(None, ROOT_ROWS)


def test_deleting_an_empty_root_succeeds_and_leaves_no_config() -> None:
    assert tree.apply(None, "DELETE", "", None) is None


def test_a_write_to_an_element_of_a_nested_array_changes_nothing_as_in_caddy() -> None:
    start: JSON = {"grid": [["a", "b"]]}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert tree.apply(start, method, "grid/0/1", "x") == start


# --- errors: status and Caddy's message --------------------------------------------------

START: dict[str, JSON] = {"foo": "bar", "list": ["a", "b"], "obj": {"k": 1}}

ERRORS = [
    ("PUT", "foo", 409, "[/config/foo] key already exists: foo"),
    ("PUT", "", 409, "[/config/] key already exists: config"),
    ("PATCH", "nope", 404, "[/config/nope] key does not exist: nope"),
    ("DELETE", "obj/nope", 404, "[/config/obj/nope] key does not exist: nope"),
    ("POST", "nope/x", 400, "invalid traversal path at: config/nope/x"),
    ("PATCH", "foo/x/y", 400, "invalid traversal path at: config/foo/x"),
    ("PATCH", "list/2", 400, "[/config/list/2] array index out of bounds: 2"),
    ("PUT", "list/3", 400, "[/config/list/3] array index out of bounds: 3"),
    ("DELETE", "list/-1", 400, "[/config/list/-1] array index out of bounds: -1"),
    ("DELETE", "list/01", 400, "[/config/list/01] invalid array index '01': non-canonical array index"),
    ("PATCH", "list/+1", 400, "[/config/list/+1] invalid array index '+1': non-canonical array index"),
    ("PATCH", "list/-0", 400, "[/config/list/-0] invalid array index '-0': non-canonical array index"),
    ("PATCH", "list/x", 400, "[/config/list/x] invalid array index 'x': invalid syntax"),
    ("DELETE", "list//...", 400, "[/config/list//...] invalid array index '': empty index"),
    ("POST", "list/5/k", 400, "[/config/list/5] array index out of bounds: 5"),
    ("POST", "list/01/k", 400, "[/config/list/01] invalid array index '01': non-canonical array index"),
    ("POST", "list/...", 400, "final element is not an array"),
    ("GET", "foo", 405, "method GET not allowed"),
]


@pytest.mark.parametrize(("method", "path", "status", "message"), ERRORS)
def test_a_bad_edit_fails_with_caddys_status_and_message(method: str, path: str, status: int, message: str) -> None:
    with pytest.raises(AdminError) as info:
        tree.apply(START, method, path, "v")
    assert (info.value.status, info.value.message) == (status, message)


@pytest.mark.parametrize(("method", "path", "status", "message"), ERRORS)
def test_a_failed_edit_leaves_its_inputs_untouched(method: str, path: str, status: int, message: str) -> None:
    value: JSON
    before, value = copy.deepcopy(START), {"v": ["x"]}  # not an array, so "..." fails too
    with pytest.raises(AdminError):
        tree.apply(START, method, path, value)
    assert (START, value) == (before, {"v": ["x"]})


# --- reads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", START),
        ("/", START),
        ("foo", "bar"),
        ("obj/k", 1),
        ("obj/k/", 1),
        ("list/1", "b"),
        ("list/...", ["a", "b"]),
        ("nope", None),
        ("obj/nope", None),
    ],
)
def test_get_reads_the_value_at_a_path(path: str, expected: JSON) -> None:
    assert tree.get(START, path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope/x", "invalid traversal path at: config/nope/x"),
        ("foo/x", "invalid traversal path at: config/foo/x"),
        ("list/2", "[/config/list/2] array index out of bounds: 2"),
        ("list/01", "[/config/list/01] invalid array index '01': non-canonical array index"),
        ("list/x/y", "[/config/list/x] invalid array index 'x': invalid syntax"),
    ],
)
def test_get_rejects_a_bad_path_with_400(path: str, message: str) -> None:
    with pytest.raises(AdminError) as info:
        tree.get(START, path)
    assert (info.value.status, info.value.message) == (400, message)


def test_get_reads_an_element_of_a_nested_array() -> None:
    assert tree.get({"grid": [["a", "b"]]}, "grid/0/1") == "b"


# --- values, not objects --------------------------------------------------------------------


def test_apply_copies_only_the_path_it_changes() -> None:
    start: dict[str, Any] = {"apps": {"http": {"servers": {}}, "tls": {"certs": []}}}
    result = tree.apply(start, "PUT", "apps/http/servers/srv0", {"listen": [":80"]})
    assert tree.get(result, "apps/tls") is start["apps"]["tls"]
    assert start == {"apps": {"http": {"servers": {}}, "tls": {"certs": []}}}


def test_the_new_tree_does_not_share_the_written_value() -> None:
    value: dict[str, Any] = {"listen": [":80"]}
    result = tree.apply({}, "POST", "srv0", value)
    value["listen"].append(":443")
    assert result == {"srv0": {"listen": [":80"]}}


def test_canonical_encoding_ignores_key_order_and_whitespace() -> None:
    assert tree.canonical({"b": [1, 2], "a": None}) == b'{"a":null,"b":[1,2]}'
    assert tree.canonical({"a": None, "b": [1, 2]}) == tree.canonical({"b": [1, 2], "a": None})


# --- ETag and If-Match ----------------------------------------------------------------------


def test_an_etag_is_the_quoted_request_path_and_a_hash() -> None:
    assert re.fullmatch(r'"/config/apps/http [0-9a-f]{16}"', tree.etag({"servers": {}}, "apps/http"))
    assert re.fullmatch(r'"/config/ [0-9a-f]{16}"', tree.etag(None))


def test_an_etag_changes_with_the_value_and_the_path_but_not_key_order() -> None:
    assert tree.etag({"a": 1, "b": 2}, "x") == tree.etag({"b": 2, "a": 1}, "x")
    assert tree.etag({"a": 1}, "x") != tree.etag({"a": 2}, "x")
    assert tree.etag({"a": 1}, "x") != tree.etag({"a": 1}, "y")


def test_if_match_accepts_the_etag_of_the_current_value() -> None:
    tree.check_if_match(START, tree.etag(tree.get(START, "obj"), "obj"))
    tree.check_if_match(START, tree.etag(START))


def test_if_match_checks_the_path_in_the_header_not_the_path_written() -> None:
    header = tree.etag(tree.get(START, "obj"), "obj")
    tree.check_if_match(tree.apply(START, "POST", "foo", "changed"), header)
    with pytest.raises(AdminError) as info:
        tree.check_if_match(tree.apply(START, "POST", "obj/k", 2), header)
    assert (info.value.status, info.value.message) == (412, "If-Match header did not match current config hash")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("/config/obj abc", "malformed If-Match header; expect quoted string"),
        ('"', "malformed If-Match header; expect quoted string"),
        ('"/config/obj"', 'malformed If-Match header; expect format "<path> <hash>"'),
        ('"/config/obj a b"', 'malformed If-Match header; expect format "<path> <hash>"'),
    ],
)
def test_a_malformed_if_match_is_a_400(header: str, message: str) -> None:
    with pytest.raises(AdminError) as info:
        tree.check_if_match(START, header)
    assert (info.value.status, info.value.message) == (400, message)


# --- @id ------------------------------------------------------------------------------------

ID_TREE: dict[str, JSON] = {
    "@id": "root",
    "apps": {
        "http": {
            "servers": {
                "srv0": {
                    "@id": 1000000,
                    "routes": [
                        {"@id": "r0", "handle": [{"@id": 7, "body": "hello"}]},
                        [{"@id": 2.5}],
                    ],
                }
            }
        }
    },
}


def test_id_paths_finds_ids_at_the_root_nested_and_in_arrays() -> None:
    assert tree.id_paths(ID_TREE) == {
        "root": "",
        "1e+06": "apps/http/servers/srv0",  # Go's %v of a float64, as Caddy names it
        "r0": "apps/http/servers/srv0/routes/0",
        "7": "apps/http/servers/srv0/routes/0/handle/0",
        "2.5": "apps/http/servers/srv0/routes/1/0",
    }


def test_a_duplicate_id_is_a_400_naming_both_paths() -> None:
    with pytest.raises(AdminError) as info:
        tree.id_paths({"a": {"@id": "x"}, "b": [{"@id": "x"}]})
    assert (info.value.status, info.value.message) == (400, "duplicate ID 'x' found at /config/a and /config/b/0")


@pytest.mark.parametrize("bad", [True, None, ["x"], {"x": 1}])
def test_an_id_that_is_not_a_string_or_number_is_a_400(bad: JSON) -> None:
    with pytest.raises(AdminError) as info:
        tree.id_paths({"a": {"@id": bad}})
    assert (info.value.status, info.value.message) == (400, "/config/a: @id field must be a string or number")


@pytest.mark.parametrize(
    ("id_path", "expected"),
    [
        ("/id/r0", "apps/http/servers/srv0/routes/0"),
        ("/id/r0/", "apps/http/servers/srv0/routes/0"),
        ("/id/r0/handle/0/body", "apps/http/servers/srv0/routes/0/handle/0/body"),
        ("/id/r0/handle/../handle", "apps/http/servers/srv0/routes/0/handle"),
        ("/id/7", "apps/http/servers/srv0/routes/0/handle/0"),
        ("/id/1e+06/routes", "apps/http/servers/srv0/routes"),
        ("/id/root", ""),
        ("/id/root/apps", "apps"),
    ],
)
def test_resolve_id_expands_an_id_and_appends_the_rest(id_path: str, expected: str) -> None:
    assert tree.resolve_id(ID_TREE, id_path) == expected


def test_an_expanded_id_path_reads_the_object_it_names() -> None:
    assert tree.get(ID_TREE, tree.resolve_id(ID_TREE, "/id/7/body")) == "hello"


@pytest.mark.parametrize(
    ("id_path", "status", "message"),
    [
        ("/id/nope/x", 404, "unknown object ID 'nope'"),
        ("/id/1000000", 404, "unknown object ID '1000000'"),
        ("/id/", 400, "request path is missing object ID"),
        ("/id", 400, "request path is missing object ID"),
        ("/config/r0", 400, "malformed object path"),
        ("/id/root/../../stop", 400, "malformed object path: '/id/root/../../stop' leaves /config/"),
    ],
)
def test_resolve_id_rejects_unknown_and_malformed_ids(id_path: str, status: int, message: str) -> None:
    with pytest.raises(AdminError) as info:
        tree.resolve_id(ID_TREE, id_path)
    assert (info.value.status, info.value.message) == (status, message)


# --- properties -----------------------------------------------------------------------------

KEYS = st.text(alphabet="abc@", min_size=1, max_size=3)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3), max_leaves=12
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=4)
SEGMENTS = KEYS | st.sampled_from(["0", "1", "2", "01", "-1", "+1", "", "...", "x/y"])
METHODS = st.sampled_from(["POST", "PUT", "PATCH", "DELETE", "GET", "OPTIONS"])


def object_paths(node: JSON, at: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every path that leads to an object in `node`, through objects and arrays."""
    found = [at] if isinstance(node, dict) else []
    children: list[tuple[str, JSON]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = [(str(i), child) for i, child in enumerate(node)]
    for key, child in children:
        found += object_paths(child, (*at, key))
    return found


@st.composite
def object_keys(draw: st.DrawFn) -> tuple[JSON, str, JSON]:
    """A tree, a path to a key of some object in it (existing or new), and that key's value."""
    start = draw(OBJECTS)
    parent = draw(st.sampled_from(object_paths(start)))
    node = tree.get(start, "/".join(parent))
    assert isinstance(node, dict)
    key = draw(st.sampled_from(sorted(node)) | KEYS) if node else draw(KEYS)
    return start, "/".join((*parent, key)), node.get(key)


@settings(deadline=None)
@given(object_keys(), VALUES)
def test_post_to_an_object_key_sets_it_or_appends_to_the_array_there(case: tuple[JSON, str, JSON], value: JSON) -> None:
    start, path, current = case
    expected = [*current, value] if isinstance(current, list) else value
    assert tree.get(tree.apply(start, "POST", path, value), path) == expected


@settings(deadline=None)
@given(object_keys(), VALUES)
def test_put_patch_and_delete_agree_about_whether_a_key_exists(case: tuple[JSON, str, JSON], value: JSON) -> None:
    start, path, _ = case
    parent, _, key = path.rpartition("/")
    node = tree.get(start, parent)
    assert isinstance(node, dict)
    if key in node:
        assert tree.get(tree.apply(start, "PATCH", path, value), path) == value
        after = tree.get(tree.apply(start, "DELETE", path), parent)
        assert isinstance(after, dict) and key not in after
        with pytest.raises(AdminError, match="key already exists"):
            tree.apply(start, "PUT", path, value)
    else:
        assert tree.get(tree.apply(start, "PUT", path, value), path) == value
        for method in ("PATCH", "DELETE"):
            with pytest.raises(AdminError, match="key does not exist"):
                tree.apply(start, method, path, value)


@settings(deadline=None)
@given(VALUES, METHODS, st.lists(SEGMENTS, max_size=4), VALUES)
def test_apply_and_get_raise_only_admin_errors_and_never_mutate(
    start: JSON, method: str, segments: list[str], value: JSON
) -> None:
    before, value_before = copy.deepcopy(start), copy.deepcopy(value)
    path = "/".join(segments)
    with contextlib.suppress(AdminError):
        tree.apply(start, method, path, value)
    with contextlib.suppress(AdminError):
        tree.get(start, path)
    assert (start, value) == (before, value_before)


@settings(deadline=None)
@given(VALUES, VALUES)
def test_an_etag_changes_exactly_when_the_value_changes(first: JSON, second: JSON) -> None:
    same_json = tree.canonical(first) == tree.canonical(second)
    assert (tree.etag(first, "p") == tree.etag(second, "p")) == same_json


@settings(deadline=None)
@given(VALUES)
def test_a_value_rewritten_unchanged_encodes_the_same(value: JSON) -> None:
    start = {"k": value, "other": 1}
    assert tree.canonical(tree.apply(start, "PATCH", "k", copy.deepcopy(value))) == tree.canonical(start)
