"""Fixtures the protocol tests share: a site folder to serve, and a CA for its certificates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tls.test_termination import Authority

BIG = 3 * 1024 * 1024 + 123  # the size of the site's big.bin


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(BIG))
    (root / "small.txt").write_text("small file\n")
    return root


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path)
