"""`rws fmt`: the canonical layout of an Rwsfile, as the latest Caddy's `caddy fmt` writes it.

Like Caddy's formatter (caddyconfig/caddyfile/formatter.go) this reads the raw text one
character at a time and decides every piece of whitespace itself: one tab per nesting level,
one space between tokens, at most one blank line, `{` at the end of its line, `}` alone on its
line. Words, comments, placeholders, escapes, quoted and backquoted strings and heredoc bodies
are copied as they are. It never parses, so it accepts any text.

It gives Caddy's output except where Caddy's would mean something else than the input, or
change again when formatted again. So the output keeps the input's visible characters in
their order, and formatting twice changes nothing:

- `a < b` keeps its space (Caddy writes `a <b`, and can join a `<` to one on the next line
  as a heredoc opener);
- a backquoted string or a backslash escape that starts a token is placed like any other
  token (Caddy writes the line break due before it later, inside the string);
- a backslash inside backquotes is an ordinary character, and `#` starts a comment only at
  the start of a token, as in the lexer;
- no `{` is dropped (Caddy drops one of `{{`, and one at the very end);
- `<<EOF` followed by spaces and a line break opens a heredoc whose body is kept (Caddy
  formats those lines, which become a heredoc body once the spaces are gone); in `<<EOF }`
  the `}` stays on its line, so that `<<EOF` does not end one; the line break after an
  invalid opener such as `<<a.b` is an ordinary one;
- what follows a `}` on its line is read as it will be once the `}` has a line of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

# Go's unicode.IsSpace, which differs from str.isspace (that also counts \x1c-\x1f).
_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_SPACE_CHARS = "".join(sorted(_SPACE))
_HEREDOC_MARKER = re.compile(r"[A-Za-z0-9_-]+")
_MAX_NESTING = 10  # deeper braces are not indented further (Caddy issue #4169)
_MAX_LINE_BREAKS = 2  # so at most one blank line


class _Quote(Enum):
    NONE = "none"
    DOUBLE = "double"  # inside "..."
    BACKTICK = "backtick"  # inside `...`
    BACKTICK_IN_DOUBLE = "backtick in double"  # a ` inside "...": still quoted by the "


# How a quote character moves the quoting state. An opening " counts only at the start of a
# token; every other transition happens wherever the character is.
_QUOTE_TRANSITIONS: dict[tuple[_Quote, str], _Quote] = {
    (_Quote.NONE, "`"): _Quote.BACKTICK,
    (_Quote.BACKTICK, "`"): _Quote.NONE,
    (_Quote.DOUBLE, "`"): _Quote.BACKTICK_IN_DOUBLE,
    (_Quote.BACKTICK_IN_DOUBLE, "`"): _Quote.DOUBLE,
    (_Quote.NONE, '"'): _Quote.DOUBLE,
    (_Quote.DOUBLE, '"'): _Quote.NONE,
    (_Quote.BACKTICK_IN_DOUBLE, '"'): _Quote.NONE,
}


class _Heredoc(Enum):
    CLOSED = "closed"
    OPENING = "opening"  # after `<<`, reading the marker
    MARKED = "marked"  # after `<<` and a valid marker: a line break opens the body
    OPENED = "opened"  # in the body, until the marker followed by whitespace


def format_rwsfile(text: str) -> str:
    """Canonical formatting of an Rwsfile (Caddyfile syntax), as the latest Caddy's `caddy fmt` does."""
    formatter = _Formatter()
    for ch in text.strip(_SPACE_CHARS):
        formatter.feed(ch)
    return formatter.result()


def unified_diff_lines(original: str, formatted: str) -> list[str]:
    """Lines for `fmt --diff`: Caddy prints '- ' for removed, '+ ' for added and '  ' for unchanged lines.

    Both texts are split on "\\n" and compared with the same longest-common-subsequence walk
    as Caddy's diff library, so the lines come out in Caddy's order. The returned lines have
    no line ending; print each followed by "\\n".
    """
    old, new = original.split("\n"), formatted.split("\n")
    start, end = _common_ends(old, new)
    middle = _diff_middle(old[start : len(old) - end], new[start : len(new) - end])
    return ["  " + line for line in old[:start]] + middle + ["  " + line for line in old[len(old) - end :]]


