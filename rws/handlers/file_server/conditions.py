"""Conditional requests and validators, following Go's net/http (RFC 9110 section 13.2.2).

The order of evaluation: If-Match (or, without it, If-Unmodified-Since) failing gives
412; then If-None-Match matching gives 304 for GET/HEAD and 412 otherwise; without
If-None-Match, If-Modified-Since not met gives 304. A Range header survives only when
If-Range (an ETag compared strongly, or a date equal to the modification second) holds.
Modification times are seconds since the epoch, or None when unknown (not useful), in
which case date conditions are ignored.
"""

from __future__ import annotations

import calendar
import functools
import re
import time
from dataclasses import dataclass

from rws.http.message import Headers, Request

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_LONG_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.lower(): i + 1 for i, m in enumerate(_MONTHS)}
_SHORT_DAY_NAMES = frozenset(d.lower() for d in _DAYS)

# Go's http.ParseTime formats: TimeFormat, RFC 850 and ANSI C asctime.
_IMF = re.compile(r"([A-Za-z]{3}), (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{1,2}):(\d{2}):(\d{2}) GMT", re.ASCII)
_RFC850 = re.compile(r"([A-Za-z]+), (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{1,2}):(\d{2}):(\d{2}) [A-Z]{3,5}", re.ASCII)
_ASCTIME = re.compile(r"([A-Za-z]{3}) ([A-Za-z]{3}) ( ?\d{1,2}) (\d{1,2}):(\d{2}):(\d{2}) (\d{4})", re.ASCII)


@functools.lru_cache(maxsize=4096)
def format_http_date(seconds: int) -> str:
    """Go's http.TimeFormat: `Mon, 02 Jan 2006 15:04:05 GMT`."""
    t = time.gmtime(seconds)
    return (f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT")


def parse_http_date(text: str) -> int | None:
    """Seconds since the epoch of an HTTP date in any of the three formats, else None."""
    m = _IMF.fullmatch(text)
    if m:
        day_name, day, month, year, hour, minute, second = m.groups()
        if day_name.lower() not in _SHORT_DAY_NAMES:
            return None
        return _timestamp(int(year), month, int(day), int(hour), int(minute), int(second))
    m = _RFC850.fullmatch(text)
    if m:
        day_name, day, month, year2, hour, minute, second = m.groups()
        if day_name.lower() not in _LONG_DAYS:
            return None
        year = int(year2) + (1900 if int(year2) >= 69 else 2000)
        return _timestamp(year, month, int(day), int(hour), int(minute), int(second))
    m = _ASCTIME.fullmatch(text)
    if m:
        day_name, month, day, hour, minute, second, year = m.groups()
        if day_name.lower() not in _SHORT_DAY_NAMES:
            return None
        return _timestamp(int(year), month, int(day.strip()), int(hour), int(minute), int(second))
    return None


def _timestamp(year: int, month_name: str, day: int, hour: int, minute: int, second: int) -> int | None:
    month = _MONTH_NUMBER.get(month_name.lower())
    if month is None or hour > 23 or minute > 59 or second > 59:
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


# --- entity tags -------------------------------------------------------------------------


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    sign, n = ("-", -n) if n < 0 else ("", n)
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(digits[r])
    return sign + "".join(reversed(out))


@functools.lru_cache(maxsize=4096)
def calculate_etag(mtime_ns: int, size: int) -> str:
    """Caddy's strong ETag: `"<mtime in ns, base 36>-<size, base 36>"`; "" when the
    modification time is not useful (see `useful_mtime`)."""
    if not useful_mtime(mtime_ns):
        return ""
    return f'"{_base36(mtime_ns)}-{_base36(size)}"'


def useful_mtime(mtime_ns: int) -> bool:
    """Caddy ignores modification times in the first two seconds after the epoch (the
    values build tools and package managers stamp on files)."""
    return mtime_ns // 1_000_000_000 not in (0, 1)


def scan_etag(text: str) -> tuple[str, str]:
    """A syntactically valid ETag at the start of `text` and the rest, or ("", "")."""
    text = text.strip(" \t\r\n")
    start = 2 if text.startswith("W/") else 0
    if len(text) - start < 2 or text[start] != '"':
        return "", ""
    for i in range(start + 1, len(text)):
        c = ord(text[i])
        if c == 0x22:
            return text[:i + 1], text[i + 1:]
        if not (c == 0x21 or 0x23 <= c <= 0x7E or c >= 0x80):
            return "", ""
    return "", ""


def _list_matches(header: str, etag: str, *, strong: bool) -> bool | None:
    """Whether a list of ETags (or `*`) matches `etag`; None when the list is malformed
    before a match was found (Go treats that like no match)."""
    rest = header
    while True:
        rest = rest.strip(" \t\r\n")
        if not rest:
            return False
        if rest[0] == ",":
            rest = rest[1:]
            continue
        if rest[0] == "*":
            return True
        tag, rest = scan_etag(rest)
        if not tag:
            return None
        if strong and tag == etag and tag.startswith('"'):
            return True
        if not strong and tag.removeprefix("W/") == etag.removeprefix("W/"):
            return True


# --- preconditions -----------------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What the preconditions decided: a final status (304 or 412), or go on with `range`."""

    status: int | None
    range: str


def check_preconditions(request: Request, headers: Headers, mtime: int | None) -> Outcome:
    """Evaluate the conditional headers against the response's ETag and `mtime`."""
    etag = headers.get("ETag") or ""
    if_match = request.headers.get("If-Match")
    if if_match:
        passed: bool | None = bool(_list_matches(if_match, etag, strong=True))
    else:
        passed = _unmodified_since(request, mtime)
    if passed is False:
        return Outcome(412, "")
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match:
        if _list_matches(if_none_match, etag, strong=False):
            return Outcome(304 if request.method in ("GET", "HEAD") else 412, "")
    elif _modified_since(request, mtime) is False:
        return Outcome(304, "")
    range_header = request.headers.get("Range") or ""
    if range_header and _if_range(request, etag, mtime) is False:
        range_header = ""
    return Outcome(None, range_header)


def _unmodified_since(request: Request, mtime: int | None) -> bool | None:
    value = request.headers.get("If-Unmodified-Since")
    if not value or mtime is None:
        return None
    since = parse_http_date(value)
    return None if since is None else mtime <= since


def _modified_since(request: Request, mtime: int | None) -> bool | None:
    if request.method not in ("GET", "HEAD"):
        return None
    value = request.headers.get("If-Modified-Since")
    if not value or mtime is None:
        return None
    since = parse_http_date(value)
    return None if since is None else mtime > since


def _if_range(request: Request, etag: str, mtime: int | None) -> bool | None:
    if request.method not in ("GET", "HEAD"):
        return None
    value = request.headers.get("If-Range")
    if not value:
        return None
    tag, _ = scan_etag(value)
    if tag:
        return tag == etag and tag.startswith('"')
    if mtime is None:
        return False
    return parse_http_date(value) == mtime


def not_modified(headers: Headers) -> None:
    """Trim the headers of a 304 as Go does: no representation metadata, and no
    Last-Modified when there is an ETag."""
    headers.delete("Content-Type")
    headers.delete("Content-Length")
    headers.delete("Content-Encoding")
    if headers.get("ETag"):
        headers.delete("Last-Modified")
