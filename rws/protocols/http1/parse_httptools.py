"""The httptools (llhttp) parser backend: bytes -> head, body chunks, ends."""

from __future__ import annotations

import httptools

from rws.protocols.http1.core import MAX_TARGET_BYTES, ParseFailure, Sink


class HttptoolsParser:
    __slots__ = ("sink", "parser", "target", "headers", "failure")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.parser = httptools.HttpRequestParser(self)
        self.target = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []
        self.failure: ParseFailure | None = None

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # the head is complete and was reported; what follows belongs to another
            # protocol, which rws does not speak on this connection yet
            raise ParseFailure(0, "protocol upgrade") from None
        except httptools.HttpParserCallbackError:
            if self.failure is not None:
                raise self.failure from None
            raise
        except httptools.HttpParserInvalidMethodError:
            raise ParseFailure(400, "invalid method") from None
        except httptools.HttpParserInvalidURLError:
            raise ParseFailure(400, "invalid request target") from None
        except httptools.HttpParserError as exc:
            raise ParseFailure(400, f"malformed request: {exc}") from None

    def eof(self) -> None:
        return

    # llhttp callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.target.clear()
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.target += url
        if len(self.target) > MAX_TARGET_BYTES:
            self.failure = ParseFailure(414, "request URI too long")
            raise self.failure

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        try:
            self.sink.head(parser.get_method().decode("ascii"), bytes(self.target), "HTTP/" + parser.get_http_version(),
                           self.headers, parser.should_keep_alive(), parser.should_upgrade())
        except ParseFailure as exc:
            self.failure = exc
            raise

    def on_body(self, body: bytes) -> None:
        self.sink.body(body)

    def on_message_complete(self) -> None:
        self.sink.end()
