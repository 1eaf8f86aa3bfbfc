"""The admin API: read and change the running config over HTTP, on rws's own HTTP/1 stack.

Endpoints: `/config/[path]` (GET, POST, PUT, PATCH, DELETE), `/id/<id>/[path]`, `POST /load`
(JSON, or an Rwsfile with `Content-Type: text/rwsfile` or `text/caddyfile`), `POST /adapt`,
`POST /stop`, `GET /reverse_proxy/upstreams`, `GET /pki/ca/<id>`, `GET /metrics`.
Every write builds and applies a whole new config; one that fails changes nothing and
answers 400 with `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Awaitable, Callable, Coroutine

from rws.admin.guard import allowed_hosts, check
from rws.config import tree as config_tree
from rws.errors import AdminError, RwsError
from rws.http.message import Headers, Response
from rws.net.listeners import Listener, parse_listen
from rws.protocols.connection import HttpConnection, Timeouts
from rws.protocols.flow import BodyStream
from rws.protocols.events import RequestReceived
from rws.protocols.http1 import default_backend

log = logging.getLogger(__name__)

DEFAULT_ADMIN = "localhost:2019"
MAX_BODY = 100 * 1024 * 1024
RWSFILE_TYPES = ("text/rwsfile", "text/caddyfile")


def _json_response(status: int, value: Any, extra: list[tuple[str, str]] | None = None) -> Response:
    body = (json.dumps(value) + "\n").encode()
    return Response(status, Headers([("Content-Type", "application/json"), *(extra or [])]), body)


def _error(status: int, message: str) -> Response:
    return _json_response(status, {"error": message})


class AdminApp:
    """The admin endpoint's App for its connections."""

    def __init__(self, runtime: Any, listen: str, origins: tuple[str, ...], enforce_origin: bool) -> None:
        self.runtime = runtime
        self.listen = listen
        self.origins = origins
        self.enforce_origin = enforce_origin
        self.hosts = allowed_hosts(listen, origins)
        self.backend = default_backend()
        self.connections: set[HttpConnection] = set()
        self.stopping = False  # POST /stop answered: stop once the answer is sent

    def connection(self) -> HttpConnection:
        conn = HttpConnection(self, self.backend, timeouts=Timeouts(read_header=10, idle=60),
                              on_close=self.connections.discard)
        self.connections.add(conn)
        return conn

    def sent(self, response: Any, head: RequestReceived, written: int, body: BodyStream) -> None:
        if self.stopping and head.target.partition("?")[0] == "/stop":
            asyncio.get_running_loop().call_soon(self.runtime.request_stop)

    async def handle(self, head: RequestReceived, body: BodyStream, conn: HttpConnection) -> Response:
        headers = {k.lower(): v for k, v in head.headers}
        try:
            origin = check(head.method, headers, self.hosts, self.origins, self.enforce_origin)
            response = await self._route(head, headers, body)
        except AdminError as exc:
            return _error(exc.status, exc.message)
        except RwsError as exc:
            return _error(400, str(exc))
        if origin:
            response.headers.set("Access-Control-Allow-Origin", origin)
        return response

    async def _route(self, head: RequestReceived, headers: dict[str, str], body: BodyStream) -> Response:
        path = head.target.partition("?")[0]
        if path == "/config":
            return Response(301, Headers([("Location", "/config/")]), b"")
        if path.startswith("/config/"):
            return await self._config(head.method, path[len("/config/"):], headers, body)
        if path.startswith("/id/"):
            resolved = config_tree.resolve_id(self.runtime.tree, path)
            return await self._config(head.method, resolved, headers, body)
        endpoint = _ENDPOINTS.get(path)
        if endpoint is None:
            if path.startswith("/pki/ca/"):
                _only(head.method, "GET")
                return await self._ca(path[len("/pki/ca/"):])
            return Response(404, Headers([("Content-Type", "text/plain; charset=utf-8")]), b"404 page not found\n")
        return await endpoint(self, head, headers, body)

    # --- /config/ -------------------------------------------------------------------------

    async def _config(self, method: str, path: str, headers: dict[str, str], body: BodyStream) -> Response:
        path = path.rstrip("/") if path != "" else path
        if method == "GET":
            value = config_tree.get(self.runtime.tree, path)
            return _json_response(200, value, [("ETag", config_tree.etag(value, path))])
        if method not in ("POST", "PUT", "PATCH", "DELETE"):
            raise AdminError(405, f"method {method} not allowed")
        value = None
        if method != "DELETE":
            ctype = headers.get("content-type", "")
            if "/json" not in ctype:
                raise AdminError(400, f"unacceptable content-type: {ctype}; 'application/json' required")
            value = _parse_json(await _read_body(body))
        async def edit() -> None:
            async with self.runtime.lock_for_edit():
                current = self.runtime.tree
                if "if-match" in headers:
                    config_tree.check_if_match(current, headers["if-match"])
                new = config_tree.apply(current, method, path, value)
                config_tree.id_paths(new)
                await self._apply(new if isinstance(new, dict) else {}, force=_must_revalidate(headers))

        await _to_the_end(edit())
        return Response(200, Headers(), b"")

    async def _apply(self, tree: dict[str, Any], force: bool = False) -> None:
        try:
            await self.runtime.apply_unlocked(tree, force=force)
        except AdminError:
            raise
        except RwsError as exc:
            raise AdminError(400, f"loading new config: {exc}") from None

    # --- other endpoints -----------------------------------------------------------------

    async def _load(self, head: RequestReceived, headers: dict[str, str], body: BodyStream) -> Response:
        _only(head.method, "POST")
        tree, warnings = _adapt_body(headers.get("content-type", ""), await _read_body(body))
        async def load() -> None:
            async with self.runtime.lock_for_edit():
                config_tree.id_paths(tree)
                await self._apply(tree, force=_must_revalidate(headers))

        await _to_the_end(load())
        if warnings:
            return _json_response(200, [_warning_json(w) for w in warnings])
        return Response(200, Headers(), b"")

    async def _adapt(self, head: RequestReceived, headers: dict[str, str], body: BodyStream) -> Response:
        _only(head.method, "POST")
        tree, warnings = _adapt_body(headers.get("content-type", ""), await _read_body(body), require_adapter=True)
        return _json_response(200, {"warnings": [_warning_json(w) for w in warnings], "result": tree})

    async def _stop(self, head: RequestReceived, headers: dict[str, str], body: BodyStream) -> Response:
        _only(head.method, "POST")
        self.stopping = True
        return Response(200, Headers(), b"")

    async def _ca(self, rest: str) -> Response:
        """`/pki/ca/<id>`: the CA's names and certificates (made on first use);
        `/pki/ca/<id>/certificates`: its chain, intermediate then root."""
        from rws.tls.authority import authority_for, common_name
        from rws.tls.storage import storage_for

        ca_id, _, what = rest.partition("/")
        generation = self.runtime.generation
        config = generation.config if generation is not None else None
        pki = (config.apps or {}).get("pki") if config is not None else None
        authority = authority_for(storage_for(config.storage if config is not None else None),
                                  pki.config if pki is not None else None, ca_id)
        if authority is None or what not in ("", "certificates"):
            raise AdminError(404, f"no certificate authority configured with id: {ca_id}")
        loop = asyncio.get_running_loop()
        root, intermediate = await loop.run_in_executor(None, lambda: (authority.root_pem(),
                                                                       authority.intermediate_pem()))
        if what == "certificates":
            return Response(200, Headers([("Content-Type", "application/pem-certificate-chain")]), intermediate + root)
        return _json_response(200, {"id": ca_id, "name": authority.name, "root_common_name": common_name(root),
                                    "intermediate_common_name": common_name(intermediate),
                                    "root_certificate": root.decode(), "intermediate_certificate": intermediate.decode()})

    async def _upstreams(self, head: RequestReceived, headers: dict[str, str], body: BodyStream) -> Response:
        _only(head.method, "GET")
        return _json_response(200, await self.runtime.upstreams())

    async def _metrics(self, head: RequestReceived, headers: dict[str, str], body: BodyStream) -> Response:
        _only(head.method, "GET")
        text = await self.runtime.metrics_text()
        return Response(200, Headers([("Content-Type", "text/plain; version=0.0.4; charset=utf-8")]), text.encode())


