"""Listening sockets that outlive a config generation.

A listener is bound once and kept while some generation uses its address; a reload that
keeps the address keeps the socket (no gap in accepting), and only points the listener at
the new generation's connection factory. A connection is bound to the factory that was
current when it was accepted. An address no generation uses any more is closed.

With worker processes, the supervisor's pool binds without serving (`serve=False`) and
hands the sockets to the workers; a worker's pool never binds: it serves the sockets it
`inherit`ed, by the same keys.

UDP listeners (network `udp`, `udp4`, `udp6`) carry QUIC for HTTP/3 on the port of a TLS
listener; a `QuicEndpoint` (rws.net.quic) serves each. Every worker accepts from the same
TCP socket, but a QUIC connection's packets must all reach the process that holds its
state: so the supervisor binds one UDP socket per worker on the address (SO_REUSEPORT; the
kernel sends each client address to one of them) and hands worker N its own (`handed`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

from rws.errors import RwsError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """One socket to listen on: `network` is tcp, tcp4, tcp6 or unix; or udp, udp4, udp6."""

    network: str
    host: str
    port: int

    @property
    def key(self) -> str:
        if self.network == "unix":
            return f"unix/{self.host}"
        return f"{self.network}/{self.host}:{self.port}"

    @property
    def is_datagram(self) -> bool:
        return self.network.startswith("udp")

    def datagram(self, port: int) -> ListenAddress:
        """The UDP address beside this TCP one, on `port` (the port it is bound to)."""
        return ListenAddress("udp" + self.network[3:], self.host, port)


def parse_listen(address: str) -> list[ListenAddress]:
    """`[network/]host:port[-port]` -> one ListenAddress per port."""
    network, slash, rest = address.partition("/")
    if not slash:
        network, rest = "tcp", address
    network = network.lower() or "tcp"
    if network.startswith("unix"):
        return [ListenAddress("unix", rest, 0)]
    if network not in ("tcp", "tcp4", "tcp6"):
        raise RwsError(f"listen address {address!r}: network {network!r} is not supported")
    if rest.startswith("["):
        end = rest.find("]")
        host, ports = rest[1:end], rest[end + 2:]
    else:
        host, _, ports = rest.rpartition(":")
    start, _, end_port = ports.partition("-")
    try:
        first, last = int(start), int(end_port or start)
    except ValueError:
        raise RwsError(f"listen address {address!r}: invalid port {ports!r}") from None
    return [ListenAddress(network, host, p) for p in range(first, last + 1)]


@dataclass(eq=False)
class Listener:
    address: ListenAddress
    sock: socket.socket
    server: asyncio.AbstractServer | None = None
    factory: Any = None  # the current generation's: a protocol factory (TCP), a QuicService (UDP)
    users: int = 0
    key: str = ""
    serving: bool = False  # this process serves it (not so a supervisor's)
    endpoint: Any = None  # a UDP listener's QuicEndpoint, once it serves
    copies: list[socket.socket] = field(default_factory=list)  # a supervisor's UDP sockets, one per worker

    @property
    def bound(self) -> tuple[str, int]:
        name = self.sock.getsockname()
        if isinstance(name, tuple):
            return str(name[0]), int(name[1])
        return str(name), 0

    async def serve(self, factory: Any) -> None:
        """New connections go to `factory` (a protocol factory; a UDP listener's QuicService);
        the first call starts accepting (until then, what arrives waits in the kernel)."""
        self.factory = factory
        if self.server is not None and not self.server.is_serving():
            await self.server.start_serving()
        elif self.address.is_datagram and self.serving and self.endpoint is None:
            from rws.net.quic import QuicEndpoint

            loop = asyncio.get_running_loop()
            _, self.endpoint = await loop.create_datagram_endpoint(lambda: QuicEndpoint(self.current), sock=self.sock)

    def make_protocol(self) -> asyncio.Protocol:
        factory = self.factory
        if factory is None:  # between generations: refuse politely by closing
            return _Refuse()
        return factory()  # type: ignore[no-any-return]

    def current(self) -> Any:
        """A UDP listener's current QuicService (None: refuse new connections)."""
        return self.factory

    def handed(self, slot: int) -> socket.socket | None:
        """The socket worker `slot` serves: a TCP listener's only socket (all workers accept
        from it); a UDP listener's socket for that worker, bound on first use. None when it
        can't be bound (the worker then serves no HTTP/3 there)."""
        if not self.address.is_datagram:
            return self.sock
        while len(self.copies) <= slot:
            try:
                self.copies.append(_bind(self.address, reuse_port=True))
            except RwsError as exc:
                log.warning("HTTP/3 off for a worker: its UDP socket could not be bound",
                            extra={"address": self.address.key, "worker": slot, "error": str(exc)})
                return None
        return self.copies[slot]


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


@dataclass
class ListenerPool:
    listeners: dict[str, Listener] = field(default_factory=dict)
    serve: bool = True  # False: bind and hold sockets for others to serve (the supervisor)
    inherited: dict[str, socket.socket] | None = None  # not None: never bind (a worker)

    async def acquire(self, address: ListenAddress, owner: str = "", serve: bool | None = None) -> Listener:
        """The listener for an address, bound on first use. Port 0 asks the OS for a port
        per owner (server), so two servers on port 0 get two sockets, each kept across
        reloads for as long as its server keeps the address. A listener starts accepting
        when it is first given a factory (`Listener.serve`)."""
        key = listener_key(address, owner)
        listener = self.listeners.get(key)
        if listener is None:
            serving = self.serve if serve is None else serve
            if self.inherited is None:
                sock = _bind(address, reuse_port=address.is_datagram and not serving)
            elif (inherited := self.inherited.pop(key, None)) is not None:
                sock = inherited
            else:
                raise RwsError(f"listening on {address.key}: the supervisor did not hand over this socket")
            listener = Listener(address, sock, key=key, serving=serving)
            if address.is_datagram:
                if not serving:
                    listener.copies.append(sock)
            elif serving:
                listener.server = await asyncio.get_running_loop().create_server(
                    listener.make_protocol, sock=sock, backlog=1024, start_serving=False)
            self.listeners[key] = listener
            if self.inherited is None:
                log.info("enabling HTTP/3 listener" if address.is_datagram else "listener bound",
                         extra={"address": address.key, "bound": listener.bound})
        listener.users += 1
        return listener

    def inherit(self, handed: dict[str, socket.socket]) -> None:
        """Sockets from the supervisor, by key; those this pool already serves are closed."""
        assert self.inherited is not None
        for key, sock in handed.items():
            if key in self.listeners or key in self.inherited:
                sock.close()
            else:
                sock.setblocking(False)
                self.inherited[key] = sock

    def drop_inherited(self) -> None:
        """Close the handed sockets no listener took."""
        assert self.inherited is not None
        for sock in self.inherited.values():
            sock.close()
        self.inherited.clear()

    def stop_accepting(self) -> None:
        """Close every listening socket now; connections already accepted go on (a worker
        that stops: the others, holding the same sockets, take the new connections). A UDP
        socket stays open for the QUIC connections it carries, refusing new ones."""
        for listener in self.listeners.values():
            if listener.address.is_datagram:
                listener.factory = None
                continue
            if listener.server is not None:
                listener.server.close()
                listener.server = None
            listener.sock.close()

    def release(self, listener: Listener) -> None:
        listener.users -= 1
        if listener.users <= 0:
            self.listeners.pop(listener.key, None)
            if listener.server is not None:
                listener.server.close()
            elif listener.endpoint is not None:
                listener.endpoint.close()
            else:
                listener.sock.close()
            for sock in listener.copies:
                sock.close()
            if listener.address.network == "unix" and self.inherited is None:
                _remove_socket_file(listener.address.host)
            log.info("listener closed", extra={"address": listener.address.key})

    def keep_copies(self, count: int) -> None:
        """A supervisor now runs `count` workers: the UDP sockets of the others close (a
        socket no worker reads would swallow the packets the kernel sends it)."""
        count = max(count, 1)
        for listener in self.listeners.values():
            for sock in listener.copies[count:]:
                sock.close()
            del listener.copies[count:]

    def close_all(self) -> None:
        for listener in list(self.listeners.values()):
            listener.users = 0
            self.release(listener)


def listener_key(address: ListenAddress, owner: str = "") -> str:
    return address.key + (f"#{owner}" if address.port == 0 and address.network != "unix" else "")


def _bind(address: ListenAddress, reuse_port: bool = False) -> socket.socket:
    try:
        if address.is_datagram:
            return _bind_datagram(address, reuse_port)
        if address.network == "unix":
            _remove_socket_file(address.host)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address.host)
        else:
            family = socket.AF_INET6 if address.network == "tcp6" or ":" in address.host else socket.AF_INET
            if address.host == "" and address.network == "tcp" and socket.has_ipv6:
                family = socket.AF_INET6
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address.host == "" else 1)
            sock.bind((address.host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), address.port))
        sock.listen(1024)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        raise RwsError(f"listening on {address.key}: {exc.strerror or exc}") from None


def _bind_datagram(address: ListenAddress, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if address.network == "udp6" or ":" in address.host else socket.AF_INET
    if address.host == "" and address.network == "udp" and socket.has_ipv6:
        family = socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if address.host == "" else 1)
        sock.bind((address.host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), address.port))
        _grow_buffers(sock)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


UDP_BUFFER = 2 * 1024 * 1024  # bytes of socket buffer QUIC wants each way
_hinted: list[bool] = []


def _grow_buffers(sock: socket.socket) -> None:
    """Ask for bigger UDP buffers (bursts of datagrams are dropped past them); the kernel caps
    what an unprivileged process gets, and says so once."""
    small = False
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, UDP_BUFFER)
            small = small or sock.getsockopt(socket.SOL_SOCKET, option) < UDP_BUFFER
        except OSError:
            small = True
    if small and not _hinted:
        _hinted.append(True)
        log.info("UDP buffers are smaller than HTTP/3 wants; raise net.core.rmem_max and net.core.wmem_max "
                 "(sysctl) to at least this", extra={"wanted": UDP_BUFFER})


def _remove_socket_file(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove socket file", extra={"path": path, "error": str(exc)})


def describe(listener: Any) -> str:
    host, port = listener.bound
    return f"{host}:{port}"
