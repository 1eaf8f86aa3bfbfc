"""Random token streams never crash the adapter: it succeeds or raises RwsfileError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text

PIECES = [
    "{", "}", "{}", "\n", "\n", "\n", " ", "\t", "\\\n", "# comment", '"', '"quoted word"', "`raw`", "`",
    "<<EOF\nbody\nEOF", "<<EOF", "EOF", "import", "(snip)", "&(route)", "{args[0]}", "{args[:]}", "{$HOME}",
    "{block}", "@m", "*", "/path/*", "example.com", ":8080", "http://", "https://a.com:443", "localhost,",
    "respond", "reverse_proxy", "handle", "handle_path", "route", "file_server", "root", "header", "redir",
    "rewrite", "uri", "encode", "tls", "log", "bind", "vars", "map", "error", "abort", "try_files",
    "basic_auth", "forward_auth", "request_body", "handle_errors", "invoke", "path", "method", "not",
    "host", "query", "remote_ip", "lb_policy", "to", "transport", "http", "gzip", "200", "404", "1s",
    "off", "first", "before", "order", "servers", "admin", "email", "debug", "{path}", "{host}",
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.lists(st.sampled_from([" ", "\n"]), max_size=40))
def test_random_token_streams_adapt_or_fail_with_our_error(pieces: list[str], seps: list[str]) -> None:
    text = "".join(p + (seps[i] if i < len(seps) else " ") for i, p in enumerate(pieces))
    try:
        adapt_text(text, "Rwsfile", environ={})
    except RwsfileError as exc:
        assert "\n" not in str(exc).split(": ", 1)[0]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_adapts_or_fails_with_our_error(text: str) -> None:
    try:
        adapt_text(text, "Rwsfile", environ={})
    except RwsfileError:
        pass
