"""The error hierarchy: every error a user can cause is one of these."""

from __future__ import annotations


class RwsError(Exception):
    """Base of every error rws raises on purpose."""


class ConfigError(RwsError):
    """A JSON config tree that does not decode; `path` names the place."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class RwsfileError(RwsError):
    """An Rwsfile that does not adapt; names the file, line and, where known, the import chain."""

    def __init__(self, file: str, line: int, message: str, imports: tuple[str, ...] = ()) -> None:
        self.file = file
        self.line = line
        self.message = message
        self.imports = imports
        where = f"{file}:{line}"
        if imports:
            where += " (" + ", ".join(imports) + ")"
        super().__init__(f"{where}: {message}")


class AdminError(RwsError):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class HttpError(RwsError):
    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        self.message = message
        super().__init__(message or str(status))


class UpstreamError(HttpError):
    def __init__(self, status: int, message: str = "", retryable: bool = False) -> None:
        super().__init__(status, message)
        self.retryable = retryable


class StorageError(RwsError):
    pass


class AcmeError(RwsError):
    pass
