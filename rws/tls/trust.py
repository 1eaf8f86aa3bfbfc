"""`rws trust` / `rws untrust`: a CA's root in the system trust store, so that browsers,
curl and other programs on this machine accept the certificates the local CA issues.

On Debian-like systems the root goes to /usr/local/share/ca-certificates and
`update-ca-certificates` rebuilds the bundle; that needs root privileges, and a clear
error says so. The file is named after the root (its common name and serial number), as
Caddy names its own, so that `untrust` finds it from the certificate alone.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from rws.errors import RwsError

STORE = Path("/usr/local/share/ca-certificates")
UPDATE = "update-ca-certificates"


def trusted_path(root_pem: bytes) -> Path:
    try:
        cert = x509.load_pem_x509_certificate(root_pem)
    except ValueError as exc:
        raise RwsError(f"not a PEM certificate: {exc}") from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = (str(names[0].value) if names else "rws root").replace(" ", "_").replace("/", "_")
    return STORE / f"{name}_{cert.serial_number}.crt"


def install(root_pem: bytes) -> Path:
    """Add the root to the system trust store; the file it became."""
    path = trusted_path(root_pem)
    tool = _tool()
    try:
        STORE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(root_pem)
    except PermissionError:
        raise RwsError(f"installing the root into {STORE} needs root privileges (try: sudo rws trust)") from None
    except OSError as exc:
        raise RwsError(f"writing {path}: {exc.strerror or exc}") from None
    _run(tool)
    return path


def uninstall(root_pem: bytes) -> Path | None:
    """Remove the root from the system trust store; the file removed, None if it was not there."""
    path = trusted_path(root_pem)
    if not path.exists():
        return None
    tool = _tool()
    try:
        path.unlink()
    except PermissionError:
        raise RwsError(f"removing {path} needs root privileges (try: sudo rws untrust)") from None
    _run(tool, "--fresh")
    return path


def _tool() -> str:
    tool = shutil.which(UPDATE) or next((p for p in (f"/usr/sbin/{UPDATE}", f"/sbin/{UPDATE}") if Path(p).exists()),
                                        None)
    if tool is None:
        raise RwsError(f"no system trust store tool ({UPDATE}) on this machine: add the root to your "
                       "trust store by hand (GET /pki/ca/local on the admin API gives it)")
    return tool


def _run(tool: str, *args: str) -> None:
    result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RwsError(f"{UPDATE} failed: {last[0]}")
