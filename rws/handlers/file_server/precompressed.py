"""Precompressed sidecar files (`index.html.br`, `app.js.gz`, ...) and which one a client gets.

Each `http.precompressed.*` module says which `Accept-Encoding` token it answers and
the suffix of its sidecar files. `accepted_encodings` orders the client's encodings the
way Caddy does: by descending q-value, and among equal q-values by the configured
`precompressed_order` (earlier is preferred); `q=0` excludes an encoding, and a WebSocket
handshake accepts nothing but `identity`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from rws.http.message import Request
from rws.http.routes import BuildContext

_Q_TOLERANCE = 0.00001
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


@dataclass(frozen=True, slots=True)
class Precompressed:
    """A sidecar format: the encoding token and the file suffix."""

    encoding: str
    suffix: str


def build_gzip(config: Any, ctx: BuildContext) -> Precompressed:
    return Precompressed("gzip", ".gz")


def build_zstd(config: Any, ctx: BuildContext) -> Precompressed:
    return Precompressed("zstd", ".zst")


def build_br(config: Any, ctx: BuildContext) -> Precompressed:
    return Precompressed("br", ".br")


def accepted_encodings(request: Request, preferred_order: tuple[str, ...]) -> list[str]:
    """The encodings the client accepts, most wanted first (Caddy's AcceptedEncodings)."""
    header = request.headers.get("Accept-Encoding")
    if not header:
        return []
    websocket = bool(request.headers.get("Sec-WebSocket-Key"))
    prefs: list[tuple[str, float, int]] = []
    for accepted in header.split(","):
        name, found, params = accepted.partition(";")
        name = name.strip().lower()
        q = _q_factor(params) if found else 1.0
        if q < _Q_TOLERANCE:
            continue
        if websocket and name != "identity":
            continue
        order = preferred_order.index(name) if name in preferred_order else -1
        if order > -1:
            order = len(preferred_order) - order
        prefs.append((name, q, order))
    prefs.sort(key=functools.cmp_to_key(_compare))
    return [name for name, _, _ in prefs]


def _q_factor(params: str) -> float:
    """The q-value of the first parameter when it is a valid `q=` in [0, 1], else 1."""
    first = params.partition(";")[0].strip()
    if len(first) >= 2 and first[:2].lower() == "q=" and _DECIMAL.fullmatch(first[2:]):
        q = float(first[2:])
        if 0 <= q <= 1:
            return q
    return 1.0


def _compare(a: tuple[str, float, int], b: tuple[str, float, int]) -> int:
    if abs(a[1] - b[1]) < _Q_TOLERANCE:
        return (b[2] > a[2]) - (b[2] < a[2])
    return (b[1] > a[1]) - (b[1] < a[1])
