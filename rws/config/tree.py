"""Pure edits of the JSON config tree behind the admin API's /config/ and /id/ endpoints.

This is Caddy's `unsyncedConfigAccess` (admin.go) without the mutation: `apply` returns a
new tree that shares every untouched subtree with the old one, so treat trees as values and
never mutate them. Like Caddy, we walk from a one-key map `{"config": tree}`, which is why
the root behaves as an object key that always exists: `PUT /config/` answers 409, `PATCH`
replaces the tree, `DELETE` leaves `null`, and `POST` appends when the tree is an array.

Paths are what follows `/config/` in the URL ("" is the root). `@id` paths use the same
form. Messages copy Caddy's, which name the request path as `/config/...`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import posixpath
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeAlias

from rws.errors import AdminError

JSON: TypeAlias = "None | bool | int | float | str | list[JSON] | dict[str, JSON]"

_ROOT = "config"
_ID_KEY = "@id"
_SPREAD = "..."
_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class _Edit:
    method: str
    value: JSON
    spread: bool  # the path ended in "...": POST appends every element of `value`
    url: str  # the request path, for messages
    parts: tuple[str, ...]  # starts with "config", the key of the tree in the wrapper

    @property
    def last(self) -> int:
        return len(self.parts) - 1


def canonical(tree: JSON) -> bytes:
    """The JSON encoding two trees share exactly when they are equal as JSON."""
    return json.dumps(tree, sort_keys=True, separators=(",", ":")).encode("ascii")


def etag(value: JSON, path: str = "") -> str:
    """Caddy's ETag shape, `"<request path> <16 hex digits>"`, for the value read at `path`."""
    return f'"/config/{path} {_hash(value)}"'


def check_if_match(tree: JSON, if_match: str) -> None:
    """Raise unless `if_match` names a path whose current value still has the quoted hash.

    As in Caddy's changeConfig, the value is re-read at the path inside the header, which
    may differ from the path being written.
    """
    if len(if_match) < 2 or if_match[0] != '"' or if_match[-1] != '"':
        raise AdminError(400, "malformed If-Match header; expect quoted string")
    fields = if_match[1:-1].split()
    if len(fields) != 2:
        raise AdminError(400, 'malformed If-Match header; expect format "<path> <hash>"')
    url, expected = fields
    parts, _ = _split(url)
    if _hash(_read({_ROOT: tree}, parts, url)) != expected:
        raise AdminError(412, "If-Match header did not match current config hash")


def get(tree: JSON, path: str) -> JSON:
    """The value at `path`; a missing final key reads as `None` (Caddy answers `null`)."""
    url = "/config/" + path
    parts, _ = _split(url)
    return _read({_ROOT: tree}, parts, url)


def apply(tree: JSON, method: str, path: str, value: JSON | None = None) -> JSON:
    """The tree after `method` at `path` with `value`; `tree` itself is left untouched."""
    if method not in _METHODS:
        raise AdminError(405, f"method {method} not allowed")
    url = "/config/" + path
    parts, spread = _split(url)
    edit = _Edit(method, copy.deepcopy(value), spread, url, parts)
    return _edit_object({_ROOT: tree}, 0, edit).get(_ROOT)


def id_paths(tree: JSON) -> dict[str, str]:
    """Every `@id` in the tree and the path of the object that carries it."""
    index: dict[str, str] = {}
    _index_ids(tree, (), index)
    return index


def resolve_id(tree: JSON, id_path: str) -> str:
    """The config path that `/id/<id>/rest...` stands for."""
    parts = id_path.split("/")
    if len(parts) < 3 or parts[2] == "":
        raise AdminError(400, "request path is missing object ID")
    if parts[0] != "" or parts[1] != "id":
        raise AdminError(400, "malformed object path")
    expanded = id_paths(tree).get(parts[2])
    if expanded is None:
        raise AdminError(404, f"unknown object ID '{parts[2]}'")
    # Caddy joins with path.Join, which drops empty segments and resolves "..".
    full = posixpath.normpath("/".join(["/config", expanded, *parts[3:]]))
    if full == "/config":
        return ""
    if not full.startswith("/config/"):
        raise AdminError(400, f"malformed object path: {id_path!r} leaves /config/")
    return full.removeprefix("/config/")


def _hash(value: JSON) -> str:
    return hashlib.blake2b(canonical(value) + b"\n", digest_size=8).hexdigest()


def _split(url: str) -> tuple[tuple[str, ...], bool]:
    parts = url.strip("/").split("/")
    if parts[-1] == _SPREAD:
        return tuple(parts[:-1]), True
    return tuple(parts), False


def _read(node: JSON, parts: tuple[str, ...], url: str) -> JSON:
    """Caddy's traversal loop for GET."""
    last = len(parts) - 1
    for i, part in enumerate(parts):
        if isinstance(node, dict):
            child = node.get(part)
            if i == last - 1 and isinstance(child, list):
                return child[_target_index(child, parts[-1], "GET", url)]
            if i == last:
                return child
            node = child
        elif isinstance(node, list):
            node = node[_step_index(node, parts, i)]
        else:
            raise _traversal_error(parts, i)
    return node  # the path ended on an element of an array inside an array


