"""Strict JSON -> frozen config objects, driven by type annotations.

A config class is a `@dataclass(frozen=True, slots=True, kw_only=True)`; its fields are
the JSON keys (a field's `metadata={"json": "name"}` overrides the key when the JSON key
is not a Python name). `decode(tp, value, path)` checks every value against the
annotation and raises `ConfigError(path, message)` naming the JSON path on the first
problem: an unknown key (with a suggestion), a wrong type, a bad duration or size, an
unknown module. Annotations understood:

- `str`, `int`, `float`, `bool`, `Any` (kept as is), `Literal[...]`, `X | None`,
  `tuple[X, ...]`, `dict[str, X]`, nested config classes;
- `Duration` (float seconds from integer nanoseconds or "30s"), `Size` (int bytes from
  an integer or "1MiB"), `WeakString` (a string or a number, kept as a string);
- `Annotated[Any, Module("http.handlers", inline_key="handler")]`: an object naming its
  module by an inline key, decoded by that module's config type;
- `Annotated[Any, ModuleMap("http.matchers")]`: an object whose keys name modules and
  whose values are those modules' configs.

A config class may define `validate(self, path: str) -> None` for checks that span
fields; it raises `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from rws.config.values import parse_duration, parse_size
from rws.errors import ConfigError


@dataclass(frozen=True, slots=True)
class _DurationHint:
    pass


@dataclass(frozen=True, slots=True)
class _SizeHint:
    pass


@dataclass(frozen=True, slots=True)
class _WeakStringHint:
    pass


@dataclass(frozen=True, slots=True)
class Module:
    """Annotation: a module object whose name is under `inline_key`."""

    namespace: str
    inline_key: str


@dataclass(frozen=True, slots=True)
class ModuleMap:
    """Annotation: an object keyed by module name."""

    namespace: str


Duration = Annotated[float, _DurationHint()]
Size = Annotated[int, _SizeHint()]
WeakString = Annotated[str, _WeakStringHint()]


@dataclass(frozen=True, slots=True)
class ModuleValue:
    """A decoded module: its full ID and its decoded config."""

    id: str
    config: Any


def decode(tp: Any, value: Any, path: str = "") -> Any:
    """Decode `value` (parsed JSON) as `tp`; raise ConfigError naming `path` on a mismatch."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        return _decode_annotated(base, extras, value, path)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return decode(rest[0], value, path)
        errors = []
        for option in rest:
            try:
                return decode(option, value, path)
            except ConfigError as exc:
                errors.append(exc.message)
        raise ConfigError(path, " or ".join(errors))
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(path, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin is tuple:
        (item, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(path, f"expected a list, got {_show(value)}")
        return tuple(decode(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        (_key, item) = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected an object, got {_show(value)}")
        return {k: decode(item, v, _join(path, k)) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _decode_class(tp, value, path)
    return _decode_scalar(tp, value, path)


def _decode_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected a boolean, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(path, f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {_show(value)}")
        return value
    if tp is type(None):
        if value is not None:
            raise ConfigError(path, f"expected null, got {_show(value)}")
        return None
    raise TypeError(f"decode: unsupported annotation {tp!r}")  # a bug in a config class


def _decode_annotated(base: Any, extras: list[Any], value: Any, path: str) -> Any:
    for hint in extras:
        if isinstance(hint, _DurationHint):
            return _duration(value, path)
        if isinstance(hint, _SizeHint):
            return _size(value, path)
        if isinstance(hint, _WeakStringHint):
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ConfigError(path, f"expected a string or a number, got {_show(value)}")
            return value if isinstance(value, str) else str(value)
        if isinstance(hint, Module):
            return decode_module(hint, value, path)
        if isinstance(hint, ModuleMap):
            return decode_module_map(hint.namespace, value, path)
    return decode(base, value, path)


def _duration(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(path, f"expected a duration, got {_show(value)}")
    if isinstance(value, int):
        return value / 1e9
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            raise ConfigError(path, f"invalid duration {value!r}") from None
    raise ConfigError(path, f"expected a duration, got {_show(value)}")


def _size(value: Any, path: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(path, f"expected a size, got {_show(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError:
            raise ConfigError(path, f"invalid size {value!r}") from None
    raise ConfigError(path, f"expected a size, got {_show(value)}")


def decode_module(hint: Module, value: Any, path: str) -> ModuleValue:
    from rws import registry

    if not isinstance(value, dict):
        raise ConfigError(path, f"expected an object, got {_show(value)}")
    name = value.get(hint.inline_key)
    if not isinstance(name, str):
        raise ConfigError(_join(path, hint.inline_key), f"module name missing: expected a string naming a {hint.namespace} module")
    module_id = f"{hint.namespace}.{name}" if hint.namespace else name
    module = registry.find(module_id)
    if module is None:
        known = registry.names_in(hint.namespace)
        raise ConfigError(_join(path, hint.inline_key), f"unknown module {module_id!r}{_suggest(name, known)}")
    rest = {k: v for k, v in value.items() if k != hint.inline_key}
    return ModuleValue(module_id, decode(module.config, rest, path))


def decode_module_map(namespace: str, value: Any, path: str) -> dict[str, ModuleValue]:
    from rws import registry

    if not isinstance(value, dict):
        raise ConfigError(path, f"expected an object, got {_show(value)}")
    out: dict[str, ModuleValue] = {}
    for name, raw in value.items():
        module_id = f"{namespace}.{name}" if namespace else name
        module = registry.find(module_id)
        if module is None:
            known = registry.names_in(namespace)
            raise ConfigError(_join(path, name), f"unknown module {module_id!r}{_suggest(name, known)}")
        out[name] = ModuleValue(module_id, decode(module.config, raw, _join(path, name)))
    return out


@typing.no_type_check
def _decode_class(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(path, f"expected an object, got {_show(value)}")
    hints = _hints(cls)
    by_json = {f.metadata.get("json", f.name): f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, raw in value.items():
        field = by_json.get(key)
        if field is None:
            raise ConfigError(_join(path, key), f"unknown field{_suggest(key, list(by_json))}")
        kwargs[field.name] = decode(hints[field.name], raw, _join(path, key))
    missing = [
        f.metadata.get("json", f.name)
        for f in dataclasses.fields(cls)
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(_join(path, missing[0]), "required field is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(path)
    return obj


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return hints


def _join(path: str, key: str) -> str:
    if not path:
        return key
    if key.isidentifier() or key.replace("-", "_").replace(".", "_").isidentifier():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


def _suggest(word: str, known: list[str]) -> str:
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return repr(value)
