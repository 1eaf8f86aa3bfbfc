"""Where rws keeps its files: data under $XDG_DATA_HOME/rws, config state under $XDG_CONFIG_HOME/rws."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable)
    if value:
        return Path(value)
    return Path.home() / fallback


def data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "rws"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "rws"


def autosave_path() -> Path:
    return config_dir() / "autosave.json"
