"""The root of the config tree: `admin`, `logging`, `storage` and `apps`.

`decode_config(tree)` turns a whole JSON tree into a frozen `Config`, raising
`ConfigError` with the JSON path of the first problem; apps (`http`, `tls`, `pki`) decode
through the registry like any other module. `validate_tree(tree)` is what `rws validate`
adds on top: checks that need the whole decoded tree, such as refusing modules that rws
can decode but cannot run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Iterator, Literal

from rws.config.decode import Duration, Module, ModuleMap, ModuleValue, decode
from rws.errors import ConfigError
from rws.registry import ModuleSpec

Writer = Annotated[Any, Module("caddy.logging.writers", "output")]
Encoder = Annotated[Any, Module("caddy.logging.encoders", "format")]
Core = Annotated[Any, Module("caddy.logging.cores", "module")]
Storage = Annotated[Any, Module("caddy.storage", "module")]
ConfigLoader = Annotated[Any, Module("caddy.config_loaders", "module")]
Apps = Annotated[Any, ModuleMap("")]


# --- admin ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfigSettings:
    """`admin.config`: whether the running config is saved, and where one is pulled from."""

    persist: bool | None = None
    load: ConfigLoader | None = None
    load_delay: Duration = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    disabled: bool = False
    listen: str = ""
    enforce_origin: bool = False
    origins: tuple[str, ...] = ()
    config: AdminConfigSettings | None = None
    identity: Any = None  # remote administration over mTLS: accepted, not used
    remote: Any = None

    def validate(self, path: str) -> None:
        if not self.listen:
            return
        from rws.http.config import parse_network_address

        try:
            addr = parse_network_address(self.listen)
        except ValueError as exc:
            raise ConfigError(f"{path}.listen", f"invalid admin address {self.listen!r}: {exc}") from None
        if addr.has_ports and addr.start_port != addr.end_port:
            raise ConfigError(f"{path}.listen", f"admin endpoint must have exactly one address; cannot listen on {self.listen!r}")


# --- logging -------------------------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "warn", "error", "panic", "fatal")


def level_problem(level: str) -> str | None:
    """Why `level` is not a log level (case does not matter; placeholders are not checked)."""
    if "{" in level or level.lower() in ("", *LOG_LEVELS):
        return None
    return f"unrecognized log level {level!r}: expected one of {', '.join(x.upper() for x in LOG_LEVELS)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SamplingConfig:
    interval: Duration = 0.0
    first: int = 0
    thereafter: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class SinkLogConfig:
    """Where unstructured logs of libraries go."""

    writer: Writer | None = None
    encoder: Encoder | None = None
    core: Core | None = None
    level: str = ""
    sampling: SamplingConfig | None = None
    with_caller: bool = False
    with_caller_skip: int = 0
    with_stacktrace: str = ""

    def validate(self, path: str) -> None:
        _check_levels(self.level, self.with_stacktrace, path)


@dataclass(frozen=True, slots=True, kw_only=True)
class CustomLogConfig(SinkLogConfig):
    """One named log: the sink's settings, plus which loggers it takes."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        super(CustomLogConfig, self).validate(path)
        if not (self.include and self.exclude):
            return
        for allow in self.include:
            if allow in self.exclude:
                raise ConfigError(f"{path}.include", f"include and exclude must not intersect, but found {allow!r} in both lists")
        for allow in self.include:
            if not any((allow + ".").startswith(deny + ".") or (deny + ".").startswith(allow + ".") for deny in self.exclude):
                raise ConfigError(f"{path}.include", "when both include and exclude are populated, each element must be a "
                                  f"superspace or subspace of one in the other list; check {allow!r} in include")


def _check_levels(level: str, stacktrace: str, path: str) -> None:
    for key, value in (("level", level), ("with_stacktrace", stacktrace)):
        problem = level_problem(value)
        if problem:
            raise ConfigError(f"{path}.{key}", problem)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingConfig:
    sink: SinkLogConfig | None = None
    logs: dict[str, CustomLogConfig] = field(default_factory=dict)


# --- storage -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FileSystemStorageConfig:
    """Certificates, keys and locks under one folder (default: the rws data directory)."""

    root: str = ""


FILE_SYSTEM_STORAGE = ModuleSpec(id="caddy.storage.file_system", config=FileSystemStorageConfig)


# --- the root ------------------------------------------------------------------------------


MAX_WORKERS = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    admin: AdminConfig | None = None
    logging: LoggingConfig | None = None
    storage: Storage | None = None
    apps: Apps = field(default_factory=dict)
    workers: int | Literal["auto"] | None = None  # worker processes (rws.runtime.supervisor)

    def validate(self, path: str) -> None:
        if isinstance(self.workers, int) and not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(_key_path(path, "workers"), f"must be between 1 and {MAX_WORKERS}, got {self.workers}")
        for name in self.apps:
            _check_app_name(name, _key_path(_key_path(path, "apps"), name))


def _check_app_name(name: str, path: str) -> None:
    from rws import registry

    if "." in name or registry.find(name) is None:
        import difflib

        close = difflib.get_close_matches(name, registry.names_in(""), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(path, f"unknown app {name!r}{hint}")


def decode_config(tree: Any) -> Config:
    """A whole JSON config tree -> `Config`; raises ConfigError naming the JSON path."""
    if not isinstance(tree, dict):
        raise ConfigError("", f"a config must be a JSON object, got {type(tree).__name__}")
    tree = strip_ids(tree)
    apps = tree.get("apps")
    if isinstance(apps, dict):
        for name in apps:  # before decoding, so a dotted name never reaches a module's decoder
            _check_app_name(name, _key_path("apps", name))
    config: Config = decode(Config, tree, "")
    return config


def strip_ids(value: Any) -> Any:
    """The tree without its `@id` keys, which name places for the admin API only."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k != "@id"}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


# --- checks on the whole tree --------------------------------------------------------------


def _check_expression(config: Any, path: str) -> None:
    from rws.http.matchers.logic import check_expression

    check_expression(config, path)


def _check_hosts(config: Any, path: str) -> None:
    from rws.http.matchers.host import validate_hosts

    validate_hosts(config, path)


def _check_methods(config: Any, path: str) -> None:
    from rws.http.matchers.request import validate_methods

    validate_methods(config, path)


# module ID -> a check that decoding cannot make (the config is a plain list or string),
# or the refusal of a module rws decodes but cannot run
PROVISION_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "http.matchers.expression": _check_expression,
    "http.matchers.host": _check_hosts,
    "http.matchers.method": _check_methods,
}


def validate_tree(tree: Any) -> Config:
    """Decode `tree` and check what a run needs beyond decoding; returns the Config."""
    config = decode_config(tree)
    for module, path in walk_modules(config, ""):
        check = PROVISION_CHECKS.get(module.id)
        if check is not None:
            check(module.config, path)
    return config


def walk_modules(value: Any, path: str) -> Iterator[tuple[ModuleValue, str]]:
    """Every decoded module in `value`, with its JSON path, depth first in document order."""
    if isinstance(value, ModuleValue):
        yield value, path
        yield from walk_modules(value.config, path)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk_modules(getattr(value, f.name), _key_path(path, f.metadata.get("json", f.name)))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_modules(item, _key_path(path, key))
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            yield from walk_modules(item, f"{path}[{i}]")


def _key_path(path: str, key: str) -> str:
    """`path.key`, or `path['odd key']` for keys that are not plain names (as decode writes them)."""
    if not path:
        return key
    if key.replace("-", "_").replace(".", "_").isidentifier():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"
