"""Go time layouts (`2006-01-02T15:04:05.000Z07:00`) and Go duration text, for logs.

Log configs name time formats the way Caddy does: as Go reference-time layouts, used for
log timestamps (`time_format`) and rolled file names (`backup_time_format`). A layout is
compiled once into a list of parts; formatting a time is then a loop over them.
`strptime_format` gives the equivalent `datetime.strptime` pattern where one exists, so
rolled file names can be read back.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Callable

Part = Callable[[datetime], str]

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _offset(dt: datetime, colon: bool, seconds: bool, hours_only: bool, z: bool) -> str:
    delta = dt.utcoffset()
    total = int(delta.total_seconds()) if delta is not None else 0
    if z and total == 0:
        return "Z"
    sign = "-" if total < 0 else "+"
    total = abs(total)
    hh, mm, ss = total // 3600, total // 60 % 60, total % 60
    if hours_only:
        return f"{sign}{hh:02d}"
    sep = ":" if colon else ""
    text = f"{sign}{hh:02d}{sep}{mm:02d}"
    return f"{text}{sep}{ss:02d}" if seconds else text


def _zone_name(dt: datetime) -> str:
    name = dt.tzname()
    if name:
        return name
    return _offset(dt, False, False, False, False)


def _hour12(dt: datetime) -> int:
    return dt.hour % 12 or 12


# token -> (formatter, strptime directive or None when strptime has no equivalent)
_TOKENS: dict[str, tuple[Part, str | None]] = {
    "January": (lambda d: _MONTHS[d.month - 1], "%B"),
    "Jan": (lambda d: _MONTHS[d.month - 1][:3], "%b"),
    "Monday": (lambda d: _DAYS[d.weekday()], "%A"),
    "Mon": (lambda d: _DAYS[d.weekday()][:3], "%a"),
    "MST": (_zone_name, "%Z"),
    "01": (lambda d: f"{d.month:02d}", "%m"),
    "02": (lambda d: f"{d.day:02d}", "%d"),
    "03": (lambda d: f"{_hour12(d):02d}", "%I"),
    "04": (lambda d: f"{d.minute:02d}", "%M"),
    "05": (lambda d: f"{d.second:02d}", "%S"),
    "06": (lambda d: f"{d.year % 100:02d}", "%y"),
    "002": (lambda d: f"{d.timetuple().tm_yday:03d}", "%j"),
    "__2": (lambda d: f"{d.timetuple().tm_yday:>3d}", None),
    "_2": (lambda d: f"{d.day:>2d}", None),
    "15": (lambda d: f"{d.hour:02d}", "%H"),
    "1": (lambda d: str(d.month), None),
    "2006": (lambda d: f"{d.year:04d}", "%Y"),
    "2": (lambda d: str(d.day), None),
    "3": (lambda d: str(_hour12(d)), None),
    "4": (lambda d: str(d.minute), None),
    "5": (lambda d: str(d.second), None),
    "PM": (lambda d: "PM" if d.hour >= 12 else "AM", "%p"),
    "pm": (lambda d: "pm" if d.hour >= 12 else "am", None),
    "-07:00:00": (lambda d: _offset(d, True, True, False, False), None),
    "-070000": (lambda d: _offset(d, False, True, False, False), None),
    "-07:00": (lambda d: _offset(d, True, False, False, False), "%z"),
    "-0700": (lambda d: _offset(d, False, False, False, False), "%z"),
    "-07": (lambda d: _offset(d, False, False, True, False), None),
    "Z07:00:00": (lambda d: _offset(d, True, True, False, True), None),
    "Z070000": (lambda d: _offset(d, False, True, False, True), None),
    "Z07:00": (lambda d: _offset(d, True, False, False, True), None),
    "Z0700": (lambda d: _offset(d, False, False, False, True), None),
    "Z07": (lambda d: _offset(d, False, False, True, True), None),
}
# longest first, so "2006" wins over "2" and "January" over "Jan"
_ORDER = sorted(_TOKENS, key=len, reverse=True)


def _fraction(sep: str, digits: int, trim: bool) -> Part:
    def part(d: datetime) -> str:
        text = f"{d.microsecond:06d}000"[:digits]
        if trim:
            text = text.rstrip("0")
            return sep + text if text else ""
        return sep + text

    return part


def _literal(text: str) -> Part:
    return lambda d: text


@functools.lru_cache(maxsize=64)
def _compile(layout: str) -> tuple[tuple[Part, ...], str | None]:
    parts: list[Part] = []
    pattern: list[str] | None = []
    literal: list[str] = []
    i = 0
    while i < len(layout):
        token, length = _token_at(layout, i)
        if token is None:
            literal.append(layout[i])
            i += 1
            continue
        if literal:
            parts.append(_literal("".join(literal)))
            if pattern is not None:
                pattern.append("".join(literal).replace("%", "%%"))
            literal = []
        if token in _TOKENS:
            formatter, directive = _TOKENS[token]
            parts.append(formatter)
        else:  # fractional seconds
            parts.append(_fraction(token[0], len(token) - 1, token[1] == "9"))
            directive = None if token[1] == "9" else token[0] + "%f"
        if pattern is not None:
            pattern = None if directive is None else [*pattern, directive]
        i += length
    if literal:
        parts.append(_literal("".join(literal)))
        if pattern is not None:
            pattern.append("".join(literal).replace("%", "%%"))
    return tuple(parts), ("".join(pattern) if pattern is not None else None)


def _token_at(layout: str, i: int) -> tuple[str | None, int]:
    rest = layout[i:]
    if rest[0] in ".," and len(rest) > 1 and rest[1] in "09":
        j = 1
        while j < len(rest) and rest[j] == rest[1]:
            j += 1
        if j == len(rest) or not rest[j].isdecimal():
            return rest[:j], j
    if rest.startswith("_2006"):
        return None, 1  # a literal "_" before the year, as Go reads it
    for token in _ORDER:
        if rest.startswith(token):
            if token in ("Jan", "Mon") and rest[3:4].islower():
                continue  # Go reads "Janet" or "Month" as literal text
            return token, len(token)
    return None, 1


def format_time(dt: datetime, layout: str) -> str:
    """`dt` formatted with a Go layout."""
    parts, _ = _compile(layout)
    return "".join(part(dt) for part in parts)


def strptime_format(layout: str) -> str | None:
    """The `datetime.strptime` pattern reading what `layout` writes, or None."""
    return _compile(layout)[1]


NAMED_LAYOUTS = {
    "rfc3339": "2006-01-02T15:04:05Z07:00",
    "rfc3339_nano": "2006-01-02T15:04:05.999999999Z07:00",
    "wall": "2006/01/02 15:04:05",
    "wall_milli": "2006/01/02 15:04:05.000",
    "wall_nano": "2006/01/02 15:04:05.000000000",
    "common_log": "02/Jan/2006:15:04:05 -0700",
    "iso8601": "2006-01-02T15:04:05.000Z0700",
}


# --- durations -----------------------------------------------------------------------------


def duration_string(seconds: float) -> str:
    """Go's time.Duration.String: "1.5s", "2m0.5s", "1h0m0s", "250ms", "1.2µs", "0s"."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_decimal(ns, 1000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_decimal(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{_decimal(rest, 10**9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _decimal(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")
