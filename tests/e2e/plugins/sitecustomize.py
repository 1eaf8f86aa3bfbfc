"""Loaded at interpreter start when tests put this folder on PYTHONPATH: registers the
test-only modules with rws when RWS_TEST_PLUGINS is set."""

import os

if os.environ.get("RWS_TEST_PLUGINS"):
    from rws import registry

    registry.MODULES["http.handlers.worker_probe"] = "worker_probe:WORKER_PROBE"
    registry.MODULES["http.handlers.worker_crash"] = "worker_probe:WORKER_CRASH"
