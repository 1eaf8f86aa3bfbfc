"""Load-balancing selection policies: which upstream gets the next attempt of a request.

Every policy has `select(pool, request) -> Upstream | None`: it looks only at upstreams
whose `available()` is true (healthy and not full) and answers None when there is none, so
the proxy can answer 503. The policies follow Caddy's (`selectionpolicies.go`):

- `random`, `random_choose N` (N random ones, then the least loaded), `least_conn`
  (fewest requests in flight, ties at random), `round_robin`, `first`;
- `weighted_round_robin`: nginx's *smooth* weighted round robin, so weights 90 and 10
  give exactly 9 picks of the first in every 10 while both are available;
- the hash policies `ip_hash`, `client_ip_hash`, `uri_hash`, `query`, `header` use
  rendezvous (highest random weight) hashing, so removing an upstream only moves the keys
  that were on it; `query` and `header` use their `fallback` policy when the key is absent;
- `cookie` (sticky sessions): the cookie holds the HMAC-SHA256 of the upstream's dial
  address (keyed by `secret`, the empty key without one), exactly as Caddy computes it, so
  cookies are interchangeable with Caddy's.

State (round robin counters) lives in the policy object; the proxy runs on one event loop
thread, so no locks are needed.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import random
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from rws.handlers.reverse_proxy.selection_config import (
    CookieHashConfig,
    HeaderHashConfig,
    NoOptionsPolicyConfig,
    QueryHashConfig,
    RandomChooseConfig,
    WeightedRoundRobinConfig,
)
from rws.handlers.reverse_proxy.upstreams import Upstream
from rws.http.message import Request

if TYPE_CHECKING:
    from rws.http.routes import BuildContext


class Selector(Protocol):
    """What the proxy asks for each attempt."""

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None: ...


# --- simple policies -------------------------------------------------------------------------


class RandomSelection:
    """An available upstream chosen uniformly at random."""

    __slots__ = ()

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        available = [u for u in pool if u.available()]
        return random.choice(available) if available else None


class RandomChooseSelection:
    """`choose` available upstreams sampled at random (reservoir sampling), then the one of
    them with the fewest requests in flight."""

    __slots__ = ("choose",)

    def __init__(self, choose: int) -> None:
        self.choose = choose

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        k = min(self.choose, len(pool))
        sample: list[Upstream] = []
        seen = 0
        for upstream in pool:
            if not upstream.available():
                continue
            seen += 1
            if len(sample) < k:
                sample.append(upstream)
            else:
                j = random.randrange(seen)
                if j < k:
                    sample[j] = upstream
        return _least_requests(sample)


class LeastConnSelection:
    """The available upstream with the fewest requests in flight; ties broken at random."""

    __slots__ = ()

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        return _least_requests(u for u in pool if u.available())


def _least_requests(upstreams: Iterable[Upstream]) -> Upstream | None:
    """The upstream with the fewest requests in flight; among equals, one chosen uniformly
    at random in a single pass (reservoir sampling)."""
    best: Upstream | None = None
    least = -1
    ties = 0
    for upstream in upstreams:
        n = upstream.num_requests
        if least < 0 or n < least:
            least, ties = n, 0
        if n == least:
            ties += 1
            if ties == 1 or random.randrange(ties) == 0:
                best = upstream
    return best


class RoundRobinSelection:
    """The upstreams in turn, skipping unavailable ones. Like Caddy, the counter is bumped
    before use, so the first request goes to the second upstream."""

    __slots__ = ("_robin",)

    def __init__(self) -> None:
        self._robin = 0

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        n = len(pool)
        for _ in range(n):
            self._robin = (self._robin + 1) & 0xFFFFFFFF  # Caddy's uint32 counter
            upstream = pool[self._robin % n]
            if upstream.available():
                return upstream
        return None


class WeightedRoundRobinSelection:
    """nginx's smooth weighted round robin: each available upstream with a positive weight
    gains its weight, the one with the highest running total is chosen and loses the sum of
    the weights that took part. Weights belong to upstreams by position; an upstream with no
    weight (or 0) is never chosen.

    Caddy's own algorithm sends bursts (a 90/10 split sends 90 in a row); this one spreads
    the picks and gives the exact ratio over every cycle of sum(weights) picks."""

    __slots__ = ("_current", "_weights")

    def __init__(self, weights: Sequence[int]) -> None:
        self._weights = tuple(weights)
        self._current = [0] * len(self._weights)

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        weights, current = self._weights, self._current
        best = -1
        total = 0
        for i in range(min(len(pool), len(weights))):
            weight = weights[i]
            if weight <= 0 or not pool[i].available():
                continue
            current[i] += weight
            total += weight
            if best < 0 or current[i] > current[best]:
                best = i
        if best < 0:
            return None
        current[best] -= total
        return pool[best]


class FirstSelection:
    """The first available upstream, in configured order (for failover)."""

    __slots__ = ()

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        for upstream in pool:
            if upstream.available():
                return upstream
        return None


# --- hashing policies --------------------------------------------------------------------------


def host_by_hashing(pool: Sequence[Upstream], key: bytes) -> Upstream | None:
    """Rendezvous (highest random weight) hashing: the available upstream whose hash of
    (dial address + key) is highest. Stable across processes, and an upstream leaving the
    pool only moves the keys it held.

    Caddy hashes with xxhash; we use BLAKE2b (64-bit digest) from the standard library, so
    the same key may map to a different upstream than in Caddy, but always the same in rws."""
    best: Upstream | None = None
    best_hash = -1
    for upstream in pool:
        if not upstream.available():
            continue
        digest = hashlib.blake2b(_bytes(upstream.dial) + key, digest_size=8).digest()
        h = int.from_bytes(digest, "big")
        if h > best_hash:
            best, best_hash = upstream, h
    return best


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class _HashSelection(abc.ABC):
    """A hash policy: `key()` takes the key from the request (None when it is absent, and
    then the fallback policy chooses)."""

    __slots__ = ("fallback",)

    def __init__(self, fallback: Selector) -> None:
        self.fallback = fallback

    @abc.abstractmethod
    def key(self, request: Request) -> bytes | None:
        """The hashed key of this policy in `request` (None when absent)."""

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        key = self.key(request)
        if key is None:
            return self.fallback.select(pool, request)
        return host_by_hashing(pool, key)


class IpHashSelection(_HashSelection):
    """Hashes the remote IP of the connection (the peer, even if it is a proxy)."""

    __slots__ = ()

    def key(self, request: Request) -> bytes | None:
        return _bytes(request.remote_ip)


class ClientIpHashSelection(_HashSelection):
    """Hashes the client IP as the server's trusted proxies settings determine it."""

    __slots__ = ()

    def key(self, request: Request) -> bytes | None:
        client_ip = request.vars.get("client_ip")
        return _bytes(client_ip if isinstance(client_ip, str) else request.remote_ip)


