"""Scalar values of the config language: durations, sizes and typed words.

Inside rws durations are float seconds and sizes int bytes. JSON and the Rwsfile accept
Caddy's forms: a duration is a Go duration string ("1h30m", "500ms") with the extra unit
`d`, or an integer of nanoseconds; a size is "16KB" (16000) or "16KiB" (16384).
"""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_duration(text: str) -> float:
    """A Go duration string (plus `d` for days) in seconds; raises ValueError."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * total


def duration_ns(text: str) -> int:
    """A duration string as integer nanoseconds, the form the adapter writes."""
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    s = s.lstrip("+-")
    if s == "0":
        return 0
    total = 0
    pos = 0
    scale = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
             "h": 3600 * 10**9, "d": 86400 * 10**9}
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        whole, _, frac = m.group(1).partition(".")
        unit = scale[m.group(2)]
        total += int(whole or "0") * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        pos = m.end()
    return sign * total


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "ki": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "mi": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "gi": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
    "ti": 1024**4,
    "p": 1000**5,
    "pb": 1000**5,
    "pib": 1024**5,
    "pi": 1024**5,
}


def parse_size(text: str) -> int:
    """A byte size in humanize form ("16KB" = 16000, "16KiB" = 16384); raises ValueError."""
    m = _SIZE.match(text)
    if m is None or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"invalid size {text!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def typed_scalar(text: str) -> int | float | bool | str:
    """The value of an unquoted word as `vars` and `map` type it: int, float, bool, else str."""
    try:
        return int(text, 10) if re.fullmatch(r"[+-]?\d+", text) else _float(text)
    except ValueError:
        pass
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    return text


def _float(text: str) -> float:
    if not re.fullmatch(r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|[iI]nf(inity)?|NaN)", text):
        raise ValueError(text)
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)  # JSON cannot hold these; keep the word
    return value
