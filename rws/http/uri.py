"""URI paths and queries as Go's net/url and path packages, and Caddy, handle them.

- Escaping: `escape_path` is Go's `URL.EscapedPath` (an encoded slash stays encoded when
  `escaped_path` is handed the raw form), `query_escape` is `url.QueryEscape`.
- Unescaping: `decode_path` is the lenient decoding a request's path gets; `path_unescape`
  (and `path_unescape_bytes`) and the query parsers are strict like Go's and refuse a
  malformed `%` escape.
- Queries: `query_values` is `url.ParseQuery` (with whether all of it parsed),
  `parse_query` keeps what parses, `encode_query` is `url.Values.Encode`.
- Cleaning: `go_clean` is Go's `path.Clean`; `clean_path` is Caddy's `CleanPath`, which
  keeps a trailing slash and can keep repeated slashes; `trim_path_prefix` is Caddy's
  comparison of an escaped path with a prefix.
"""

from __future__ import annotations

from urllib.parse import quote, quote_plus, unquote, unquote_plus

_PATH_SAFE = "$&+,/:;=@"  # with letters, digits and `-._~`: what Go leaves unescaped in a path
_VALID_IN_RAW_PATH = frozenset("!$&'()*+,;=:@[]%-._~/" "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")

# --- escaping and unescaping paths ----------------------------------------------------------


def escape_path(path: str) -> str:
    """The canonical escaped form of a decoded path (Go's `URL.EscapedPath` with no raw path)."""
    if path == "*":
        return "*"
    return escape_path_text(path)


def escape_path_text(text: str) -> str:
    """Go's escaping in path mode: what `escape_path` does to any path but `*`."""
    return quote(text, safe=_PATH_SAFE, errors="replace")


def decode_path(raw_path: str) -> str:
    """The percent-decoded form of an escaped path (Go's url.PathUnescape, lenient)."""
    return unquote(raw_path) if "%" in raw_path else raw_path


def _valid_escapes(text: str) -> bool:
    i = text.find("%")
    while i >= 0:
        if i + 2 >= len(text) or text[i + 1] not in _HEX or text[i + 2] not in _HEX:
            return False
        i = text.find("%", i + 3)
    return True


def path_unescape(raw: str) -> str | None:
    """The decoded form of an escaped path, or None when it has a malformed `%` escape."""
    if "%" not in raw:
        return raw
    return unquote(raw) if _valid_escapes(raw) else None


