"""Hardening of the web app: rate limits and login lockout, server-side sessions, security headers, Origin
checks and the trusted-proxy count.

- **Rate limits** come from Flask-Limiter. Its counters must be shared by every gunicorn worker, and a Pi has
  no Redis or memcached: ``SQLiteStorage`` is a `limits` storage backend (fixed windows) in a small SQLite
  file of the data directory, registered under the scheme ``waitroom-sqlite://<path>``. WAL mode and one
  short ``INSERT ... ON CONFLICT`` per counted request keep it fast (tens of microseconds); counters are not
  worth an fsync (``synchronous=OFF``), so a power cut forgets at most the last seconds of counts.
- **Login throttling and lockout**: failed logins (HTTP 401) count per user name and per client address; past
  the configured number within the lockout window, the login answers 429 until the window ends, even with
  the right password.
- **Sessions** are rows in the users database (``sessions`` table); the signed Flask cookie only carries the
  session id. Logout revokes the row, a password change revokes every session of that user, and every
  request checks the row, so a copied cookie stops working in every worker at once.
- **Headers**: a Content-Security-Policy without inline scripts or styles, Permissions-Policy, HSTS when the
  request came over https (as seen through the trusted proxies).
- **Origin check**: a state-changing request (POST, PUT, PATCH, DELETE) whose ``Origin`` (or, without one,
  ``Sec-Fetch-Site``) names another site is refused with 403 before the view runs (CSRF tokens stay too).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, request, session
from flask_limiter import Limiter
from limits.storage import Storage

from waitroom.dbsafe import setting_up

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'self'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
    "payment=(), usb=(), serial=()"  # only features browsers know: an unknown one is a console warning
)
HSTS = "max-age=31536000; includeSubDomains"
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class _Locked:
    """One SQLite connection per process, used under a lock. Not a connection per thread: under gevent a
    "thread" is a greenlet, one per request, and a connection each would be opened (and leaked) per request.
    Every statement here is one short autocommit statement."""

    def __init__(self, path: Path, *, synchronous: str):
        self.db = sqlite3.connect(str(path), timeout=5.0, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.lock = threading.Lock()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Result:
        with self.lock:
            cur = self.db.execute(sql, params)
            return _Result(cur.fetchall(), cur.rowcount)

    def executescript(self, sql: str) -> None:
        with self.lock:
            self.db.executescript(sql)


class _Result:
    def __init__(self, rows: list[Any], rowcount: int):
        self.rows, self.rowcount = rows, rowcount

    def fetchone(self) -> Any:
        return self.rows[0] if self.rows else None


class SQLiteStorage(Storage):
    """A `limits` storage in one SQLite file, shared by every process that opens the same path."""

    STORAGE_SCHEME = ["waitroom-sqlite"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        path = (uri or "").split("://", 1)[-1]
        if not path:
            raise ValueError("waitroom-sqlite:// needs a file path, e.g. waitroom-sqlite:///var/lib/x.db")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with setting_up(self.path):  # the web workers open it together
            self._conn = _Locked(self.path, synchronous="OFF")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS limits "
                "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expiry REAL NOT NULL)"
            )
        self._last_prune = 0.0

    def _db(self) -> _Locked:
        return self._conn

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        db = self._db()
        row = db.execute(
            "INSERT INTO limits (key, count, expiry) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
            "count = CASE WHEN expiry <= ? THEN excluded.count ELSE count + excluded.count END, "
            "expiry = CASE WHEN expiry <= ? THEN excluded.expiry ELSE expiry END RETURNING count",
            (key, amount, now + expiry, now, now),
        ).fetchone()
        if now - self._last_prune > 60:
            self._last_prune = now
            db.execute("DELETE FROM limits WHERE expiry <= ?", (now,))
        return int(row[0])

    def get(self, key: str) -> int:
        row = self._db().execute("SELECT count, expiry FROM limits WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row and row[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        row = self._db().execute("SELECT expiry FROM limits WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row and row[0] > time.time() else time.time()

    def check(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM limits").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM limits WHERE key = ?", (key,))


def client_address() -> str:
    """The client's address as seen through the configured number of trusted proxies (ProxyFix)."""
    return request.remote_addr or "-"


