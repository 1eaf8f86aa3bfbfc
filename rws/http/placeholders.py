"""Placeholders: `{http.request.host}` and friends, expanded per request.

A string from the config is compiled once (`compile_template`) into literal parts and
placeholder keys; `template.render(request)` looks each key up at request time. Unknown
placeholders become "" by default (Caddy's ReplaceAll) or stay as written with
`keep_unknown=True` (ReplaceKnown: response bodies, header values, error messages).
`\\{` and `\\}` are literal braces.

Lookups go through, in order: values set on the request (`request.values`: regexp
captures, error fields, proxy values), the HTTP provider (request data), and the global
provider (`env.*`, `system.*`, `time.*`).
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import time
from datetime import datetime, timezone
from typing import Any, Callable

from rws.http.message import Request


def to_string(value: Any) -> str:
    """A placeholder value as text, formatted as Caddy formats it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


class Template:
    """A compiled string with placeholders."""

    __slots__ = ("text", "parts", "static", "text_value")

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts = _split(text)  # literal strings and ("key",) tuples
        self.static = all(isinstance(p, str) for p in self.parts)
        self.text_value = "".join(p for p in self.parts if isinstance(p, str))  # the text when static

    def render(self, request: Request, *, keep_unknown: bool = False) -> str:
        if self.static:
            return self.text_value
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value, found = lookup(request, part[0])
            if found:
                out.append(to_string(value))
            elif keep_unknown:
                out.append("{" + part[0] + "}")
        return "".join(out)


@functools.lru_cache(maxsize=4096)
def compile_template(text: str) -> Template:
    return Template(text)


def render(text: str, request: Request, *, keep_unknown: bool = False) -> str:
    return compile_template(text).render(request, keep_unknown=keep_unknown)


def _split(text: str) -> list[str | tuple[str]]:
    parts: list[str | tuple[str]] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in "{}":
            literal.append(text[i + 1])
            i += 2
            continue
        if ch == "{":
            end = text.find("}", i + 1)
            if end > i + 1 and "{" not in text[i + 1:end]:
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append((text[i + 1:end],))
                i = end + 1
                continue
        literal.append(ch)
        i += 1
    if literal:
        parts.append("".join(literal))
    return parts


# --- lookups -------------------------------------------------------------------------------

Provider = Callable[[Request], Any]
_EXACT: dict[str, Provider] = {}
_PREFIXES: list[tuple[str, Callable[[Request, str], tuple[Any, bool]]]] = []


def provider(key: str) -> Callable[[Provider], Provider]:
    """Register the function that computes one exact placeholder key."""

    def register(func: Provider) -> Provider:
        _EXACT[key] = func
        return func

    return register


def prefix_provider(prefix: str) -> Callable[[Callable[[Request, str], tuple[Any, bool]]], Any]:
    """Register a function for every key starting with `prefix` (it gets the rest)."""

    def register(func: Callable[[Request, str], tuple[Any, bool]]) -> Any:
        _PREFIXES.append((prefix, func))
        return func

    return register


def lookup(request: Request, key: str) -> tuple[Any, bool]:
    """The value of one placeholder key for a request, and whether it is known."""
    if key in request.values:
        return request.values[key], True
    func = _EXACT.get(key)
    if func is not None:
        return func(request), True
    for prefix, pfunc in _PREFIXES:
        if key.startswith(prefix):
            return pfunc(request, key[len(prefix):])
    return None, False


# --- the HTTP provider (request data) ------------------------------------------------------

provider("http.request.method")(lambda r: r.method)
provider("http.request.scheme")(lambda r: r.scheme)
provider("http.request.proto")(lambda r: r.version)
provider("http.request.host")(lambda r: r.host)
provider("http.request.hostport")(lambda r: r.hostport)
provider("http.request.port")(lambda r: r.port)
provider("http.request.uri")(lambda r: r.uri)
provider("http.request.uri.path")(lambda r: r.path)
provider("http.request.uri.query")(lambda r: r.query)
provider("http.request.remote")(lambda r: f"{r.remote_ip}:{r.remote_port}" if ":" not in r.remote_ip
                                 else f"[{r.remote_ip}]:{r.remote_port}")
provider("http.request.remote.host")(lambda r: r.remote_ip)
provider("http.request.remote.port")(lambda r: r.remote_port)


@prefix_provider("http.request.header.")
def _header(request: Request, name: str) -> tuple[Any, bool]:
    return request.headers.joined(name), True


@prefix_provider("http.vars.")
def _vars(request: Request, name: str) -> tuple[Any, bool]:
    return request.vars.get(name), True


# --- the global provider ---------------------------------------------------------------------


@prefix_provider("env.")
def _env(request: Request, name: str) -> tuple[Any, bool]:
    return os.environ.get(name, ""), True


provider("system.hostname")(lambda r: socket.gethostname())
provider("system.slash")(lambda r: os.sep)
provider("system.os")(lambda r: platform.system().lower())
provider("system.arch")(lambda r: {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()))
provider("system.wd")(lambda r: os.getcwd())
provider("time.now.unix")(lambda r: int(time.time()))
provider("time.now.unix_ms")(lambda r: int(time.time() * 1000))
provider("time.now.year")(lambda r: datetime.now().year)
provider("time.now.http")(lambda r: datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT"))
