"""The httptools (llhttp) parser backend: llhttp calls the core's callbacks itself."""

from __future__ import annotations

from typing import Any

import httptools

from rws.protocols.http1.core import ParseFailure, UnknownMethod, UpgradeRequested


class HttptoolsParser:
    __slots__ = ("core", "parser", "get_method", "get_http_version", "should_keep_alive", "should_upgrade")

    def __init__(self, core: Any) -> None:
        self.core = core
        self.parser = parser = httptools.HttpRequestParser(core)
        self.get_method = parser.get_method
        self.get_http_version = parser.get_http_version
        self.should_keep_alive = parser.should_keep_alive
        self.should_upgrade = parser.should_upgrade

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # the request head was reported, its body left unread (llhttp reads none with
            # an upgrade): the connection reads a Content-Length body from what follows, but
            # can't take a chunked one apart
            if any(name.lower() == "transfer-encoding" for name, _ in self.core.special):
                raise ParseFailure(400, "a chunked body on a request to switch protocols") from None
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            raise UpgradeRequested(data[offset:]) from None
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, ParseFailure):
                raise exc.__context__ from None
            raise
        except httptools.HttpParserInvalidMethodError:
            # llhttp knows a fixed list of methods; any token is a method (RFC 9110), so a
            # request with another one (`get`, `FOO`) is left to the h11 backend
            raise UnknownMethod() from None
        except httptools.HttpParserInvalidURLError:
            raise ParseFailure(400, "invalid request target") from None
        except httptools.HttpParserError as exc:
            raise ParseFailure(400, f"malformed request: {exc}") from None

    def eof(self) -> None:
        return
