"""HTTP/1.1: the core, two parser backends with one interface, and the backend choice."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def default_backend() -> type:
    """httptools (llhttp) when importable, else the pure-Python h11 backend."""
    try:
        from rws.protocols.http1.parse_httptools import HttptoolsParser
    except ImportError:
        from rws.protocols.http1.parse_h11 import H11Parser

        return H11Parser
    return HttptoolsParser
