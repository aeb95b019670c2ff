"""The control database: workspaces, their keys and their users (SQLite, shared by the
server and the CLI, so a workspace created from the CLI is served without a restart).

Keys are stored as SHA-256 hashes: a stolen control database opens nothing. Passwords
use argon2id.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from ..core.config import WorkspaceConfig
from ..core.errors import InvalidInput, NotFound

__all__ = ["ControlStore", "Credentials", "WorkspaceInfo"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workspaces (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    config TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    hash TEXT PRIMARY KEY,
    workspace TEXT NOT NULL REFERENCES workspaces(name) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('write', 'admin')),
    hint TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    workspace TEXT NOT NULL REFERENCES workspaces(name) ON DELETE CASCADE,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (workspace, email)
);
"""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_hasher = PasswordHasher()


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    workspace: str
    write_key: str
    api_token: str

    def to_dict(self) -> dict[str, str]:
        return {"workspace": self.workspace, "write_key": self.write_key, "api_token": self.api_token}


@dataclass(frozen=True)
class WorkspaceInfo:
    name: str
    created_at: int
    config: WorkspaceConfig


class ControlStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA busy_timeout=10000")
        self._con.execute("PRAGMA foreign_keys=ON")
        self._con.executescript(_SCHEMA)

    def create_workspace(self, name: str, config: WorkspaceConfig | None = None) -> Credentials:
        if not _NAME_RE.match(name):
            raise InvalidInput.for_field(
                "name", f"{name!r} is not a workspace name: use 1-63 lowercase letters, digits, - or _"
            )
        if self.workspace(name) is not None:
            raise InvalidInput.for_field("name", f"workspace {name!r} already exists")
        config = config or WorkspaceConfig()
        now = int(time.time() * 1000)
        write_key = "wk_" + secrets.token_urlsafe(24)
        api_token = "tsk_" + secrets.token_urlsafe(32)
        with self._con:
            self._con.execute("BEGIN")
            self._con.execute(
                "INSERT INTO workspaces (name, created_at, config) VALUES (?, ?, ?)",
                (name, now, msgspec.json.encode(config).decode()),
            )
            self._insert_key(name, "write", write_key, now)
            self._insert_key(name, "admin", api_token, now)
        return Credentials(name, write_key, api_token)

    def _insert_key(self, workspace: str, kind: str, key: str, now: int) -> None:
        self._con.execute(
            "INSERT INTO keys (hash, workspace, kind, hint, created_at) VALUES (?, ?, ?, ?, ?)",
            (_hash(key), workspace, kind, key[:7] + "…", now),
        )

    def new_key(self, workspace: str, kind: str) -> str:
        self._require(workspace)
        key = ("wk_" if kind == "write" else "tsk_") + secrets.token_urlsafe(24 if kind == "write" else 32)
        self._insert_key(workspace, kind, key, int(time.time() * 1000))
        return key

    def workspace(self, name: str) -> WorkspaceInfo | None:
        row = self._con.execute("SELECT name, created_at, config FROM workspaces WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return WorkspaceInfo(row[0], row[1], msgspec.json.decode(row[2], type=WorkspaceConfig))

    def _require(self, name: str) -> WorkspaceInfo:
        info = self.workspace(name)
        if info is None:
            raise NotFound.for_field("workspace", f"no workspace {name!r}")
        return info

    def workspaces(self) -> list[WorkspaceInfo]:
        rows = self._con.execute("SELECT name FROM workspaces ORDER BY name").fetchall()
        return [w for (n,) in rows if (w := self.workspace(n)) is not None]

    def set_config(self, name: str, config: WorkspaceConfig) -> None:
        self._require(name)
        self._con.execute(
            "UPDATE workspaces SET config = ? WHERE name = ?", (msgspec.json.encode(config).decode(), name)
        )

    def authenticate(self, key: str, kind: str) -> str | None:
        """The workspace this key opens for `kind` ('write' or 'admin'), or None."""
        row = self._con.execute("SELECT workspace FROM keys WHERE hash = ? AND kind = ?", (_hash(key), kind)).fetchone()
        return row[0] if row else None

    # -- users (the admin UI) ----------------------------------------------------------

    def create_user(self, workspace: str, email: str, password: str) -> None:
        self._require(workspace)
        if "@" not in email:
            raise InvalidInput.for_field("email", "must be an email address")
        if len(password) < 8:
            raise InvalidInput.for_field("password", "must be at least 8 characters")
        self._con.execute(
            "INSERT OR REPLACE INTO users (workspace, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
            (workspace, email.lower(), _hasher.hash(password), int(time.time() * 1000)),
        )

    def verify_user(self, workspace: str, email: str, password: str) -> bool:
        row = self._con.execute(
            "SELECT password_hash FROM users WHERE workspace = ? AND email = ?", (workspace, email.lower())
        ).fetchone()
        if row is None:
            _hasher.hash(password)  # same time whether or not the user exists
            return False
        try:
            return _hasher.verify(row[0], password)
        except VerificationError:
            return False

    def close(self) -> None:
        self._con.close()
