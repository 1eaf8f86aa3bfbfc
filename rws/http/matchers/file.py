"""The `file` matcher: matches when a file (or directory) exists.

```
file [<files...>] {
    root <path>
    try_files <files...>
    try_policy first_exist|first_exist_fallback|smallest_size|largest_size|most_recently_modified
    split_path <delims...>
}
```
JSON: `{"root", "try_files", "try_policy", "split_path", "fs"}`; an empty object tries the
request path under `{http.vars.root}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rws.errors import ConfigError
from rws.registry import ModuleSpec
from rws.rwsfile.directives import MatcherContext
from rws.rwsfile.dispenser import Dispenser

TRY_POLICIES = ("first_exist", "first_exist_fallback", "smallest_size", "largest_size", "most_recently_modified")


@dataclass(frozen=True, slots=True, kw_only=True)
class FileMatchConfig:
    fs: str = ""
    root: str = ""
    try_files: tuple[str, ...] = ()
    try_policy: str = ""
    split_path: tuple[str, ...] = ()

    def validate(self, path: str) -> None:
        if self.try_policy and self.try_policy not in TRY_POLICIES:
            raise ConfigError(f"{path}.try_policy", f"unknown try policy {self.try_policy!r}: expected one of {', '.join(TRY_POLICIES)}")


_SUBDIRECTIVES = ("root", "try_files", "try_policy", "split_path")


def _parse_file(lines: list[Dispenser], ctx: MatcherContext) -> Any:
    out: dict[str, Any] = {}
    try_files: list[str] = []
    for d in lines:
        try_files.extend(d.remaining_args())
        for sub in d.block():
            if sub.name == "root":
                if not sub.next_arg():
                    raise sub.arg_error()
                out["root"] = sub.val()
            elif sub.name == "try_files":
                try_files.extend(sub.remaining_args())
                if not try_files:
                    raise sub.arg_error()
            elif sub.name == "try_policy":
                if not sub.next_arg():
                    raise sub.arg_error()
                if sub.val() not in TRY_POLICIES:
                    raise sub.error(f"unknown try policy {sub.val()!r}: expected one of {', '.join(TRY_POLICIES)}")
                out["try_policy"] = sub.val()
            elif sub.name == "split_path":
                out["split_path"] = sub.remaining_args()
                if not out["split_path"]:
                    raise sub.arg_error()
            else:
                raise sub.unknown_subdirective(_SUBDIRECTIVES)
    if try_files:
        out["try_files"] = try_files
    return {k: out[k] for k in ("root", "try_files", "try_policy", "split_path") if k in out}


FILE = ModuleSpec(id="http.matchers.file", config=FileMatchConfig, rwsfile=_parse_file)
