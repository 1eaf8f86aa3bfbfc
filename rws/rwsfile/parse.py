"""Rwsfile text -> a tree of entries whose tokens know their file and line.

The lexical syntax is the lark grammar in `grammar/rwsfile.lark`; this module runs it,
turns its tokens into `Token` values (quotes removed, escapes applied, heredocs
dedented) and reports every syntax error as an `RwsfileError` naming file and line.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from dataclasses import dataclass, replace

import lark
import lark.exceptions

from rws.errors import RwsfileError


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    file: str
    line: int
    quote: str = ""  # '"', '`', '<' (heredoc) or '' for a bare token
    imports: tuple[str, ...] = ()  # "file:line (import name)" for each import that brought it

    @property
    def quoted(self) -> bool:
        return self.quote != ""

    def error(self, message: str) -> RwsfileError:
        return RwsfileError(self.file, self.line, message, self.imports)


@dataclass(frozen=True, slots=True)
class Entry:
    """One logical line: its tokens and, if the line ends with `{`, the block's entries."""

    tokens: tuple[Token, ...]
    block: tuple[Entry, ...] | None
    file: str
    line: int
    imports: tuple[str, ...] = ()

    def error(self, message: str) -> RwsfileError:
        return RwsfileError(self.file, self.line, message, self.imports)

    def with_tokens(self, tokens: tuple[Token, ...]) -> Entry:
        return replace(self, tokens=tokens)


@functools.cache
def _parser() -> lark.Lark:
    text = importlib.resources.files("rws.grammar").joinpath("rwsfile.lark").read_text("utf-8")
    return lark.Lark(text, parser="lalr", lexer="basic", propagate_positions=True, maybe_placeholders=False)


_ENV = re.compile(r"\{\$([^}]*)\}")


