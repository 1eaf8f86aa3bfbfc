"""Signals: SIGINT/SIGTERM stop gracefully (a second one forces), SIGHUP reloads the config file."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from rws.runtime.runtime import Runtime

log = logging.getLogger(__name__)

EXIT_FORCED = 2


def install(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    stopping = False

    def stop(signame: str) -> None:
        nonlocal stopping
        if stopping:
            log.warning("second signal: forcing stop", extra={"signal": signame})
            runtime.force_stop()
            os._exit(EXIT_FORCED)
        stopping = True
        log.info("shutting down", extra={"signal": signame})
        runtime.request_stop()

    def reload() -> None:
        log.info("reloading the config file", extra={"signal": "SIGHUP"})
        loop.create_task(runtime.reload_from_source())

    if sys.platform == "win32":  # pragma: no cover - POSIX only
        return
    loop.add_signal_handler(signal.SIGINT, stop, "SIGINT")
    loop.add_signal_handler(signal.SIGTERM, stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGHUP, reload)
