"""Log records and how they are written out: the json and console encoders.

A record (`Entry`) has a level, a time, a logger name, a message and ordered fields whose
values are strings, numbers, booleans, None, `Duration`s, lists and nested dicts. The json
encoder writes one JSON object per line with zap's production keys, as Caddy does:
`{"level":"info","ts":1700000000.123,"logger":"http.log.access","msg":"handled request",...fields}`.
The console encoder writes `time<TAB>LEVEL<TAB>logger<TAB>message<TAB>{fields}`. Both take
Caddy's encoder options (key names, `time_format`, `time_local`, `duration_format`,
`level_format`). Numbers are written as Go writes them (`0.000012`, never `1.2e-05`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Protocol

from rws.observability.time_layouts import NAMED_LAYOUTS, duration_string, format_time

DEBUG, INFO, WARN, ERROR, DPANIC, PANIC, FATAL = -1, 0, 1, 2, 3, 4, 5
LEVELS = {"debug": DEBUG, "info": INFO, "warn": WARN, "error": ERROR, "dpanic": DPANIC, "panic": PANIC, "fatal": FATAL}
LEVEL_NAMES = {number: name for name, number in LEVELS.items()}
_COLORS = {DEBUG: 35, INFO: 34, WARN: 33, ERROR: 31, DPANIC: 31, PANIC: 31, FATAL: 31}


class Duration(float):
    """A duration in seconds; encoders render it per their `duration_format`."""


@dataclass(slots=True)
class Entry:
    level: int
    ts: float  # seconds since the epoch
    logger: str
    msg: str
    fields: dict[str, Any] = field(default_factory=dict)
    caller: str = ""
    stack: str = ""


class Encoder(Protocol):
    def encode(self, entry: Entry) -> bytes: ...


# --- JSON values ---------------------------------------------------------------------------

_quote: Callable[[str], str] = json.encoder.encode_basestring


def go_float(value: float) -> str:
    """A float as Go's strconv.FormatFloat(v, 'f', -1, 64) writes it."""
    if value != value:
        return '"NaN"'
    if value in (float("inf"), float("-inf")):
        return '"+Inf"' if value > 0 else '"-Inf"'
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text[:-2] if text.endswith(".0") else text


def _duration_writer(name: str) -> Callable[[Duration], str]:
    if name in ("ns", "nano", "nanos"):
        return lambda d: str(round(d * 1e9))
    if name in ("ms", "milli", "millis"):
        return lambda d: go_float(d * 1000)
    if name == "string":
        return lambda d: _quote(duration_string(d))
    return lambda d: go_float(float(d))


class JsonValues:
    """Writes field values as JSON text; durations in the configured format."""

    def __init__(self, duration_format: str = "") -> None:
        self.duration = _duration_writer(duration_format)

    def value(self, v: Any) -> str:
        if isinstance(v, str):
            return _quote(v)
        if v is True:
            return "true"
        if v is False:
            return "false"
        if v is None:
            return "null"
        if isinstance(v, Duration):
            return self.duration(v)
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return go_float(v)
        if isinstance(v, dict):
            return "{" + ",".join(f"{_quote(str(k))}:{self.value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(self.value(x) for x in v) + "]"
        return _quote(str(v))

    def members(self, fields: dict[str, Any]) -> str:
        return ",".join(f"{_quote(k)}:{self.value(v)}" for k, v in fields.items())


# --- times and levels ----------------------------------------------------------------------


def time_writer(time_format: str, local: bool, as_json: bool) -> Callable[[float], str]:
    """How a record's time is written: a number for the unix formats, else quoted text
    (unquoted for the console encoder)."""
    quote = _quote if as_json else str
    if time_format in ("", "unix_seconds_float"):
        return go_float
    if time_format == "unix_milli_float":
        return lambda ts: go_float(ts * 1000)
    if time_format == "unix_nano":
        return lambda ts: str(round(ts * 1e6) * 1000)  # float seconds carry microseconds at best
    if time_format == "iso8601":  # zap writes it in the local zone
        return lambda ts: quote(format_time(datetime.fromtimestamp(ts).astimezone(), NAMED_LAYOUTS["iso8601"]))
    layout = NAMED_LAYOUTS.get(time_format, time_format)
    if local:
        return lambda ts: quote(format_time(datetime.fromtimestamp(ts).astimezone(), layout))
    return lambda ts: quote(format_time(datetime.fromtimestamp(ts, timezone.utc), layout))


