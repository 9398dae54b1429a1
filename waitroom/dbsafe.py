"""Safety of the controller's event log: integrity check at start, one controller per data directory,
salvage of a damaged log, online backups and restore.

At start the controller calls ``open_checked(data_dir, database)``: it takes an exclusive lock on the data
directory (a second controller on the same data refuses to start), runs ``PRAGMA quick_check`` on the log and
writes the result to ``<data_dir>/database-status.json`` for the admin page. A damaged log raises
``DatabaseDamaged`` with an operator message; the controller then exits with ``EXIT_DAMAGED``, which the
systemd unit lists in ``RestartPreventExitStatus=`` so it does not restart in a loop. The operator runs
``waitroom db recover`` (or restores a backup) and starts the controller again. A data directory it cannot
write (full, read-only) raises ``DataDirNotWritable``: exit ``EXIT_NOT_WRITABLE``, which systemd does restart.

A log that is not there is a first start only when nothing says it existed, and a log that is there must be
the one the controller used last. The status file is the witness: the controller records the log's identity
(``log_id`` and ``created`` from the log's ``meta`` table) and its ``last_seq`` at start, once more after the
first commit that writes events into a new log, and at a clean stop. A missing log whose status shows events
raises ``DatabaseMissing``, a log with another identity or fewer events raises ``DatabaseReplaced`` (both exit
``EXIT_DAMAGED``). A data directory on a medium that ``/etc/fstab`` (or a systemd mount unit) mounts but that
is not mounted raises ``DataDirNotMounted`` (exit ``EXIT_NOT_MOUNTED``, not restarted) before anything is
written there. ``forget`` (``waitroom db forget``) is the operator's one way to start a new log on purpose.

``recover`` copies every readable event and stored reply into a new log (SQLite's ``.recover`` through the
``sqlite3`` command line tool when it is installed, else row by row with Python's sqlite3 module), keeps the
damaged file beside it and reports what could not be read (gaps in the event numbers).

``backup`` makes an online copy through SQLite's backup API (consistent while the controller writes),
checks it and keeps the newest ``keep`` copies per tag (``nightly``, ``pre-upgrade``, ``manual``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import glob
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from waitroom.errors import WaitroomError

log = logging.getLogger(__name__)

# Exit codes of a controller that must not be restarted by systemd (RestartPreventExitStatus=65 66 73).
EXIT_DAMAGED = 65  # EX_DATAERR: the event log failed its integrity check, is missing or was replaced
EXIT_NOT_MOUNTED = 66  # EX_NOINPUT: the medium of the data directory (in /etc/fstab) is not mounted
EXIT_LOCKED = 73  # EX_CANTCREAT: another controller holds the data directory
# Restarted by systemd (every RestartSec), so the controller is back by itself once there is room again:
EXIT_NOT_WRITABLE = 74  # EX_IOERR: the data directory cannot be written (read-only, full, no permission)
LOCK_NAME = "controller.lock"
STATUS_NAME = "database-status.json"
BACKUP_DIR = "backups"
FSTAB = Path("/etc/fstab")
MOUNT_UNITS = Path("/etc/systemd/system")  # an administrator's *.mount units (Where=)
TAG_RE = re.compile(r"^[a-z0-9-]{1,32}$")
MAX_PROBLEMS = 20  # integrity problems kept in the status file


class DatabaseError(WaitroomError, RuntimeError):
    """The controller's event log cannot be used as it is."""


class DatabaseDamaged(DatabaseError):
    """The event log failed its integrity check; ``message`` tells the operator what to do."""

    def __init__(self, path: Path, problems: list[str], data_dir: Path | None = None):
        self.path = Path(path)
        self.problems = problems
        where = f" --data-dir {data_dir}" if data_dir is not None else ""
        self.message = (
            f"The event log {self.path} is damaged ({problems[0] if problems else 'unreadable'}). "
            f"The controller does not start on it. Salvage it with `waitroom db recover{where}` "
            f"(the damaged file is kept) or restore a backup with `waitroom db restore{where} FILE`, "
            "then start the controller again."
        )
        super().__init__(self.message)


class DatabaseMissing(DatabaseDamaged):
    """The event log is gone, but the data directory shows that it was there (its status, a damaged copy)."""

    def __init__(self, path: Path, evidence: str, data_dir: Path):
        self.path = Path(path)
        self.problems = [f"the file is missing; {evidence}"]
        where = f" --data-dir {data_dir}"
        self.message = (
            f"The event log {self.path} is missing, but {evidence}. The controller does not start a new, "
            "empty log in its place: it would hand out today's ticket numbers again. Put the file back (is "
            "the data directory on a medium that is not mounted?), restore the newest backup (`waitroom db "
            f"list{where}`, then `waitroom db restore{where} FILE`), or, to start a new, empty log on "
            f"purpose, run `waitroom db forget{where}`."
        )
        super(DatabaseDamaged, self).__init__(self.message)


