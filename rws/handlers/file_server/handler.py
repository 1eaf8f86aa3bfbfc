"""The `file_server` runtime: which file a request names, and how it is answered.

For each request, as Caddy's FileServer does:
1. The root (`root`, default `{http.vars.root}`, "." when empty) is joined with the
   request path by `sanitized_path_join`, which cannot climb above the root whatever
   the path holds (`..`, `%2e%2e`, `%2f`, repeated slashes). A NUL byte or any other
   path the OS refuses gives 400; a permission problem 403; a missing file 404 (or the
   next handler with `pass_thru`).
2. A directory is answered by its first index file that exists and isn't hidden, else by
   a listing when `browse` is on, else 404. Hidden files and folders (`hide`) are 404.
3. Canonical URIs: unless the request's last path element was rewritten, a directory
   served through its index file gets a 308 to the path with a trailing slash, and a file
   requested with one gets a 308 to the path without it (the query is kept).
4. The file is opened once and described by `fstat` on that descriptor, so what is
   served, its ETag and its length agree even if the path changes meanwhile. A
   precompressed sidecar (`.br`, `.zst`, `.gz`) is preferred when the client accepts it.
5. Only GET and HEAD are served (405 with `Allow: GET, HEAD`), except inside error
   routes, where the file is served with the error's status.

Symbolic links are followed wherever they point, as in Caddy: a link inside the root is
the site owner's choice. The request path alone can never reach outside the root.
Only regular files are served; FIFOs, devices and sockets are treated as missing.
"""

from __future__ import annotations

import io
import os
import stat

from rws.errors import HttpError, RwsError
from rws.handlers.file_server.browse import Browser
from rws.handlers.file_server.conditions import calculate_etag, useful_mtime
from rws.handlers.file_server.config import FileServerConfig
from rws.handlers.file_server.content import Unavailable, serve_content
from rws.handlers.file_server.media_types import type_by_extension
from rws.handlers.file_server.paths import fast_abs, file_hidden, sanitized_path_join
from rws.http.uri import path_ext
from rws.handlers.file_server.precompressed import Precompressed
from rws.handlers.file_server.redirects import canonical_redirect
from rws.handlers.static_response import go_atoi
from rws.http.message import Next, Request, Response, accepted_encodings
from rws.http.placeholders import Template, compile_template
from rws.http.routes import BuildContext

DEFAULT_INDEX_NAMES = ("index.html", "index.txt")


def build(config: FileServerConfig, ctx: BuildContext) -> FileServer:
    return FileServer(config, ctx)


class _Missing(RwsError):
    """The file does not exist (or is not a regular file): a 404, or the next handler."""


class HideRules:
    """The `hide` entries, made absolute once when they hold no placeholders."""

    __slots__ = ("_cwd", "_entries", "_static")

    def __init__(self, entries: tuple[str, ...], cwd: str | None) -> None:
        self._cwd = cwd
        self._entries: tuple[str | Template, ...] = tuple(
            compile_template(e) if "{" in e else (fast_abs(e, cwd) if "/" in e else e) for e in entries)
        static = all(isinstance(e, str) for e in self._entries)
        self._static: tuple[str, ...] | None = tuple(str(e) for e in self._entries) if static else None

    def resolve(self, request: Request) -> tuple[str, ...]:
        """The entries for this request, placeholders replaced."""
        if self._static is not None:
            return self._static
        out = []
        for entry in self._entries:
            if isinstance(entry, Template):
                entry = entry.render(request)
                if "/" in entry:
                    entry = fast_abs(entry, self._cwd)
            out.append(entry)
        return tuple(out)

    def hidden(self, filename: str, hide: tuple[str, ...]) -> bool:
        return file_hidden(filename, hide, self._cwd)


