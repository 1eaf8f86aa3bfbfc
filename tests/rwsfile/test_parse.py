"""The lexical syntax and block structure of the Rwsfile (Caddyfile syntax)."""

from __future__ import annotations

import pytest

from rws.errors import RwsfileError
from rws.rwsfile.imports import load_text
from rws.rwsfile.parse import parse_text, substitute_env


def tokens(text: str) -> list[list[str]]:
    """The token texts of each top-level line."""
    return [[t.text for t in e.tokens] for e in parse_text(text, "Rwsfile", environ={})]


def site_lines(text: str, environ: dict[str, str] | None = None) -> list[list[str]]:
    doc = load_text(text, "Rwsfile", environ or {})
    return [[t.text for t in e.tokens] for e in doc.blocks[0].entries]


def error_of(text: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(RwsfileError) as info:
        load_text(text, "Rwsfile", environ or {})
    return str(info.value)


# --- tokens --------------------------------------------------------------------------------


def test_words_are_split_on_whitespace_and_lines_end_directives() -> None:
    assert tokens("a b   c\n\td e\n") == [["a", "b", "c"], ["d", "e"]]


def test_double_quotes_keep_spaces_and_only_escape_quotes() -> None:
    assert tokens('respond "a b" "say \\"hi\\"" "a\\nb" "a\\\\b"\n') == [
        ["respond", "a b", 'say "hi"', "a\\nb", "a\\\\b"]
    ]


def test_quoted_string_may_span_lines_and_stays_one_token() -> None:
    (line,) = parse_text('respond "one\ntwo" 200\n', "Rwsfile", {})
    assert [t.text for t in line.tokens] == ["respond", "one\ntwo", "200"]
    assert [t.line for t in line.tokens] == [1, 1, 2]


def test_backticks_are_raw() -> None:
    assert tokens('respond `{"a": "b\\n"}`\n') == [["respond", '{"a": "b\\n"}']]


def test_quotes_count_only_at_the_start_of_a_token() -> None:
    assert tokens('a"b c\n') == [['a"b', "c"]]


def test_comments_start_only_at_a_token_start() -> None:
    assert tokens("foo#bar baz # a comment\n# whole line\nnext\n") == [["foo#bar", "baz"], ["next"]]


def test_backslash_newline_continues_the_line() -> None:
    (line,) = parse_text('respond /e \\\n  "continued" \\\n  201\n', "Rwsfile", {})
    assert [t.text for t in line.tokens] == ["respond", "/e", "continued", "201"]
    assert line.tokens[-1].line == 3


def test_other_backslashes_are_kept() -> None:
    assert tokens("respond \\{path\\}\n") == [["respond", "\\{path\\}"]]


def test_heredoc_strips_the_closing_marker_indentation() -> None:
    text = "respond <<EOF\n\t\tline one\n\t\t  indented\n\n\t\tEOF 202\n"
    (line,) = parse_text(text, "Rwsfile", {})
    assert [t.text for t in line.tokens] == ["respond", "line one\n  indented\n", "202"]
    assert line.tokens[1].quote == "<"


def test_heredoc_with_mismatched_indentation_is_an_error() -> None:
    with pytest.raises(RwsfileError, match="mismatched leading whitespace"):
        parse_text("respond <<EOF\n  a\n\tb\n  EOF\n", "Rwsfile", {})


def test_incomplete_heredoc_is_an_error_naming_the_line() -> None:
    with pytest.raises(RwsfileError, match=r"^Rwsfile:2: incomplete heredoc <<END"):
        parse_text("a\nrespond <<END\nno end here\n", "Rwsfile", {})


def test_heredoc_with_three_angle_brackets_is_an_error() -> None:
    with pytest.raises(RwsfileError, match="too many '<'"):
        parse_text("respond <<<EOF\nx\nEOF\n", "Rwsfile", {})


def test_escaped_heredoc_start_is_a_plain_token() -> None:
    assert tokens("respond \\<<EOF\n") == [["respond", "<<EOF"]]


def test_bom_and_crlf_are_ignored() -> None:
    assert tokens("\ufeffa b\r\nc\r\n") == [["a", "b"], ["c"]]


def test_unterminated_quote_is_an_error() -> None:
    with pytest.raises(RwsfileError, match=r"^Rwsfile:2: unterminated quoted string"):
        parse_text('a\nrespond "oops\n', "Rwsfile", {})


# --- environment -----------------------------------------------------------------------------


def test_env_substitution_happens_before_tokenising() -> None:
    env = {"V": "body 202", "EMPTY": ""}
    assert substitute_env("respond {$V}", env) == "respond body 202"
    assert substitute_env("{$EMPTY:default}|{$UNSET:dflt:with:colons}|{$UNSET}|{$}", env) == "|dflt:with:colons||{$}"


def test_env_value_can_change_the_structure() -> None:
    assert site_lines(":80 {\n\trespond {$V}\n}\n", {"V": "body 202"}) == [["respond", "body", "202"]]


# --- blocks ----------------------------------------------------------------------------------


def test_global_options_block_snippets_and_sites() -> None:
    doc = load_text("{\n\tdebug\n}\n(s) {\n\trespond x\n}\na.com b.com {\n\timport s\n}\n", "Rwsfile", {})
    assert doc.global_options is not None
    assert [t.text for t in doc.global_options.entries[0].tokens] == ["debug"]
    assert [k.text for k in doc.blocks[0].keys] == ["a.com", "b.com"]
    assert [[t.text for t in e.tokens] for e in doc.blocks[0].entries] == [["respond", "x"]]


def test_commas_separate_addresses_and_a_trailing_comma_continues_the_list() -> None:
    doc = load_text("a.com, b.com,\n  c.com {\n\trespond x\n}\n", "Rwsfile", {})
    assert [k.text for k in doc.blocks[0].keys] == ["a.com", "b.com", "c.com"]


def test_comma_inside_an_address_is_an_error() -> None:
    assert "cannot contain a comma" in error_of("a.com,b.com {\n}\n")


def test_site_brace_may_be_on_the_next_line() -> None:
    doc = load_text("a.com\n{\n\trespond x\n}\n", "Rwsfile", {})
    assert [[t.text for t in e.tokens] for e in doc.blocks[0].entries] == [["respond", "x"]]


def test_single_site_without_braces() -> None:
    doc = load_text("localhost\n\nrespond hi\nfile_server\n", "Rwsfile", {})
    assert not doc.blocks[0].has_braces
    assert [[t.text for t in e.tokens] for e in doc.blocks[0].entries] == [["respond", "hi"], ["file_server"]]


def test_global_options_after_a_site_is_an_error() -> None:
    assert "must be first" in error_of("a.com {\n}\n{\n\tdebug\n}\n")


def test_matchers_at_the_top_level_are_an_error() -> None:
    assert "must be in a site block" in error_of("@m path /x\n")


def test_token_after_open_brace_on_the_same_line_is_an_error() -> None:
    assert error_of(":80 {\n\thandle { respond x\n\t}\n}\n").startswith("Rwsfile:2: unexpected next token after '{'")


def test_unmatched_close_brace_is_an_error() -> None:
    assert error_of(":80 {\n}\n}\n").startswith("Rwsfile:3: unexpected '}'")


def test_unclosed_block_is_an_error() -> None:
    assert "never closed" in error_of(":80 {\n\trespond x\n")


def test_address_ending_in_brace_asks_for_a_space() -> None:
    assert error_of("example.com{\n}\n").startswith("Rwsfile:1: 'example.com{' ends with a curly brace")


def test_redeclared_snippet_is_an_error() -> None:
    assert "redeclaration of previously declared snippet s" in error_of("(s) {\n}\n(s) {\n}\n")


# --- imports ---------------------------------------------------------------------------------


def test_snippet_arguments() -> None:
    text = "(s) {\n\trespond {args[0]} {args[1]}\n\theader X {args.0}\n\tvars {args[:]}\n}\n:80 {\n\timport s a 200\n}\n"
    assert site_lines(text) == [["respond", "a", "200"], ["header", "X", "a"], ["vars", "a", "200"]]


def test_variadic_argument_ranges() -> None:
    text = "(s) {\n\tx {args[1:]}\n\ty {args[:1]}\n\tz {args[5:]}\n}\n:80 {\n\timport s a b c\n}\n"
    assert site_lines(text) == [["x", "b", "c"], ["y", "a"], ["z", "{args[5:]}"]]


def test_import_inside_nested_blocks() -> None:
    text = "(lb) {\n\tlb_policy first\n}\n:80 {\n\treverse_proxy a b {\n\t\timport lb\n\t}\n}\n"
    doc = load_text(text, "Rwsfile", {})
    (proxy,) = doc.blocks[0].entries
    assert [[t.text for t in e.tokens] for e in proxy.block or ()] == [["lb_policy", "first"]]


def test_import_with_block_arguments() -> None:
    text = (
        "(s) {\n\troute {\n\t\t{block}\n\t}\n\t{blocks.extra}\n}\n"
        ":80 {\n\timport s {\n\t\trespond inner\n\t\textra {\n\t\t\tvars a 1\n\t\t}\n\t}\n}\n"
    )
    doc = load_text(text, "Rwsfile", {})
    route, extra = doc.blocks[0].entries
    assert [[t.text for t in e.tokens] for e in route.block or ()] == [["respond", "inner"], ["extra"]]
    assert [t.text for t in extra.tokens] == ["vars", "a", "1"]


def test_import_files_and_globs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "a.conf").write_text("a.com {\n\trespond a\n}\n")
    (tmp_path / "sites" / "b.conf").write_text("b.com {\n\trespond b\n}\n")
    (tmp_path / "sites" / ".hidden.conf").write_text("hidden.com {\n}\n")
    (tmp_path / "common").write_text("header X y\n")
    main = tmp_path / "Rwsfile"
    main.write_text("import sites/*\nc.com {\n\timport common\n}\n")
    doc = load_text(main.read_text(), str(main), {})
    assert [b.keys[0].text for b in doc.blocks] == ["a.com", "b.com", "c.com"]
    assert doc.blocks[0].keys[0].file == str(tmp_path / "sites" / "a.conf")
    header = doc.blocks[2].entries[0]
    assert [t.text for t in header.tokens] == ["header", "X", "y"]
    assert header.tokens[0].imports == (f"{main}:3 (import)",)


