"""Content-Type by file extension, as Caddy (Go's `mime.TypeByExtension`) answers it.

Go's table is its small built-in list plus the host's shared-mime-info database, so
Caddy's answers vary between machines. Ours is fixed: Python's built-in table (never the
host's files), then the common web types as shared-mime-info names them, then Go's
built-in list on top. As in Go, every `text/*` type carries `charset=utf-8`, lookups
ignore case, and an unknown extension has no type at all (the file server then sends no
Content-Type: nothing is sniffed).
"""

from __future__ import annotations

import mimetypes

# Go's built-in table (mime/type.go), which wins over everything else.
_GO_BUILTIN = {
    ".avif": "image/avif",
    ".css": "text/css; charset=utf-8",
    ".gif": "image/gif",
    ".htm": "text/html; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".mjs": "text/javascript; charset=utf-8",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".xml": "text/xml; charset=utf-8",
}

# Common web types missing from Python's table, named as shared-mime-info names them
# (what Caddy answers on a typical Linux host).
_COMMON = {
    ".7z": "application/x-7z-compressed",
    ".apk": "application/vnd.android.package-archive",
    ".atom": "application/atom+xml",
    ".bz2": "application/x-bzip",
    ".deb": "application/vnd.debian.binary-package",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".eot": "application/vnd.ms-fontobject",
    ".epub": "application/epub+zip",
    ".flac": "audio/flac",
    ".geojson": "application/geo+json",
    ".gz": "application/gzip",
    ".ics": "text/calendar",
    ".jsonld": "application/ld+json",
    ".jxl": "image/jxl",
    ".m4a": "audio/mp4",
    ".md": "text/markdown",
    ".mkv": "video/x-matroska",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".oga": "audio/ogg",
    ".ogg": "audio/ogg",
    ".ogv": "video/ogg",
    ".otf": "font/otf",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".rar": "application/vnd.rar",
    ".rss": "application/rss+xml",
    ".tgz": "application/x-compressed-tar",
    ".toml": "application/toml",
    ".ttf": "font/ttf",
    ".webm": "video/webm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".xhtml": "application/xhtml+xml",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xz": "application/x-xz",
    ".yaml": "application/x-yaml",
    ".yml": "application/x-yaml",
    ".zst": "application/zstd",
}


def _with_charset(media_type: str) -> str:
    if media_type.startswith("text/") and "charset=" not in media_type:
        return media_type + "; charset=utf-8"
    return media_type


def _build_table() -> dict[str, str]:
    python = mimetypes.MimeTypes()  # Python's built-in table only, no host files
    table: dict[str, str] = {}
    for strict in (False, True):
        table.update((ext.lower(), t) for ext, t in python.types_map[strict].items())
    table.update(_COMMON)
    table.update(_GO_BUILTIN)
    return {ext: _with_charset(t) for ext, t in table.items()}


_TABLE = _build_table()


def type_by_extension(ext: str) -> str:
    """The media type of a file extension (with its dot), or "" when unknown."""
    return _TABLE.get(ext) or _TABLE.get(ext.lower(), "")