def client_network() -> str:
    """The client's network for limits on guessing: its IPv4 address, or the /64 of an IPv6 address (one
    household or phone gets a whole /64 and may use any address in it). An IPv4 address mapped into IPv6
    is the IPv4 address."""
    addr = client_address()
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


limiter = Limiter(key_func=client_address, headers_enabled=True, strategy="fixed-window")


def init_limiter(app: Flask, storage_path: Path) -> None:
    app.config["RATELIMIT_STORAGE_URI"] = f"waitroom-sqlite://{storage_path}"
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    limiter.init_app(app)


def public_limit() -> str:
    from flask import current_app

    return f"{current_app.config.get('WAITROOM_PUBLIC_RATE', 120)} per minute"  # an app without create_app


# ------------------------------------------------------------------------------------------- sessions
SESSION_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id       TEXT PRIMARY KEY,
    user     TEXT NOT NULL,
    created  REAL NOT NULL,
    expires  REAL NOT NULL,
    revoked  REAL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user);
"""


class SessionStore:
    """Server-side login sessions in the users database; the cookie carries only the random id."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with setting_up(self.path):  # the web workers open it together
            self._conn = _Locked(self.path, synchronous="NORMAL")
            self._conn.executescript(SESSION_SCHEMA)

    def _db(self) -> _Locked:
        return self._conn

    def create(self, user: str, lifetime_s: float) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        db = self._db()
        db.execute("DELETE FROM sessions WHERE expires < ?", (now - 86400,))
        db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, NULL)", (sid, user, now, now + lifetime_s))
        return sid

    def user_of(self, sid: str) -> str | None:
        """The user of a live session, or None when it is unknown, revoked or expired."""
        row = (
            self._db().execute("SELECT user, expires, revoked FROM sessions WHERE id = ?", (sid,)).fetchone()
        )
        if row is None or row[2] is not None or row[1] < time.time():
            return None
        return str(row[0])

    def revoke(self, sid: str) -> None:
        self._db().execute(
            "UPDATE sessions SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), sid)
        )

    def revoke_user(self, user: str) -> int:
        cur = self._db().execute(
            "UPDATE sessions SET revoked = ? WHERE user = ? AND revoked IS NULL", (time.time(), user)
        )
        return cur.rowcount

    def active(self, user: str) -> int:
        row = (
            self._db()
            .execute(
                "SELECT COUNT(*) FROM sessions WHERE user = ? AND revoked IS NULL AND expires >= ?",
                (user, time.time()),
            )
            .fetchone()
        )
        return int(row[0])


# -------------------------------------------------------------------------------------------- headers
def same_origin(origin: str, host_url: str, allowed: tuple[str, ...] = ()) -> bool:
    def norm(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    return norm(origin) == norm(host_url) or norm(origin) in {norm(a) for a in allowed}


def origin_refused(allowed: tuple[str, ...] = ()) -> bool:
    """True for a state-changing request that another site sent (by Origin, else Sec-Fetch-Site)."""
    if request.method not in UNSAFE_METHODS:
        return False
    origin = request.headers.get("Origin")
    if origin:
        if origin == "null" or not same_origin(origin, request.host_url, allowed):
            log.warning("refused %s %s from origin %s", request.method, request.path, origin[:80])
            return True
        return False
    site = request.headers.get("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        log.warning("refused %s %s: Sec-Fetch-Site %s", request.method, request.path, site[:20])
        return True
    return False


def security_headers(resp: Any) -> Any:
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    # Live pages and documents (waiting times, the ticket page) say how fresh they must be: a browser or a
    # proxy never shows stored minutes without asking again. Views that allow caching say so themselves
    # (/api/public: 10 s, static files: Flask's own). What a logged-in user sees is never stored at all.
    resp.headers.setdefault("Cache-Control", "no-store" if session.get("sid") else "no-cache")
    if request.is_secure:  # https as seen through the trusted proxies; over plain http HSTS means nothing
        resp.headers.setdefault("Strict-Transport-Security", HSTS)
    return resp
