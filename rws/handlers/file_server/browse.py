"""Directory listings (`browse`): what Caddy lists, how it sorts, and the three formats.

A listing holds the first `file_limit` entries (default 10000) in directory order,
minus hidden ones; symbolic links are followed to tell whether they lead to a folder
and how big their target is (`reveal_symlinks` also shows where they point). The
response is JSON (Caddy's fields) when `Accept` mentions `application/json`, an aligned
text table for `text/plain`, and an HTML page otherwise (`listing_page.py`).

Sorting: `?sort=name|namedirfirst|size|time` and `?order=asc|desc` override the
configured `sort` option; a valid choice is remembered in `sort`/`order` cookies, which
are used when the query says nothing. `?offset=` and `?limit=` page through the list.
A listing is 304 when not modified since `If-Modified-Since` (the newest of the folder
and its entries).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol
from urllib.parse import parse_qsl, quote, unquote

from rws.errors import ConfigError, HttpError, RwsError
from rws.handlers.file_server.conditions import format_http_date, parse_http_date
from rws.handlers.file_server.config import BrowseConfig, SORT_BY, SORT_ORDER
from rws.handlers.file_server.content import Unavailable, text_response
from rws.handlers.file_server.listing_page import human_size, render_page
from rws.handlers.file_server.paths import clean_path
from rws.http.uri import path_base
from rws.handlers.file_server.redirects import redirect
from rws.http.message import Next, Request, Response
from rws.http.uri import decode_path, escaped_path

DEFAULT_FILE_LIMIT = 10000
_URL_SAFE = "$&+,/:;=@"  # Go's path escaping keeps these (and letters, digits, "-_.~")

# Go's os.FileMode bits
_MODE_DIR, _MODE_SYMLINK, _MODE_DEVICE, _MODE_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_MODE_SOCKET, _MODE_SETUID, _MODE_SETGID, _MODE_CHAR, _MODE_STICKY = 1 << 24, 1 << 23, 1 << 22, 1 << 21, 1 << 20

NotFound = Callable[[Request, Next], Awaitable[Response]]


class HideCheck(Protocol):
    """What the listing needs from the handler's hide rules."""

    def hidden(self, filename: str, hide: tuple[str, ...]) -> bool: ...


@dataclass(slots=True)
class Item:
    """One entry of a listing."""

    name: str  # display name; folders end with "/"
    size: int
    url: str  # relative: "./" + the escaped name
    mtime_ns: int
    mode: int  # Go's os.FileMode bits, as Caddy's JSON shows them
    is_dir: bool
    is_symlink: bool
    symlink_path: str = ""

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name, "size": self.size, "url": self.url, "mod_time": rfc3339_nano(self.mtime_ns),
            "mode": self.mode, "is_dir": self.is_dir, "is_symlink": self.is_symlink,
        }
        if self.symlink_path:
            out["symlink_path"] = self.symlink_path
        return out


@dataclass(slots=True)
class Listing:
    """A folder's listing, as the formats render it."""

    name: str  # the folder's name
    path: str  # the request path, escaped and cleaned
    can_go_up: bool
    last_modified_ns: int
    items: list[Item] = field(default_factory=list)
    num_dirs: int = 0
    num_files: int = 0
    total_file_size: int = 0
    total_following_symlinks: int = 0
    sort: str = ""
    order: str = ""
    offset: int = 0
    limit: int = 0


