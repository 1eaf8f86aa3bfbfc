"""Upstreams at run time: what each proxy knows of the backends it sends requests to.

A `Host` is the state of one dial address shared by every proxy of the process that uses
it, and kept across config reloads (as Caddy's host pool): requests in flight, recent
failures (passive health), the active health checker's verdict and the circuit breaker.
An `Upstream` is one entry of one proxy's upstream list: a dial address (placeholders
already replaced), its `max_requests`, and its Host.

`GET /reverse_proxy/upstreams` lists every Host in use (`upstream_states`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Host:
    """The shared state of one dial address."""

    __slots__ = ("address", "num_requests", "fails", "healthy", "passes_in_row", "fails_in_row", "circuit",
                 "circuit_until", "probing", "users")

    def __init__(self, address: str) -> None:
        self.address = address
        self.num_requests = 0  # requests in flight
        self.fails = 0  # failures counted within their fail_duration (passive health)
        self.healthy = True  # the active health checker's verdict
        self.passes_in_row = 0  # consecutive active check results, for the passes/fails thresholds
        self.fails_in_row = 0
        self.circuit = CLOSED  # closed -> open (after failures) -> half-open (one probe) -> closed
        self.circuit_until = 0.0  # monotonic time the open circuit lets a probe through
        self.probing = False  # a half-open circuit's single probe request is in flight
        self.users = 0  # config generations holding this host

    def count_fail(self, delta: int) -> None:
        self.fails = max(0, self.fails + delta)

    def state(self) -> dict[str, Any]:
        return {"address": self.address, "num_requests": self.num_requests, "fails": self.fails,
                "healthy": self.healthy, "circuit": self.circuit}


_HOSTS: dict[str, Host] = {}


def acquire_host(address: str) -> Host:
    """The Host of `address`, created on first use; release it with `release_host`."""
    host = _HOSTS.get(address)
    if host is None:
        host = _HOSTS[address] = Host(address)
    host.users += 1
    return host


def release_host(host: Host) -> None:
    host.users -= 1
    if host.users <= 0 and _HOSTS.get(host.address) is host:
        del _HOSTS[host.address]


def upstream_states() -> list[dict[str, Any]]:
    """What `GET /reverse_proxy/upstreams` answers: every host in use, by address."""
    return [host.state() for _, host in sorted(_HOSTS.items())]


class Upstream:
    """One upstream of one proxy. `healthy()` and `available()` are what selection
    policies look at; `max_fails` and `breaker` come from the proxy's config."""

    __slots__ = ("dial", "host", "max_requests", "max_fails", "breaker")

    def __init__(self, dial: str, host: Host, max_requests: int = 0, max_fails: int = 0,
                 breaker: CircuitBreaker | None = None) -> None:
        self.dial = dial
        self.host = host
        self.max_requests = max_requests
        self.max_fails = max_fails  # 0: passive health checks are off
        self.breaker = breaker

    def healthy(self) -> bool:
        host = self.host
        if not host.healthy:
            return False
        if self.max_fails and host.fails >= self.max_fails:
            return False
        if self.breaker is not None and not self.breaker.allows(host):
            return False
        return True

    def full(self) -> bool:
        return self.max_requests > 0 and self.host.num_requests >= self.max_requests

    def available(self) -> bool:
        return self.healthy() and not self.full()

    @property
    def num_requests(self) -> int:
        return self.host.num_requests

    def __repr__(self) -> str:
        return f"Upstream({self.dial!r})"


class CircuitBreaker:
    """Per-host circuit breaking for one proxy: after `threshold` consecutive failures the
    circuit opens for `open_for` seconds; then one probe request is let through
    (half-open), whose success closes the circuit and whose failure opens it again."""

    __slots__ = ("threshold", "open_for")

    def __init__(self, threshold: int = 5, open_for: float = 10.0) -> None:
        self.threshold = threshold
        self.open_for = open_for

    def allows(self, host: Host) -> bool:
        if host.circuit == CLOSED:
            return True
        if host.circuit == OPEN and time.monotonic() >= host.circuit_until:
            host.circuit = HALF_OPEN
        return host.circuit == HALF_OPEN and not host.probing

    def record(self, host: Host, ok: bool, consecutive_failures: int) -> None:
        if ok:
            host.circuit = CLOSED
            host.probing = False
            return
        if host.circuit == HALF_OPEN or consecutive_failures >= self.threshold:
            host.circuit = OPEN
            host.circuit_until = time.monotonic() + self.open_for
            host.probing = False


def forget_failure_later(host: Host, after: float) -> None:
    """Passive health: count a failure now and forget it `after` seconds later."""
    host.count_fail(1)
    asyncio.get_running_loop().call_later(after, host.count_fail, -1)
