"""Top-level structure of an Rwsfile: global options, snippets, named routes, site
blocks; and the expansion of `import` (snippets, files, globs, arguments, blocks).
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field, replace

from rws.rwsfile.parse import Entry, Token, parse_text


@dataclass(frozen=True, slots=True)
class ServerBlock:
    keys: tuple[Token, ...]
    entries: tuple[Entry, ...]
    has_braces: bool = True
    is_named_route: bool = False


@dataclass(slots=True)
class Document:
    """What a whole Rwsfile (with everything it imports) is made of."""

    file: str
    global_options: ServerBlock | None = None
    blocks: list[ServerBlock] = field(default_factory=list)  # site blocks and named routes, in order


def load_text(text: str, file: str, environ: dict[str, str] | None = None) -> Document:
    return _Loader(environ).document(parse_text(text, file, environ), file)


class _Loader:
    def __init__(self, environ: dict[str, str] | None) -> None:
        self.environ = environ
        self.snippets: dict[str, tuple[Entry, ...]] = {}
        self.chain: list[str] = []  # files and snippets being imported, for cycle detection

    # --- top level ---------------------------------------------------------------------

    def document(self, entries: tuple[Entry, ...], file: str) -> Document:
        doc = Document(file)
        self._top_level(list(entries), doc, file)
        return doc

    def _top_level(self, entries: list[Entry], doc: Document, file: str) -> None:
        i = 0
        while i < len(entries):
            entry = entries[i]
            i += 1
            if not entry.tokens:  # a keyless block
                if doc.global_options is None and not doc.blocks:
                    doc.global_options = ServerBlock((), self.expand(entry.block or ()))
                    continue
                raise entry.error(
                    "server block without any key is global configuration, and if used, it must be first"
                )
            first = entry.tokens[0]
            if first.text.startswith("@") and not first.quoted:
                raise first.error(
                    f"request matchers may not be defined globally, they must be in a site block; found {first.text}"
                )
            if first.text == "import" and not first.quoted:
                self._import(entry, top_level=(doc, file))
                continue
            snippet = _snippet_name(entry)
            if snippet is not None:
                if entry.block is None:
                    raise first.error(f"snippet {first.text} must be followed by a block")
                if snippet in self.snippets:
                    raise first.error(f"redeclaration of previously declared snippet {snippet}")
                self.snippets[snippet] = entry.block
                continue
            route = _named_route_name(entry)
            if route is not None:
                if entry.block is None:
                    raise first.error(f"named route {first.text} must be followed by a block")
                name_token = replace(first, text=route)
                doc.blocks.append(ServerBlock((name_token,), self.expand(entry.block), True, True))
                continue
            # Site addresses: a trailing comma continues the list on the next line.
            keys = list(entry.tokens)
            block = entry.block
            while block is None and keys and keys[-1].text.endswith(",") and i < len(entries):
                nxt = entries[i]
                i += 1
                if not nxt.tokens:
                    raise keys[-1].error("expected another address but had '{' - check for extra comma")
                keys.extend(nxt.tokens)
                block = nxt.block
            if block is not None and keys and keys[-1].text.endswith(","):
                raise keys[-1].error("expected another address but had '{' - check for extra comma")
            if block is None and i < len(entries) and not entries[i].tokens:
                block = entries[i].block  # the site's '{' on the next line
                i += 1
            site_keys = _site_keys(keys)
            if block is None:
                # A single site may leave out its braces: the rest of the file is its body.
                body = self.expand(tuple(entries[i:]))
                doc.blocks.append(ServerBlock(site_keys, body, has_braces=False))
                return
            doc.blocks.append(ServerBlock(site_keys, self.expand(block)))

    # --- imports -----------------------------------------------------------------------

    def expand(self, entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
        """Expand every `import` line at any depth."""
        out: list[Entry] = []
        for entry in entries:
            if entry.tokens and entry.tokens[0].text == "import" and not entry.tokens[0].quoted:
                out.extend(self._import(entry))
                continue
            if entry.block is not None:
                entry = replace(entry, block=self.expand(entry.block))
            out.append(entry)
        return tuple(out)

    def _import(self, entry: Entry, top_level: tuple[Document, str] | None = None) -> list[Entry]:
        """Expand one `import` line; at the top level the imported blocks go into the document."""
        tok = entry.tokens[0]
        if len(entry.tokens) < 2:
            raise tok.error("wrong argument count or unexpected line ending after 'import'")
        pattern = entry.tokens[1].text
        if pattern == "":
            raise entry.tokens[1].error("import requires a non-empty filepath")
        args = [t.text for t in entry.tokens[2:]]
        blocks = _block_mapping(entry)
        if pattern in self.snippets:
            node = f"snippet {pattern}"
            imported = self.snippets[pattern]
            label = f"{tok.file}:{tok.line} (import {pattern})"
        else:
            imported, node = self._import_files(tok, pattern)
            label = f"{tok.file}:{tok.line} (import)"
        if node in self.chain:
            cycle = " -> ".join([*self.chain[self.chain.index(node):], node])
            raise tok.error(f"import cycle detected: {cycle}")
        self.chain.append(node)
        try:
            result = _splice_blocks(tuple(_substitute(e, args, blocks, label) for e in imported), blocks)
            if top_level is not None:
                self._top_level(list(result), *top_level)
                return []
            return list(self.expand(result))
        finally:
            self.chain.pop()

    def _import_files(self, tok: Token, pattern: str) -> tuple[tuple[Entry, ...], str]:
        base = os.path.dirname(os.path.abspath(tok.file))
        path = pattern if os.path.isabs(pattern) else os.path.join(base, pattern)
        if path.count("*") > 1 or path.count("?") > 1 or ("[" in path and "]" in path):
            raise tok.error(f"glob pattern may only contain one wildcard (*), but has others: {path}")
        if any(c in path for c in "*?"):
            matches = sorted(glob.glob(path))
            if os.path.basename(path).startswith("*"):
                matches = [m for m in matches if not os.path.basename(m).startswith(".")]
        else:
            if not os.path.exists(path):
                raise tok.error(f"file to import not found: {pattern}")
            matches = [path]
        entries: list[Entry] = []
        for name in matches:
            if os.path.isdir(name):
                raise tok.error(f"could not import {name}: is a directory")
            try:
                with open(name, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise tok.error(f"could not import {name}: {exc}") from None
            if not text.strip():
                continue
            if name in self.chain:
                cycle = " -> ".join([*self.chain[self.chain.index(name):], name])
                raise tok.error(f"import cycle detected: {cycle}")
            self.chain.append(name)
            try:
                entries.extend(self._file_entries(text, name))
            finally:
                self.chain.pop()
        return tuple(entries), path

    def _file_entries(self, text: str, name: str) -> list[Entry]:
        """An imported file may define snippets of its own; keep them, return the rest."""
        out: list[Entry] = []
        for entry in parse_text(text, name, self.environ):
            snippet = _snippet_name(entry)
            if snippet is not None and entry.block is not None:
                if snippet in self.snippets:
                    raise entry.tokens[0].error(f"redeclaration of previously declared snippet {snippet}")
                self.snippets[snippet] = entry.block
                continue
            out.append(entry)
        return out


def _snippet_name(entry: Entry) -> str | None:
    if len(entry.tokens) != 1 or entry.tokens[0].quoted:
        return None
    text = entry.tokens[0].text
    if len(text) >= 3 and text.startswith("(") and text.endswith(")"):
        return text[1:-1]
    return None


def _named_route_name(entry: Entry) -> str | None:
    if len(entry.tokens) != 1 or entry.tokens[0].quoted:
        return None
    text = entry.tokens[0].text
    if len(text) >= 4 and text.startswith("&(") and text.endswith(")"):
        return text[2:-1]
    return None


def _site_keys(tokens: list[Token]) -> tuple[Token, ...]:
    keys: list[Token] = []
    for tok in tokens:
        value = tok.text
        if value.endswith("{") and not tok.quoted:
            raise tok.error(
                f"site addresses cannot end with a curly brace: '{value}' - put a space between the token and the brace"
            )
        if value.endswith(","):
            value = value[:-1]
        if "," in value:
            raise tok.error(
                f"site addresses cannot contain a comma ',': '{value}' - put a space after the comma to separate site addresses"
            )
        if value:
            keys.append(replace(tok, text=value))
    return tuple(keys)


def _block_mapping(entry: Entry) -> dict[str, tuple[Entry, ...]]:
    """`import x { ... }`: `{block}` is the whole block, `{blocks.KEY}` one sub-block."""
    mapping: dict[str, tuple[Entry, ...]] = {}
    if entry.block is None:
        return mapping
    mapping["\0block"] = entry.block
    for sub in entry.block:
        if not sub.tokens:
            raise sub.error("anonymous blocks are not supported")
        rest = sub.tokens[1:]
        items: list[Entry] = []
        if rest:
            items.append(replace(sub, tokens=rest, block=None))
        items.extend(sub.block or ())
        mapping[sub.tokens[0].text] = tuple(items)
    return mapping


_ARG_INDEX = re.compile(r"args\[(\d+)\]")
_ARG_INDEX_OLD = re.compile(r"args\.(\d+)")
_ARG_RANGE = re.compile(r"\{args\[(-?\d*):(-?\d*)\]\}")


def _arg_value(key: str, args: list[str]) -> str | None:
    m = _ARG_INDEX_OLD.fullmatch(key) or _ARG_INDEX.fullmatch(key)
    if m is None or int(m.group(1)) >= len(args):
        return None
    return args[int(m.group(1))]


def replace_args(text: str, args: list[str]) -> str:
    """Caddy's replacement of known placeholders in an imported token: `{args[N]}` and
    `{args.N}` become arguments, other placeholders stay, and `\\{` / `\\}` lose their
    backslash (as every imported token containing a brace does in Caddy)."""
    from rws.http.placeholders import replace_known

    def resolve(key: str) -> tuple[str | None, bool]:
        value = _arg_value(key, args)
        return value, value is not None

    return replace_known(text, resolve)


def _substitute(entry: Entry, args: list[str], blocks: dict[str, tuple[Entry, ...]], label: str) -> Entry:
    """Replace `{args[...]}` in an imported entry; `{block}` lines are spliced by the caller."""
    tokens: list[Token] = []
    for tok in entry.tokens:
        tok = replace(tok, imports=(*tok.imports, label))
        m = _ARG_RANGE.fullmatch(tok.text)
        if m is not None and not tok.quoted:
            start = int(m.group(1)) if m.group(1) else 0
            end = int(m.group(2)) if m.group(2) else len(args)
            if 0 <= start <= end <= len(args):
                tokens.extend(replace(tok, text=a) for a in args[start:end])
                continue
        tokens.append(replace(tok, text=replace_args(tok.text, args)))
    block = None
    if entry.block is not None:
        block = _splice_blocks(tuple(_substitute(e, args, blocks, label) for e in entry.block), blocks)
    return replace(entry, tokens=tuple(tokens), block=block, imports=(*entry.imports, label))


def _splice_blocks(entries: tuple[Entry, ...], blocks: dict[str, tuple[Entry, ...]]) -> tuple[Entry, ...]:
    out: list[Entry] = []
    for e in entries:
        if len(e.tokens) == 1 and e.block is None and not e.tokens[0].quoted:
            text = e.tokens[0].text
            if text == "{block}":
                out.extend(blocks.get("\0block", ()))
                continue
            if text.startswith("{blocks.") and text.endswith("}"):
                out.extend(blocks.get(text[len("{blocks."):-1], ()))
                continue
        out.append(e)
    return tuple(out)