_ENDPOINTS: dict[str, Callable[[AdminApp, RequestReceived, dict[str, str], BodyStream], Awaitable[Response]]] = {
    "/load": AdminApp._load,
    "/adapt": AdminApp._adapt,
    "/stop": AdminApp._stop,
    "/reverse_proxy/upstreams": AdminApp._upstreams,
    "/metrics": AdminApp._metrics,
}


_FINISHING: set[asyncio.Task[None]] = set()


async def _to_the_end(change: Coroutine[Any, Any, None]) -> None:
    """Run a config change to its end even if the client goes away meanwhile: a change
    stopped halfway could leave the workers on a config the supervisor does not keep."""
    task = asyncio.ensure_future(change)
    _FINISHING.add(task)
    task.add_done_callback(_FINISHING.discard)
    await asyncio.shield(task)


def _only(method: str, allowed: str) -> None:
    if method != allowed:
        raise AdminError(405, f"method not allowed: {method}")


def _must_revalidate(headers: dict[str, str]) -> bool:
    return "must-revalidate" in headers.get("cache-control", "").lower()


async def _read_body(body: BodyStream) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        data = await body.read(1 << 20)
        if not data:
            return b"".join(parts)
        size += len(data)
        if size > MAX_BODY:
            raise AdminError(413, "request body too large")
        parts.append(data)


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AdminError(400, f"decoding request body: {exc}") from None