class DatabaseReplaced(DatabaseDamaged):
    """The event log is not the one the controller used last (another identity, or fewer events)."""

    def __init__(self, path: Path, evidence: str, data_dir: Path):
        self.path = Path(path)
        self.problems = [f"not the log the controller used last: {evidence}"]
        where = f" --data-dir {data_dir}"
        self.message = (
            f"The event log {self.path} is not the one the controller used last: {evidence}. The controller "
            "does not start on it: the tickets after its end would be handed out again. Put the right file "
            f"back, or restore the newest backup (`waitroom db list{where}`, then `waitroom db "
            f"restore{where} FILE`); to go on with this log on purpose, run `waitroom db forget{where}`."
        )
        super(DatabaseDamaged, self).__init__(self.message)


class DataDirNotMounted(DatabaseError):
    """The data directory lies on a medium that /etc/fstab (or a mount unit) mounts, but it is not mounted."""

    def __init__(self, path: Path, mount_point: str, source: str):
        self.path = Path(path)
        self.mount_point = mount_point
        self.source = source
        self.message = (
            f"{self.path} lies on {mount_point}, which {source} mounts, but nothing is mounted there now (a "
            "USB disk or partition that failed to mount?). The controller does not start on the empty folder "
            "beneath: it would take it for a first start and hand out today's ticket numbers again. Mount it "
            f"(`mount {mount_point}`; `journalctl -b` says why it failed), then start the controller again; "
            f"if the data is to live on the file system beneath from now on, remove that entry from {source}."
        )
        super().__init__(self.message)


class DataDirLocked(DatabaseError):
    """Another controller uses the same data directory."""

    def __init__(self, data_dir: Path, holder: str):
        self.data_dir = Path(data_dir)
        self.holder = holder
        self.message = (
            f"another controller ({holder}) already uses the data directory {self.data_dir}; "
            "stop it first (systemctl stop waitroom-controller) -- two controllers would number tickets twice"
        )
        super().__init__(self.message)


class EventDoesNotFit(DatabaseError):
    """An event of the log does not fit the state rebuilt before it (a log written by a newer version, or
    damaged in a way its pages do not show); ``message`` tells the operator what to do."""

    def __init__(self, path: Path, event: dict[str, Any], error: BaseException):
        self.path = Path(path)
        self.seq = event.get("seq")
        what = f"{type(error).__name__}: {error}" if isinstance(error, KeyError) else str(error)
        self.message = (
            f"The event log {self.path} has an event the controller cannot apply (seq {self.seq}, "
            f"{str(event.get('type'))[:40]!r}: {what[:200]}). Was it written by a newer version of waitroom? "
            "Then start that version again. Otherwise salvage it with `waitroom db recover` (the damaged "
            "file is kept): on a salvaged log the controller passes over events that do not fit, and says "
            "which."
        )
        super().__init__(self.message)


class DataDirNotWritable(DatabaseError):
    """The controller cannot write its data directory or event log (a read-only or full file system)."""

    def __init__(self, path: Path, error: BaseException):
        self.path = Path(path)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        self.message = (
            f"the controller cannot write {self.path} ({reason}) and does not start without a writable event "
            "log. Free space on that file system, or make it writable again (an SD card that turned "
            "read-only after errors: copy the data directory off it and check or replace the card); the "
            "controller tries again by itself every few seconds. Dispensers print offline tickets meanwhile."
        )
        super().__init__(self.message)


# ------------------------------------------------------------------------------------------------ check
@dataclass
class CheckResult:
    """The outcome of an integrity check of one SQLite file."""

    path: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    events: int | None = None
    replies: int | None = None
    last_seq: int | None = None
    log_id: str | None = None  # the log's identity (meta table); None in a log of an older version
    full: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        if self.ok:
            return f"{self.path}: ok ({self.events} events up to seq {self.last_seq}, {self.replies} replies)"
        return f"{self.path}: DAMAGED: " + "; ".join(self.problems[:5])


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    return sqlite3.connect(str(path), isolation_level=None)


def quick_check(path: str | os.PathLike[str], *, full: bool = False) -> CheckResult:
    """``PRAGMA quick_check`` (``integrity_check`` with ``full``) plus a read of the event log's tables.

    Never raises for a damaged file: every SQLite error becomes a problem in the result.
    """
    p = Path(path)
    start = time.perf_counter()
    res = CheckResult(str(p), ok=False, full=full)
    if not p.is_file():
        res.problems.append("the file does not exist")
        return res
    size = p.stat().st_size
    try:
        db = _connect(p)
    except sqlite3.Error as exc:
        res.problems.append(f"cannot open: {exc}")
        return res
    try:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        rows = db.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check").fetchall()
        problems = [
            line.strip()
            for r in rows
            if r[0] != "ok"
            for line in str(r[0]).splitlines()
            if line.strip() and not line.startswith("*** in database")
        ]
        if size % page:
            problems.append(f"the file is {size} bytes, not a whole number of {page}-byte pages (truncated)")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in ("events", "replies"):
            if table not in tables:
                problems.append(f"table {table} is missing")
        if not problems:
            res.events, res.last_seq = db.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM events"
            ).fetchone()
            res.replies = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            if "meta" in tables:
                row = db.execute("SELECT value FROM meta WHERE key='log_id'").fetchone()
                res.log_id = str(row[0]) if row else None
            # Every row must be readable to the end (quick_check does not read every value).
            for table, col in (("events", "data"), ("replies", "reply")):
                db.execute(f"SELECT SUM(LENGTH({col})) FROM {table}").fetchone()
        res.problems = problems[:MAX_PROBLEMS]
        res.ok = not problems
    except sqlite3.Error as exc:
        res.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        db.close()
    res.seconds = round(time.perf_counter() - start, 4)
    return res