def path_unescape_bytes(raw: bytes) -> bytes | None:
    """Go's url.PathUnescape on bytes; None for a malformed escape."""
    if b"%" not in raw:
        return raw
    out = bytearray()
    i = 0
    while i < len(raw):
        if raw[i] == 0x25:
            pair = raw[i + 1:i + 3]
            if len(pair) < 2 or not all(c in b"0123456789abcdefABCDEF" for c in pair):
                return None
            out.append(int(pair, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def escaped_path(raw: str, path: str) -> str:
    """`raw` when it is a valid escaping of `path`, else the canonical escaping of `path`."""
    if raw and all(c in _VALID_IN_RAW_PATH for c in raw) and path_unescape(raw) == path:
        return raw
    return escape_path(path)


# --- queries --------------------------------------------------------------------------------


def query_escape(text: str) -> str:
    """Go's url.QueryEscape: everything but letters, digits and `-._~` escaped; space is `+`.
    Bytes that were not UTF-8 when the query was parsed are escaped as they came."""
    try:
        return quote_plus(text, safe="", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no parsed byte stands for
        return quote_plus(text, safe="", errors="replace")


def _query_unescape(text: str) -> str | None:
    """Go's url.QueryUnescape (`+` is a space); None for a malformed escape."""
    if "%" in text and not _valid_escapes(text):
        return None
    return unquote_plus(text, errors="surrogateescape")


def query_values(raw: str) -> tuple[dict[str, list[str]], bool]:
    """Go's url.ParseQuery: the values of a raw query, and whether all of it parsed.

    Pairs with a `;` or a bad escape are skipped (and make the result not ok).
    """
    values: dict[str, list[str]] = {}
    ok = True
    for pair in raw.split("&") if raw else ():
        if ";" in pair:
            ok = False
            continue
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key_text, value_text = _query_unescape(key), _query_unescape(value)
        if key_text is None or value_text is None:
            ok = False
            continue
        values.setdefault(key_text, []).append(value_text)
    return values, ok


def parse_query(raw: str) -> dict[str, list[str]]:
    """Go's url.ParseQuery, keeping what parses: pairs with `;` or a bad escape are dropped."""
    return query_values(raw)[0]


def encode_query(values: dict[str, list[str]]) -> str:
    """Go's url.Values.Encode: keys sorted, each value as `key=value`."""
    return "&".join(f"{query_escape(k)}={query_escape(v)}" for k in sorted(values) for v in values[k])


# --- cleaning paths -------------------------------------------------------------------------

# Stands for an empty segment while cleaning; a lone surrogate cannot come from a request.
_EMPTY_SEGMENT = "\udbff"


def go_clean(path: str) -> str:
    """Go's path.Clean: resolve `.` and `..`, merge slashes, drop a trailing slash."""
    if not path:
        return "."
    rooted = path[0] == "/"
    out: list[str] = []
    for segment in path.split("/"):
        if segment == "" or segment == ".":
            continue
        if segment == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(segment)
    text = "/".join(out)
    if rooted:
        return "/" + text
    return text or "."


def _clean_keeping_slash(path: str) -> str:
    cleaned = go_clean(path)
    if cleaned != "/" and path.endswith("/"):
        return cleaned + "/"
    return cleaned


def clean_path(path: str, merge_slashes: bool = True) -> str:
    """Caddy's CleanPath: Go's Clean, but a trailing slash stays, and repeated slashes stay
    unless `merge_slashes` (a `..` then removes one empty segment, as in Caddy)."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path  # already clean: the usual case
    if merge_slashes or "//" not in path:
        return _clean_keeping_slash(path)
    segments = path.split("/")
    for i in range(1, len(segments) - 1):
        if segments[i] == "":
            segments[i] = _EMPTY_SEGMENT
    return _clean_keeping_slash("/".join(segments)).replace(_EMPTY_SEGMENT, "")


def _fold_equal(a: int, b: int) -> bool:
    if a == b:
        return True
    return a < 0x80 and b < 0x80 and chr(a).lower() == chr(b).lower()


def trim_path_prefix(escaped: str, prefix: str) -> str:
    """`escaped` without `prefix`, compared case-insensitively in decoded form, except that
    where `prefix` has a `%` escape the path must have the same escape."""
    path_bytes = escaped.encode("utf-8", "surrogatepass")
    prefix_bytes = prefix.encode("utf-8", "surrogatepass")
    i = j = 0
    while i < len(path_bytes) and j < len(prefix_bytes):
        byte = path_bytes[i]
        if byte == 0x25 and prefix_bytes[j] != 0x25 and len(path_bytes) >= i + 3:
            pair = path_bytes[i + 1:i + 3].decode("latin-1")
            if pair[0] not in _HEX or pair[1] not in _HEX:
                return escaped
            byte = int(pair, 16)
            i += 2
        if not _fold_equal(byte, prefix_bytes[j]):
            return escaped
        i += 1
        j += 1
    if j < len(prefix_bytes):
        return escaped
    try:
        return path_bytes[i:].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # the prefix ended inside a character: not a prefix after all
        return escaped


# --- Go's path helpers -----------------------------------------------------------------


def path_dir_file(path: str) -> tuple[str, str]:
    """Go's path.Split: everything up to and including the last "/", and the rest."""
    cut = path.rfind("/") + 1
    return path[:cut], path[cut:]


def path_base(path: str) -> str:
    """Go's path.Base."""
    if not path:
        return "."
    path = path.rstrip("/")
    if not path:
        return "/"
    return path[path.rfind("/") + 1:]


def path_ext(path: str) -> str:
    """Go's path.Ext: the suffix from the last "." of the final element."""
    for i in range(len(path) - 1, -1, -1):
        if path[i] == "/":
            break
        if path[i] == ".":
            return path[i:]
    return ""