def _adapt_body(content_type: str, data: bytes, require_adapter: bool = False) -> tuple[dict[str, Any], list[Any]]:
    """A /load or /adapt body as a JSON tree: JSON as is, an Rwsfile through the adapter."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in RWSFILE_TYPES:
        from rws.rwsfile.adapt import adapt_text

        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise AdminError(400, "the Rwsfile is not valid UTF-8") from None
        try:
            return adapt_text(text, "Rwsfile")
        except RwsError as exc:
            raise AdminError(400, f"adapting config using {ctype.split('/')[1]}: {exc}") from None
    if ctype and "/json" not in ctype or (require_adapter and not ctype):
        raise AdminError(400, f"unrecognized config adapter '{ctype.split('/')[-1]}'")
    tree = _parse_json(data)
    if not isinstance(tree, dict):
        raise AdminError(400, "config must be a JSON object")
    return tree, []


def _warning_json(warning: Any) -> dict[str, Any]:
    return {"file": warning.file, "line": warning.line, "message": warning.message}


# --- the admin endpoint's lifecycle ------------------------------------------------------


def admin_settings(tree: dict[str, Any]) -> tuple[str | None, tuple[str, ...], bool]:
    """(listen address or None when disabled, origins, enforce_origin) from a config tree."""
    admin = tree.get("admin") or {}
    if admin.get("disabled"):
        return None, (), False
    listen = admin.get("listen") or os.environ.get("RWS_ADMIN") or DEFAULT_ADMIN
    return listen, tuple(admin.get("origins") or ()), bool(admin.get("enforce_origin"))


class AdminEndpoint:
    """Keeps the admin listener in step with the config: started, moved or stopped."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.app: AdminApp | None = None
        self.listeners: list[Listener] = []
        self.settings: tuple[str | None, tuple[str, ...], bool] | None = None

    async def configure(self, tree: dict[str, Any]) -> None:
        settings = admin_settings(tree)
        if settings == self.settings:
            return
        listen, origins, enforce = settings
        new_listeners: list[Listener] = []
        app = None
        if listen is not None:
            app = AdminApp(self.runtime, listen, origins, enforce)
            try:
                for address in parse_listen(_resolve(listen)):
                    listener = await self.runtime.pool.acquire(address, serve=True)
                    new_listeners.append(listener)
            except RwsError:
                for listener in new_listeners:
                    self.runtime.pool.release(listener)
                raise
            for listener in new_listeners:
                await listener.serve(app.connection)
            if new_listeners and listen.endswith(":0"):  # Host checks need the port the OS chose
                app.hosts = allowed_hosts(f"{listen[:-2]}:{new_listeners[0].bound[1]}", origins)
        old = self.listeners
        self.app, self.listeners, self.settings = app, new_listeners, settings
        for listener in old:
            self.runtime.pool.release(listener)
        if listen is not None:
            log.info("admin endpoint started", extra={"address": listen})

    def close(self) -> None:
        for listener in self.listeners:
            self.runtime.pool.release(listener)
        self.listeners = []
        self.settings = None


def _resolve(listen: str) -> str:
    """`localhost:PORT` listens on the IPv4 loopback address."""
    if listen.startswith("localhost:"):
        return "127.0.0.1:" + listen.split(":", 1)[1]
    return listen
