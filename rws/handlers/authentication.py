"""The `authentication` handler with its HTTP basic provider and the bcrypt hash.

Directives: `basic_auth` and its deprecated spelling `basicauth`:
`basic_auth [<matcher>] [<hash_algorithm> [<realm>]] { <username> <hashed_password>... }`.
`hash_password` makes the hashes these accounts hold (`rws hash-password`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated, Any

import bcrypt

from rws.config.decode import Module, ModuleMap
from rws.errors import ConfigError, RwsError
from rws.registry import ModuleSpec
from rws.rwsfile.directives import Directive, Helper

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


_DIRECTIVE = Directive(_parse_basic_auth)

AUTHENTICATION = ModuleSpec(
    id="http.handlers.authentication",
    config=AuthenticationConfig,
    directives={"basic_auth": _DIRECTIVE, "basicauth": _DIRECTIVE},
)
HTTP_BASIC = ModuleSpec(id="http.authentication.providers.http_basic", config=HTTPBasicConfig)
BCRYPT = ModuleSpec(id="http.authentication.hashes.bcrypt", config=BcryptConfig)
