"""The encoders of the `encode` handler at run time: gzip (zlib), zstd and brotli.

Each encoder is built from its config (`http.encoders.<name>`) and makes one
`CompressStream` per response: `compress` chunks as they come, `flush` when what was
compressed so far must reach the client, `finish` at the end.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

import brotli  # type: ignore[import-untyped]  # the package ships no type hints
import zstandard

from rws.handlers.encode import BrotliConfig, GzipConfig, ZstdConfig
from rws.http.routes import BuildContext


class CompressStream(Protocol):
    """One response being compressed."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes:
        """Everything compressed so far, decodable by the client now."""
        ...

    def finish(self) -> bytes: ...


class Encoding(Protocol):
    name: str  # the Accept-Encoding token

    def stream(self) -> CompressStream: ...


class _ZlibStream:
    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def compress(self, data: bytes) -> bytes:
        return bytes(self._obj.compress(data))

    def flush(self) -> bytes:
        return bytes(self._obj.flush(zlib.Z_SYNC_FLUSH))

    def finish(self) -> bytes:
        return bytes(self._obj.flush(zlib.Z_FINISH))


class Gzip:
    """gzip through zlib. Levels as in Caddy: 0 means 5, -1 zlib's default, -2 Huffman
    coding only, -3 (stateless in Go) the fastest level."""

    name = "gzip"

    def __init__(self, level: int) -> None:
        self.strategy = zlib.Z_HUFFMAN_ONLY if level == -2 else zlib.Z_DEFAULT_STRATEGY
        self.level = {0: 5, -1: zlib.Z_DEFAULT_COMPRESSION, -2: 1, -3: 1}.get(level, level)

    def stream(self) -> CompressStream:
        return _ZlibStream(zlib.compressobj(self.level, zlib.DEFLATED, 16 + zlib.MAX_WBITS, 8, self.strategy))


ZSTD_LEVELS = {"fastest": 1, "default": 3, "better": 7, "best": 11}
ZSTD_WINDOW_LOG = 17  # a 128 KiB window, as Caddy uses, to spare clients' memory
_ZSTD_POOL_MAX = 64


class _ZstdStream:
    __slots__ = ("_zstd", "_compressor", "_obj")

    def __init__(self, zstd: Zstd, compressor: Any) -> None:
        self._zstd = zstd
        self._compressor = compressor
        self._obj = compressor.compressobj()

    def compress(self, data: bytes) -> bytes:
        return bytes(self._obj.compress(data))

    def flush(self) -> bytes:
        return bytes(self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def finish(self) -> bytes:
        out = bytes(self._obj.flush())
        self._zstd.release(self._compressor)
        return out


class Zstd:
    """zstd with a 128 KiB window and Caddy's four levels. A compressor context serves one
    response at a time, so finished ones go back to a small free list."""

    name = "zstd"

    def __init__(self, level: str, checksum: bool) -> None:
        self.params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVELS[(level or "default").lower()], window_log=ZSTD_WINDOW_LOG, write_checksum=int(checksum))
        self._free: list[Any] = []

    def stream(self) -> CompressStream:
        compressor = self._free.pop() if self._free else zstandard.ZstdCompressor(compression_params=self.params)
        return _ZstdStream(self, compressor)

    def release(self, compressor: Any) -> None:
        if len(self._free) < _ZSTD_POOL_MAX:
            self._free.append(compressor)


class _BrotliStream:
    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def compress(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data))

    def flush(self) -> bytes:
        return bytes(self._obj.flush())

    def finish(self) -> bytes:
        return bytes(self._obj.finish())


class Brotli:
    name = "br"

    def __init__(self, quality: int | None, lgwin: int) -> None:
        self.quality = 6 if quality is None else quality
        self.lgwin = lgwin or 22

    def stream(self) -> CompressStream:
        return _BrotliStream(brotli.Compressor(quality=self.quality, lgwin=self.lgwin))


def build_gzip(config: GzipConfig, ctx: BuildContext) -> Gzip:
    return Gzip(config.level)


def build_zstd(config: ZstdConfig, ctx: BuildContext) -> Zstd:
    return Zstd(config.level, config.checksum is not False)


def build_brotli(config: BrotliConfig, ctx: BuildContext) -> Brotli:
    return Brotli(config.quality, config.lgwin)
