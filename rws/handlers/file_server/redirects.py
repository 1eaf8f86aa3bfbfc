"""Redirects to canonical URIs: a trailing slash for directories, none for files.

The target is the ORIGINAL request path (the one the browser knows), and a redirect only
happens when the last path element was not rewritten, so an internal rewrite never
causes a redirect loop. The Location is the cleaned path, percent-encoded, with the
current query string; a leading `//` is reduced so it can't name another host.
"""

from __future__ import annotations

from urllib.parse import quote

from rws.handlers.file_server.content import text_response
from rws.handlers.file_server.paths import clean_path
from rws.http.uri import path_base
from rws.http.message import Request, Response
from rws.http.uri import decode_path

_LOCATION_SAFE = "/:@!$&'()*+,;=~"


def canonical_redirect(request: Request, implicit_index: bool) -> Response | None:
    """The 308 that puts a trailing slash on a directory served by its index file, or
    takes it off a file; None when the URI is canonical or its last element was rewritten."""
    original = decode_path(request.orig_raw_path)
    if path_base(original) != path_base(request.path):
        return None
    if implicit_index and not original.endswith("/"):
        return redirect(request, original + "/")
    if not implicit_index and original.endswith("/") and len(original) > 1:
        return redirect(request, original[:-1])
    return None


def redirect(request: Request, to_path: str) -> Response:
    """A 308 to a path on this site (the current query kept), as Go's http.Redirect
    writes it: the path cleaned, a trailing slash kept, a short HTML body for GET."""
    while to_path.startswith("//"):  # never a scheme-relative URL to another host
        to_path = to_path[1:]
    trailing = to_path.endswith("/")
    to_path = clean_path(to_path if to_path.startswith("/") else "/" + to_path)
    if trailing and not to_path.endswith("/"):
        to_path += "/"
    location = quote(to_path, safe=_LOCATION_SAFE)
    if request.query:
        location += "?" + request.query
    headers = request.response_headers
    had_type = "Content-Type" in headers
    headers.set("Location", location)
    if had_type or request.method not in ("GET", "HEAD"):
        return Response(308, headers)
    headers.set("Content-Type", "text/html; charset=utf-8")
    if request.method == "HEAD":  # as Go: the type for GET and HEAD, a body for GET only
        return Response(308, headers)
    body = f'<a href="{_html_escape(location)}">Permanent Redirect</a>.\n\n'.encode()
    return text_response(request, 308, headers, body)


def _html_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))