class UriHashSelection(_HashSelection):
    """Hashes the request URI as Caddy's `RequestURI`: the request-target as received,
    replaced by the rewritten path and query when a rewrite changed them."""

    __slots__ = ()

    def key(self, request: Request) -> bytes | None:
        return _bytes(request.target)


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class QueryHashSelection(_HashSelection):
    """Hashes the values of one query parameter, all of them joined with "," (so a client
    cannot steer a request by repeating the key); an empty result uses the fallback."""

    __slots__ = ("_key",)

    def __init__(self, key: str, fallback: Selector) -> None:
        super().__init__(fallback)
        self._key = _bytes(key)

    def key(self, request: Request) -> bytes | None:
        values = _query_values(request.query, self._key)
        joined = b",".join(values)
        return joined or None


def _query_values(query: str, wanted: bytes) -> list[bytes]:
    """The values of `wanted` in a raw query, as Go's url.ParseQuery reads it: pairs split
    on "&", a pair holding ";" or a malformed escape skipped, "+" meaning a space."""
    values: list[bytes] = []
    for pair in query.split("&"):
        if not pair or ";" in pair:
            continue
        name, _, value = pair.partition("=")
        name_bytes = _unescape(name)
        if name_bytes != wanted:
            continue
        value_bytes = _unescape(value)
        if value_bytes is not None:
            values.append(value_bytes)
    return values


def _unescape(component: str) -> bytes | None:
    if "%" in component and _BAD_ESCAPE.search(component):
        return None
    return unquote_to_bytes(component.replace("+", " "))


class HeaderHashSelection(_HashSelection):
    """Hashes the first value of a request header field; an absent or empty field uses the
    fallback. `Host` means the request's host (`Host` header or HTTP/2 `:authority`)."""

    __slots__ = ("_field", "_is_host")

    def __init__(self, field: str, fallback: Selector) -> None:
        super().__init__(fallback)
        self._field = field
        self._is_host = field.lower() == "host"

    def key(self, request: Request) -> bytes | None:
        if self._is_host and request.authority:
            return _bytes(request.authority)
        value = request.headers.get(self._field)
        return _bytes(value) if value else None


# --- sticky sessions ---------------------------------------------------------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_MAX_CACHED_HASHES = 4096