class Browser:
    """Serves listings for one file_server."""

    def __init__(self, config: BrowseConfig, hide: HideCheck) -> None:
        if config.template_file:
            raise ConfigError("browse.template_file", "custom browse templates (Go text/template) are not supported")
        self._hide = hide
        self._limit = config.file_limit or DEFAULT_FILE_LIMIT
        self._reveal_symlinks = config.reveal_symlinks
        self._sort = next((o for o in config.sort[:2] if o in SORT_BY), "")
        self._order = next((o for o in config.sort[:2] if o in SORT_ORDER), "")

    async def serve(self, request: Request, next: Next, dir_path: str, hide: tuple[str, ...],
                    not_found: NotFound) -> Response:
        original = decode_path(request.orig_raw_path)
        if request.path == "" or path_base(original) == path_base(request.path):
            if not original.endswith("/"):  # relative links in the page need the slash
                return redirect(request, original + "/")
        url_path = clean_path(escaped_path(request.raw_path, request.path))
        try:
            listing = await asyncio.to_thread(self._load, dir_path, url_path, hide)
        except _OpenFailed as exc:
            raise exc.error from exc.__cause__
        except FileNotFoundError:
            return await not_found(request, next)
        except PermissionError as exc:
            raise HttpError(403, "permission denied") from exc
        except OSError as exc:
            raise HttpError(500, f"reading directory: {exc}") from exc
        headers = request.response_headers
        headers.add("Vary", "Accept, Accept-Encoding")
        since = parse_http_date(request.headers.get("If-Modified-Since") or "")
        if since is not None and listing.last_modified_ns // 1_000_000_000 <= since:
            return Response(304, headers)
        self._apply_query(request, listing)
        headers.set("Last-Modified", format_http_date(listing.last_modified_ns // 1_000_000_000))
        accept = ",".join(request.headers.get_all("Accept")).lower()
        content_type, body = await asyncio.to_thread(_render, listing, accept)
        headers.set("Content-Type", content_type)
        return text_response(request, 200, headers, body)

    def _load(self, dir_path: str, url_path: str, hide: tuple[str, ...]) -> Listing:
        """Read the folder (in a worker thread): its first entries, hidden ones left out."""
        try:
            fd = os.open(dir_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise _OpenFailed(HttpError(404)) from exc
        except PermissionError as exc:
            raise _OpenFailed(HttpError(403, "permission denied")) from exc
        except OSError as exc:
            raise _OpenFailed(Unavailable(exc)) from exc
        try:
            listing = Listing(name=path_base(unquote(url_path)), path=url_path, can_go_up=len(url_path) > 1,
                              last_modified_ns=os.fstat(fd).st_mtime_ns)
            with os.scandir(fd) as entries:
                for count, entry in enumerate(entries):
                    if count >= self._limit:
                        break
                    if self._hide.hidden(f"{dir_path}/{entry.name}", hide):
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # vanished meanwhile: left out, as Caddy does
                    _add(listing, self._item(fd, entry, info), info.st_size)
            return listing
        finally:
            os.close(fd)

    def _item(self, dir_fd: int, entry: os.DirEntry[str], info: os.stat_result) -> Item:
        is_symlink = stat.S_ISLNK(info.st_mode)
        target: os.stat_result | None = None
        link = ""
        if is_symlink:
            try:
                target = os.stat(entry.name, dir_fd=dir_fd)
            except (OSError, ValueError):
                target = None
            if self._reveal_symlinks:
                try:
                    link = display_name(os.readlink(entry.name, dir_fd=dir_fd))
                except OSError:
                    link = ""
        is_dir = stat.S_ISDIR(info.st_mode) or (target is not None and stat.S_ISDIR(target.st_mode))
        raw_name = entry.name + ("/" if is_dir else "")
        size = target.st_size if target is not None else info.st_size
        return Item(name=display_name(raw_name), size=size, url="./" + quote(os.fsencode(raw_name), safe=_URL_SAFE),
                    mtime_ns=info.st_mtime_ns, mode=go_file_mode(info.st_mode), is_dir=is_dir,
                    is_symlink=is_symlink, symlink_path=link)

    def _apply_query(self, request: Request, listing: Listing) -> None:
        """Sort and page the listing from the query, the cookies and the config."""
        query = _first_values(request.query)
        sort = query.get("sort") or self._sort
        order = query.get("order") or self._order
        secure = "; Secure" if request.scheme == "https" else ""
        if not sort:
            sort = _cookie(request, "sort") or "namedirfirst"
        elif sort in SORT_BY:
            request.response_headers.add("Set-Cookie", f"sort={sort}; HttpOnly{secure}; SameSite=Lax")
        if not order:
            order = _cookie(request, "order") or "asc"
        elif order in SORT_ORDER:
            request.response_headers.add("Set-Cookie", f"order={order}; HttpOnly{secure}; SameSite=Lax")
        sort_and_limit(listing, sort, order, query.get("limit", ""), query.get("offset", ""))


def _render(listing: Listing, accept: str) -> tuple[str, bytes]:
    """The listing in the format `Accept` asks for (in a worker thread: it may be long)."""
    if "application/json" in accept:
        return "application/json; charset=utf-8", go_json([item.to_json() for item in listing.items]).encode()
    if "text/plain" in accept:
        return "text/plain; charset=utf-8", text_table(listing.items).encode()
    return "text/html; charset=utf-8", render_page(listing).encode()


class _OpenFailed(RwsError):
    """The folder could not be opened; carries the HTTP error to raise."""

    def __init__(self, error: HttpError) -> None:
        super().__init__(str(error))
        self.error = error


def _add(listing: Listing, item: Item, own_size: int) -> None:
    """Count an item in; `own_size` is the entry's own size (a link's, not its target's)."""
    listing.items.append(item)
    listing.last_modified_ns = max(listing.last_modified_ns, item.mtime_ns)
    if item.is_dir:
        listing.num_dirs += 1
        return
    listing.num_files += 1
    listing.total_file_size += own_size
    listing.total_following_symlinks += item.size


def sort_and_limit(listing: Listing, sort: str, order: str, limit: str, offset: str) -> None:
    """Caddy's applySortAndLimit: an unknown `sort` keeps directory order."""
    listing.sort, listing.order = sort, order
    keys: dict[str, Callable[[Item], Any]] = {
        "name": lambda i: i.name.lower(),
        "namedirfirst": lambda i: (not i.is_dir, i.name.lower()),
        "size": lambda i: (0, i.name.lower(), 0) if i.is_dir else (1, "", i.size),
        "time": lambda i: i.mtime_ns,
    }
    key = keys.get(sort)
    if key is not None:
        listing.items.sort(key=key, reverse=order == "desc")
    start = _atoi(offset)
    if 0 < start <= len(listing.items):
        listing.items = listing.items[start:]
        listing.offset = start
    count = _atoi(limit)
    if 0 < count <= len(listing.items):
        listing.items = listing.items[:count]
        listing.limit = count


def _atoi(text: str) -> int:
    return int(text) if re.fullmatch(r"[+-]?[0-9]{1,18}", text, re.ASCII) else 0


def _first_values(query: str) -> dict[str, str]:
    """The first value of each query parameter; pairs holding ";" are skipped, as Go does."""
    out: dict[str, str] = {}
    for pair in query.split("&"):
        if ";" in pair:
            continue
        for name, value in parse_qsl(pair, keep_blank_values=True):
            out.setdefault(name, value)
    return out


def _cookie(request: Request, name: str) -> str:
    for header in request.headers.get_all("Cookie"):
        for pair in header.split(";"):
            key, eq, value = pair.strip().partition("=")
            if eq and key == name:
                return value.strip('"')
    return ""


# --- formats -------------------------------------------------------------------------------


def display_name(name: str) -> str:
    """A file name as text: bytes that aren't UTF-8 become U+FFFD, as in Go."""
    return os.fsencode(name).decode("utf-8", "replace")


def go_file_mode(st_mode: int) -> int:
    """Go's os.FileMode for a POSIX st_mode."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: _MODE_DIR, stat.S_IFLNK: _MODE_SYMLINK, stat.S_IFBLK: _MODE_DEVICE,
             stat.S_IFCHR: _MODE_DEVICE | _MODE_CHAR, stat.S_IFIFO: _MODE_PIPE, stat.S_IFSOCK: _MODE_SOCKET}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= _MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _MODE_STICKY
    return mode


def rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: fractional seconds without trailing zeros."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    t = time.gmtime(seconds)
    text = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def go_json(value: object) -> str:
    """JSON as Go's encoder writes it: compact, HTML-safe escapes, a final newline."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text + "\n"


def text_table(items: list[Item]) -> str:
    """The `text/plain` listing: Go's tabwriter with tab padding (8 columns wide)."""
    rows = [("Name", "Size", "Modified"), ("----", "----", "--------")]
    rows += [(i.name, human_size(i.size), time.strftime("%B %-d, %Y at %H:%M:%S", time.gmtime(i.mtime_ns // 10**9)))
             for i in items]
    widths = [max(len(r[c]) for r in rows) + 1 for c in (0, 1)]
    lines = []
    for row in rows:
        cells = []
        for c in (0, 1):
            cell_width = -(-widths[c] // 8) * 8
            cells.append(row[c] + "\t" * -(-(cell_width - len(row[c])) // 8))
        lines.append("".join(cells) + row[2] + "\n")
    return "".join(lines)
