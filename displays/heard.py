"""The calls a display heard, kept on disk: a display that restarts does not announce them again.

``MissedCalls`` (``displays.missed``) remembers every call the display heard live or decided on, so none is
announced twice. ``HeardFile`` keeps the recent ones across a restart of the display node (a crash, a systemd
restart, a power cut of the Pi, a new configuration) in ``<data dir>/display-<node id>-heard.json``: only call
keys (ticket number, counter id, the controller's time of the call), no personal data, at most ``MAX_CALLS``
of them (a few KB); ``MissedCalls`` hands over only the calls of its window (``display.announce_missed_s``).

Writes run on a thread of their own, so the network thread that hands a list over never waits for the SD
card; the newest list wins. A file is written atomically (a temporary file, fsync, rename): a reader finds the
old list or the new one, never half of one. Nothing here stops a display: a file that cannot be read
(damaged, cut short, written by a newer version) or written (a read-only or full disk) is logged in one line,
and the display goes on with what it remembers in memory; a call announced twice after a restart is better
than one not announced at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from waitroom.paths import data_dir

log = logging.getLogger(__name__)

CallKey = tuple[str, str, float]  # (ticket, counter, the controller's time of the call), as CallView.key

FORMAT = 1
MAX_CALLS = (
    100  # the state lists at most 10 calls; far more than an office calls in the longest window (600 s)
)
MAX_BYTES = 64 * 1024  # a larger file was not written by this module
MAX_ID = 64  # characters of a ticket number or a counter id


def path_for(node_id: str, folder: str | os.PathLike[str] | None = None) -> Path:
    """``<data dir>/display-<node id>-heard.json`` (the data dir: ``folder``, $WAITROOM_DATA_DIR or ./var)."""
    return data_dir(folder) / f"display-{node_id}-heard.json"


def _key(entry: Any) -> CallKey | None:
    """A call key from a file entry ``[ticket, counter, ts]``, or None when it is not one."""
    if not isinstance(entry, list | tuple) or len(entry) != 3:
        return None
    ticket, counter, ts = entry
    if not all(isinstance(s, str) and 0 < len(s) <= MAX_ID for s in (ticket, counter)):
        return None
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        return None
    return (ticket, counter, round(float(ts), 3))


def parse(raw: bytes) -> list[CallKey]:
    """The call keys of a file's bytes; ValueError saying what is wrong with them."""
    if len(raw) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // 1024} KB")
    try:
        data = json.loads(raw)
    except ValueError:  # not UTF-8, not JSON: damaged or cut short
        raise ValueError("not JSON (damaged or cut short)") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("format"), int)
        or isinstance(data["format"], bool)
    ):
        raise ValueError("not a list of heard calls (no format)")
    if data["format"] > FORMAT:
        raise ValueError(f"written by a newer version (format {data['format']}; this one reads {FORMAT})")
    if data["format"] != FORMAT or not isinstance(data.get("calls"), list):
        raise ValueError("not a list of heard calls")
    keys = []
    for i, entry in enumerate(data["calls"]):
        key = _key(entry)
        if key is None:
            raise ValueError(f"calls[{i}] is not [ticket, counter, time]")
        keys.append(key)
    return keys[-MAX_CALLS:]


def dump(keys: Iterable[CallKey]) -> bytes:
    """A file's bytes for these call keys (the last ``MAX_CALLS``; keys a file cannot hold are left out)."""
    good = [k for k in (_key(k) for k in keys) if k is not None]
    data = {"format": FORMAT, "calls": [list(k) for k in good[-MAX_CALLS:]]}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class HeardFile:
    """The calls a display heard, in one file: ``load`` at start, ``save`` when a call is heard or decided
    (written on the store's thread), ``close`` at stop (writes what is pending). Never raises."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._cond = threading.Condition()
        self._pending: list[CallKey] | None = None
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._failing = False  # the last write failed (logged once until one works again)
        # told when writing begins to fail (the error, once) and when it works again (None)
        self.on_change: Callable[[str | None], None] | None = None
        self.writes = 0  # files written
        self.errors = 0  # writes that failed

    def load(self) -> list[CallKey]:
        """The calls in the file; none when there is no file, and none (with one warning) when it cannot be
        read or is not one this version wrote."""
        try:
            with self.path.open("rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.warning(
                "cannot read %s (%s); calls heard before the start may be announced again", self.path, exc
            )
            return []
        try:
            return parse(raw)
        except ValueError as exc:
            log.warning("ignored %s: %s; calls heard before the start may be announced again", self.path, exc)
            return []

    def write(self, keys: Iterable[CallKey]) -> bool:
        """Write the file now (atomically); False, logged once, when it cannot be written."""
        data = dump(keys)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._sync_folder()
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            self.errors += 1
            if not self._failing:
                log.warning(
                    "cannot write %s (%s); the display goes on, a restart may announce a recent call again",
                    self.path,
                    exc,
                )
                self._failing = True
                self._tell(f"{self.path}: {exc.strerror or exc}")
            return False
        if self._failing:
            log.info("%s is written again", self.path)
            self._failing = False
            self._tell(None)
        self.writes += 1
        return True

    def _tell(self, error: str | None) -> None:
        if self.on_change is not None:
            try:
                self.on_change(error)
            except Exception:  # the node's health must not stop the store
                log.exception("reporting the state of %s failed", self.path)

    def _sync_folder(self) -> None:
        """The rename on disk too (a power cut right after it keeps the new file)."""
        with contextlib.suppress(OSError):
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def save(self, keys: Iterable[CallKey]) -> None:
        """Write these calls soon, on the store's thread (never waits for the disk; the newest list wins)."""
        with self._cond:
            if self._closed:
                return
            self._pending = list(keys)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"heard-{self.path.name}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every list handed to ``save`` is written (or failed); False after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is pending and stop the store's thread (at the node's stop; a hung disk costs at most
        ``timeout``)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                keys, self._pending = self._pending, None
                self._busy = True
            try:
                self.write(keys)
            except Exception:  # a bug here must not end the thread: the next list is written again
                log.exception("writing %s failed", self.path)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
