"""The control database: workspaces, their keys, their users, the users' UI sessions and
the login throttle (SQLite, shared by the server and the CLI, so a workspace created, or
a password reset, from the CLI takes effect in a running server at once).

Keys and session ids are stored as SHA-256 hashes: a stolen control database opens
nothing. Passwords use argon2id.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from ..core.config import WorkspaceConfig
from ..core.errors import InvalidInput, NotFound

__all__ = [
    "ACCOUNT_LIMIT",
    "ADDRESS_LIMIT",
    "FIRST_DELAY_MS",
    "FORGET_AFTER_MS",
    "MAX_DELAY_MS",
    "MIN_PASSWORD",
    "ControlStore",
    "Credentials",
    "LoginAttempt",
    "Session",
    "WorkspaceInfo",
    "login_delay_ms",
]

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
-- a UI login: the cookie holds a random id, the row its hash (like the keys)
CREATE TABLE IF NOT EXISTS sessions (
    hash TEXT PRIMARY KEY,
    workspace TEXT NOT NULL,
    email TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    last_used INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (workspace, email);
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_at);
-- failed logins per account ('WORKSPACE/email') and per client address
CREATE TABLE IF NOT EXISTS login_failures (
    kind TEXT NOT NULL CHECK (kind IN ('account', 'address')),
    key TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure INTEGER NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS login_failures_by_time ON login_failures (last_failure);
"""

MIN_PASSWORD = 8
# The login throttle. An account (workspace + email) may fail ACCOUNT_LIMIT times, an
# address ADDRESS_LIMIT times (many people can share one: an office, a proxy); after
# that each further attempt waits FIRST_DELAY_MS after the last failure, doubling with
# every failure up to MAX_DELAY_MS, and is refused without looking at the password until
# then. A counter is forgotten FORGET_AFTER_MS after its wait ends with no new failure.
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20
FIRST_DELAY_MS = 30_000
MAX_DELAY_MS = 15 * 60_000
FORGET_AFTER_MS = 15 * 60_000
# last_used is written at most this often: the live page polls every two seconds
_TOUCH_EVERY_MS = 60_000

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_hasher = PasswordHasher()


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _account(workspace: str, email: str) -> str:
    return f"{workspace}/{email.strip().lower()}"  # a workspace name has no "/"


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput.for_field("password", f"must be at least {MIN_PASSWORD} characters")


@dataclass(frozen=True)
class Credentials:
    workspace: str
    write_key: str
    api_token: str

    def to_dict(self) -> dict[str, str]:
        return {"workspace": self.workspace, "write_key": self.write_key, "api_token": self.api_token}


def login_delay_ms(failures: int, limit: int) -> int:
    """How long after the last failure the next attempt must wait."""
    if failures < limit:
        return 0
    return min(FIRST_DELAY_MS << min(failures - limit, 32), MAX_DELAY_MS)


@dataclass(frozen=True)
class Session:
    """A UI login as the server keeps it; the browser holds only its random id."""

    workspace: str
    email: str
    csrf: str
    created_at: int
    expires_at: int
    last_used: int


@dataclass(frozen=True)
class LoginAttempt:
    """The answer to a login: `ok`, or refused for `retry_after_ms` without a password check."""

    ok: bool
    retry_after_ms: int = 0


@dataclass(frozen=True)
class WorkspaceInfo:
    name: str
    created_at: int
    config: WorkspaceConfig


