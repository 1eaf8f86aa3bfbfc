"""Where certificates, keys and the local CA live: `storage file_system` (Caddy's layout
under the data directory, `$XDG_DATA_HOME/rws` by default).

Keys are slash-separated paths (`certificates/local/localhost/localhost.crt`). Writes are
atomic (a temporary file in the same folder, then a rename), private keys readable by the
owner only. `lock(name)` is a lock file that several rws processes sharing the folder
respect, so that one of them issues a certificate and the others find it; its holder keeps
it fresh, and a lock left by a process that died expires after `LOCK_EXPIRY` seconds. The interface is small enough for
another backend (Redis) to provide later.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rws.config.paths import data_dir
from rws.errors import RwsError

LOCK_EXPIRY = 60.0  # seconds a lock file counts after it was last written
LOCK_POLL = 0.05


class FileStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise RwsError(f"invalid storage key {key!r}")
        return self.root.joinpath(*parts)

    def load(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def store(self, key: str, data: bytes, private: bool = False) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600 if private else 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def modified(self, key: str) -> float | None:
        """When `key` was last stored (a timestamp); None when it isn't."""
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float = 60.0) -> Iterator[None]:
        """Hold the lock `name` (waits for another holder, up to `timeout` seconds)."""
        path = self._path(f"locks/{safe_key(name)}.lock")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                try:
                    if time.time() - path.stat().st_mtime > LOCK_EXPIRY:  # its holder died
                        path.unlink()
                        continue
                except FileNotFoundError:
                    continue
                if time.monotonic() > deadline:
                    raise RwsError(f"timed out waiting for the storage lock {name!r}") from None
                time.sleep(LOCK_POLL)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            break
        released = threading.Event()
        keeper = threading.Thread(target=_keep_fresh, args=(path, released), daemon=True)
        keeper.start()
        try:
            yield
        finally:
            released.set()
            keeper.join()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _keep_fresh(path: Path, released: threading.Event) -> None:
    """Touch a held lock file so that it never looks abandoned (an ACME order can take
    longer than `LOCK_EXPIRY`)."""
    while not released.wait(LOCK_EXPIRY / 4):
        with contextlib.suppress(OSError):
            os.utime(path)


def safe_key(name: str) -> str:
    """Caddy's StorageKeys.Safe: a name made fit for a path segment."""
    name = name.lower().replace("*", "wildcard_").replace(":", "-").replace(" ", "_").replace("+", "_plus_")
    name = name.replace("..", "")
    return re.sub(r"[^a-z0-9_.\-@]", "", name)


def storage_for(config: Any) -> FileStorage:
    """The config's `storage` (only `file_system` is built in), else the data directory."""
    if config is not None and getattr(config, "id", "").endswith("file_system") and config.config.root:
        return FileStorage(Path(config.config.root))
    return FileStorage(data_dir())
