"""The filter encoder: changes or removes chosen fields, then hands the record on.

Fields are named by their path, with `>` between levels (`request>headers>Cookie`,
`request>remote_ip`). Each named field goes through one filter, as in Caddy:

- `delete` drops it; `rename` gives it another key; `replace` puts a fixed string in its place;
- `hash` keeps the first 8 hex digits of its SHA-256; `ip_mask` zeroes all but the first
  `ipv4_cidr`/`ipv6_cidr` bits of IP addresses (in `ip`, `ip:port` and comma-separated lists);
- `query` replaces, hashes or deletes parameters of a URI; `cookie` does the same to cookies
  in `Cookie` header values and `set_cookie` to `Set-Cookie` lines;
- `regexp` and `multi_regexp` replace matches of Go regular expressions (`$1`, `${name}`).

String filters apply to each element of a list (header values); on other kinds of values
they change nothing, like Caddy's.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from typing import Any, Callable
from urllib.parse import quote_plus

from rws.config.decode import ModuleValue
from rws.errors import ConfigError
from rws.http.regexp import compile_regexp, expand, go_template
from rws.observability.log_encoders import Encoder, Entry

Filtered = tuple[str, Any] | None  # the new key and value, or None to drop the field

MAX_REGEXP_INPUT = 1_000_000


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _each_string(func: Callable[[str], str]) -> Callable[[str, Any], Filtered]:
    """A filter that maps strings, and the strings of a list, through `func`."""

    def apply(key: str, value: Any) -> Filtered:
        if isinstance(value, str):
            return key, func(value)
        if isinstance(value, (list, tuple)):
            return key, [func(v) if isinstance(v, str) else v for v in value]
        return key, value

    return apply


# --- ip_mask -------------------------------------------------------------------------------


def _split_host_port(text: str) -> tuple[str, str] | None:
    """Go's net.SplitHostPort, or None where it fails."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            return None
        return text[1:end], text[end + 2:]
    host, sep, port = text.rpartition(":")
    if not sep or ":" in host:
        return None
    return host, port


def _ip_masker(v4_bits: int, v6_bits: int) -> Callable[[str], str]:
    def mask_one(value: str) -> str:
        split = _split_host_port(value)
        host, port = split if split is not None else (value, "")
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return value
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        bits = v4_bits if ip.version == 4 else v6_bits
        if not bits:
            masked = "<nil>"  # Go's IP.Mask with no mask configured
        else:
            network = ipaddress.ip_network(f"{ip}/{min(bits, ip.max_prefixlen)}", strict=False)
            masked = str(network.network_address)
        if not port:
            return masked
        return f"[{masked}]:{port}" if ":" in masked else f"{masked}:{port}"

    def mask(text: str) -> str:
        return ", ".join(mask_one(part.strip()) for part in text.split(","))

    return mask


# --- query ---------------------------------------------------------------------------------

_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _unescape(text: str) -> str | None:
    """Go's url.QueryUnescape, or None for a malformed escape."""
    if _ESCAPE.search(text):
        return None
    from urllib.parse import unquote_plus

    return unquote_plus(text)


def _query_filter(actions: list[dict[str, Any]]) -> Callable[[str], str]:
    def process(uri: str) -> str:
        uri, hash_sign, fragment = uri.partition("#")
        path, question, raw_query = uri.partition("?")
        params: dict[str, list[str]] = {}
        for pair in raw_query.split("&"):
            if not pair or ";" in pair:
                continue
            key, _, value = pair.partition("=")
            k, v = _unescape(key), _unescape(value)
            if k is not None and v is not None:
                params.setdefault(k, []).append(v)
        for action in actions:
            name = action.get("parameter", "")
            kind = action.get("type")
            if kind == "delete":
                params.pop(name, None)
            elif name in params and kind == "replace":
                params[name] = [action.get("value", "")] * len(params[name])
            elif name in params and kind == "hash":
                params[name] = [short_hash(v) for v in params[name]]
        query = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k in sorted(params) for v in params[k])
        out = path + ("?" + query if query or (question and not raw_query) else "")
        return out + hash_sign + fragment

    return process


# --- cookies -------------------------------------------------------------------------------

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _cookie_value(raw: str) -> tuple[str, bool] | None:
    """Go's parseCookieValue: (value, was quoted), or None if it has a forbidden byte."""
    quoted = len(raw) > 1 and raw[0] == '"' and raw[-1] == '"'
    if quoted:
        raw = raw[1:-1]
    if any(not (0x20 <= ord(c) < 0x7F) or c in '";\\' for c in raw):
        return None
    return raw, quoted


def _render_cookie(name: str, value: str, quoted: bool) -> str:
    value = "".join(c for c in value if 0x20 <= ord(c) < 0x7F and c not in '";\\')
    if value and (quoted or " " in value or "," in value):
        value = f'"{value}"'
    return f"{name.replace(chr(10), '-').replace(chr(13), '-')}={value}"


def _cookie_filter(actions: list[dict[str, Any]]) -> Callable[[str, Any], Filtered]:
    by_name: dict[str, dict[str, Any]] = {}
    for action in actions:
        by_name.setdefault(action.get("name", ""), action)

    def apply(key: str, value: Any) -> Filtered:
        if not isinstance(value, (list, tuple)):
            return key, value
        kept: list[str] = []
        for line in value:
            for part in str(line).strip(" \t").split(";"):
                name, _, raw = part.strip(" \t").partition("=")
                name = name.strip(" \t")
                parsed = _cookie_value(raw) if name and set(name) <= _TOKEN else None
                if parsed is None:
                    continue
                cookie_value, quoted = parsed
                action = by_name.get(name)
                if action is not None and action.get("type") == "delete":
                    continue
                if action is not None and action.get("type") == "replace":
                    cookie_value = action.get("value", "")
                elif action is not None and action.get("type") == "hash":
                    cookie_value = short_hash(cookie_value)
                kept.append(_render_cookie(name, cookie_value, quoted))
        return key, ["; ".join(kept)] if kept else []

    return apply


