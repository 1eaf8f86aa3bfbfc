"""Malformed `log` blocks and matcher definitions fail with an RwsfileError, never a crash."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text

WORDS = st.sampled_from([
    "output", "format", "level", "sampling", "include", "exclude", "hostnames", "no_hostname", "core",
    "file", "net", "stdout", "discard", "json", "console", "filter", "wrap", "fields", "delete", "hash", "replace",
    "ip_mask", "query", "cookie", "regexp", "multi_regexp", "rename", "interval", "first", "thereafter", "mode",
    "roll_size", "roll_keep_for", "roll_minutes", "roll_at", "1", "-2", "1s", "x", "(", "0644", "1MB", "DEBUG", ",",
    "a>b", "ipv4", "99999999999999999999",
])

MATCHER_WORDS = st.sampled_from([
    "path", "path_regexp", "host", "method", "protocol", "tls", "header", "header_regexp", "query", "remote_ip",
    "client_ip", "not", "expression", "file", "vars", "vars_regexp", "root", "try_files", "try_policy", "split_path",
    "/a", "a=b", "!X", "X", "(", "10.0.0.0/8", "::1%z", "private_ranges", "early_data", "forwarded", "GET", "*", "",
])


def _line(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(words, min_size=1, max_size=5).map(lambda ws: " ".join(f'"{w}"' if w in ("", "(") else w for w in ws))


def _block(words: st.SearchStrategy[str], depth: int) -> st.SearchStrategy[str]:
    lines = _line(words)
    if depth > 0:
        nested = st.tuples(_line(words), _block(words, depth - 1)).map(lambda t: t[0] + " {\n" + t[1] + "\n}")
        lines = st.one_of(lines, nested)
    return st.lists(lines, min_size=1, max_size=4).map("\n".join)


def _adapts_or_fails_cleanly(text: str) -> None:
    try:
        adapt_text(text)
    except RwsfileError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=300, deadline=None)
@given(_block(WORDS, 2))
def test_random_log_blocks_fail_cleanly(body: str) -> None:
    _adapts_or_fails_cleanly(":80 {\nlog {\n" + body + "\n}\n}\n")
    _adapts_or_fails_cleanly("{\nlog {\n" + body + "\n}\n}\n")


@settings(max_examples=300, deadline=None)
@given(_block(MATCHER_WORDS, 2))
def test_random_matcher_blocks_fail_cleanly(body: str) -> None:
    _adapts_or_fails_cleanly(":80 {\n@m {\n" + body + "\n}\nrespond @m 200\n}\n")
