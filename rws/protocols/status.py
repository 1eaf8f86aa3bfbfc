"""HTTP status codes' reason phrases, as Go spells them (so status lines and
`{http.error.status_text}` read as Caddy's do)."""

from __future__ import annotations


def status_text(status: int) -> str:
    """The reason phrase of a status code, as Go spells it (Caddy's `{err.status_text}`
    and status lines): Python's table with Go's few different spellings."""
    text = _STATUS_TEXT.get(status)
    if text is None:
        from http import HTTPStatus

        try:
            text = HTTPStatus(status).phrase
        except ValueError:
            text = ""
        text = _GO_SPELLINGS.get(status, text)
        _STATUS_TEXT[status] = text
    return text


_STATUS_TEXT: dict[int, str] = {}
_GO_SPELLINGS = {414: "Request URI Too Long", 418: "I'm a teapot", 413: "Request Entity Too Large",
                 416: "Requested Range Not Satisfiable", 422: "Unprocessable Entity"}