# ------------------------------------------------------------------------------------------------- lock
class DataDirLock:
    """An exclusive ``flock`` on ``<data_dir>/controller.lock``, held while the controller runs.

    The kernel drops the lock when the process ends, however it ends (no stale lock after a SIGKILL).
    """

    def __init__(self, data_dir: str | os.PathLike[str]):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            raise DataDirLocked(self.data_dir, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def setting_up(db_path: str | os.PathLike[str]) -> Iterator[None]:
    """Held while a process opens a SQLite file that other processes share and creates its tables (the web
    app's users, sessions and rate limits: its gunicorn workers start together). Two first connections that
    switch a new file to WAL and create tables at the same moment can get "database is locked" at once --
    SQLite does not wait where waiting could deadlock -- and that stopped a worker's boot, and gunicorn with
    it. An exclusive ``flock`` on ``<file>.setup-lock`` beside it puts them one after the other."""
    path = Path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".setup-lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_held: dict[Path, DataDirLock] = {}


def lock_data_dir(data_dir: str | os.PathLike[str]) -> DataDirLock:
    """Take the data directory's lock for the rest of the process (idempotent); raise DataDirLocked."""
    key = Path(data_dir).resolve()
    lock = _held.get(key)
    if lock is None or not lock.held:
        lock = _held[key] = DataDirLock(key).acquire()
    return lock


def release_data_dir(data_dir: str | os.PathLike[str]) -> None:
    lock = _held.pop(Path(data_dir).resolve(), None)
    if lock is not None:
        lock.release()


# ----------------------------------------------------------------------------------------------- status
def write_status(
    data_dir: str | os.PathLike[str], status: str, *, durable: bool = False, **fields: Any
) -> Path:
    """The admin page's view of the event log: ``<data_dir>/database-status.json`` (atomic replace; with
    ``durable`` synced to disk, for what later starts rely on)."""
    d = Path(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    body = {"v": 1, "status": status, "ts": round(time.time(), 3), **fields}
    path = d / STATUS_NAME
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, ensure_ascii=False, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    if durable:
        _fsync_file(tmp)
    tmp.replace(path)
    if durable:
        _fsync_dir(d)
    return path


def read_status(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The last status written (None if there is none or it is unreadable)."""
    try:
        data = json.loads((Path(data_dir) / STATUS_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def note_log(data_dir: str | os.PathLike[str], path: str | os.PathLike[str], **fields: Any) -> None:
    """Add what the running controller knows of its log to the status ``ok`` its start wrote: the log's
    identity once it is open, ``last_seq`` after the first commit into a new log and at a clean stop.
    Synced to disk: the next start relies on it. Never raises (a full disk: the journal says so)."""
    d = Path(data_dir)
    status = read_status(d) or {}
    body = {k: v for k, v in status.items() if k not in ("v", "status", "ts")}
    body.update(fields, path=str(path))
    try:
        write_status(d, "ok", durable=True, **body)
    except OSError as exc:
        log.warning("could not note the event log's state in %s: %s", d / STATUS_NAME, exc)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _names(status: dict[str, Any] | None, path: Path) -> bool:
    """Whether ``status`` (of the data directory ``path`` lies in) is about the log ``path``: by its name, so
    that a relative --data-dir and an absolute one (systemd) name the same log."""
    named = status.get("path") if status else None
    return isinstance(named, str) and Path(named).name == path.name


def _log_was_here(data_dir: Path, path: Path) -> str | None:
    """Why a missing event log at ``path`` is no first start (None: nothing says it existed): a vanished log
    (deleted, lost with its medium, a recover or restore cut short by a power loss) must not silently become a
    new, empty one."""
    status = read_status(data_dir)
    if status and _names(status, path):
        if status.get("status") == "forgotten":  # `waitroom db forget`: a new log on purpose
            return None
        if status.get("status") == "missing" and isinstance(status.get("evidence"), str):
            return str(status["evidence"])  # what the first refusal found, as it was
        if status.get("status") in ("damaged", "recovered", "restored", "missing", "replaced"):
            return f"its last status in {data_dir / STATUS_NAME} is {status.get('status')!r}"
        events, last_seq = _int(status.get("events")), _int(status.get("last_seq"))
        if events > 0 or last_seq > 0:
            return (
                f"it held events up to seq {max(events, last_seq)} when the controller last noted it "
                f"({data_dir / STATUS_NAME})"
            )
    kept = sorted(path.parent.glob(f"{glob.escape(path.name)}.broken-*"))
    if kept:
        return f"a damaged copy of it, {kept[-1].name}, is beside it (a recover cut short?)"
    return None


def _other_log(status: dict[str, Any] | None, path: Path, res: CheckResult) -> str | None:
    """Why the log at ``path`` is not the one the controller used last (None: it is, or nothing says)."""
    if not status or not _names(status, path) or status.get("status") not in ("ok", "replaced", "missing"):
        return None  # restored, recovered, forgotten: a new log on purpose; or no status at all
    want = status.get("log_id")
    if isinstance(want, str) and res.log_id != want:
        created = status.get("created")
        when = f", created {_utc(float(created))}" if isinstance(created, int | float) else ""
        return f"its identity is {res.log_id or 'none'}, the controller's last log was {want}{when}"
    last_seq = _int(status.get("last_seq"))
    if (res.last_seq or 0) < last_seq:
        return (
            f"it ends at seq {res.last_seq or 0}, but the controller's last log held events up to seq "
            f"{last_seq} (an older copy?)"
        )
    return None


# ------------------------------------------------------------------------------------------------ mount
def _unescape(field_text: str) -> str:
    """A path of /etc/fstab or /proc/self/mountinfo: a space is written \\040, a tab \\011."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field_text)


def _declared_mounts(fstab: Path, mount_units: Path) -> list[tuple[str, str]]:
    """(mount point, where it is declared) of /etc/fstab and the systemd mount units (``Where=``)."""
    found: list[tuple[str, str]] = []
    with contextlib.suppress(OSError):
        for line in fstab.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) < 2 or fields[0].startswith("#"):
                continue
            if fields[1].startswith("/") and (len(fields) < 3 or fields[2] != "swap"):
                found.append((os.path.normpath(_unescape(fields[1])), str(fstab)))
    with contextlib.suppress(OSError):
        for unit in sorted(mount_units.glob("*.mount")):
            with contextlib.suppress(OSError):
                for line in unit.read_text(encoding="utf-8", errors="replace").splitlines():
                    key, _, value = line.strip().partition("=")
                    if key.strip() == "Where" and value.strip().startswith("/"):
                        found.append((os.path.normpath(value.strip()), str(unit)))
    return found


def _mounted_now() -> set[str]:
    """The mount points of this process's mount namespace (bind mounts included, which ismount misses)."""
    points: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.add(os.path.normpath(_unescape(fields[4])))
    return points


def not_mounted(
    path: str | os.PathLike[str], *, fstab: str | os.PathLike[str] = FSTAB, mount_units: Path = MOUNT_UNITS
) -> tuple[str, str] | None:
    """(mount point, declared in) when ``path`` lies on a file system that /etc/fstab or a mount unit mounts
    at ``path`` or above it, and nothing is mounted there now; None when all is mounted as declared."""
    targets = {
        os.path.abspath(path),
        os.path.realpath(path),
    }  # a symlinked data directory counts where it leads
    mounted: set[str] | None = None
    for point, source in sorted(_declared_mounts(Path(fstab), mount_units)):
        if point == "/" or not any(t == point or t.startswith(point + os.sep) for t in targets):
            continue
        if os.path.ismount(point):
            continue
        if mounted is None:
            mounted = _mounted_now()
        if point not in mounted:
            return point, source
    return None


def check_mounted(*paths: str | os.PathLike[str], fstab: str | os.PathLike[str] = FSTAB) -> None:
    """Raise DataDirNotMounted for the first of ``paths`` whose declared medium is not mounted."""
    for p in paths:
        missing = not_mounted(p, fstab=fstab)
        if missing:
            raise DataDirNotMounted(Path(p), *missing)


# ------------------------------------------------------------------------------------------------ start
def _writable_status(data_dir: Path, status: str, **fields: Any) -> None:
    """``write_status`` at start, which also proves the data directory writable (else DataDirNotWritable)."""
    try:
        write_status(data_dir, status, **fields)
    except OSError as exc:
        raise DataDirNotWritable(data_dir / STATUS_NAME, exc) from None


def open_checked(
    data_dir: str | os.PathLike[str],
    database: str | os.PathLike[str] = "events.db",
    *,
    fstab: str | os.PathLike[str] = FSTAB,
) -> Path:
    """Check the data directory's medium, lock the directory and check the event log before the controller
    opens it.

    Returns the log's path (which need not exist yet: a first start). Raises DataDirNotMounted (nothing
    written) when the medium /etc/fstab puts the data on is not mounted, DataDirLocked when another
    controller runs on the same data (the status file is left to that one), DatabaseMissing when the log is
    gone but the status shows it held events, DatabaseReplaced when the log is not the one the controller
    used last, DatabaseDamaged when the log fails its check (each with status and operator message).
    """
    d = Path(data_dir)
    path = Path(database) if Path(database).is_absolute() else d / database
    check_mounted(d, path.parent, fstab=fstab)
    try:
        lock_data_dir(d)
    except OSError as exc:  # a read-only or full file system (DataDirLocked is no OSError)
        raise DataDirNotWritable(d / LOCK_NAME, exc) from None
    if not path.exists():
        evidence = _log_was_here(d, path)
        if evidence:
            exc = DatabaseMissing(path, evidence, d)
            witness = {
                k: v for k, v in (read_status(d) or {}).items() if k in ("log_id", "created", "last_seq")
            }
            with contextlib.suppress(OSError):  # the evidence stays: the next start refuses alike
                write_status(
                    d,
                    "missing",
                    code="database_missing",
                    path=str(path),
                    evidence=evidence,
                    message=exc.message,
                    exit_code=EXIT_DAMAGED,
                    **witness,
                )
            raise exc
        _writable_status(d, "ok", path=str(path), new=True, events=0)
        return path
    res = quick_check(path)
    if not res.ok:
        exc = DatabaseDamaged(path, res.problems, d)
        with contextlib.suppress(OSError):  # the journal has the message in any case
            write_status(
                d,
                "damaged",
                code="database_damaged",
                path=str(path),
                problems=res.problems,
                message=exc.message,
                exit_code=EXIT_DAMAGED,
            )
        log.critical("%s", exc.message)
        raise exc
    status = read_status(d)
    evidence = _other_log(status, path, res)
    if evidence and status is not None:
        exc = DatabaseReplaced(path, evidence, d)
        with contextlib.suppress(OSError):  # the last log's witness stays: the next start refuses too
            write_status(
                d,
                "replaced",
                code="database_replaced",
                path=str(path),
                log_id=status.get("log_id"),
                created=status.get("created"),
                last_seq=status.get("last_seq"),
                found={"log_id": res.log_id, "last_seq": res.last_seq, "events": res.events},
                message=exc.message,
                exit_code=EXIT_DAMAGED,
            )
        raise exc
    _writable_status(
        d,
        "ok",
        path=str(path),
        events=res.events,
        last_seq=res.last_seq,
        replies=res.replies,
        check_seconds=res.seconds,
        **({"log_id": res.log_id} if res.log_id else {}),
    )
    log.info("event log %s checked in %.3f s: %d events", path, res.seconds, res.events or 0)
    return path


def forget(
    data_dir: str | os.PathLike[str],
    database: str | os.PathLike[str] | None = None,
    *,
    fstab: str | os.PathLike[str] = FSTAB,
) -> tuple[Path, dict[str, Any] | None]:
    """Let the controller's next start take the event log as it is now: a new, empty log when it is missing,
    or the log in its place when it is another one. The operator's one way to start over on purpose (a new
    medium). The status before is kept in the new one (``previous``); returns the log's path and that status.
    Takes the data directory's lock (the controller must be stopped); refuses while the data directory's
    medium is not mounted. ``database``: the log's name or path; None: the one the status names, else
    events.db."""
    d = Path(data_dir)
    check_mounted(d, fstab=fstab)
    lock_data_dir(d)
    previous = read_status(d)
    if database is None:
        named = previous.get("path") if previous else None
        database = Path(named).name if isinstance(named, str) and named else "events.db"
    path = Path(database) if Path(database).is_absolute() else d / database
    check_mounted(path.parent, fstab=fstab)
    write_status(d, "forgotten", durable=True, code="database_forgotten", path=str(path), previous=previous)
    log.warning("the data directory %s forgot its event log %s (was: %s)", d, path, previous)
    return path, previous


# ---------------------------------------------------------------------------------------------- recover
@dataclass
class RecoveryReport:
    """What ``recover`` salvaged from a damaged event log, and what was lost."""

    path: str  # the new, checked event log (at the original place)
    broken: str  # the damaged file, renamed beside it
    method: str  # "sqlite3 .recover" or "row by row"
    events: int = 0
    replies: int = 0
    first_seq: int = 0
    last_seq: int = 0
    missing_seqs: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges
    unreadable_rows: int = 0  # rows found but not valid (e.g. a broken JSON value)

    @property
    def missing_events(self) -> int:
        return sum(b - a + 1 for a, b in self.missing_seqs)

    def summary(self) -> str:
        gaps = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.missing_seqs[:10]) or "none"
        return (
            f"salvaged {self.events} events (seq {self.first_seq}..{self.last_seq}) and {self.replies} "
            f"stored replies into {self.path} ({self.method}); missing events: {self.missing_events} "
            f"({gaps}); unreadable rows: {self.unreadable_rows}; the damaged file is kept as {self.broken}. "
            f"Events after seq {self.last_seq} that were never readable cannot be counted."
        )


def _rows_python(src: Path, table: str, cols: str) -> tuple[list[tuple[Any, ...]], int]:
    """Every readable row of ``table`` by rowid: forwards and backwards until an error, then probes."""
    db = _connect(src)  # a scratch copy: opened read-write so its WAL is read without a -shm file
    rows: dict[int, tuple[Any, ...]] = {}
    errors = 0
    try:
        for order in ("ASC", "DESC"):
            try:
                for row in db.execute(f"SELECT rowid, {cols} FROM {table} ORDER BY rowid {order}"):
                    rows[row[0]] = row[1:]
            except sqlite3.DatabaseError:
                errors += 1
        if errors and rows:
            # Probe the rowids between what the two scans reached (the rows on and around the bad pages).
            known = sorted(rows)
            gaps = [(a, b) for a, b in itertools.pairwise(known) if b - a > 1]
            budget = 2_000_000
            for a, b in gaps:
                for rowid in range(a + 1, min(b, a + 1 + budget)):
                    try:
                        row = db.execute(
                            f"SELECT rowid, {cols} FROM {table} WHERE rowid = ?",
                            (rowid,),
                        ).fetchone()
                    except sqlite3.DatabaseError:
                        continue
                    if row:
                        rows[row[0]] = row[1:]
                budget -= b - a
    except sqlite3.DatabaseError:
        log.warning("table %s of %s cannot be read at all", table, src)
    finally:
        db.close()
    return [(k, *rows[k]) for k in sorted(rows)], errors


def _rows_cli(sqlite_bin: str, src: Path, work: Path) -> Path:
    """Run ``sqlite3 src .recover`` into a scratch database; return it."""
    out = work / "recovered.db"
    dump = subprocess.run([sqlite_bin, str(src), ".recover"], capture_output=True, check=False, timeout=3600)
    if dump.returncode != 0:
        raise DatabaseError(f"sqlite3 .recover failed: {dump.stderr.decode('utf-8', 'replace')[-300:]}")
    load = subprocess.run(
        [sqlite_bin, str(out)], input=dump.stdout, capture_output=True, check=False, timeout=3600
    )
    if load.returncode != 0 or not out.exists():
        raise DatabaseError(
            f"loading the recovered rows failed: {load.stderr.decode('utf-8', 'replace')[-300:]}"
        )
    return out


def _table_rows(db_path: Path, table: str, cols: str) -> list[tuple[Any, ...]]:
    db = _connect(db_path)
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if table not in names:
            return []
        return db.execute(f"SELECT rowid, {cols} FROM {table} ORDER BY rowid").fetchall()
    finally:
        db.close()


def _lost_and_found(db_path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows ``.recover`` found on pages no table claims, shaped like events (4 fields) or replies (5)."""
    db = _connect(db_path)
    try:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "lost_and_found" not in names:
            return [], []
        cols = {r[1] for r in db.execute("PRAGMA table_info(lost_and_found)")}
        events: list[tuple[Any, ...]] = []
        replies: list[tuple[Any, ...]] = []
        if {"c1", "c2", "c3"} <= cols:
            for rid, ts, typ, data in db.execute(
                "SELECT id, c1, c2, c3 FROM lost_and_found WHERE nfield = 4 AND c0 IS NULL"
            ):
                events.append((rid, rid, ts, typ, data))
        if {"c0", "c1", "c2", "c3", "c4"} <= cols:
            for row in db.execute("SELECT id, c0, c1, c2, c3, c4 FROM lost_and_found WHERE nfield = 5"):
                replies.append(row)
        return events, replies
    finally:
        db.close()


def _valid_event(seq: Any, ts: Any, typ: Any, data: Any) -> bool:
    if not isinstance(seq, int) or not isinstance(ts, int | float) or not isinstance(typ, str):
        return False
    try:
        body = json.loads(data)
    except (TypeError, ValueError):
        return False
    return isinstance(body, dict) and body.get("seq", seq) == seq


def _valid_reply(node: Any, rid: Any, digest: Any, reply: Any, ts: Any) -> bool:
    if not all(isinstance(x, str) for x in (node, rid, digest)) or not isinstance(ts, int | float):
        return False
    try:
        return isinstance(json.loads(reply), dict)
    except (TypeError, ValueError):
        return False


def _side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def _utc(ts: float) -> str:
    return f"{dt.datetime.fromtimestamp(ts, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def recover(
    path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    use_cli: bool | None = None,
) -> RecoveryReport:
    """Salvage a damaged event log in place: readable events and replies go into a new log at ``path``;
    the damaged file (with its -wal/-shm) is renamed to ``<name>.broken-<UTC time>`` beside it.

    Takes the data directory's lock (``data_dir``, default the log's folder): the controller must be stopped.
    ``use_cli``: True = sqlite3's ``.recover`` (error if missing), False = row by row, None = CLI if found.
    """
    from waitroom.store import SCHEMA, SCHEMA_VERSION  # the log's own schema, not a copy

    src = Path(path)
    if not src.is_file():
        raise DatabaseError(f"{src}: no such event log")
    d = Path(data_dir) if data_dir is not None else src.parent
    lock_data_dir(d)
    sqlite_bin = shutil.which("sqlite3")
    if use_cli and not sqlite_bin:
        raise DatabaseError("the sqlite3 command line tool is missing: apt-get install sqlite3")
    cli = bool(sqlite_bin) if use_cli is None else use_cli
    stamp = _stamp()
    broken = src.with_name(f"{src.name}.broken-{stamp}")
    with tempfile.TemporaryDirectory(dir=src.parent, prefix=".recover-") as tmp:
        work = Path(tmp)
        # Work on a copy: the damaged original and its WAL stay exactly as they were.
        copy = work / src.name
        shutil.copy2(src, copy)
        for side in _side_files(src)[:1]:
            if side.exists():
                shutil.copy2(side, work / side.name)
        # Row by row always (it reads what the b-trees still lead to); sqlite3's .recover in addition when it
        # is there and works (it also finds rows on pages no b-tree leads to any more). The union counts.
        events, _ = _rows_python(copy, "events", "seq, ts, type, data")
        replies, _ = _rows_python(copy, "replies", "node, rid, digest, reply, ts")
        meta, _ = _rows_python(copy, "meta", "key, value")
        method = "row by row"
        if cli:
            try:
                scratch = _rows_cli(str(sqlite_bin), copy, work)
            except (DatabaseError, OSError, subprocess.TimeoutExpired) as exc:
                if use_cli:
                    raise
                log.warning("sqlite3 .recover is not usable here (%s); row by row only", exc)
            else:
                lost_events, lost_replies = _lost_and_found(scratch)
                events = _table_rows(scratch, "events", "seq, ts, type, data") + lost_events + events
                replies = (
                    _table_rows(scratch, "replies", "node, rid, digest, reply, ts") + lost_replies + replies
                )
                meta = _table_rows(scratch, "meta", "key, value") + meta
                method = "sqlite3 .recover + row by row"
        good_events = [r[1:] for r in events if _valid_event(*r[1:])]
        good_replies = [r[1:] for r in replies if _valid_reply(*r[1:])]
        unreadable = len({r[0] for r in events if not _valid_event(*r[1:])}) + len(
            {r[0] for r in replies if not _valid_reply(*r[1:])}
        )
        new = work / "new.db"
        db = sqlite3.connect(str(new), isolation_level=None)
        try:
            db.executescript(SCHEMA)
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR IGNORE INTO events (seq, ts, type, data) VALUES (?, ?, ?, ?)", good_events
            )
            db.executemany("INSERT OR IGNORE INTO replies VALUES (?, ?, ?, ?, ?)", good_replies)
            db.executemany(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                [r[1:] for r in meta if isinstance(r[1], str) and isinstance(r[2], str)],
            )
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('recovered_from', ?)", (broken.name,))
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode=WAL")
            seqs = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY seq")]
            n_replies = db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
        finally:
            db.close()
        check = quick_check(new)
        if not check.ok:
            raise DatabaseError(f"the salvaged log failed its own check: {check.summary()}")
        # Swap: the damaged file and its side files move aside, the new log takes the original name.
        os.replace(src, broken)
        for side in _side_files(src):
            if side.exists():
                os.replace(side, side.with_name(broken.name + side.name[len(src.name) :]))
        _fsync_file(new)
        os.replace(new, src)
        _fsync_dir(src.parent)
    missing: list[tuple[int, int]] = []
    expected = 1
    for s in seqs:
        if s > expected:
            missing.append((expected, s - 1))
        expected = s + 1
    report = RecoveryReport(
        path=str(src),
        broken=str(broken),
        method=method,
        events=len(seqs),
        replies=n_replies,
        first_seq=seqs[0] if seqs else 0,
        last_seq=seqs[-1] if seqs else 0,
        missing_seqs=missing,
        unreadable_rows=unreadable,
    )
    write_status(d, "recovered", code="database_recovered", path=str(src), report=asdict(report))
    log.warning("%s", report.summary())
    return report


# ----------------------------------------------------------------------------------------------- backup
def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_name(db_path: Path, tag: str, when: dt.datetime | None = None) -> str:
    """``<stem>-<UTC time to the millisecond>-<tag>.db``: names sort by time."""
    t = when or dt.datetime.now(dt.UTC)
    return f"{db_path.stem}-{t.strftime('%Y%m%dT%H%M%S')}{t.microsecond // 1000:03d}Z-{tag}.db"


def list_backups(dest: Path, db_path: Path, tag: str | None = None) -> list[Path]:
    """Backups of ``db_path`` in ``dest``, oldest first (the names sort by time)."""
    pattern = re.compile(rf"^{re.escape(db_path.stem)}-\d{{8}}T\d{{9}}Z-(?P<tag>[a-z0-9-]+)\.db$")
    found = []
    for p in dest.glob(f"{db_path.stem}-*.db") if dest.is_dir() else []:
        m = pattern.match(p.name)
        if m and (tag is None or m["tag"] == tag):
            found.append(p)
    return sorted(found, key=lambda p: p.name)


def backup(
    db_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    tag: str = "manual",
    keep: int = 14,
) -> Path:
    """An online, checked copy of the event log in ``dest``; keeps the newest ``keep`` copies of ``tag``.

    SQLite's backup API copies a consistent snapshot in one read transaction; in WAL mode the controller
    goes on writing meanwhile. The copy is written under a temporary name, checked, synced and renamed.
    """
    src_path, dest_dir = Path(db_path), Path(dest)
    if not TAG_RE.match(tag):
        raise DatabaseError(f"backup tag {tag!r}: use 1-32 of [a-z0-9-]")
    if keep < 1:
        raise DatabaseError(f"keep={keep}: keep at least one backup")
    if not src_path.is_file():
        raise DatabaseError(f"{src_path}: no such event log")
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / backup_name(src_path, tag)
    tmp = final.with_name("." + final.name + ".tmp")
    # Read-write like the controller, so a WAL is read whatever the state of its -shm file. Run this as the
    # controller's user: a -shm file created by root would lock the controller out.
    src = _connect(src_path)
    try:
        dst = sqlite3.connect(str(tmp))
        try:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # a backup is one self-contained file
        finally:
            dst.close()
    except sqlite3.Error as exc:
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"backup of {src_path} failed: {exc}") from None
    finally:
        src.close()
    check = quick_check(tmp)
    if not check.ok:
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"the backup of {src_path} failed its check: {check.summary()}")
    _fsync_file(tmp)
    os.replace(tmp, final)
    _fsync_dir(dest_dir)
    for old in list_backups(dest_dir, src_path, tag)[:-keep]:
        old.unlink(missing_ok=True)
        log.info("removed old backup %s", old)
    log.info("backup %s: %d events up to seq %s", final, check.events or 0, check.last_seq)
    return final


def _events_after(path: Path, seq: int) -> list[tuple[Any, ...]]:
    """The readable events of the log at ``path`` (damaged or not) after ``seq``: (rowid, seq, ts, type)."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".restore-check-") as tmp:
        copy = Path(tmp) / path.name  # read a copy: the log and its WAL stay exactly as they are
        shutil.copy2(path, copy)
        wal = _side_files(path)[0]
        if wal.exists():
            shutil.copy2(wal, Path(tmp) / wal.name)
        rows, _ = _rows_python(copy, "events", "seq, ts, type")
    return [r for r in rows if isinstance(r[1], int) and r[1] > seq]


def restore(
    backup_file: str | os.PathLike[str],
    db_path: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Put a checked backup in place of the event log; the current log is kept as ``.before-restore-*``.

    Takes the data directory's lock: the controller must be stopped. Refuses (unless ``force``) when the
    current log still holds readable events after the backup's last one: they would be lost, and the
    controller would hand out the numbers of the tickets among them a second time (``recover`` keeps them).
    Returns the kept previous log (or the restored path if there was none).
    """
    src, target = Path(backup_file), Path(db_path)
    d = Path(data_dir) if data_dir is not None else target.parent
    lock_data_dir(d)
    check = quick_check(src)
    if not check.ok:
        raise DatabaseError(f"{src} is not a usable backup: {check.summary()}")
    if target.is_file() and not force:
        later = _events_after(target, check.last_seq or 0)
        if later:
            tickets = sum(1 for r in later if r[3] == "ticket_issued")
            stamps = [r[2] for r in later if isinstance(r[2], int | float)]
            newest = f", the newest of {_utc(max(stamps))}" if stamps else ""
            raise DatabaseError(
                f"{target} holds {len(later)} readable events after the last one of the backup {src} (seq "
                f"{check.last_seq}): seq {later[0][1]}..{later[-1][1]}{newest}, {tickets} of them tickets "
                "issued. Restoring would lose them, and the controller would hand out those ticket numbers "
                "again. Salvage the log with `waitroom db recover` instead (it keeps every readable event "
                "and the damaged file), or restore the backup anyway with --force."
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name("." + target.name + ".restore.tmp")
    shutil.copyfile(src, tmp)
    _fsync_file(tmp)
    kept = target
    if target.exists():
        kept = target.with_name(f"{target.name}.before-restore-{_stamp()}")
        os.replace(target, kept)
        for side in _side_files(target):
            if side.exists():
                os.replace(side, side.with_name(kept.name + side.name[len(target.name) :]))
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    write_status(
        d,
        "restored",
        code="database_restored",
        path=str(target),
        backup=str(src),
        events=check.events,
        last_seq=check.last_seq,
        previous=str(kept) if kept != target else None,
    )
    log.warning(
        "restored %s from %s (%d events up to seq %s)", target, src, check.events or 0, check.last_seq
    )
    return kept