def substitute_env(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace `{$NAME}` and `{$NAME:default}` before tokenising, as Caddy does."""
    env = os.environ if environ is None else environ

    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if not body:
            return m.group(0)
        name, sep, default = body.partition(":")
        if name in env:
            return env[name]
        return default if sep else ""

    return _ENV.sub(one, text)


def parse_text(text: str, file: str, environ: dict[str, str] | None = None) -> tuple[Entry, ...]:
    """Parse one file's text (after env substitution) into its top-level entries."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = substitute_env(text, environ)
    text += "\n"  # every line ends, even one continued by a final backslash
    try:
        _check_tokens(list(_parser().lex(text)), file)
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedCharacters as exc:
        raise RwsfileError(file, exc.line, _unexpected_characters(text, exc)) from None
    except lark.exceptions.UnexpectedToken as exc:
        raise RwsfileError(file, _token_line(exc.token, text), _unexpected_token(exc)) from None
    except lark.exceptions.UnexpectedEOF as exc:  # pragma: no cover - the grammar always sees a final newline
        raise RwsfileError(file, text.count("\n"), "unexpected end of file") from exc
    return tuple(_entry(_tree(line).children[0], file) for line in tree.children)


def _tree(node: lark.Tree[lark.Token] | lark.Token) -> lark.Tree[lark.Token]:
    assert isinstance(node, lark.Tree)  # the grammar puts only lines at the top level
    return node


def _token_line(token: lark.Token, text: str) -> int:
    if token.type == "$END":
        return text.count("\n")
    return token.line or 1


def _unexpected_characters(text: str, exc: lark.exceptions.UnexpectedCharacters) -> str:
    rest = text[exc.pos_in_stream:]
    if rest.startswith('"'):
        return "unterminated quoted string"
    if rest.startswith("`"):
        return "unterminated backtick string"
    return f"unexpected character {rest[:1]!r}"


def _unexpected_token(exc: lark.exceptions.UnexpectedToken) -> str:
    token = exc.token
    if token.type == "$END":
        return "unexpected end of file: a block was opened with '{' and never closed"
    if token.type == "RBRACE":
        return "unexpected '}' because no matching opening brace"
    if token.type == "LBRACE":
        return "unexpected '{': a block must follow tokens on the same line"
    return f"unexpected token {str(token)!r}"


def _entry(node: lark.Tree[lark.Token] | lark.Token, file: str) -> Entry:
    node = _tree(node)
    if node.data == "bare_block":
        block_node = _tree(node.children[0])
        return Entry((), _block(block_node, file), file, block_node.meta.line)
    tokens: list[Token] = []
    block = None
    for child in node.children:
        if isinstance(child, lark.Tree):
            block = _block(child, file)
        else:
            tokens.append(_token(child, file))
    return Entry(tuple(tokens), block, file, tokens[0].line)


def _block(node: lark.Tree[lark.Token], file: str) -> tuple[Entry, ...]:
    entries = []
    for child in node.children:
        if isinstance(child, lark.Tree):  # a `line` or the `last` item: both wrap one item
            entries.append(_entry(child.children[0], file))
    return tuple(entries)


def _check_tokens(toks: list[lark.Token], file: str) -> None:
    """Mistakes the grammar would only notice later, reported where they are."""
    for i, tok in enumerate(toks):
        if tok.type != "WORD":
            continue
        text = str(tok)
        at_line_end = i + 1 == len(toks) or toks[i + 1].type in ("_NL", "RBRACE")
        if text == "{":
            raise RwsfileError(file, tok.line or 1, "unexpected next token after '{' on same line")
        if text == "{}" and at_line_end:
            raise RwsfileError(file, tok.line or 1, "unexpected '{}' at end of line")
        if text.endswith("{") and at_line_end:
            raise RwsfileError(
                file, tok.line or 1,
                f"{text!r} ends with a curly brace: put a space between the token and the brace",
            )
        followed_by_space = i + 1 < len(toks) and str(toks[i + 1]).startswith(" ")
        if text.startswith("<<") and at_line_end and not followed_by_space:
            _check_heredoc_start(Token(text, file, tok.line or 1))


def _check_heredoc_start(tok: Token) -> None:
    marker = tok.text[2:]
    if marker.startswith("<"):
        raise tok.error("too many '<' for heredoc; only use two, for example <<END")
    if marker == "":
        raise tok.error("missing opening heredoc marker")
    if re.fullmatch(r"[A-Za-z0-9_-]+", marker):
        raise tok.error(f"incomplete heredoc <<{marker}, expected ending marker {marker}")
    raise tok.error(f"heredoc marker must contain only alphanumeric characters, dashes and underscores; got {marker!r}")


_QUOTE_ESCAPE = re.compile(r"\\([\s\S])")


def _token(tok: lark.Token, file: str) -> Token:
    raw = str(tok)
    line = tok.line or 1
    match tok.type:
        case "QUOTED":
            text = _QUOTE_ESCAPE.sub(lambda m: '"' if m.group(1) == '"' else m.group(0), raw[1:-1])
            return Token(text, file, line, '"')
        case "BACKTICK":
            return Token(raw[1:-1], file, line, "`")
        case "HEREDOC":
            return Token(_heredoc(raw, file, line), file, line, "<")
        case _:
            if raw.startswith('\\"'):
                quoted = _escaped_quote_word(raw)
                if quoted is not None:
                    return Token(quoted, file, line, '"')
            return Token(raw.replace("\\<", "<"), file, line)


def _escaped_quote_word(raw: str) -> str | None:
    """A word like \\"...": Caddy starts a quoted string at the quote and keeps the escape
    pending, so the word of a backslash and three quotes is the one-character token '"'.
    Only whole words of this shape qualify."""
    out = []
    escaped = True
    for i, ch in enumerate(raw[2:], 2):
        if escaped:
            if ch != '"':
                out.append("\\")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return "".join(out) if i == len(raw) - 1 else None
        else:
            out.append(ch)
    return None


def _heredoc(raw: str, file: str, line: int) -> str:
    head, _, rest = raw.partition("\n")
    marker = head[2:].rstrip("\r")
    body = rest[: len(rest) - len(marker)]
    last_nl = body.rfind("\n")
    padding = body[last_nl + 1:]
    out = []
    for n, text in enumerate(body[: last_nl + 1].split("\n")[:-1]):
        if text in ("", "\r"):
            out.append("")
            continue
        if not text.startswith(padding):
            raise RwsfileError(
                file,
                line + n + 1,
                f"mismatched leading whitespace in heredoc <<{marker}: expected {padding!r} to match the closing marker",
            )
        out.append(text[len(padding):].replace("\r", ""))
    return "\n".join(out)
