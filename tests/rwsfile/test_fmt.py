"""`rws fmt`: the layout rules of Caddy's `caddy fmt`, the places where we deliberately keep
the input's meaning instead, the `--diff` lines, and properties over arbitrary text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text
from rws.rwsfile.fmt import format_rwsfile, unified_diff_lines

CASES_DIR = Path(__file__).parent / "fmt_cases"

# (name, input, expected output): each states one rule of Caddy's formatter.
CADDY_RULES = [
    ("empty file is one newline", "", "\n"),
    ("whitespace-only file is one newline", "  \n\t\n ", "\n"),
    ("file is trimmed and ends with exactly one newline", "\n\n  a b  \n\n\n", "a b\n"),
    ("runs of spaces and tabs between tokens become one space", "a   b\t\tc", "a b c\n"),
    ("unicode spaces separate tokens like ascii ones", "a\xa0\u2003b", "a b\n"),
    ("control characters that python calls space are word characters", "a\x1cb", "a\x1cb\n"),
    ("carriage returns are dropped from line ends", "a  b\r\nc {\r\nd\r\n}\r\n", "a b\nc {\n\td\n}\n"),
    ("input indentation is replaced by one tab per level", "a {\n    b {\n  c\n }\n}", "a {\n\tb {\n\t\tc\n\t}\n}\n"),
    ("at most one blank line is kept", "a\n\n\n\nb", "a\n\nb\n"),
    ("no blank line right after { or right before }", "a {\n\n\n\tb\n\n\n\tc\n\n\n}", "a {\n\tb\n\n\tc\n}\n"),
    ("a lone { line joins the line before", "a\n{\nb\n}", "a {\n\tb\n}\n"),
    ("{ gets exactly one space before it", "a{\nb\n}\nc    {\nd\n}", "a {\n\tb\n}\nc {\n\td\n}\n"),
    ("content after { moves to the next line", "a { b c { d e\n}\n}", "a {\n\tb c {\n\t\td e\n\t}\n}\n"),
    ("} after content moves to its own line", "a {\nb }", "a {\n\tb\n}\n"),
    ("an empty block on one line is split", "a {  }", "a {\n}\n"),
    ("a word glued after } starts a new block, after a blank line", "a {\n}b {\n}", "a {\n}\n\nb {\n}\n"),
    ("no blank line is added between blocks on consecutive lines", "a {\n}\nb {\n}", "a {\n}\nb {\n}\n"),
    (
        "blocks inside blocks on consecutive lines stay together",
        "a {\n{\n{\n}\n}\n}",
        "a {\n\t{\n\t\t{\n\t\t}\n\t}\n}\n",
    ),
    ("an inline comment gets one space before it and keeps its text", "a b    # c   d", "a b # c   d\n"),
    ("comment lines are indented like directives", "a {\n# c\n   # d\n}", "a {\n\t# c\n\t# d\n}\n"),
    ("a comment after { moves to the next line", "a { # c\n}", "a {\n\t# c\n}\n"),
    ("a { line is not folded into a comment above it", "# c\n{\nb\n}", "# c\n{\n\tb\n}\n"),
    ("a comment hides braces", "#a {\n\tb\n}", "#a {\nb\n}\n"),
    ("double-quoted strings keep their spaces", 'respond "a   b"   200', 'respond "a   b" 200\n'),
    ("double-quoted strings keep their line breaks", 'a {\n"x\n   y"\n}', 'a {\n\t"x\n   y"\n}\n'),
    ("escaped quotes do not end a string", 'a "b \\"  c\\"  d"   e', 'a "b \\"  c\\"  d" e\n'),
    ('a " inside a word does not open a string', 'a b"c   d"', 'a b"c d"\n'),
    ("braces inside quotes do not nest", 'a {\nrespond "{"\nrespond "}"\n}', 'a {\n\trespond "{"\n\trespond "}"\n}\n'),
    (
        "backquoted strings keep spaces, line breaks, quotes and braces",
        'respond `{\n  "a"   }`   200',
        'respond `{\n  "a"   }` 200\n',
    ),
    (
        "a backquoted template on a block's line is left alone",
        'block {respond `braces: {{now | date "2006"}}`}',
        'block {respond `braces: {{now | date "2006"}}`}\n',
    ),
    ("placeholders are words", "a {path}  b{x}c", "a {path} b{x}c\n"),
    (
        "a { inside a word followed by a space opens a block",
        "foo{bar} foo{ bar}baz",
        "foo{bar} foo {\n\tbar\n}\n\nbaz\n",
    ),
    (
        "environment placeholders are words",
        "{$A}\n\nb {\n{$C}\n}\n\nd { {$E}\n}",
        "{$A}\n\nb {\n\t{$C}\n}\n\nd {\n\t{$E}\n}\n",
    ),
    ("an environment placeholder can be a site address", ":{$PORT} {\nb\n}", ":{$PORT} {\n\tb\n}\n"),
    ("escapes are copied", 'a   \\"b  c\\"', 'a \\"b c\\"\n'),
    ("an escaped line break continues the line", "a \\\n    b", "a \\\n b\n"),
    (
        "a heredoc body and closing marker are copied verbatim",
        "a {\nrespond <<EOF\n    x    y\n   EOF\n}",
        "a {\n\trespond <<EOF\n    x    y\n   EOF\n}\n",
    ),
    (
        "text after a heredoc's closing marker is formatted",
        "a {\n\trespond <<EOF\n\tbody\n\tEOF     200\n}",
        "a {\n\trespond <<EOF\n\tbody\n\tEOF 200\n}\n",
    ),
    ("<<MARKER followed by more words is an ordinary word", 'a <<EOF    "x  y"', 'a <<EOF "x  y"\n'),
    ("an escaped << does not open a heredoc", "a \\<<EOF\n  b   c", "a \\<<EOF\nb c\n"),
    (
        "a lone { after top-level import lines stays on its own line",
        "import a\nimport b\n{\n\tdebug\n}\n\nc {\n}",
        "import a\nimport b\n{\n\tdebug\n}\n\nc {\n}\n",
    ),
    ("extra closing braces each get a line at the top level", "a {\n}}}", "a {\n}\n}\n}\n"),
    (
        "indentation stops growing after ten levels",
        "{\n" * 12 + "x",
        "".join("\t" * min(depth, 10) + "{\n" for depth in range(12)) + "\t" * 10 + "x\n",
    ),
    # Caddy quirks we keep, because they change no meaning and Caddy's output is stable.
    ("a comment line can be followed by two blank lines", "# c\n\n\n\nb", "# c\n\n\nb\n"),
    ("a lone { line after a word ending in } gets a blank line", "{$SITE}\n{\nb\n}", "{$SITE}\n\n{\n\tb\n}\n"),
]

# (name, input, expected output, what Caddy writes instead): Caddy's formatter would change
# the meaning of these files, or give something that changes again when formatted again.
KEPT_MEANING = [
    ("a < b keeps its space", "a < b", "a < b\n", "a <b\n"),
    ("a trailing { is kept", "a {", "a {\n", "a\n"),
    ("a { glued to a pending { is kept", "a {{x}}", "a {{x}}\n", "a {x}}\n"),
    ("a backquoted string starting a line stays whole", "a\n`b  c`", "a\n`b  c`\n", "a `b  c\n`\n"),
    ("an escape starting a line stays on its line", "a\n\\b", "a\n\\b\n", "a \\b\n"),
    (
        "a backslash inside backquotes does not escape the closing one",
        "a `x\\` b   c",
        "a `x\\` b c\n",
        "a `x\\` b   c\n",
    ),
    ("# inside a word does not start a comment", "redir /a#b   /c", "redir /a#b /c\n", "redir /a#b   /c\n"),
    (
        "spaces after a heredoc marker do not hide the heredoc",
        "a <<EOF  \n  b   c\nEOF",
        "a <<EOF\n  b   c\nEOF\n",
        "a <<EOF\nb c\nEOF\n",
    ),
    (
        "a heredoc in a file with CRLF line ends keeps its body",
        "a <<EOF\r\n  b   c\r\nEOF\r\n",
        "a <<EOF\n  b   c\r\nEOF\n",
        "a <<EOF\nb c\nEOF\n",
    ),
    (
        "a } after <<MARKER stays on its line",
        "a {\nb <<EOF }\n}",
        "a {\n\tb <<EOF }\n}\n",
        "a {\n\tb <<EOF\n}\n}\n",
    ),
    (
        "}} after a placeholder closes two blocks",
        "a {\nb {\nc {x}\n}}",
        "a {\n\tb {\n\t\tc {x}\n\t}\n}\n",
        "a {\n\tb {\n\t\tc {x}\n\t}\t}\n",
    ),
]

# Inputs on which Caddy 2.6.2 (the packaged binary) and the latest Caddy agree: no backquotes
# (2.6.2 collapsed spaces inside them), no heredocs, no `import` before a lone `{`.
CADDY_262_INPUTS = [
    "a   b\t\tc\n",
    "  a\nb\n\n\tc {\n\t\td\n}\n\ne { f\n}\n\n\n\ng {\nh {\ni\n}\n}",
    "a{\n\tb\n}\n\nc{ d\n}",
    "abc {\n\tdef\n}ghi{\n\tjkl mno\npqr}",
    'site {\n  # comment   with   spaces\n    respond   "a   b"   200   # trailing\n}',
    (
        "example.com {\n\treverse_proxy localhost:8080 {\n        lb_policy  first\n  }\n}\n\n\n\n"
        "www.example.com {\n  redir https://example.com{uri}\n}"
    ),
    "a {\n\n\n\tb\n\n\n\tc\n\n\n}",
    "{\n\temail {$ACMEEMAIL}\n\t#debug\n\t}\n\n\tblock {\n\t}\n",
    "a\n{\n\t{\n}}}",
    "foo{bar} foo{ bar}baz",
    'a \\"lit\\"   b',
    'j {\n"\\"k\\" l m"\n}',
    "a  b\r\nc {\r\nd\r\n}\r\n",
    "x {\n" + "{\n" * 12 + "}\n}",
    ":8080 {\n\tfile_server    browse\n}",
]

needs_caddy = pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not on PATH")


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in CADDY_RULES], ids=[c[0] for c in CADDY_RULES]
)
def test_caddy_layout_rule(text: str, expected: str) -> None:
    assert format_rwsfile(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:3] for c in KEPT_MEANING], ids=[c[0] for c in KEPT_MEANING]
)
def test_meaning_kept_where_caddy_would_change_it(text: str, expected: str) -> None:
    assert format_rwsfile(text) == expected


@pytest.mark.parametrize("case", sorted(CASES_DIR.glob("*.rwsfile")), ids=lambda p: p.stem)
def test_golden_file(case: Path) -> None:
    expected = case.with_suffix(".fmt").read_bytes().decode()
    assert format_rwsfile(case.read_bytes().decode()) == expected


def test_canonical_file_is_unchanged() -> None:
    text = (CASES_DIR / "canonical.rwsfile").read_bytes().decode()
    assert format_rwsfile(text) == text


ALL_INPUTS = [c[1] for c in CADDY_RULES] + [c[1] for c in KEPT_MEANING] + CADDY_262_INPUTS


@pytest.mark.parametrize("text", ALL_INPUTS)
def test_formatting_twice_changes_nothing(text: str) -> None:
    once = format_rwsfile(text)
    assert format_rwsfile(once) == once


@pytest.mark.parametrize("text", [c[3] for c in KEPT_MEANING], ids=[c[0] for c in KEPT_MEANING])
def test_caddy_output_for_kept_cases_formats_stably(text: str) -> None:
    """What Caddy writes for those inputs is accepted too, and formatting it twice changes nothing."""
    once = format_rwsfile(text)
    assert format_rwsfile(once) == once


# -- `--diff` lines ------------------------------------------------------------------------


def test_diff_of_formatted_file_marks_every_line_unchanged() -> None:
    text = "a {\n\tb\n}\n"
    assert unified_diff_lines(text, text) == ["  a {", "  \tb", "  }", "  "]


def test_diff_shows_removed_then_added_lines_in_caddy_order() -> None:
    original = "a  b\nc {\nd}\n"
    assert unified_diff_lines(original, format_rwsfile(original)) == [
        "- a  b",
        "+ a b",
        "  c {",
        "- d}",
        "+ \td",
        "+ }",
        "  ",
    ]


def test_diff_keeps_carriage_returns_of_the_original() -> None:
    assert unified_diff_lines("a\r\n", "a\n") == ["- a\r", "+ a", "  "]


def test_diff_of_two_empty_texts_is_one_unchanged_empty_line() -> None:
    assert unified_diff_lines("", "") == ["  "]


# -- agreement with the installed caddy binary ---------------------------------------------


def _caddy(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["caddy", "fmt", *args],
        input=None if stdin is None else stdin.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.stdout.decode()  # as bytes: text mode would turn "\r\n" into "\n"


@needs_caddy
@pytest.mark.parametrize("text", CADDY_262_INPUTS)
def test_output_matches_caddy_binary(text: str) -> None:
    assert format_rwsfile(text) == _caddy("-", stdin=text)


@needs_caddy
@pytest.mark.parametrize("text", CADDY_262_INPUTS)
def test_diff_matches_caddy_binary(text: str, tmp_path: Path) -> None:
    path = tmp_path / "Caddyfile"
    path.write_bytes(text.encode())
    lines = unified_diff_lines(text, format_rwsfile(text))
    assert "".join(line + "\n" for line in lines) == _caddy("--diff", str(path))


# -- properties over arbitrary text --------------------------------------------------------

SOUP_PIECES = [
    "a", "bc", "import", "respond", "{", "}", "{$X}", "{x}", "{{", "}}", "#", "# c", '"', "`", "\\",
    "<", "<<", "<<EOF", "EOF", "\\<<", " ", "  ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", "\xa0",
    "\x1c", "é", "/p#q", ":80", "x{", "}y",
]  # fmt: skip
soup = st.lists(st.sampled_from(SOUP_PIECES) | st.text(max_size=3), max_size=40).map("".join)

_GO_SPACE = re.compile(r"[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]")


@settings(max_examples=1500, deadline=None)
@given(soup)
def test_soup_formats_idempotently(text: str) -> None:
    once = format_rwsfile(text)
    assert format_rwsfile(once) == once


@settings(max_examples=1500, deadline=None)
@given(soup)
def test_soup_keeps_every_visible_character_in_order(text: str) -> None:
    assert _GO_SPACE.sub("", format_rwsfile(text)) == _GO_SPACE.sub("", text)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_gives_a_trimmed_text_with_one_final_newline(text: str) -> None:
    result = format_rwsfile(text)
    body, final = result[:-1], result[-1]
    assert final == "\n"
    assert body == "" or not (_GO_SPACE.fullmatch(body[0]) or _GO_SPACE.fullmatch(body[-1]))


SITE_ADDRESSES = ["example.com", ":8080", "localhost", "http://a.com, http://b.com"]
SITE_LINES = [
    'respond "hi  there" 200',
    "respond `a  b {x}`",
    "respond <<EOF\n\t  body  x\n\tEOF 200",
    "respond {path}",
    "respond {$GREETING}",
    "file_server",
    "root * /srv",
    "encode gzip zstd",
    "reverse_proxy localhost:9000",
    "redir /a /b",
    "handle /api/* {\nrespond x\n}",
    'header {\n-Server\nX-B "c  d"\n}',
    "# a comment  {",
]
line_break = st.sampled_from(["\n", "\n\n", "\n\n\n", "\n  ", "\n\t\t"])


def site(address: str) -> st.SearchStrategy[str]:
    """A site block with its `{` and `}` placed in the ways people write them."""
    return st.builds(
        lambda brace, lines, close: address + brace + "".join(lines) + close,
        st.sampled_from([" {", "  {", "\t{", "\n{", " { "]),
        st.lists(st.builds(str.__add__, line_break, st.sampled_from(SITE_LINES)), max_size=5),
        st.sampled_from(["\n}", "\n  }", "\n\t}", "\n\n}"]),
    )


rwsfiles = st.lists(st.sampled_from(SITE_ADDRESSES), min_size=1, max_size=3, unique=True).flatmap(
    lambda addresses: st.tuples(*(site(address) for address in addresses), line_break).map(
        lambda parts: parts[-1].join(parts[:-1])
    )
)


@settings(max_examples=200, deadline=None)
@given(rwsfiles, st.sampled_from([" ", "  ", "\t"]))
def test_formatting_never_changes_the_adapted_config(text: str, spacing: str) -> None:
    text = text.replace(" ", spacing)
    environ = {"GREETING": "hello"}
    try:
        expected = adapt_text(text, "Rwsfile", environ)[0]
    except RwsfileError:
        return  # not a valid Rwsfile: nothing to compare
    assert adapt_text(format_rwsfile(text), "Rwsfile", environ)[0] == expected