@dataclass(slots=True)
class _Formatter:
    out: list[str] = field(default_factory=list)
    last: str = ""  # the last character written
    space: bool = True  # the previous character was whitespace (so the next one starts a token)
    line_start: bool = True  # nothing but indentation written on the current output line
    line_breaks: int = 0  # newlines read and not yet written
    nesting: int = 0
    comment: bool = False
    escaped: bool = False
    quote: _Quote = _Quote.NONE
    heredoc: _Heredoc = _Heredoc.CLOSED
    marker: str = ""
    marker_window: str = ""  # the last len(marker) + 1 characters of the current body line
    angle_starts_token: bool = False  # the previous character was a `<` starting a token
    continued_line: bool = False  # the previous character was an escaped line break
    # A `{` that starts a token is written only when the next character shows whether it
    # opens a block (whitespace follows) or begins a word such as `{path}`.
    brace: bool = False  # a `{` was read since the last block opened
    brace_written: bool = False
    brace_needs_space: bool = False  # no space was written yet between it and a word before it
    brace_own_line: bool = False  # a line break came before it
    # A lone `{` line after a top-level `import` line stays on its own line.
    token: list[str] = field(default_factory=list)
    line_first_token: str = ""
    after_top_level_import: bool = False

    def feed(self, ch: str) -> None:
        angle_starts_token, self.angle_starts_token = self.angle_starts_token, False
        continued_line, self.continued_line = self.continued_line, False
        consumed = (
            self._feed_heredoc(ch, angle_starts_token)
            or self._feed_comment(ch)
            or self._feed_escape(ch)
            or self._feed_quoted(ch)
        )
        if consumed:
            return
        if ch in _SPACE:
            self._feed_space(ch)
        else:
            self._feed_visible(ch, continued_line)

    @property
    def _brace_pending(self) -> bool:
        return self.brace and not self.brace_written

    def result(self) -> str:
        if self._brace_pending:
            self._lay_out_word(space_prior=False)
        return "".join(self.out).strip(_SPACE_CHARS) + "\n"

    # -- literal parts: heredocs, comments, escapes, quotes ------------------------------

    def _feed_heredoc(self, ch: str, angle_starts_token: bool) -> bool:
        """Consume `ch` if it belongs to a heredoc opener or body."""
        match self.heredoc:
            case _Heredoc.CLOSED:
                if ch != "<" or not angle_starts_token:
                    return False
                self._write(ch)
                self.heredoc, self.space = _Heredoc.OPENING, False
                return True
            case _Heredoc.OPENING:
                return self._feed_heredoc_marker(ch)
            case _Heredoc.MARKED:
                if ch != "\n":
                    return False  # ordinary whitespace, or a character that ends it all
                self.heredoc = _Heredoc.OPENED
                self._write(ch)
                return True
        self.marker_window = (self.marker_window + ch)[-(len(self.marker) + 1) :]
        if ch in _SPACE and self.marker_window[:-1] == self.marker:
            self.heredoc, self.marker, self.marker_window = _Heredoc.CLOSED, "", ""
            return False  # the whitespace after the closing marker is ordinary
        self._write(ch)
        if ch == "\n":
            self.marker_window = ""
        return True

    def _feed_heredoc_marker(self, ch: str) -> bool:
        if ch not in _SPACE:
            self.marker += ch
            self._write(ch)
            return True
        if not _HEREDOC_MARKER.fullmatch(self.marker):  # `<<` and a word: ordinary text
            self.heredoc, self.marker = _Heredoc.CLOSED, ""
            return False
        self.heredoc = _Heredoc.MARKED
        return self._feed_heredoc(ch, angle_starts_token=False)

    def _feed_comment(self, ch: str) -> bool:
        if not self.comment:
            return False
        if ch == "\n":  # written at once: Caddy lets two blank lines follow a comment
            self.comment, self.space = False, True
            self._next_line()
        else:
            self._write(ch)
        return True

    def _feed_escape(self, ch: str) -> bool:
        if self.escaped:
            self.escaped = False
            self._write(ch)
            self.continued_line = ch == "\n"
            return True
        if ch != "\\" or self.quote is _Quote.BACKTICK:
            return False
        self._feed_visible(ch)
        self.escaped = True
        return True

    def _feed_quoted(self, ch: str) -> bool:
        """Track quoting; consume `ch` if it is written verbatim inside quotes."""
        before = self.quote
        if ch == '"' and before is _Quote.NONE and not self.space:
            return False  # a " inside a word is an ordinary character
        self.quote = _QUOTE_TRANSITIONS.get((before, ch), before)
        if before is _Quote.NONE or (self.quote is _Quote.NONE and before is not _Quote.DOUBLE):
            return False  # opening and closing characters are laid out as part of a word
        self._write(ch)
        return True

    # -- layout -------------------------------------------------------------------------

    def _feed_space(self, ch: str) -> None:
        self._finish_token()
        self.space = True
        if ch == "\n":
            self._finish_line()
            self.line_breaks += 1

    def _feed_visible(self, ch: str, continued_line: bool = False) -> None:
        space_prior, self.space = self.space, False
        # In `<<EOF }` the `}` stays on its line: `<<EOF` ending a line would open a heredoc.
        after_marker = self.heredoc is _Heredoc.MARKED
        if after_marker:
            self.heredoc, self.marker = _Heredoc.CLOSED, ""
        if ch == "#" and space_prior:  # as in the lexer, `a#b` is a word
            self.comment = True
        if self._brace_pending and space_prior:
            self._open_block()
        # `{{` is a word; so is `{path}`, whose `}` does not close anything
        if ch == "{" and not self._brace_pending:
            self._start_brace(space_prior)
        elif ch == "}" and (space_prior or continued_line or not self.brace) and not after_marker:
            self._close_block()
        else:
            self._lay_out_word(space_prior)
            self.angle_starts_token = space_prior and ch == "<"
            self.token.append(ch)
            self._write(ch)
            self.line_start = False

    def _start_brace(self, space_prior: bool) -> None:
        self._finish_token()
        self.brace, self.brace_written = True, False
        self.brace_own_line = self.line_breaks > 0
        space_written = space_prior and not self.line_start and not self.brace_own_line
        if space_written:
            self._write(" ")
        self.brace_needs_space = not space_written

    def _open_block(self) -> None:
        """Write the pending `{` at the end of its line, and go one level deeper."""
        if self.nesting == 0 and self.last == "}":
            self._blank_line()
        self.brace = False
        if self.brace_own_line and self.after_top_level_import:
            if self.last != "\n":
                self._next_line()
            self._indent()
        elif self.line_start:
            self._indent()
        elif self.brace_needs_space:
            self._write(" ")
        self._write("{")
        self.brace_written, self.brace_own_line = True, False
        self._next_line()
        self.line_breaks = 0
        self.nesting = min(self.nesting + 1, _MAX_NESTING)

    def _close_block(self) -> None:
        self._finish_token()
        self.line_first_token = ""  # what follows on this line will start an output line
        if self.last != "\n":
            self._next_line()
        self.nesting = max(self.nesting - 1, 0)
        self._indent()
        self._write("}")
        self.line_breaks = 0
        self.space = True  # what follows will be read as a new token next time

    def _lay_out_word(self, space_prior: bool) -> None:
        """Write what goes before the next character of a word: line breaks, indentation,
        a blank line after a top-level block, a separating space, a pending `{`."""
        for _ in range(min(self.line_breaks, _MAX_LINE_BREAKS)):
            self._next_line()
        self.line_breaks = 0
        if self.line_start:
            self._indent()
            if self.nesting == 0 and self.last == "}":
                self._blank_line()
        elif space_prior:
            self._write(" ")
        if self._brace_pending:
            self._write("{")
            self.brace_written = True

    # -- tracking of `import` lines -----------------------------------------------------

    def _finish_token(self) -> None:
        if self.token and not self.line_first_token:
            self.line_first_token = "".join(self.token)
        self.token.clear()

    def _finish_line(self) -> None:
        self._finish_token()
        if self.line_first_token:
            self.after_top_level_import = self.nesting == 0 and self.line_first_token == "import"
        elif not (self._brace_pending and self.brace_own_line):
            self.after_top_level_import = False  # a blank line, not a lone `{` line
        self.line_first_token = ""

    # -- output -------------------------------------------------------------------------

    def _write(self, ch: str) -> None:
        self.out.append(ch)
        self.last = ch

    def _indent(self) -> None:
        for _ in range(self.nesting):
            self._write("\t")

    def _next_line(self) -> None:
        self._write("\n")
        self.line_start = True

    def _blank_line(self) -> None:
        self._next_line()
        self._next_line()


