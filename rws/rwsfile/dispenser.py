"""A cursor over one directive: the tokens of its line and the entries of its block.

Directive parsers read their arguments with `next_arg()`/`val()` or take them all with
`remaining_args()`, walk their block with `for sub in d.block():`, and raise the
errors made by `arg_error()` and `error()`, which carry the file and line.
"""

from __future__ import annotations

from typing import Iterator

from rws.config.values import duration_ns, parse_size, typed_scalar
from rws.errors import RwsfileError
from rws.rwsfile.parse import Entry, Token


class Dispenser:
    def __init__(self, entry: Entry) -> None:
        if not entry.tokens:
            raise entry.error("unexpected '{' on a new line; did you mean to place the '{' on the previous line?")
        self.entry = entry
        self.tokens = entry.tokens
        self.pos = 0  # the current token; 0 is the directive's own name

    # --- reading tokens ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.tokens[0].text

    def token(self) -> Token:
        return self.tokens[self.pos]

    def val(self) -> str:
        return self.tokens[self.pos].text

    def next_arg(self) -> bool:
        """Move to the next token on this line; False (and no move) at the end of the line."""
        if self.pos + 1 < len(self.tokens):
            self.pos += 1
            return True
        return False

    def prev(self) -> None:
        if self.pos > 0:
            self.pos -= 1

    def peek(self) -> str | None:
        """The next token's text without moving, or None at the end of the line."""
        return self.tokens[self.pos + 1].text if self.pos + 1 < len(self.tokens) else None

    def remaining_args(self) -> list[str]:
        """The texts of the tokens after the current one; the cursor moves to the end."""
        out = [t.text for t in self.tokens[self.pos + 1:]]
        self.pos = len(self.tokens) - 1
        return out

    def remaining_tokens(self) -> list[Token]:
        out = list(self.tokens[self.pos + 1:])
        self.pos = len(self.tokens) - 1
        return out

    def count_remaining_args(self) -> int:
        return len(self.tokens) - 1 - self.pos

    def args_exactly(self, n: int) -> list[str]:
        """The remaining arguments, which must number exactly n."""
        if self.count_remaining_args() != n:
            raise self.arg_error()
        return self.remaining_args()

    def scalar(self) -> int | float | bool | str:
        """The current token typed as `vars` types values: quoted tokens stay strings."""
        tok = self.token()
        return tok.text if tok.quoted else typed_scalar(tok.text)

    # --- typed values ------------------------------------------------------------------

    def duration_arg(self) -> int:
        """The next argument as a duration in integer nanoseconds (the JSON form)."""
        if not self.next_arg():
            raise self.arg_error()
        try:
            return duration_ns(self.val())
        except ValueError:
            raise self.error(f"bad duration value {self.val()!r}") from None

    def size_arg(self) -> int:
        if not self.next_arg():
            raise self.arg_error()
        try:
            return parse_size(self.val())
        except ValueError:
            raise self.error(f"bad size value {self.val()!r}") from None

    def int_arg(self) -> int:
        if not self.next_arg():
            raise self.arg_error()
        try:
            return int(self.val(), 10)
        except ValueError:
            raise self.error(f"bad integer value {self.val()!r}") from None

    # --- blocks ------------------------------------------------------------------------

    @property
    def has_block(self) -> bool:
        return self.entry.block is not None

    def block(self) -> Iterator[Dispenser]:
        """One dispenser per line of this directive's block (none without a block)."""
        for sub in self.entry.block or ():
            yield Dispenser(sub)

    def block_entries(self) -> tuple[Entry, ...]:
        return self.entry.block or ()

    def no_block(self) -> None:
        """Refuse a block where the directive takes none."""
        if self.entry.block:
            raise Dispenser(self.entry.block[0]).error(f"{self.name} does not take a block; unexpected {self.entry.block[0].tokens[0].text!r}")

    # --- errors ------------------------------------------------------------------------

    def error(self, message: str, token: Token | None = None) -> RwsfileError:
        tok = token or self.token()
        return RwsfileError(tok.file, tok.line, message, tok.imports)

    def arg_error(self) -> RwsfileError:
        return self.error(f"wrong argument count or unexpected line ending after {self.val()!r}")

    def unknown_subdirective(self, known: list[str] | tuple[str, ...] = ()) -> RwsfileError:
        """An error for the current line's name as an unknown subdirective of `parent`."""
        import difflib

        hint = ""
        close = difflib.get_close_matches(self.name, list(known), n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        return self.error(f"unrecognized subdirective {self.name!r}{hint}", self.tokens[0])
