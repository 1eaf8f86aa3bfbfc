"""Content sniffing: the media type of a body guessed from its first 512 bytes.

This is the WHATWG MIME-sniffing subset that Go's `http.DetectContentType` implements,
so a response whose handler set no `Content-Type` gets the same type it would get from
Caddy: HTML and XML by their opening tags (after leading white space), well-known binary
formats by their magic numbers, `text/plain; charset=utf-8` when no byte looks binary,
and `application/octet-stream` otherwise.
"""

from __future__ import annotations

SNIFF_LEN = 512

_WHITESPACE = b"\t\n\x0c\r "

_HTML_TAGS = (
    b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT", b"<TABLE", b"<A",
    b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--",
)

# (pattern, mask or None for an exact prefix, media type); checked in order after the HTML tags
_SIGNATURES: tuple[tuple[bytes, bytes | None, str], ...] = (
    (b"%PDF-", None, "application/pdf"),
    (b"%!PS-Adobe-", None, "application/postscript"),
    (b"\xfe\xff\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf\x00", b"\xff\xff\xff\x00", "text/plain; charset=utf-8"),
    (b"\x00\x00\x01\x00", None, "image/x-icon"),
    (b"\x00\x00\x02\x00", None, "image/x-icon"),
    (b"BM", None, "image/bmp"),
    (b"GIF87a", None, "image/gif"),
    (b"GIF89a", None, "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP", b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff", "image/webp"),
    (b"\x89PNG\r\n\x1a\n", None, "image/png"),
    (b"\xff\xd8\xff", None, "image/jpeg"),
    (b"FORM\x00\x00\x00\x00AIFF", b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", "audio/aiff"),
    (b"ID3", None, "audio/mpeg"),
    (b"OggS\x00", None, "application/ogg"),
    (b"MThd\x00\x00\x00\x06", None, "audio/midi"),
    (b"RIFF\x00\x00\x00\x00AVI ", b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", "video/avi"),
    (b"RIFF\x00\x00\x00\x00WAVE", b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff", "audio/wave"),
)

_LATE_SIGNATURES: tuple[tuple[bytes, str], ...] = (  # exact prefixes checked after mp4
    (b"\x1a\x45\xdf\xa3", "video/webm"),
)

_FONTS_AND_ARCHIVES: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"OTTO", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
)

# bytes that make a body binary for the plain-text check
_BINARY = frozenset([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x1B), *range(0x1C, 0x20)])


def detect_content_type(data: bytes) -> str:
    """The media type of `data` (only its first 512 bytes are considered)."""
    data = data[:SNIFF_LEN]
    start = 0
    while start < len(data) and data[start] in _WHITESPACE:
        start += 1
    rest = data[start:]
    for tag in _HTML_TAGS:
        if _is_html(rest, tag):
            return "text/html; charset=utf-8"
    if rest.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for pattern, mask, media_type in _SIGNATURES:
        if _matches(data, pattern, mask):
            return media_type
    if _is_mp4(data):
        return "video/mp4"
    for prefix, media_type in _LATE_SIGNATURES:
        if data.startswith(prefix):
            return media_type
    if len(data) >= 36 and data[34:36] == b"LP":
        return "application/vnd.ms-fontobject"
    for prefix, media_type in _FONTS_AND_ARCHIVES:
        if data.startswith(prefix):
            return media_type
    if not any(b in _BINARY for b in rest):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


def _is_html(data: bytes, tag: bytes) -> bool:
    """`tag` (letters matched case-insensitively) followed by a space or `>`."""
    if len(data) < len(tag) + 1:
        return False
    for i, b in enumerate(tag):
        d = data[i]
        if 0x41 <= b <= 0x5A:
            d &= 0xDF
        if b != d:
            return False
    return data[len(tag)] in b" >"


def _matches(data: bytes, pattern: bytes, mask: bytes | None) -> bool:
    if mask is None:
        return data.startswith(pattern)
    if len(data) < len(pattern):
        return False
    return all(data[i] & mask[i] == pattern[i] for i in range(len(pattern)))


def _is_mp4(data: bytes) -> bool:
    if len(data) < 12:
        return False
    box_size = int.from_bytes(data[:4], "big")
    if len(data) < box_size or box_size % 4 != 0 or data[4:8] != b"ftyp":
        return False
    for start in range(8, box_size, 4):
        if start != 12 and data[start:start + 3] == b"mp4":
            return True
    return False
