"""The `authentication` handler with its HTTP basic provider and the bcrypt hash.

Directives: `basic_auth` and its deprecated spelling `basicauth`:
`basic_auth [<matcher>] [<hash_algorithm> [<realm>]] { <username> <hashed_password>... }`.
`hash_password` makes the hashes these accounts hold (`rws hash-password`).

At run time (`Authentication`) each provider is asked in turn; the first that
authenticates sets `{http.auth.user.id}` and the request goes on. Otherwise the handler
raises HttpError(401) for the error routes, with the provider's challenge already on the
response headers (`HTTPBasic`: `WWW-Authenticate: Basic realm="..."`, realm `restricted`
by default). A provider's technical failure (a malformed stored hash) is logged and
exposed as `{http.auth.<provider>.error}`. Password checks run bcrypt in a worker thread;
an unknown user is checked against a dummy hash so that timing does not reveal which
users exist; `hash_cache` remembers results (up to 1000, evicting a tenth at random when
full), and concurrent checks of the same credentials share one computation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import bcrypt

from rws.config.decode import Module, ModuleMap
from rws.errors import ConfigError, HttpError, RwsError
from rws.http.message import Next, Request, Response
from rws.http.placeholders import compile_template, lookup, to_string
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper

if TYPE_CHECKING:
    from rws.http.routes import BuildContext

logger = logging.getLogger(__name__)

BCRYPT_DEFAULT_COST = 14
BCRYPT_MIN_COST = 4
BCRYPT_MAX_COST = 31
HASH_ALGORITHMS = ("bcrypt",)  # argon2id needs a hasher rws does not ship yet


def hash_password(plaintext: str, cost: int = BCRYPT_DEFAULT_COST) -> str:
    """A bcrypt hash of `plaintext` in the `$2a$` form Caddy writes; an out-of-range cost means 14."""
    if not BCRYPT_MIN_COST <= cost <= BCRYPT_MAX_COST:
        cost = BCRYPT_DEFAULT_COST
    secret = plaintext.encode("utf-8")
    if len(secret) > 72:
        raise RwsError("password length exceeds 72 bytes, the most bcrypt can hash")
    return bcrypt.hashpw(secret, bcrypt.gensalt(rounds=cost, prefix=b"2a")).decode("ascii")


# --- config ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BcryptConfig:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class HashCacheConfig:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    username: str = ""
    password: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPBasicConfig:
    hash: Annotated[Any, Module("http.authentication.hashes", inline_key="algorithm")] = None
    accounts: tuple[AccountConfig, ...] = ()
    realm: str = ""
    hash_cache: HashCacheConfig | None = None

    def validate(self, path: str) -> None:
        seen: set[str] = set()
        for i, account in enumerate(self.accounts):
            where = f"{path}.accounts[{i}]"
            if account.username in seen:
                raise ConfigError(where, f"username is not unique: {account.username}")
            seen.add(account.username)
            if not account.username or not account.password:
                raise ConfigError(where, "username and password are required")
            if not account.password.startswith("$") and "{" not in account.password:
                try:
                    base64.b64decode(account.password, validate=True)
                except binascii.Error as exc:
                    raise ConfigError(f"{where}.password", f"base64-decoding password: {exc}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticationConfig:
    providers: Annotated[Any, ModuleMap("http.authentication.providers")] = None


# --- the directive -----------------------------------------------------------------------


def _parse_basic_auth(h: Helper) -> Any:
    d = h.d
    if d.name == "basicauth":
        h.warn("the 'basicauth' directive is deprecated, please use 'basic_auth' instead!")
    args = d.remaining_args()
    if len(args) > 2:
        raise d.arg_error()
    algorithm = args[0] if args else "bcrypt"
    if algorithm not in HASH_ALGORITHMS:
        raise d.error(f"unrecognized hash algorithm: {algorithm}")
    basic: dict[str, Any] = {"hash": {"algorithm": algorithm}, "hash_cache": {}}
    if len(args) == 2 and args[1]:
        basic["realm"] = args[1]
    accounts: list[dict[str, str]] = []
    seen: set[str] = set()
    for sub in d.block():
        username = sub.name
        password = sub.val() if sub.next_arg() else ""
        if sub.next_arg():
            raise sub.arg_error()
        if not username or not password:
            raise sub.error("username and password cannot be empty or missing", sub.tokens[0])
        if username in seen:
            raise sub.error(f"username is not unique: {username}", sub.tokens[0])
        seen.add(username)
        accounts.append({"username": username, "password": password})
    if accounts:
        basic["accounts"] = accounts
    return {"handler": "authentication", "providers": {"http_basic": basic}}


# --- runtime: hashes --------------------------------------------------------------------

# Caddy's dummy bcrypt hash (of "antitiming", cost 14) checked for unknown users.
FAKE_BCRYPT_HASH = b"$2a$14$X3ulqf/iGxnf1k6oMZ.RZeJUoqI9PX2PM4rS5lkIKJXduLGXGPrt6"


class Comparer(Protocol):
    fake_hash: bytes

    def compare(self, hashed: bytes, plaintext: bytes) -> bool:
        """Whether `plaintext` hashes to `hashed`; ValueError for a malformed hash."""
        ...


class Bcrypt:
    """The runtime of the bcrypt hash module. Like Go's bcrypt, only the first 72 bytes
    of a password count."""

    fake_hash = FAKE_BCRYPT_HASH

    def compare(self, hashed: bytes, plaintext: bytes) -> bool:
        return bcrypt.checkpw(plaintext[:72], hashed)


def build_bcrypt(config: BcryptConfig, ctx: BuildContext) -> Bcrypt:
    return Bcrypt()


# --- runtime: the HTTP basic provider ----------------------------------------------------

HASH_CACHE_SIZE = 1000


class HashCache:
    """Results of password checks, keyed by a digest of hash and password. Concurrent
    checks of the same pair share one computation, which finishes (and is cached) even
    if the request that started it goes away."""

    def __init__(self) -> None:
        self.results: dict[bytes, bool] = {}
        self.running: dict[bytes, asyncio.Future[bool]] = {}

    async def check(self, comparer: Comparer, hashed: bytes, plaintext: bytes) -> bool:
        key = hashlib.sha256(len(hashed).to_bytes(4, "big") + hashed + plaintext).digest()
        if key in self.results:
            return self.results[key]
        running = self.running.get(key)
        if running is None:
            running = asyncio.ensure_future(asyncio.to_thread(comparer.compare, hashed, plaintext))
            self.running[key] = running
            running.add_done_callback(functools.partial(self._finished, key))
        return await asyncio.shield(running)

    def _finished(self, key: bytes, done: asyncio.Future[bool]) -> None:
        del self.running[key]
        if done.cancelled() or done.exception() is not None:
            return  # the waiters get the exception; nothing to remember
        if len(self.results) >= HASH_CACHE_SIZE:
            self._make_room()
        self.results[key] = done.result()

    def _make_room(self) -> None:
        for key in random.sample(list(self.results), max(len(self.results) // 10, 1) + 1):
            del self.results[key]


def _global_text(text: str) -> str:
    """Expand the placeholders a config can use outside a request (env, system, time)."""
    from rws.http.message import Headers

    template = compile_template(text)
    if template.static:
        return template.text_value
    nobody = Request("GET", "/", Headers())
    out = []
    for part in template.parts:
        if isinstance(part, str):
            out.append(part)
        elif part[0].startswith(("env.", "system.", "time.")):
            out.append(to_string(lookup(nobody, part[0])[0]))
    return "".join(out)


def parse_basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """(username, password) from an `Authorization: Basic ...` value, as Go reads it."""
    if not authorization or len(authorization) < 6 or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    username, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return username.decode("utf-8", "surrogateescape"), password


class HTTPBasic:
    """The runtime of the `http_basic` provider."""

    def __init__(self, config: HTTPBasicConfig, comparer: Comparer) -> None:
        self.comparer = comparer
        self.accounts: dict[str, bytes] = {}
        for i, account in enumerate(config.accounts):
            username, password = _global_text(account.username), _global_text(account.password)
            if not username or not password:
                raise ConfigError("", f"account {i}: username and password are required")
            if password.startswith("$"):
                self.accounts[username] = password.encode("utf-8")
                continue
            try:
                self.accounts[username] = base64.b64decode(password, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ConfigError("", f"base64-decoding password: {exc}") from None
        self.challenge = f'Basic realm="{config.realm or "restricted"}"'
        self.cache = HashCache() if config.hash_cache is not None else None

    async def authenticate(self, request: Request) -> str | None:
        """The user ID when the request carries valid credentials; otherwise sets the
        challenge header and returns None. ValueError when a stored hash is malformed."""
        credentials = parse_basic_credentials(request.headers.get("Authorization"))
        if credentials is not None:
            username, password = credentials
            hashed = self.accounts.get(username)
            try:
                same = await self._check(self.comparer.fake_hash if hashed is None else hashed, password)
            except ValueError:
                request.response_headers.set("Www-Authenticate", self.challenge)
                raise
            if same and hashed is not None:
                return username
        request.response_headers.set("Www-Authenticate", self.challenge)
        return None

    async def _check(self, hashed: bytes, password: bytes) -> bool:
        if self.cache is not None:
            return await self.cache.check(self.comparer, hashed, password)
        return await asyncio.to_thread(self.comparer.compare, hashed, password)


def build_http_basic(config: HTTPBasicConfig, ctx: BuildContext) -> HTTPBasic:
    hash_module = config.hash
    comparer: Comparer = ctx.build(hash_module) if hash_module is not None else Bcrypt()
    return HTTPBasic(config, comparer)


# --- runtime: the handler ----------------------------------------------------------------


class Authentication:
    """The runtime of `authentication`."""

    __slots__ = ("providers",)

    def __init__(self, providers: tuple[tuple[str, HTTPBasic], ...]) -> None:
        self.providers = providers

    async def handle(self, request: Request, next: Next) -> Response:
        for name, provider in self.providers:
            try:
                user = await provider.authenticate(request)
            except ValueError as exc:
                logger.error("auth provider returned error", extra={"provider": name, "error": str(exc)})
                request.values[f"http.auth.{name}.error"] = str(exc)
                continue
            if user is not None:
                request.values["http.auth.user.id"] = user
                return await next(request)
        raise HttpError(401, "not authenticated")


def build_authentication(config: AuthenticationConfig, ctx: BuildContext) -> Authentication:
    providers = config.providers or {}
    return Authentication(tuple((name, ctx.build(module)) for name, module in providers.items()))


_DIRECTIVE = Directive(_parse_basic_auth)

AUTHENTICATION = ModuleSpec(
    id="http.handlers.authentication",
    config=AuthenticationConfig,
    directives={"basic_auth": _DIRECTIVE, "basicauth": _DIRECTIVE},
    runtime="rws.handlers.authentication:build_authentication",
)
HTTP_BASIC = ModuleSpec(
    id="http.authentication.providers.http_basic",
    config=HTTPBasicConfig,
    runtime="rws.handlers.authentication:build_http_basic",
)
BCRYPT = ModuleSpec(
    id="http.authentication.hashes.bcrypt",
    config=BcryptConfig,
    runtime="rws.handlers.authentication:build_bcrypt",
)
