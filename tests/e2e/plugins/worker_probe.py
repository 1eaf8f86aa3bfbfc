"""A test handler: `static_response`, except that it refuses to build in worker 1, so a
config change fails in one worker only."""

from __future__ import annotations

import os
from typing import Any

from rws.errors import ConfigError
from rws.handlers.static_response import StaticResponseConfig, build_static_response
from rws.registry import ModuleSpec


def build(config: StaticResponseConfig, ctx: Any) -> Any:
    if os.environ.get("RWS_WORKER") == "1":
        raise ConfigError("worker_probe", "worker 1 refuses this config")
    return build_static_response(config, ctx)


WORKER_PROBE = ModuleSpec(id="http.handlers.worker_probe", config=StaticResponseConfig,
                          runtime="worker_probe:build")


class Crash:
    """Ends its worker process at once, as a crash would."""

    async def handle(self, request: Any, next: Any) -> Any:
        os._exit(3)


def build_crash(config: Any, ctx: Any) -> Crash:
    return Crash()


WORKER_CRASH = ModuleSpec(id="http.handlers.worker_crash", config=Any, runtime="worker_probe:build_crash")
