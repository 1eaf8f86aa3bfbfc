"""Upstreams at run time: what each proxy knows of the backends it sends requests to.

A `Host` is the state of one dial address shared by every proxy of the process that uses
it, and kept across config reloads (as Caddy's host pool): requests in flight, recent
failures (passive health), the active health checker's verdict and the circuit breaker.
An `Upstream` is one entry of one proxy's upstream list: a dial address (placeholders
already replaced), its `max_requests`, and its Host.

`GET /reverse_proxy/upstreams` lists every Host in use (`upstream_states`).

With worker processes, active health checks run once, in the supervisor: each verdict it
reaches is published (`publish_verdicts`) to every worker, where `receive_verdict` applies
it, also to hosts the worker builds later. Passive health and the circuit breaker stay per
worker, as do the in-flight counts; `merge_states` adds the workers' views up.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Host:
    """The shared state of one dial address."""

    __slots__ = ("address", "num_requests", "fails", "healthy", "circuit", "circuit_until", "probing", "users")

    def __init__(self, address: str) -> None:
        self.address = address
        self.num_requests = 0  # requests in flight
        self.fails = 0  # failures counted within their fail_duration (passive health)
        self.healthy = True  # the active health checker's verdict
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
        if _received is not None:
            host.healthy = _received.get(address, True)
    host.users += 1
    return host


def release_host(host: Host) -> None:
    host.users -= 1
    if host.users <= 0 and _HOSTS.get(host.address) is host:
        del _HOSTS[host.address]


def upstream_states() -> list[dict[str, Any]]:
    """What `GET /reverse_proxy/upstreams` answers: every host in use, by address."""
    return [host.state() for _, host in sorted(_HOSTS.items())]


# --- active verdicts across processes -------------------------------------------------------

_publish: Callable[[str, bool], None] | None = None  # the supervisor's: sends a verdict to the workers
_received: dict[str, bool] | None = None  # a worker's: the verdicts the supervisor sent


def publish_verdicts(send: Callable[[str, bool], None]) -> None:
    """In the supervisor: from now on every verdict goes to `send` too."""
    global _publish
    _publish = send


def checks_elsewhere() -> None:
    """In a worker: active checks run in the supervisor, verdicts come by `receive_verdict`."""
    global _received
    _received = {}


def active_checks_here() -> bool:
    return _received is None


def set_verdict(host: Host, healthy: bool) -> None:
    """The active verdict on `host`: coming up closes its circuit too."""
    host.healthy = healthy
    if healthy and host.circuit != CLOSED:
        host.circuit, host.probing = CLOSED, False
    if _publish is not None:
        _publish(host.address, healthy)


def receive_verdict(address: str, healthy: bool) -> None:
    assert _received is not None
    _received[address] = healthy
    host = _HOSTS.get(address)
    if host is not None:
        set_verdict(host, healthy)


def verdicts() -> dict[str, bool]:
    """Every host's active verdict (for a worker that starts)."""
    return {address: host.healthy for address, host in _HOSTS.items()}


def merge_states(views: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Several workers' `upstream_states` as one: counts add up; a host is healthy when
    every worker finds it so, and its circuit is the most open one."""
    merged: dict[str, dict[str, Any]] = {}
    order = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
    for view in views:
        for state in view:
            seen = merged.get(state["address"])
            if seen is None:
                merged[state["address"]] = dict(state)
                continue
            seen["num_requests"] += state["num_requests"]
            seen["fails"] += state["fails"]
            seen["healthy"] = seen["healthy"] and state["healthy"]
            if order.get(state["circuit"], 0) > order.get(seen["circuit"], 0):
                seen["circuit"] = state["circuit"]
    return [merged[address] for address in sorted(merged)]


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
    """Circuit breaking per host for one proxy, on top of its passive health checks (rws's
    addition to Caddy). A closed circuit opens when the host's recent failures reach
    `threshold` (max_fails within fail_duration) and stays open for `open_for` seconds;
    then it is half-open and lets one probe request through at a time: the proxy sets
    `host.probing` when it sends a request to a host whose circuit is not closed, and
    `record` (the probe's outcome) closes the circuit or opens it again. A probe that never
    reports back (its client went away) stops blocking the next one `open_for` seconds
    after it was first seen.

    While half-open, `host.circuit_until` is the deadline of the probe in flight, or
    infinity until one is seen."""

    __slots__ = ("threshold", "open_for")
    NO_PROBE = float("inf")  # circuit_until of a half-open circuit before a probe is seen

    def __init__(self, threshold: int = 1, open_for: float = 10.0) -> None:
        self.threshold = threshold
        self.open_for = open_for

    def allows(self, host: Host) -> bool:
        """Whether a request may go to `host` now."""
        circuit = host.circuit
        if circuit == CLOSED:
            return True
        now = time.monotonic()
        if circuit == OPEN:
            if now < host.circuit_until:
                return False
            self._half_open(host)
        if not host.probing:
            return True
        if host.circuit_until == self.NO_PROBE:  # a probe seen for the first time: its lease starts
            host.circuit_until = now + self.open_for
            return False
        if now < host.circuit_until:
            return False
        host.probing = False  # the probe never reported: let another one through
        host.circuit_until = self.NO_PROBE
        return True

    def record(self, host: Host, ok: bool) -> str | None:
        """Take the outcome of a request to `host` into account (after its failures were
        counted); the circuit's new state when it changed, else None."""
        circuit = host.circuit
        if circuit == HALF_OPEN:
            host.probing = False
            if ok:
                host.circuit = CLOSED
                return CLOSED
            self._open(host)
            return OPEN
        if circuit == CLOSED and not ok and host.fails >= self.threshold:
            self._open(host)
            return OPEN
        return None  # open: the outcome of a request sent before it opened changes nothing

    def _open(self, host: Host) -> None:
        host.circuit = OPEN
        host.probing = False
        until = host.circuit_until = time.monotonic() + self.open_for
        asyncio.get_running_loop().call_later(self.open_for, self._end_open, host, until)

    @staticmethod
    def _half_open(host: Host) -> None:
        host.circuit = HALF_OPEN
        host.probing = False
        host.circuit_until = CircuitBreaker.NO_PROBE

    @classmethod
    def _end_open(cls, host: Host, until: float) -> None:
        """The open period is over (so that the admin endpoint shows it without traffic)."""
        if host.circuit == OPEN and host.circuit_until == until:
            cls._half_open(host)


def forget_failure_later(host: Host, after: float, pending: dict[asyncio.TimerHandle, Host]) -> None:
    """Passive health: count a failure of `host` now and forget it `after` seconds later.
    Until then its timer is in `pending`, so that whoever counted it can forget it at once
    (cancel the timer, then `host.count_fail(-1)`)."""
    host.count_fail(1)

    def forget() -> None:
        pending.pop(handle, None)
        host.count_fail(-1)

    handle = asyncio.get_running_loop().call_later(after, forget)
    pending[handle] = host