class ControlStore:
    #: the shortest password taken (the UI's form says so before it asks)
    min_password = MIN_PASSWORD

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA busy_timeout=10000")
        self._con.execute("PRAGMA foreign_keys=ON")
        self._con.executescript(_SCHEMA)
        # One connection serves the event loop and worker threads (argon2 runs in one):
        # transactions take this lock so no other thread's statement lands inside them.
        self._lock = threading.Lock()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

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
        with self._transaction() as con:
            con.execute(
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

    def create_user(self, workspace: str, email: str, password: str) -> int:
        """Create a user, or reset their password; either way their sessions end.

        Returns how many sessions ended."""
        self._require(workspace)
        if "@" not in email:
            raise InvalidInput.for_field("email", "must be an email address")
        _check_password(password)
        digest = _hasher.hash(password)
        with self._transaction() as con:
            con.execute(
                "INSERT INTO users (workspace, email, password_hash, created_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (workspace, email) DO UPDATE SET password_hash = excluded.password_hash",
                (workspace, email.lower(), digest, int(time.time() * 1000)),
            )
            ended = self._end_sessions(con, workspace, email, keep=None)
            con.execute("DELETE FROM login_failures WHERE kind = 'account' AND key = ?", (_account(workspace, email),))
        return ended

    def set_password(self, workspace: str, email: str, password: str, *, keep_session: str | None = None) -> int:
        """Change a user's password and end their other sessions (all but `keep_session`).

        Returns how many sessions ended."""
        _check_password(password)
        digest = _hasher.hash(password)
        with self._transaction() as con:
            cur = con.execute(
                "UPDATE users SET password_hash = ? WHERE workspace = ? AND email = ?",
                (digest, workspace, email.lower()),
            )
            if cur.rowcount == 0:
                raise NotFound.for_field("email", f"no user {email!r} in workspace {workspace!r}")
            return self._end_sessions(con, workspace, email, keep=keep_session)

    def delete_user(self, workspace: str, email: str) -> bool:
        """Remove a user and end their sessions; False if there was no such user."""
        with self._transaction() as con:
            cur = con.execute("DELETE FROM users WHERE workspace = ? AND email = ?", (workspace, email.lower()))
            self._end_sessions(con, workspace, email, keep=None)
        return cur.rowcount > 0

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

    # -- the login throttle ----------------------------------------------------------

    def attempt_login(self, workspace: str, email: str, password: str, address: str, now: int) -> LoginAttempt:
        """Check a password, unless the account or the address must wait (then `retry_after_ms`).

        The attempt counts as a failure before the password is checked, so a burst of
        parallel guesses cannot slip past the limit; a success takes it back (and clears
        the account's counter). Slow (argon2): call it from a worker thread."""
        keys = (("account", _account(workspace, email), ACCOUNT_LIMIT), ("address", address, ADDRESS_LIMIT))
        with self._transaction() as con:
            con.execute("DELETE FROM login_failures WHERE last_failure < ?", (now - FORGET_AFTER_MS - MAX_DELAY_MS,))
            state = {}
            wait = 0
            for kind, key, limit in keys:
                row = con.execute(
                    "SELECT failures, last_failure FROM login_failures WHERE kind = ? AND key = ?", (kind, key)
                ).fetchone()
                failures, last = row if row else (0, now)
                delay = login_delay_ms(failures, limit)
                if now - last >= delay + FORGET_AFTER_MS:
                    failures, last = 0, now  # forgotten
                state[kind] = (failures, last)
                wait = max(wait, last + delay - now if failures >= limit else 0)
            if wait > 0:
                return LoginAttempt(False, wait)
            for kind, key, _ in keys:
                failures, last = state[kind]
                con.execute(
                    "INSERT OR REPLACE INTO login_failures (kind, key, failures, last_failure) VALUES (?, ?, ?, ?)",
                    (kind, key, failures + 1, last if failures else now),
                )
        ok = self.verify_user(workspace, email, password)
        with self._transaction() as con:
            if ok:
                con.execute("DELETE FROM login_failures WHERE kind = 'account' AND key = ?", (keys[0][1],))
                con.execute(
                    "UPDATE login_failures SET failures = failures - 1 WHERE kind = 'address' AND key = ?", (address,)
                )
                con.execute("DELETE FROM login_failures WHERE failures <= 0")
            else:  # the wait runs from the latest failure
                for kind, key, _ in keys:
                    con.execute(
                        "UPDATE login_failures SET last_failure = max(last_failure, ?) WHERE kind = ? AND key = ?",
                        (now, kind, key),
                    )
        return LoginAttempt(ok)

    # -- sessions (the admin UI) -------------------------------------------------------

    def create_session(self, workspace: str, email: str, now: int, expires_at: int) -> tuple[str, Session]:
        """A new session for a user who just proved their password: (its id for the cookie, the session).

        Also removes the sessions that have expired, anyone's."""
        session_id = secrets.token_urlsafe(32)
        session = Session(workspace, email.lower(), secrets.token_urlsafe(24), now, expires_at, now)
        with self._transaction() as con:
            con.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
            con.execute(
                "INSERT INTO sessions (hash, workspace, email, csrf, created_at, expires_at, last_used)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_hash(session_id), session.workspace, session.email, session.csrf, now, expires_at, now),
            )
        return session_id, session

    def session(self, session_id: str, now: int) -> Session | None:
        """The live session with this id, or None (unknown, ended, expired, or its user is gone)."""
        row = self._con.execute(
            "SELECT s.workspace, s.email, s.csrf, s.created_at, s.expires_at, s.last_used FROM sessions s"
            " JOIN users u ON u.workspace = s.workspace AND u.email = s.email"
            " WHERE s.hash = ? AND s.expires_at > ?",
            (_hash(session_id), now),
        ).fetchone()
        if row is None:
            return None
        session = Session(*row)
        if now - session.last_used >= _TOUCH_EVERY_MS:
            with self._lock:
                self._con.execute("UPDATE sessions SET last_used = ? WHERE hash = ?", (now, _hash(session_id)))
        return session

    def sessions(self, workspace: str, email: str, now: int) -> list[Session]:
        """A user's live sessions, the newest first."""
        rows = self._con.execute(
            "SELECT workspace, email, csrf, created_at, expires_at, last_used FROM sessions"
            " WHERE workspace = ? AND email = ? AND expires_at > ? ORDER BY created_at DESC",
            (workspace, email.lower(), now),
        ).fetchall()
        return [Session(*r) for r in rows]

    def end_session(self, session_id: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM sessions WHERE hash = ?", (_hash(session_id),))

    def end_sessions(self, workspace: str, email: str, *, keep: str | None = None) -> int:
        """End a user's sessions, all but `keep` (a session id); returns how many ended."""
        with self._transaction() as con:
            return self._end_sessions(con, workspace, email, keep=keep)

    @staticmethod
    def _end_sessions(con: sqlite3.Connection, workspace: str, email: str, *, keep: str | None) -> int:
        cur = con.execute(
            "DELETE FROM sessions WHERE workspace = ? AND email = ? AND hash != ?",
            (workspace, email.lower(), _hash(keep) if keep else ""),
        )
        return cur.rowcount

    def close(self) -> None:
        self._con.close()