class FileServer:
    """The handler; see the module docstring for what it does per request."""

    def __init__(self, config: FileServerConfig, ctx: BuildContext) -> None:
        try:
            cwd: str | None = os.getcwd()
        except OSError:
            cwd = None
        self._root = compile_template(config.root or "{http.vars.root}")
        self._fs = compile_template(config.fs or "{http.vars.fs}")
        self._hide = HideRules(config.hide, cwd)
        names = DEFAULT_INDEX_NAMES if config.index_names is None else config.index_names
        self._index_names = tuple(compile_template(n) for n in names)
        self._canonical = config.canonical_uris is not False
        self._status = compile_template(str(config.status_code)) if config.status_code else None
        self._pass_thru = config.pass_thru
        built = (ctx.build(m) for m in (config.precompressed or {}).values())
        self._precompressors: dict[str, Precompressed] = {p.encoding: p for p in built}
        self._order = config.precompressed_order
        self._etag_extensions = config.etag_file_extensions
        self._browse = Browser(config.browse, self._hide) if config.browse is not None else None

    async def handle(self, request: Request, next: Next) -> Response:
        try:
            return await self._handle(request, next)
        except Unavailable as exc:
            request.response_headers.set("Retry-After", str(exc.retry_after))
            raise

    async def _handle(self, request: Request, next: Next) -> Response:
        if self._fs.render(request) not in ("", "default"):
            raise HttpError(404, "filesystem not found")
        root = self._root.render(request, empty=".")
        hide = self._hide.resolve(request)
        filename = sanitized_path_join(root, request.path)
        if len(filename) > 1 and filename.endswith("/"):
            filename = filename[:-1]
        info = _stat(filename)
        if info is None:
            return await self._not_found(request, next)
        implicit_index = False
        if stat.S_ISDIR(info.st_mode):
            for name in self._index_names:
                index_path = sanitized_path_join(filename, name.render(request))
                if self._hide.hidden(index_path, hide):
                    continue
                try:
                    index_info = os.stat(index_path)
                except (OSError, ValueError):
                    continue
                filename, info, implicit_index = index_path, index_info, True
                break
        if stat.S_ISDIR(info.st_mode):
            if self._browse is not None and not self._hide.hidden(filename, hide):
                return await self._browse.serve(request, next, filename, hide, self._not_found)
            return await self._not_found(request, next)
        if self._hide.hidden(filename, hide):
            return await self._not_found(request, next)
        if self._canonical:
            redirect = canonical_redirect(request, implicit_index)
            if redirect is not None:
                return redirect
        return await self._serve_file(request, next, filename, info)

    async def _not_found(self, request: Request, next: Next) -> Response:
        if self._pass_thru:
            return await next(request)
        raise HttpError(404)

    async def _serve_file(self, request: Request, next: Next, filename: str, info: os.stat_result) -> Response:
        headers = request.response_headers
        etag = headers.get("ETag") or ""
        headers.add("Vary", "Accept-Encoding")
        opened = self._open_sidecar(request, filename)
        if opened is not None:  # a sidecar: its own ETag and length, the file's Last-Modified
            file, served, served_name = opened
        else:
            try:
                file, served = _open_regular(filename)
            except _Missing:
                return await self._not_found(request, next)
            info, served_name = served, filename
        if not etag:
            etag = self._etag_from_files(served_name, file) or calculate_etag(served.st_mtime_ns, served.st_size)
        try:
            if request.method not in ("GET", "HEAD") and request.error is None:
                headers.add("Allow", "GET, HEAD")
                raise HttpError(405)
            if etag:
                headers.set("ETag", etag)
            if not headers.get("Content-Type"):
                media_type = type_by_extension(path_ext(filename))
                if media_type:
                    headers.set("Content-Type", media_type)
                else:
                    headers.delete("Content-Type")  # never sniffed
            override = self._status_override(request)
        except BaseException:
            file.close()
            raise
        mtime = info.st_mtime_ns // 1_000_000_000 if useful_mtime(info.st_mtime_ns) else None
        return serve_content(request, headers, file, served.st_size, mtime, override)

    def _open_sidecar(self, request: Request, filename: str) -> tuple[io.FileIO, os.stat_result, str] | None:
        """The first precompressed sidecar of `filename` the client accepts, opened, with
        `Content-Encoding` set; None when there is none."""
        if not self._precompressors:
            return None
        headers = request.headers
        websocket = bool(headers.get("Sec-WebSocket-Key"))
        for encoding in accepted_encodings(headers.get("Accept-Encoding") or "", self._order, websocket):
            sidecar_format = self._precompressors.get(encoding)
            if sidecar_format is None:
                continue
            sidecar = filename + sidecar_format.suffix
            try:
                file, info = _open_regular(sidecar)
            except Unavailable:
                raise
            except (_Missing, HttpError):  # missing or unreadable: try the next one, as Caddy does
                continue
            request.response_headers.set("Content-Encoding", encoding)
            return file, info, sidecar
        return None

    def _etag_from_files(self, filename: str, file: io.FileIO) -> str:
        """The ETag stored beside the file (`etag_file_extensions`: the first that exists),
        newlines removed; "" when there is none."""
        for extension in self._etag_extensions:
            try:
                with open(filename + extension, "rb") as source:
                    data = source.read(8192)
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                file.close()
                raise HttpError(500, f"cannot read etag from file {filename + extension}: {exc}") from exc
            return data.replace(b"\n", b"").replace(b"\r", b"").decode("latin-1")
        return ""

    def _status_override(self, request: Request) -> int:
        """The status to write instead of ServeContent's: the error's inside error routes,
        then the configured `status_code`; 0 for none."""
        override = 0
        if request.error is not None:
            override = request.error.status if request.error.status > 0 else 500
        if self._status is not None:
            code = go_atoi(self._status.render(request))
            if code is None:
                raise HttpError(500, f"invalid status code {self._status.render(request)!r}")
            override = code
        return override


def _stat(filename: str) -> os.stat_result | None:
    """`os.stat` with Caddy's error statuses; None when the file does not exist."""
    try:
        return os.stat(filename)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise HttpError(403, "permission denied") from exc
    except (OSError, ValueError) as exc:  # NUL bytes, a file used as a folder, loops...
        raise HttpError(400, "invalid file path") from exc


def _open_regular(filename: str) -> tuple[io.FileIO, os.stat_result]:
    """Open a regular file for reading and describe it with `fstat` on the same
    descriptor. Opening never blocks (O_NONBLOCK, so a FIFO can't stall the server)."""
    try:
        fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError as exc:
        raise _Missing() from exc
    except PermissionError as exc:
        raise HttpError(403, "permission denied") from exc
    except (OSError, ValueError) as exc:
        raise Unavailable(exc) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Missing()
        os.set_blocking(fd, True)
        return open(fd, "rb", buffering=0), info
    except BaseException:
        os.close(fd)
        raise
