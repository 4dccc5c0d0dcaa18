"""Where the agent keeps its state, and the private files in it (no Django here: the
settings module reads this before Django starts).

The data folder (``--data``, else ``$CONNECT_AGENT_DATA``, else ``~/.connect-agent``) holds
the SQLite database, the key file that encrypts secrets in it (``agent.key``) and the key
of the local UI's sessions (``ui.key``). Both keys are created at first start, readable by
the agent's own user only (mode 0600), and refused when anyone else may read them.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

DATA_ENV = "CONNECT_AGENT_DATA"
DEFAULT_DATA = "~/.connect-agent"
KEY_FILE = "agent.key"
UI_KEY_FILE = "ui.key"
KEY_BYTES = 32


class UnsafeKeyFile(Exception):
    """A key file others may read or write: the agent refuses to use it."""


def data_dir() -> Path:
    """The data folder (created with mode 0700 when missing)."""
    path = Path(os.environ.get(DATA_ENV) or DEFAULT_DATA).expanduser().resolve()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_bytes(path: Path, size: int = KEY_BYTES) -> bytes:
    """The random bytes in ``path``, created (mode 0600, never overwritten) when missing.

    ``O_EXCL`` makes the first of two starting processes the one that writes the key; the
    other reads what it wrote."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(size))
            handle.flush()
            os.fsync(handle.fileno())
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UnsafeKeyFile(
            f"{path} may be read or written by other users (mode {mode:04o}); the agent "
            f"uses it only when it is private to its own user: chmod 600 {path}"
        )
    value = path.read_bytes()
    if len(value) != size:
        raise UnsafeKeyFile(
            f"{path} holds {len(value)} bytes instead of {size}: it is not a key this agent "
            "made. Restore it from your backup (secrets encrypted under it cannot be read "
            "without it)."
        )
    return value


def store_key(folder: Path | None = None) -> bytes:
    """The key that encrypts secrets in the agent's store."""
    return private_bytes((folder or data_dir()) / KEY_FILE)


def ui_key(folder: Path | None = None) -> str:
    """The local UI's Django SECRET_KEY (sessions, CSRF), separate from the store's key."""
    return private_bytes((folder or data_dir()) / UI_KEY_FILE, 50).hex()