class CookieHashSelection:
    """Sticky sessions. A request whose cookie names an available upstream (by the hex
    HMAC-SHA256 of its dial address) goes there; any other request goes where the fallback
    policy says, and the response gets `Set-Cookie: <name>=<hash>; Path=/` (with Max-Age
    when configured, HttpOnly, and `Secure; SameSite=None` over HTTPS, else `SameSite=Lax`)."""

    __slots__ = ("_hashes", "_name_valid", "_plain_attributes", "_secret", "_secure_attributes", "fallback", "name")

    def __init__(self, name: str, secret: str, max_age: float, fallback: Selector) -> None:
        self.name = name
        self.fallback = fallback
        self._secret = _bytes(secret)
        # Go drops a cookie whose name is not a token, on reading and on writing
        self._name_valid = bool(name) and all(c in _TOKEN_CHARS for c in name)
        seconds = int(max_age)  # Go truncates the duration to whole seconds
        common = "; Path=/" + (f"; Max-Age={seconds}" if seconds > 0 else "") + "; HttpOnly"
        self._plain_attributes = common + "; SameSite=Lax"
        self._secure_attributes = common + "; Secure; SameSite=None"
        self._hashes: dict[str, str] = {}

    def cookie_value(self, dial: str) -> str:
        """The cookie value naming the upstream `dial` (cached per address)."""
        value = self._hashes.get(dial)
        if value is None:
            if len(self._hashes) >= _MAX_CACHED_HASHES:
                self._hashes.clear()
            value = self._hashes[dial] = hmac.new(self._secret, _bytes(dial), hashlib.sha256).hexdigest()
        return value

    def select(self, pool: Sequence[Upstream], request: Request) -> Upstream | None:
        wanted = request_cookie(request, self.name) if self._name_valid else None
        if wanted is not None:
            for upstream in pool:
                if upstream.available() and hmac.compare_digest(self.cookie_value(upstream.dial), wanted):
                    return upstream
        chosen = self.fallback.select(pool, request)
        if chosen is not None and self._name_valid:
            attributes = self._secure_attributes if _is_https(request) else self._plain_attributes
            request.response_headers.add("Set-Cookie", f"{self.name}={self.cookie_value(chosen.dial)}{attributes}")
        return chosen


def request_cookie(request: Request, name: str) -> str | None:
    """The value of the first well-formed cookie called exactly `name` (Go's
    `Request.Cookie`): surrounding double quotes are removed, and a value with a control
    character, `"`, `;` or `\\` makes that cookie not count."""
    for line in request.headers.get_all("Cookie"):
        for part in line.split(";"):
            key, _, raw = part.strip().partition("=")
            if key.strip() != name:
                continue
            if len(raw) > 1 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1]
            if all(0x20 <= ord(c) < 0x7F and c not in '";\\' for c in raw):
                return raw
    return None


def _is_https(request: Request) -> bool:
    """Whether the client used HTTPS: directly, or (through a trusted proxy) as the last
    `X-Forwarded-Proto` value says."""
    if request.scheme == "https":
        return True
    if request.vars.get("trusted_proxy") is True:
        forwarded = request.headers.get_all("X-Forwarded-Proto")
        return bool(forwarded) and forwarded[-1] == "https"
    return False


# --- builders (named by the ModuleSpecs in config.py) ------------------------------------------


def _fallback(module: Any, ctx: BuildContext) -> Selector:
    """The fallback policy a hash policy names; Caddy's default is `random`."""
    if module is None:
        return RandomSelection()
    built: Selector = ctx.build(module)
    return built


def build_random(config: NoOptionsPolicyConfig | None, ctx: BuildContext) -> RandomSelection:
    """Also the proxy's default policy (`config` None)."""
    return RandomSelection()


def build_random_choose(config: RandomChooseConfig, ctx: BuildContext) -> RandomChooseSelection:
    return RandomChooseSelection(config.choose or 2)


def build_least_conn(config: NoOptionsPolicyConfig, ctx: BuildContext) -> LeastConnSelection:
    return LeastConnSelection()


def build_round_robin(config: NoOptionsPolicyConfig, ctx: BuildContext) -> RoundRobinSelection:
    return RoundRobinSelection()


def build_weighted_round_robin(config: WeightedRoundRobinConfig, ctx: BuildContext) -> WeightedRoundRobinSelection:
    return WeightedRoundRobinSelection(config.weights)


def build_first(config: NoOptionsPolicyConfig, ctx: BuildContext) -> FirstSelection:
    return FirstSelection()


def build_ip_hash(config: NoOptionsPolicyConfig, ctx: BuildContext) -> IpHashSelection:
    return IpHashSelection(RandomSelection())


def build_client_ip_hash(config: NoOptionsPolicyConfig, ctx: BuildContext) -> ClientIpHashSelection:
    return ClientIpHashSelection(RandomSelection())


def build_uri_hash(config: NoOptionsPolicyConfig, ctx: BuildContext) -> UriHashSelection:
    return UriHashSelection(RandomSelection())


def build_query_hash(config: QueryHashConfig, ctx: BuildContext) -> QueryHashSelection:
    return QueryHashSelection(config.key, _fallback(config.fallback, ctx))


def build_header_hash(config: HeaderHashConfig, ctx: BuildContext) -> HeaderHashSelection:
    return HeaderHashSelection(config.field, _fallback(config.fallback, ctx))


def build_cookie_hash(config: CookieHashConfig, ctx: BuildContext) -> CookieHashSelection:
    return CookieHashSelection(config.name or "lb", config.secret, config.max_age, _fallback(config.fallback, ctx))
