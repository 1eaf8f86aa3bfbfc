"""Config of the load-balancing selection policies (`http.reverse_proxy.selection_policies.*`).

Each policy is a JSON object named by its `"policy"` key; the classes here hold the rest.
The hash policies (`query`, `header`, `cookie`) may name a `fallback` policy, used when the
hashed value is absent (Caddy's default fallback is `random`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from rws.config.decode import Duration, Module
from rws.errors import ConfigError

SELECTION_POLICY = Module("http.reverse_proxy.selection_policies", inline_key="policy")


@dataclass(frozen=True, slots=True, kw_only=True)
class NoOptionsPolicyConfig:
    """`random`, `least_conn`, `round_robin`, `first`, `ip_hash`, `client_ip_hash`, `uri_hash`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RandomChooseConfig:
    choose: int = 0  # 0 means the default, 2

    def validate(self, path: str) -> None:
        if self.choose != 0 and self.choose < 2:
            raise ConfigError(f"{path}.choose", f"choose must be at least 2, got {self.choose}")


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightedRoundRobinConfig:
    weights: tuple[int, ...] = ()

    def validate(self, path: str) -> None:
        for i, weight in enumerate(self.weights):
            if weight < 0:
                raise ConfigError(f"{path}.weights[{i}]", f"weight of an upstream cannot be negative, got {weight}")
        if sum(self.weights) <= 0:
            raise ConfigError(f"{path}.weights", "weighted_round_robin requires at least one upstream with a positive weight")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryHashConfig:
    key: str = ""
    fallback: Annotated[Any, SELECTION_POLICY] = None

    def validate(self, path: str) -> None:
        if not self.key:
            raise ConfigError(f"{path}.key", "query key is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderHashConfig:
    field: str = ""
    fallback: Annotated[Any, SELECTION_POLICY] = None

    def validate(self, path: str) -> None:
        if not self.field:
            raise ConfigError(f"{path}.field", "header field is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class CookieHashConfig:
    name: str = ""  # "" means the default, "lb"
    secret: str = ""
    max_age: Duration = 0.0
    fallback: Annotated[Any, SELECTION_POLICY] = None

    def validate(self, path: str) -> None:
        if self.max_age < 0:
            raise ConfigError(f"{path}.max_age", "max_age must not be negative")
