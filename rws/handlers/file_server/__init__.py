"""The `file_server` handler: static files, directory listings, precompressed sidecars.

Declarations live here; the pieces are split by responsibility:
- `config.py`: the JSON config (Caddy's FileServer and Browse fields);
- `directive.py`: the Rwsfile directive;
- `paths.py`: safe joining of the root and request path, Caddy's `hide` rule;
- `handler.py`: the runtime handler (finding the file, index files, canonical URIs,
  precompressed sidecars, ETag, Content-Type);
- `content.py` and `conditions.py`: Go's ServeContent (Range, multipart/byteranges,
  If-Match / If-None-Match / If-Modified-Since / If-Unmodified-Since / If-Range);
- `media_types.py`: Content-Type by file extension;
- `precompressed.py`: the `http.precompressed.*` modules and Accept-Encoding preferences;
- `browse.py` and `listing_page.py`: directory listings as JSON, text or HTML.
Importing this package loads no server code: runtime modules are named by import path.
"""

from __future__ import annotations

from rws.handlers.encode import GzipConfig, ZstdConfig
from rws.handlers.file_server.config import (
    DEFAULT_PRECOMPRESSED,
    SORT_BY,
    SORT_ORDER,
    BrowseConfig,
    FileServerConfig,
    PrecompressedBrConfig,
    sort_options_problem,
)
from rws.handlers.file_server.directive import parse_file_server
from rws.handlers.file_server.paths import (
    clean_path,
    file_hidden,
    go_glob_match,
    hide_config_files,
    sanitized_path_join,
)
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive

FILE_SERVER = ModuleSpec(
    id="http.handlers.file_server",
    config=FileServerConfig,
    directives={"file_server": Directive(parse_file_server)},
    runtime="rws.handlers.file_server.handler:build",
)

PRECOMPRESSED_GZIP = ModuleSpec(id="http.precompressed.gzip", config=GzipConfig,
                                runtime="rws.handlers.file_server.precompressed:build_gzip")
PRECOMPRESSED_ZSTD = ModuleSpec(id="http.precompressed.zstd", config=ZstdConfig,
                                runtime="rws.handlers.file_server.precompressed:build_zstd")
PRECOMPRESSED_BR = ModuleSpec(id="http.precompressed.br", config=PrecompressedBrConfig,
                              runtime="rws.handlers.file_server.precompressed:build_br")

__all__ = [
    "DEFAULT_PRECOMPRESSED", "FILE_SERVER", "PRECOMPRESSED_BR", "PRECOMPRESSED_GZIP", "PRECOMPRESSED_ZSTD",
    "SORT_BY", "SORT_ORDER", "BrowseConfig", "FileServerConfig", "PrecompressedBrConfig", "clean_path",
    "file_hidden", "go_glob_match", "hide_config_files", "sanitized_path_join", "sort_options_problem",
]