def test_missing_import_file_is_an_error_naming_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    message = error_of(":80 {\n\timport " + str(tmp_path / "nope.conf") + "\n}\n")
    assert message.startswith("Rwsfile:2: file to import not found")


def test_import_cycle_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a").write_text("import b\n")
    (tmp_path / "b").write_text("import a\n")
    main = tmp_path / "Rwsfile"
    main.write_text("import a\n")
    with pytest.raises(RwsfileError, match="import cycle"):
        load_text(main.read_text(), str(main), {})


def test_snippet_import_cycle_is_an_error() -> None:
    assert "import cycle" in error_of("(a) {\n\timport b\n}\n(b) {\n\timport a\n}\n:80 {\n\timport a\n}\n")


def test_importing_a_directory_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "dir").mkdir()
    main = tmp_path / "Rwsfile"
    with pytest.raises(RwsfileError, match="is a directory"):
        load_text("import dir\n", str(main), {})


def test_glob_with_two_wildcards_is_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RwsfileError, match="only contain one wildcard"):
        load_text("import */*.conf\n", str(tmp_path / "Rwsfile"), {})


def test_a_last_line_may_end_with_the_closing_brace() -> None:
    doc = load_text(':80 {\n\trespond "x" }\n', "Rwsfile", {})
    assert [[t.text for t in e.tokens] for e in doc.blocks[0].entries] == [["respond", "x"]]