def _set_cookie_filter(actions: list[dict[str, Any]]) -> Callable[[str, Any], Filtered]:
    by_name: dict[str, dict[str, Any]] = {}
    for action in actions:
        by_name.setdefault(action.get("name", ""), action)

    def filter_line(line: str) -> str | None:
        head, semi, attributes = line.partition(";")
        name, eq, raw = head.strip(" \t").partition("=")
        name = name.strip(" \t")
        parsed = _cookie_value(raw) if eq and name and set(name) <= _TOKEN else None
        action = by_name.get(name) if parsed is not None else None
        if action is None or parsed is None:
            return line
        if action.get("type") == "delete":
            return None
        new = action.get("value", "") if action.get("type") == "replace" else short_hash(parsed[0])
        at = head.index("=") + 1
        raw_value = head[at:]
        lead = len(raw_value) - len(raw_value.lstrip())
        trail = len(raw_value) - len(raw_value.rstrip())
        trimmed = raw_value.strip()
        if parsed[1] and len(trimmed) >= 2:
            new = f'"{new}"'
        return head[:at] + raw_value[:lead] + new + raw_value[len(raw_value) - trail:] + semi + attributes

    def apply(key: str, value: Any) -> Filtered:
        if not isinstance(value, (list, tuple)):
            return key, value
        out = [filter_line(str(line)) for line in value]
        return key, [line for line in out if line is not None]

    return apply


# --- regular expressions -------------------------------------------------------------------


def _regexp_filter(operations: list[dict[str, Any]], limit: int | None) -> Callable[[str], str]:
    """Each operation's replacement in turn; `limit` caps the text's length (multi_regexp)."""
    compiled = [(compile_regexp(op.get("regexp", "")), functools.partial(expand, go_template(op.get("value", ""))))
                for op in operations]

    def replace(text: str) -> str:
        text = text[:limit] if limit else text
        for pattern, expand_match in compiled:
            text = pattern.sub(expand_match, text)
            text = text[:limit] if limit else text
        return text

    return replace


# --- building ------------------------------------------------------------------------------


def build_field_filter(spec: dict[str, Any], path: str) -> Callable[[str, Any], Filtered]:
    kind = spec.get("filter")
    if kind == "delete":
        return lambda key, value: None
    if kind == "rename":
        new_name = str(spec.get("name", ""))
        return lambda key, value: (new_name, value)
    if kind == "replace":
        text = str(spec.get("value", ""))
        return lambda key, value: (key, text)
    if kind == "hash":
        return _each_string(short_hash)
    if kind == "ip_mask":
        return _each_string(_ip_masker(int(spec.get("ipv4_cidr", 0) or 0), int(spec.get("ipv6_cidr", 0) or 0)))
    if kind == "query":
        return _each_string(_query_filter(list(spec.get("actions") or ())))
    if kind == "cookie":
        return _cookie_filter(list(spec.get("actions") or ()))
    if kind == "set_cookie":
        return _set_cookie_filter(list(spec.get("actions") or ()))
    if kind == "regexp":
        return _each_string(_regexp_filter([spec], None))
    if kind == "multi_regexp":
        operations = list(spec.get("operations") or ())
        if not operations:
            raise ConfigError(path, "multi_regexp filter requires at least one operation")
        return _each_string(_regexp_filter(operations, MAX_REGEXP_INPUT))
    raise ConfigError(path, f"unknown field filter {kind!r}")


class FilterEncoder:
    """Applies field filters, then encodes with the wrapped encoder."""

    def __init__(self, wrapped: Encoder, filters: dict[str, Callable[[str, Any], Filtered]]) -> None:
        self.wrapped = wrapped
        self.filters = filters
        # paths of the objects that hold a filtered field, to know where to look inside
        self.parents = frozenset(path.rsplit(">", 1)[0] + ">" for path in filters if ">" in path)

    def encode(self, entry: Entry) -> bytes:
        fields = self._filter(entry.fields, "")
        if fields is entry.fields:
            return self.wrapped.encode(entry)
        return self.wrapped.encode(Entry(entry.level, entry.ts, entry.logger, entry.msg, fields, entry.caller,
                                         entry.stack))

    def _filter(self, fields: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] | None = None
        for i, (key, value) in enumerate(fields.items()):
            path = prefix + key
            new: Filtered = (key, value)
            func = self.filters.get(path)
            if func is not None:
                new = func(key, value)
            elif isinstance(value, dict) and any(p.startswith(path + ">") for p in self.parents):
                inner = self._filter(value, path + ">")
                new = (key, inner)
            if out is None and (new is None or new[0] != key or new[1] is not value):
                out = dict(list(fields.items())[:i])
            if out is not None and new is not None:
                out[new[0]] = new[1]
        return fields if out is None else out


def build_filter_encoder(config: Any, wrapped: Encoder, path: str) -> FilterEncoder:
    filters = {name: build_field_filter(spec, f"{path}.fields[{name!r}]") for name, spec in (config.fields or {}).items()}
    return FilterEncoder(wrapped, filters)


def wrapped_module(config: Any) -> ModuleValue | None:
    wrap = config.wrap
    return wrap if isinstance(wrap, ModuleValue) else None