def level_writer(level_format: str) -> Callable[[int], str] | None:
    """lower (`info`), upper (`INFO`) or color; None (level left out) for anything else."""
    if level_format in ("", "lower"):
        return lambda level: LEVEL_NAMES[level]
    if level_format == "upper":
        return lambda level: LEVEL_NAMES[level].upper()
    if level_format == "color":
        return lambda level: f"\x1b[{_COLORS[level]}m{LEVEL_NAMES[level].upper()}\x1b[0m"
    return None


def _key(configured: str | None, default: str) -> str:
    return default if configured is None else configured


# --- the encoders --------------------------------------------------------------------------


class JsonEncoder:
    def __init__(self, config: Any = None) -> None:
        self.message_key = _key(getattr(config, "message_key", None), "msg")
        self.level_key = _key(getattr(config, "level_key", None), "level")
        self.time_key = _key(getattr(config, "time_key", None), "ts")
        self.name_key = _key(getattr(config, "name_key", None), "logger")
        self.caller_key = _key(getattr(config, "caller_key", None), "caller")
        self.stack_key = _key(getattr(config, "stacktrace_key", None), "stacktrace")
        self.line_ending = _key(getattr(config, "line_ending", None), "\n").encode()
        self.time = time_writer(getattr(config, "time_format", ""), getattr(config, "time_local", False), True)
        self.level = level_writer(getattr(config, "level_format", ""))
        self.values = JsonValues(getattr(config, "duration_format", ""))

    def encode(self, entry: Entry) -> bytes:
        parts = []
        if self.level_key and self.level is not None:
            parts.append(f"{_quote(self.level_key)}:{_quote(self.level(entry.level))}")
        if self.time_key:
            parts.append(f"{_quote(self.time_key)}:{self.time(entry.ts)}")
        if self.name_key and entry.logger:
            parts.append(f"{_quote(self.name_key)}:{_quote(entry.logger)}")
        if self.caller_key and entry.caller:
            parts.append(f"{_quote(self.caller_key)}:{_quote(entry.caller)}")
        if self.message_key:
            parts.append(f"{_quote(self.message_key)}:{_quote(entry.msg)}")
        if entry.fields:
            parts.append(self.values.members(entry.fields))
        if self.stack_key and entry.stack:
            parts.append(f"{_quote(self.stack_key)}:{_quote(entry.stack)}")
        return ("{" + ",".join(parts) + "}").encode("utf-8", "surrogateescape") + self.line_ending


class ConsoleEncoder:
    """zap's console layout; by default `2006/01/02 15:04:05.000` UTC times and colored
    levels, as Caddy's console encoder."""

    def __init__(self, config: Any = None, *, level_format: str = "color", time_format: str = "wall_milli") -> None:
        self.level_key = _key(getattr(config, "level_key", None), "level")
        self.time_key = _key(getattr(config, "time_key", None), "ts")
        self.name_key = _key(getattr(config, "name_key", None), "logger")
        self.caller_key = _key(getattr(config, "caller_key", None), "caller")
        self.message_key = _key(getattr(config, "message_key", None), "msg")
        self.stack_key = _key(getattr(config, "stacktrace_key", None), "stacktrace")
        self.line_ending = _key(getattr(config, "line_ending", None), "\n").encode()
        self.time = time_writer(getattr(config, "time_format", "") or time_format, getattr(config, "time_local", False),
                                False)
        self.level = level_writer(getattr(config, "level_format", "") or level_format)
        self.values = JsonValues(getattr(config, "duration_format", ""))

    def encode(self, entry: Entry) -> bytes:
        parts = []
        if self.time_key:
            parts.append(self.time(entry.ts))
        if self.level_key and self.level is not None:
            parts.append(self.level(entry.level))
        if self.name_key and entry.logger:
            parts.append(entry.logger)
        if self.caller_key and entry.caller:
            parts.append(entry.caller)
        if self.message_key:
            parts.append(entry.msg)
        line = "\t".join(parts)
        if entry.fields:
            line += "\t{" + self.values.members(entry.fields) + "}"
        if self.stack_key and entry.stack:
            line += "\n" + entry.stack
        return line.encode("utf-8", "surrogateescape") + self.line_ending


def default_encoder(writer_key: str) -> Encoder:
    """Caddy's default: console on a terminal (for stdout/stderr writers), else JSON."""
    if writer_key.startswith("std:") and _stderr_is_terminal():
        color = not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "xterm-mono"
        return ConsoleEncoder(level_format="color" if color else "lower")
    return JsonEncoder()


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(2)
    except OSError:
        return False
