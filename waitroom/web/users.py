"""Staff and admin accounts in a small SQLite file of the web app (hashed passwords, never plain text).

A user has a role (``staff``, ``admin`` or ``booking``: the booking page only, for 115 agents) and optionally
the counters they may operate (empty = all). ``must_change``: the password was given by an admin (a new
account, a reset); the user sets their own before any other page (waitroom.web.accounts).
No personal data: a user name is a login such as ``schalter3`` or an employee short code.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from waitroom.dbsafe import setting_up
from waitroom.errors import WaitroomError

log = logging.getLogger(__name__)

ROLES = ("staff", "admin", "booking")
NAME_RE = re.compile(r"^[a-z0-9_.-]{2,32}$")
MIN_PASSWORD = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name     TEXT PRIMARY KEY,
    hash     TEXT NOT NULL,
    role     TEXT NOT NULL CHECK (role IN ('staff', 'admin', 'booking')),
    counters TEXT NOT NULL DEFAULT '',
    created  REAL NOT NULL,
    must_change INTEGER NOT NULL DEFAULT 0
);
"""


class UserError(WaitroomError, ValueError):
    """A user account could not be created or changed (name, password, role)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    counters: tuple[str, ...] = ()  # empty: every counter
    must_change: bool = False  # the password was set by an admin: the user must choose their own first

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_booking_only(self) -> bool:
        """A 115 agent: books appointments, operates no counter."""
        return self.role == "booking"

    def may_operate(self, counter: str) -> bool:
        if self.is_booking_only:
            return False
        return self.is_admin or not self.counters or counter in self.counters


def _user(row: tuple[str, str, str, int]) -> User:
    return User(row[0], row[1], tuple(c for c in row[2].split(",") if c), bool(row[3]))


def check_name(name: str) -> None:
    """The rules for a user name, for the command line and the accounts page alike."""
    if not NAME_RE.match(name or ""):
        raise UserError(f"user name {name!r} is not valid: use 2-32 of a-z 0-9 _ . -")


def check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not valid: use staff, admin or booking")


def check_password(password: str) -> None:
    """The password policy, for the command line, the accounts page and the own password change."""
    if len(password or "") < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")


class UserStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with setting_up(self.path):  # the web workers open it together
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self._migrate_roles()
            self.db.executescript(SCHEMA)
            self._migrate_must_change()

    def _migrate_roles(self) -> None:
        """A users table from before the booking role: rebuilt with the wider CHECK (rows kept)."""
        row = self.db.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='users'").fetchone()
        if row is None or "'booking'" in row[0]:
            return
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute(SCHEMA.replace("IF NOT EXISTS users", "users_new"))
                self.db.execute(
                    "INSERT INTO users_new (name, hash, role, counters, created) "
                    "SELECT name, hash, role, counters, created FROM users"
                )
                self.db.execute("DROP TABLE users")
                self.db.execute("ALTER TABLE users_new RENAME TO users")
                self.db.execute("COMMIT")
            except Exception:
                self.db.execute("ROLLBACK")
                raise
        log.info("users table of %s now allows the booking role", self.path)

    def _migrate_must_change(self) -> None:
        """A users table from before accounts were managed on the admin page: the ``must_change`` column
        added (0: the passwords in it were chosen on the command line)."""
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(users)")}
        if "must_change" in columns:
            return
        with self._lock:
            self.db.execute("ALTER TABLE users ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0")
        log.info("users table of %s now keeps the must-change-password flag", self.path)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction that holds SQLite's write lock from its first read (``BEGIN IMMEDIATE``):
        the check "another admin remains" and the change it allows are one step for every worker process,
        so two admins demoting each other at the same moment cannot leave the office without one."""
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def add(
        self,
        name: str,
        password: str,
        role: str = "staff",
        counters: list[str] | tuple[str, ...] = (),
        *,
        replace: bool = False,
        must_change: bool = False,
    ) -> User:
        """Save an account. ``must_change``: the password was chosen by someone else (an admin on the
        accounts page); the user must set their own before anything else."""
        check_name(name)
        check_role(role)
        check_password(password)
        row = (
            name,
            generate_password_hash(password),
            role,
            ",".join(counters),
            time.time(),
            int(must_change),
        )
        with self._writing():
            old = self.get(name)
            if old is not None and not replace:
                raise UserError(f"user {name!r} exists already")
            if old is not None and old.is_admin and role != "admin":
                self._keep_an_admin(name)
            self.db.execute(
                "INSERT OR REPLACE INTO users (name, hash, role, counters, created, must_change) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                row,
            )
        log.info("user %s saved with role %s", name, role)
        return User(name, role, tuple(counters), must_change)

    def set_password(self, name: str, password: str, *, must_change: bool = False) -> None:
        """A new password for an existing account (the caller revokes the user's sessions). ``must_change``:
        an admin set it (a reset), the user must choose their own; the user's own choice clears the flag."""
        check_password(password)
        with self._lock:
            cur = self.db.execute(
                "UPDATE users SET hash=?, must_change=? WHERE name=?",
                (generate_password_hash(password), int(must_change), name),
            )
        if cur.rowcount == 0:
            raise UserError(f"no user {name!r}")
        log.info("password of %s changed", name)

    def set_role(self, name: str, role: str, counters: list[str] | tuple[str, ...] = ()) -> User:
        """Another role or other counters for an existing account (the password stays); the last admin
        keeps the admin role."""
        check_role(role)
        with self._writing():
            old = self.get(name)
            if old is None:
                raise UserError(f"no user {name!r}")
            if old.is_admin and role != "admin":
                self._keep_an_admin(name)
            self.db.execute(
                "UPDATE users SET role=?, counters=? WHERE name=?", (role, ",".join(counters), name)
            )
        log.info("user %s now has role %s, counters %s", name, role, ",".join(counters) or "all")
        return User(name, role, tuple(counters), old.must_change)

    def get(self, name: str) -> User | None:
        r = self.db.execute(
            "SELECT name, role, counters, must_change FROM users WHERE name=?", (name,)
        ).fetchone()
        return _user(r) if r else None

    def verify(self, name: str, password: str) -> User | None:
        r = self.db.execute("SELECT hash FROM users WHERE name=?", (name,)).fetchone()
        if r is None:
            check_password_hash(generate_password_hash("x"), password)  # same time for unknown names
            return None
        return self.get(name) if check_password_hash(r[0], password) else None

    def all(self) -> list[User]:
        rows = self.db.execute("SELECT name, role, counters, must_change FROM users ORDER BY name").fetchall()
        return [_user(r) for r in rows]

    def remove(self, name: str) -> bool:
        with self._writing():
            user = self.get(name)
            if user is not None and user.is_admin:
                self._keep_an_admin(name)
            return self.db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount > 0

    def _keep_an_admin(self, name: str) -> None:
        """Refuse to demote or remove the last admin: nobody could reach the admin pages any more."""
        if self.count_admins() <= 1:
            raise UserError(
                f"user {name!r} is the last admin; create another admin first (waitroom web create-admin)"
            )

    def count_admins(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM users WHERE role='admin'").fetchone()[0]
