"""Placeholders: `{http.request.host}` and friends, expanded per request.

A string from the config is compiled once (`compile_template`) into literal parts and
placeholder keys, scanned exactly as Caddy's replacer scans it; `template.render(request)`
looks each key up at request time. Unknown placeholders become "" by default (Caddy's
ReplaceAll) or stay as written with `keep_unknown=True` (ReplaceKnown: response bodies,
header values, error messages). `\\{` and `\\}` are literal braces. A text with more than
100 unclosed `{` renders as "", as Caddy's replacer gives up on it.

Lookups go through, in order: values set on the request (`request.values`: regexp
captures, error fields, file matcher results, proxy values), the HTTP provider (request
data, `rws.http.request_placeholders`) and the global provider (`env.*`, `system.*`,
`time.*`, `file.*`). A provider is found through an exact-key table first, then by
prefix; the choice is remembered per key, so a render costs one dict lookup per
placeholder once a key has been seen.

`{http.request.body}` needs the body, which is read asynchronously: a handler that renders
a template for which `template.needs_body` is true calls `await prepare(request, template)`
first (cheap otherwise). That buffers the body once per request into
`request.values["http.request.body"]` and replaces `request.body` with a `BufferedBody`
holding the same bytes, so it can still be read downstream. Rendered without
`prepare`, the body placeholders are "".
"""

from __future__ import annotations

import functools
import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

from rws.errors import HttpError
from rws.http.message import BufferedBody, Request

BODY_KEY = "http.request.body"
BODY_KEYS = frozenset({BODY_KEY, "http.request.body_base64"})
MAX_UNCLOSED = 100


# --- values as text --------------------------------------------------------------------------


