"""Fixtures the reverse proxy's runtime tests share."""

from __future__ import annotations

from typing import Any

import pytest

from h2backends import H2Backend


@pytest.fixture
def backends() -> Any:
    """`backends(respond, **settings)` starts an H2Backend that is closed after the test."""
    started: list[H2Backend] = []

    def start(respond: Any = None, **settings: Any) -> H2Backend:
        backend = H2Backend(respond, **settings)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.close()
