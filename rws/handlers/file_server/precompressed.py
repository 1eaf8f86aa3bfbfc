"""Precompressed sidecar files (`index.html.br`, `app.js.gz`, ...).

Each `http.precompressed.*` module says which `Accept-Encoding` token it answers and
the suffix of its sidecar files. Which one a client gets is negotiated with
`accepted_encodings` (in `rws/http/message.py`), ordered by the configured
`precompressed_order`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.http.routes import BuildContext


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