def to_string(value: Any) -> str:
    """A placeholder value as text, formatted as Caddy formats it (Go's `caddy.ToString`)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        return go_float(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, timedelta):
        return go_duration((value.days * 86400 + value.seconds) * 10**9 + value.microseconds * 1000)
    if isinstance(value, datetime):
        return go_time(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(to_string(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{to_string(value[k])}" for k in sorted(value, key=str)) + "]"
    return str(value)


def go_float(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _fraction(frac: int, digits: int) -> str:
    if not frac:
        return ""
    return "." + str(frac).rjust(digits, "0").rstrip("0")


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): `1h2m3.5s`, `1.5ms`, `250µs`, `0s`."""
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u == 0:
        return "0s"
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 10**6:
        return f"{sign}{u // 1000}{_fraction(u % 1000, 3)}µs"
    if u < 10**9:
        return f"{sign}{u // 10**6}{_fraction(u % 10**6, 6)}ms"
    whole, frac = divmod(u, 10**9)
    text = f"{whole % 60}{_fraction(frac, 9)}s"
    minutes = whole // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes // 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def go_time(moment: datetime) -> str:
    """Go's time.Time.String() without the monotonic clock reading."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    text = moment.strftime("%Y-%m-%d %H:%M:%S") + _fraction(moment.microsecond, 6)
    return f"{text} {moment.strftime('%z')} {moment.tzname() or moment.strftime('%z')}"


# --- templates -------------------------------------------------------------------------------

# A part is a literal string or a placeholder (key, position after its "{" in the text).
Part = str | tuple[str, int]


class Template:
    """A compiled string with placeholders."""

    __slots__ = ("text", "parts", "static", "text_value", "needs_body", "broken")

    def __init__(self, text: str) -> None:
        self.text = text
        parts = _scan(text)
        self.broken = parts is None  # too many unclosed braces: renders as ""
        self.parts: list[Part] = parts or []
        self.static = all(isinstance(p, str) for p in self.parts)
        self.text_value = "".join(p for p in self.parts if isinstance(p, str))  # the text when static
        self.needs_body = any(not isinstance(p, str) and p[0] in BODY_KEYS for p in self.parts)

    def render(self, request: Request, *, keep_unknown: bool = False, empty: str = "",
               transform: Callable[[str], str] | None = None) -> str:
        """The text for this request. `empty` stands in for values that are empty or unknown
        (Caddy's `empty` argument); `transform` is applied to each placeholder's text (Caddy's
        ReplaceFunc, e.g. to glob-escape values)."""
        if self.static:
            return self.text_value
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value, found = lookup(request, part[0])
            if not found and keep_unknown:
                # Caddy keeps the "{" and scans again right after it, so a brace inside an
                # unknown key may still open a known placeholder: finish with that scan.
                out.append("{")
                if not _replace_known(self.text, part[1], lambda key: lookup(request, key), out, empty, transform):
                    return ""
                break
            text = to_string(value)
            if transform is not None:
                text = transform(text)
            out.append(text or empty)
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


@functools.lru_cache(maxsize=4096)
def compile_template(text: str) -> Template:
    return Template(text)


def render(text: str, request: Request, *, keep_unknown: bool = False) -> str:
    return compile_template(text).render(request, keep_unknown=keep_unknown)


def _scan(text: str) -> list[Part] | None:
    """Split `text` the way Caddy's replacer scans it; None when it has too many unclosed braces."""
    if "{" not in text and "}" not in text:
        return [text] if text else []
    pieces: list[Any] = []
    if not _walk(text, 0, pieces, lambda key, position: (key, position)):
        return None
    parts: list[Part] = []
    literal: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            literal.append(piece)
            continue
        if any(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(piece)
    if any(literal):
        parts.append("".join(literal))
    return parts


def _walk(text: str, start: int, out: list[Any], placeholder: Callable[[str, int], Any]) -> bool:
    """Caddy's replacer scan of `text` from `start`: literal text (escapes `\\{` and `\\}`
    undone) goes to `out`, and for each placeholder what `placeholder(key, position after
    its "{")` gives, or, when it gives None, the "{" stays and the scan goes on right after
    it. False when the text has too many unclosed braces."""
    cursor, unclosed, i, n = start, 0, start, len(text)
    while i < n:
        ch = text[i]
        if i > 0 and text[i - 1] == "\\" and ch in "{}":
            out.append(text[cursor:i - 1])
            cursor = i
            i += 1
            continue
        if ch != "{":
            i += 1
            continue
        if unclosed > MAX_UNCLOSED:
            return False
        end = _placeholder_end(text, i)
        if end < 0:
            unclosed += 1
            i += 1
            continue
        replacement = placeholder(text[i + 1:end], i + 1)
        if replacement is None:
            i += 1  # the "{" stays, written with the literal text that follows
            continue
        out.append(text[cursor:i])
        out.append(replacement)
        i = cursor = end + 1
    out.append(text[cursor:])
    return True


def _placeholder_end(text: str, start: int) -> int:
    """The index of the `}` closing the placeholder opened at `start`, or -1.

    An escaped `\\}` does not close it, unless it is the last character of the text.
    """
    end = text.find("}", start)
    while 0 < end < len(text) - 1 and text[end - 1] == "\\":
        end = text.find("}", end + 1)
    return end


def replace_known(text: str, resolve: Callable[[str], tuple[Any, bool]]) -> str:
    """Caddy's ReplaceKnown with any source of values (`resolve(key) -> (value, found)`):
    known placeholders replaced, unknown ones kept, `\\{` and `\\}` unescaped."""
    if "{" not in text and "}" not in text:
        return text
    out: list[str] = []
    return "".join(out) if _replace_known(text, 0, resolve, out, "", None) else ""


def _replace_known(text: str, start: int, resolve: Callable[[str], tuple[Any, bool]], out: list[str], empty: str,
                   transform: Callable[[str], str] | None) -> bool:
    """Caddy's ReplaceKnown scan of `text` from `start`, appended to `out`; False when the
    text has too many unclosed braces (the whole result is then "")."""

    def known(key: str, position: int) -> str | None:
        value, found = resolve(key)
        if not found:
            return None
        value_text = to_string(value)
        if transform is not None:
            value_text = transform(value_text)
        return value_text or empty

    return _walk(text, start, out, known)


def needs_body(*templates: Template | None) -> bool:
    """Whether rendering any of these templates needs `await prepare(...)` first."""
    return any(t is not None and t.needs_body for t in templates)


async def prepare(request: Request, *templates: Template | None) -> None:
    """Buffer the request body if one of `templates` uses `{http.request.body}`."""
    if needs_body(*templates) and BODY_KEY not in request.values:
        await buffer_body(request)


async def buffer_body(request: Request) -> bytes:
    """Read the whole request body once, keep it for the body placeholders, and replace
    `request.body` with a re-readable copy."""
    data = request.values.get(BODY_KEY)
    if isinstance(data, bytes):
        return data
    chunks: list[bytes] = []
    try:
        async for chunk in request.body:
            chunks.append(chunk)
    except HttpError as exc:  # as Caddy: a body over `request_body`'s max_size reads as its first bytes
        if exc.status != 413:
            raise
    data = b"".join(chunks)
    request.body = BufferedBody(data)
    request.values[BODY_KEY] = data
    return data


# --- lookups ---------------------------------------------------------------------------------

Provider = Callable[[Request], Any]
PrefixProvider = Callable[[Request, str], tuple[Any, bool]]
Resolver = Callable[[Request], tuple[Any, bool]]
_EXACT: dict[str, Provider] = {}
_PREFIXES: list[tuple[str, PrefixProvider]] = []
_RESOLVED: dict[str, Resolver | None] = {}
_MAX_RESOLVED = 8192


def provider(key: str) -> Callable[[Provider], Provider]:
    """Register the function that computes one exact placeholder key."""

    def register(func: Provider) -> Provider:
        _EXACT[key] = func
        _RESOLVED.clear()
        return func

    return register


def prefix_provider(prefix: str) -> Callable[[PrefixProvider], PrefixProvider]:
    """Register a function for every key starting with `prefix` (it gets the rest and
    returns `(value, found)`). The longest registered prefix wins."""

    def register(func: PrefixProvider) -> PrefixProvider:
        _PREFIXES.append((prefix, func))
        _PREFIXES.sort(key=lambda item: -len(item[0]))
        _RESOLVED.clear()
        return func

    return register


def _resolve(key: str) -> Resolver | None:
    """The function that answers `key`, found once and remembered."""
    func = _EXACT.get(key)
    resolver: Resolver | None = None
    if func is not None:
        exact = func
        resolver = lambda r: (exact(r), True)  # noqa: E731
    else:
        for prefix, pfunc in _PREFIXES:
            if key.startswith(prefix):
                rest = key[len(prefix):]
                resolver = functools.partial(_call_prefix, pfunc, rest)
                break
    if len(_RESOLVED) >= _MAX_RESOLVED:
        _RESOLVED.clear()
    _RESOLVED[key] = resolver
    return resolver


def _call_prefix(func: PrefixProvider, rest: str, request: Request) -> tuple[Any, bool]:
    return func(request, rest)


def lookup(request: Request, key: str) -> tuple[Any, bool]:
    """The value of one placeholder key for a request, and whether it is known."""
    values = request.values
    if key in values:
        return values[key], True
    try:
        resolver = _RESOLVED[key]
    except KeyError:
        resolver = _resolve(key)
    if resolver is None:
        return None, False
    return resolver(request)


GLOBAL_PREFIXES = ("env.", "system.", "time.", "file.")


@functools.lru_cache(maxsize=1)
def _blank_request() -> Request:
    from rws.http.message import Headers

    return Request("GET", "/", Headers())


def replace_global(text: str) -> str:
    """`text` with only the global placeholders (`env.*`, `system.*`, `time.*`, `file.*`)
    expanded and every other placeholder removed: Caddy's replacer without a request,
    used for values that config code resolves once, at build time."""
    template = compile_template(text)
    if template.static:
        return template.text_value
    if template.broken:
        return ""
    out = []
    request = _blank_request()
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        elif part[0].startswith(GLOBAL_PREFIXES):
            out.append(to_string(lookup(request, part[0])[0]))
    return "".join(out)


# The providers register themselves when their modules load; they live in their own modules
# so that this one stays about templates and lookups.
import rws.http.request_placeholders  # noqa: E402,F401