def _edit(node: JSON, i: int, edit: _Edit) -> JSON:
    """The new version of `node`, reached by `edit.parts[:i]`, with the edit made below it."""
    if isinstance(node, dict):
        return _edit_object(node, i, edit)
    if isinstance(node, list):
        index = _step_index(node, edit.parts, i)
        if i == edit.last:
            # Caddy steps onto the element of an array inside an array, then stops:
            # a write there succeeds and changes nothing.
            return node
        return [*node[:index], _edit(node[index], i + 1, edit), *node[index + 1 :]]
    raise _traversal_error(edit.parts, i)


def _edit_object(node: dict[str, JSON], i: int, edit: _Edit) -> dict[str, JSON]:
    part = edit.parts[i]
    child = node.get(part)
    if i == edit.last - 1 and isinstance(child, list):
        return {**node, part: _edit_array(child, edit)}
    if i == edit.last:
        return _edit_key(node, part, edit)
    if child is None and edit.method == "PUT":
        child = {}  # PUT creates missing (or null) objects on its way down
    return {**node, part: _edit(child, i + 1, edit)}


def _edit_array(array: list[JSON], edit: _Edit) -> list[JSON]:
    """An edit whose last segment indexes `array`; POST ignores that segment and appends."""
    if edit.method == "POST":
        return [*array, *_appended(edit)]
    index = _target_index(array, edit.parts[-1], edit.method, edit.url)
    if edit.method == "PUT":
        return [*array[:index], edit.value, *array[index:]]
    if edit.method == "PATCH":
        return [*array[:index], edit.value, *array[index + 1 :]]
    return [*array[:index], *array[index + 1 :]]


def _edit_key(obj: dict[str, JSON], key: str, edit: _Edit) -> dict[str, JSON]:
    """An edit whose last segment is a key of `obj`."""
    if edit.method == "POST":
        current = obj.get(key)
        # POST appends to an array it lands on, and otherwise sets (ignoring "...").
        new = [*current, *_appended(edit)] if isinstance(current, list) else edit.value
        return {**obj, key: new}
    exists = key in obj
    if edit.method == "PUT" and exists:
        raise AdminError(409, f"[{edit.url}] key already exists: {key}")
    if edit.method != "PUT" and not exists:
        raise AdminError(404, f"[{edit.url}] key does not exist: {key}")
    if edit.method == "DELETE":
        return {k: v for k, v in obj.items() if k != key}
    return {**obj, key: edit.value}


def _appended(edit: _Edit) -> list[JSON]:
    if not edit.spread:
        return [edit.value]
    if not isinstance(edit.value, list):
        raise AdminError(400, "final element is not an array")
    return edit.value


def _target_index(array: list[JSON], text: str, method: str, url: str) -> int:
    """The index an edit or read addresses; PUT may also name the end of the array."""
    index = _parse_index(text, url)
    limit = len(array) if method == "PUT" else len(array) - 1
    if not 0 <= index <= limit:
        raise AdminError(400, f"[{url}] array index out of bounds: {text}")
    return index


def _step_index(array: list[JSON], parts: tuple[str, ...], i: int) -> int:
    """The index of the element a path passes through on its way down."""
    where = "/" + "/".join(parts[: i + 1])
    index = _parse_index(parts[i], where)
    if not 0 <= index < len(array):
        raise AdminError(400, f"[{where}] array index out of bounds: {parts[i]}")
    return index


def _parse_index(text: str, where: str) -> int:
    """A canonical decimal index, as Caddy >= 2.11.3 requires ("01", "+1", "-0" are not)."""
    if text == "":
        reason = "empty index"
    else:
        try:
            index = int(text)
        except ValueError:
            reason = "invalid syntax"
        else:
            if str(index) == text:
                return index
            reason = "non-canonical array index"
    raise AdminError(400, f"[{where}] invalid array index '{text}': {reason}")


def _traversal_error(parts: tuple[str, ...], i: int) -> AdminError:
    return AdminError(400, f"invalid traversal path at: {'/'.join(parts[: i + 1])}")


def _index_ids(node: JSON, at: tuple[str, ...], index: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key, child in node.items():
            if key == _ID_KEY:
                _add_id(index, child, "/".join(at))
            else:
                _index_ids(child, (*at, key), index)
    elif isinstance(node, list):
        for position, child in enumerate(node):
            _index_ids(child, (*at, str(position)), index)


def _add_id(index: dict[str, str], value: JSON, path: str) -> None:
    where = posixpath.join("/config", path).rstrip("/")
    if isinstance(value, str):
        name = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and _is_finite(value):
        name = _go_number(float(value))
    else:
        raise AdminError(400, f"{where}: {_ID_KEY} field must be a string or number")
    if name in index:
        first = posixpath.join("/config", index[name]).rstrip("/")
        raise AdminError(400, f"duplicate ID '{name}' found at {first} and {where}")
    index[name] = path


def _is_finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an int too large for a float64, which Go's JSON rejects
        return False


def _go_number(number: float) -> str:
    """How Go's %v prints a float64, which is how Caddy names a numeric @id: 1e6 is "1e+06"."""
    shortest = Decimal(repr(number)).normalize()
    mantissa, exponent = format(shortest, "E").split("E")
    if -4 <= int(exponent) < 6:
        return format(shortest, "f")
    return f"{mantissa}e{int(exponent):+03d}"