def _common_ends(old: list[str], new: list[str]) -> tuple[int, int]:
    """How many lines both texts share at the start, and then at the end (where, like Caddy's
    diff library, the count stops one line short of the shared start)."""
    start = 0
    while start < len(old) and start < len(new) and old[start] == new[start]:
        start += 1
    end = 0
    while len(old) - 1 - end > start and len(new) - 1 - end > start and old[-1 - end] == new[-1 - end]:
        end += 1
    return start, end


def _diff_middle(old: list[str], new: list[str]) -> list[str]:
    # table[i][j]: length of the longest common subsequence of old[-i:] and new[-j:]
    table = [[0] * (len(new) + 1)]
    for i in range(1, len(old) + 1):
        above, row = table[-1], [0] * (len(new) + 1)
        line = old[len(old) - i]
        for j in range(1, len(new) + 1):
            if line == new[len(new) - j]:
                row[j] = above[j - 1] + 1
            else:
                row[j] = max(above[j], row[j - 1])
        table.append(row)
    lines: list[str] = []
    i, j = len(old), len(new)
    while i > 0 or j > 0:
        if i > 0 and table[i][j] == table[i - 1][j]:
            lines.append("- " + old[len(old) - i])
            i -= 1
        elif j > 0 and table[i][j] == table[i][j - 1]:
            lines.append("+ " + new[len(new) - j])
            j -= 1
        else:
            lines.append("  " + old[len(old) - i])
            i, j = i - 1, j - 1
    return lines
