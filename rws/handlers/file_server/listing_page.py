"""The HTML page of a directory listing: one self-contained document, no scripts.

Layout, after Caddy's: breadcrumbs that link to every parent folder, a summary line, then
a table (Name, Size, Modified) whose column headers sort the listing (the active column
toggles between ascending and descending and says so with `aria-sort`), starting with a
link to the parent folder. Every name is HTML-escaped; every link is relative, so the
page works behind a path prefix. Light and dark colour schemes follow the browser.
"""

from __future__ import annotations

import html
import math
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from rws.handlers.file_server.browse import Item, Listing

_STYLE = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --link: #0550ae; --row: #f6f8fa; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --link: #4493f8; --row: #151b23; }
}
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 72rem; padding: 1.5rem 1rem 3rem; color: var(--fg);
       font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--link); text-decoration: none; }
a:hover, a:focus-visible { text-decoration: underline; }
a:focus-visible { outline: 2px solid var(--link); outline-offset: 2px; border-radius: 2px; }
.crumbs { display: flex; flex-wrap: wrap; gap: .25rem; list-style: none; margin: 0; padding: 0; color: var(--muted); }
.crumbs li + li::before { content: "/"; margin-right: .25rem; }
h1 { font-size: 1.5rem; margin: .5rem 0 .25rem; overflow-wrap: anywhere; }
.summary { color: var(--muted); margin: 0 0 1rem; }
table { width: 100%; border-collapse: collapse; }
th, td { padding: .4rem .6rem; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; white-space: nowrap; }
th[aria-sort] a::after { content: " \\2191"; }
th[aria-sort="descending"] a::after { content: " \\2193"; }
tbody tr:hover { background: var(--row); }
td.name { overflow-wrap: anywhere; }
td.size, th.size { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; color: var(--muted); font-variant-numeric: tabular-nums; }
.target { color: var(--muted); }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
@media (max-width: 40rem) { td.time, th.time { display: none; } }
"""

_COLUMNS = (("name", "Name", ""), ("size", "Size", "size"), ("time", "Modified", "time"))


def render_page(listing: Listing) -> str:
    """The whole HTML document for a listing."""
    shown = unquote(listing.path)
    title = html.escape(shown if shown.endswith("/") else shown + "/")
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f"<title>Index of {title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<header>\n",
        _breadcrumbs(listing.path),
        f"<h1>Index of {title}</h1>\n",
        f'<p class="summary">{_summary(listing)}</p>\n</header>\n<main>\n<table>\n',
        f'<caption class="sr-only">Contents of {title}</caption>\n',
        _head(listing),
        "<tbody>\n",
    ]
    if listing.can_go_up:
        parts.append('<tr><td class="name"><a href="../">Parent folder</a></td>'
                     '<td class="size"></td><td class="time"></td></tr>\n')
    parts.extend(_row(item) for item in listing.items)
    parts.append("</tbody>\n</table>\n")
    if listing.offset or listing.limit:
        parts.append(f'<p class="summary">Showing {len(listing.items)} entries from entry {listing.offset + 1}.</p>\n')
    parts.append("</main>\n</body>\n</html>\n")
    return "".join(parts)


def _breadcrumbs(path: str) -> str:
    """One link per parent folder; the last element is the current page."""
    trimmed = path[:-1] if path.endswith("/") else path
    segments = trimmed.split("/") if trimmed else [""]
    items = []
    for i, segment in enumerate(segments):
        text = html.escape(unquote(segment) if (i or segment) else "/")
        if i == len(segments) - 1:
            items.append(f'<li aria-current="page">{text}</li>')
        else:
            items.append(f'<li><a href="{"../" * (len(segments) - i - 1)}">{text}</a></li>')
    return f'<nav aria-label="Breadcrumb"><ol class="crumbs">{"".join(items)}</ol></nav>\n'


def _summary(listing: Listing) -> str:
    folders = f"{listing.num_dirs} folder{'' if listing.num_dirs == 1 else 's'}"
    files = f"{listing.num_files} file{'' if listing.num_files == 1 else 's'}"
    return f"{folders}, {files}, {human_size(listing.total_following_symlinks)}"


def _head(listing: Listing) -> str:
    cells = []
    active = "name" if listing.sort in ("name", "namedirfirst") else listing.sort
    for key, label, css in _COLUMNS:
        order = "asc"
        sort_attr = ""
        if key == active:
            descending = listing.order == "desc"
            order = "asc" if descending else "desc"
            sort_attr = f' aria-sort="{"descending" if descending else "ascending"}"'
        class_attr = f' class="{css}"' if css else ""
        cells.append(f'<th scope="col"{class_attr}{sort_attr}><a href="?sort={key}&amp;order={order}">{label}</a></th>')
    return f"<thead><tr>{''.join(cells)}</tr></thead>\n"


def _row(item: Item) -> str:
    name = html.escape(item.name)
    if item.symlink_path:
        name += f' <span class="target">\u2192 {html.escape(item.symlink_path)}</span>'
    elif item.is_symlink:
        name += ' <span class="target">(link)</span>'
    size = "" if item.is_dir else html.escape(human_size(item.size))
    seconds = item.mtime_ns // 1_000_000_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    shown = time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))
    return (f'<tr><td class="name"><a href="{html.escape(item.url)}">{name}</a></td>'
            f'<td class="size">{size}</td>'
            f'<td class="time"><time datetime="{stamp}">{shown}</time></td></tr>\n')


def human_size(size: int) -> str:
    """go-humanize's IBytes: `512 B`, `1.5 KiB`, `10 MiB`."""
    if size < 10:
        return f"{size} B"
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    exponent = min(int(math.log(size) / math.log(1024)), len(units) - 1)
    value = int(size / 1024**exponent * 10 + 0.5) / 10
    return f"{value:.0f} {units[exponent]}" if value >= 10 else f"{value:.1f} {units[exponent]}"
