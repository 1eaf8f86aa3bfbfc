"""The `file_server` handler's JSON config, as Caddy's FileServer and Browse structs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from rws.config.decode import ModuleMap, WeakString
from rws.errors import ConfigError
from rws.handlers.static_response import status_code_problem

SORT_BY = ("name", "namedirfirst", "size", "time")
SORT_ORDER = ("asc", "desc")
DEFAULT_PRECOMPRESSED = ("br", "zstd", "gzip")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrowseConfig:
    template_file: str = ""
    reveal_symlinks: bool = False
    sort: tuple[str, ...] = ()
    file_limit: int = 0

    def validate(self, path: str) -> None:
        problem = sort_options_problem(self.sort)
        if problem:
            raise ConfigError(f"{path}.sort", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileServerConfig:
    fs: str = ""
    root: str = ""
    hide: tuple[str, ...] = ()
    index_names: tuple[str, ...] | None = None
    browse: BrowseConfig | None = None
    canonical_uris: bool | None = None
    status_code: WeakString = ""
    pass_thru: bool = False
    precompressed: Annotated[Any, ModuleMap("http.precompressed")] = None
    precompressed_order: tuple[str, ...] = ()
    etag_file_extensions: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.status_code:
            problem = status_code_problem(self.status_code)
            if problem:
                raise ConfigError(f"{path}.status_code", problem)
        for i, name in enumerate(self.precompressed_order):
            if name not in (self.precompressed or {}):
                raise ConfigError(f"{path}.precompressed_order[{i}]", f"precompressed format {name!r} is not configured in precompressed")


@dataclass(frozen=True, slots=True, kw_only=True)
class PrecompressedBrConfig:
    pass


def sort_options_problem(options: tuple[str, ...] | list[str]) -> str | None:
    """Caddy's rule for `browse.sort`: at most [<by>, <order>]."""
    if len(options) > 2:
        return f"only max 2 sort options are allowed, but got {len(options)}"
    if options and options[0] not in SORT_BY:
        return f"the first option must be one of the following: {', '.join(SORT_BY)}, but got {options[0]!r}"
    if len(options) == 2 and options[1] not in SORT_ORDER:
        return f"the second option must be one of the following: {', '.join(SORT_ORDER)}, but got {options[1]!r}"
    return None
