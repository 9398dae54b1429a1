"""The event log's safety net on real SQLite files: integrity check, data-directory lock, salvage of
truncated and page-corrupted logs, online backup while the log is written, restore, and ``waitroom db``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from waitroom import dbsafe
from waitroom.cli import main
from waitroom.contract import command, encode
from waitroom.store import EventStore

PAGE = 4096
T0 = 1_764_576_000.0  # 2025-12-01 08:00 UTC


_templates: dict[tuple[int, int], bytes] = {}


def make_log(path: Path, events: int = 3000, replies: int = 800) -> Path:
    """A real event log as the controller writes it (one transaction per command, WAL, checkpointed);
    built once per size and copied, since 3000 durable commits take a while."""
    if (events, replies) not in _templates:
        tmp = path.with_name(".template.db")
        _build_log(tmp, events, replies)
        _templates[(events, replies)] = tmp.read_bytes()
        tmp.unlink()
    path.write_bytes(_templates[(events, replies)])
    return path


def _build_log(path: Path, events: int, replies: int) -> None:
    store = EventStore(path)
    store.db.execute("PRAGMA synchronous=OFF")  # the file's layout is the same; only the build is faster
    for i in range(1, events + 1):
        ev = {
            "seq": i,
            "ts": T0 + i,
            "type": "ticket_issued",
            "ticket": f"A{i % 899 + 1:03d}",
            "service": "pass",
        }
        reply = None
        if i <= replies:
            body = {"id": f"r{i}", "ok": True, "result": {"ticket": ev["ticket"]}}
            reply = ("disp-1", f"r{i}", f"{i:016x}", body)
        store.commit([ev], reply, now=T0 + i)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


@pytest.fixture(autouse=True)
def _release_locks(tmp_path: Path):
    yield
    for d in list(dbsafe._held):
        dbsafe.release_data_dir(d)


def issue_tickets(db: Path, n: int, now: list[float], service: str = "pass") -> list[str]:
    """``n`` tickets issued by the example office's controller on the log ``db`` (real events), a minute
    apart on the clock ``now[0]``; their numbers."""
    from waitroom import config
    from waitroom.controller import Office

    store = EventStore(db)
    try:
        office = Office(config.load(config.EXAMPLE_CONFIG), store, clock=lambda: now[0])
        numbers = []
        for _ in range(n):
            now[0] += 60
            out = office.handle("disp-1", encode(command("ticket.issue", {"service": service})))
            assert out.reply["ok"], out.reply
            numbers.append(out.reply["result"]["ticket"]["number"])
        return numbers
    finally:
        store.close()


def corrupt_page(path: Path, page_no: int) -> None:
    with open(path, "r+b") as f:
        f.seek(PAGE * page_no)
        f.write(bytes((i * 37 + 11) % 256 for i in range(PAGE)))


def seqs(path: Path) -> list[int]:
    store = EventStore(path)
    try:
        return [r[0] for r in store.db.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        store.close()


# ------------------------------------------------------------------------------------------------ check
def test_a_healthy_log_passes_and_open_checked_writes_the_status(tmp_path: Path) -> None:
    make_log(tmp_path / "events.db", events=50, replies=10)
    res = dbsafe.quick_check(tmp_path / "events.db")
    assert res.ok and res.events == 50 and res.last_seq == 50 and res.replies == 10
    assert dbsafe.open_checked(tmp_path) == tmp_path / "events.db"
    status = dbsafe.read_status(tmp_path)
    assert status["status"] == "ok" and status["events"] == 50


def test_first_start_without_a_log_is_fine(tmp_path: Path) -> None:
    assert dbsafe.open_checked(tmp_path / "new") == tmp_path / "new" / "events.db"
    assert dbsafe.read_status(tmp_path / "new")["new"] is True


def test_a_log_that_vanished_is_not_replaced_by_an_empty_one(tmp_path: Path) -> None:
    """The event log is gone: deleted by mistake, or a recover or restore cut short by a power loss between
    moving the old file aside and putting the new one in place. The controller used to take that for a first
    start and began the day again at A001. Now the status of its last start (or a damaged copy beside it)
    says the log existed: one clear message, exit 65, nothing created; a first start is still fine."""
    import yaml

    from waitroom import config

    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["broker"]["port"] = 9  # never reached
    cfg_path = tmp_path / "office.yaml"
    cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    d = tmp_path / "data"
    d.mkdir()
    db = d / data["controller"]["database"]
    assert issue_tickets(db, 3, [T0]) == ["A001", "A002", "A003"]
    assert dbsafe.open_checked(d, db.name) == db  # the controller's start: status ok, 4 events
    dbsafe.release_data_dir(d)
    db.unlink()

    def start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "waitroom.cli",
                "controller",
                "--config",
                str(cfg_path),
                "--data-dir",
                str(d),
                "--wait",
                "1",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
            timeout=60,
            check=False,
        )

    for _ in range(2):  # and again: its own status now says "missing"
        proc = start()
        assert proc.returncode == dbsafe.EXIT_DAMAGED, proc.stderr
        critical = [line for line in proc.stderr.splitlines() if "CRITICAL" in line]
        assert len(critical) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"The event log {db} is missing, but " in critical[0] and "waitroom db restore" in critical[0]
        assert not db.exists()
        assert dbsafe.read_status(d)["code"] == "database_missing"
    # a recover cut short: nothing in the status says so, the damaged copy beside it does
    (d / dbsafe.STATUS_NAME).unlink()
    (d / f"{db.name}.broken-20261207T101500Z").write_bytes(b"x" * PAGE)
    with pytest.raises(dbsafe.DatabaseMissing, match=r"a damaged copy of it, .*\.broken-20261207T101500Z"):
        dbsafe.open_checked(d, db.name)
    assert not db.exists()
    # a new log on purpose: the operator moves the traces away
    (d / f"{db.name}.broken-20261207T101500Z").unlink()
    (d / dbsafe.STATUS_NAME).unlink()
    assert dbsafe.open_checked(d, db.name) == db
    assert dbsafe.read_status(d)["new"] is True


def test_controller_recover_without_a_log_says_so_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "controller", "--recover", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        timeout=60,
        check=False,
    )
    assert proc.returncode == dbsafe.EXIT_DAMAGED and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1 and "could not be salvaged" in proc.stderr
    assert "no such event log" in proc.stderr


@pytest.mark.parametrize("damage", ["truncated", "middle page", "last page", "not a database"])
def test_damage_is_found_and_open_checked_refuses_with_an_operator_message(
    tmp_path: Path, damage: str
) -> None:
    db = make_log(tmp_path / "events.db")
    size = db.stat().st_size
    if damage == "truncated":
        os.truncate(db, size - PAGE // 2)  # half a page missing at the end, as after a torn write
    elif damage == "middle page":
        corrupt_page(db, size // PAGE // 2)
    elif damage == "last page":
        corrupt_page(db, size // PAGE - 1)
    else:
        db.write_bytes(b"this is not an SQLite file " * 200)
    res = dbsafe.quick_check(db)
    assert not res.ok and res.problems
    with pytest.raises(dbsafe.DatabaseDamaged) as err:
        dbsafe.open_checked(tmp_path)
    assert "waitroom db recover" in err.value.message and str(db) in err.value.message
    status = json.loads((tmp_path / dbsafe.STATUS_NAME).read_text())
    assert status["status"] == "damaged" and status["code"] == "database_damaged"
    assert status["exit_code"] == dbsafe.EXIT_DAMAGED == 65 and status["problems"]


# ------------------------------------------------------------------------------------------------- lock
def test_a_second_controller_on_the_same_data_is_refused(tmp_path: Path) -> None:
    make_log(tmp_path / "events.db", events=5, replies=0)
    dbsafe.open_checked(tmp_path)
    with pytest.raises(dbsafe.DataDirLocked) as err:
        dbsafe.DataDirLock(tmp_path).acquire()
    assert f"pid {os.getpid()}" in err.value.message
    # in another process too, with the lock's own exit code
    proc = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "db", "recover", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode == dbsafe.EXIT_LOCKED == 73, proc.stderr
    assert "another controller" in proc.stderr and proc.stderr.count("\n") == 1


CONTROLLER_WITH_SIZE_LIMIT = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
sys.argv = ["waitroom", *sys.argv[2:]]
runpy.run_module("waitroom.cli", run_name="__main__")
"""


def test_a_data_directory_that_cannot_be_written_stops_the_start_with_one_clear_line(
    broker, tmp_path: Path
) -> None:
    """The SD card is full, or turned read-only after errors: the controller used to die at start with a
    traceback from the lock file, again every 3 s under systemd. Now it says in one line what it cannot write,
    why and what to do, leaves the log alone, exits 74 (systemd starts it again) and starts once it can
    write."""
    import yaml

    from waitroom import config

    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["broker"]["port"] = broker.port
    data["office"]["id"] = "rodisk"
    cfg_path = tmp_path / "office.yaml"
    cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    d = tmp_path / "data"
    d.mkdir()
    db = d / data["controller"]["database"]
    assert len(issue_tickets(db, 12, [T0])) == 12
    events = seqs(db)[-1]
    before = db.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    args = ["controller", "--config", str(cfg_path), "--data-dir", str(d), "--wait", "5"]

    def refused(limit: int, path: str, reason: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-c", CONTROLLER_WITH_SIZE_LIMIT, str(limit), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert proc.returncode == dbsafe.EXIT_NOT_WRITABLE == 74, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "CRITICAL" in lines[0] and f"cannot write {path} ({reason})" in lines[0]
        assert "Free space" in lines[0] and "tries again by itself" in lines[0]
        assert db.read_bytes() == before

    # full: no file may grow (the lock file gets its holder's line first)
    refused(0, str(d / dbsafe.LOCK_NAME), "File too large")
    # read-only: a read-only bind mount of the data directory as root (EROFS), else a folder without
    # write permission (EACCES, for the status file; the lock file itself stays writable then)
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(d)], check=True)
            refused(10**9, str(d / dbsafe.LOCK_NAME), "Read-only file system")
        finally:
            subprocess.run(["umount", str(d)], check=True)
    else:
        d.chmod(0o555)
        try:
            refused(10**9, str(d / dbsafe.STATUS_NAME), "Permission denied")
        finally:
            d.chmod(0o755)
    # room again: it starts, checks the log and runs
    proc = subprocess.Popen(
        [sys.executable, "-m", "waitroom.cli", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert any("running (event log" in line for line in proc.stderr)  # stops reading at that line
        assert dbsafe.read_status(d)["status"] == "ok" and dbsafe.read_status(d)["events"] == events
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_lock_goes_with_a_killed_holder(tmp_path: Path) -> None:
    code = (
        "import sys, time; from waitroom import dbsafe; dbsafe.lock_data_dir(sys.argv[1]); "
        "print('locked', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(dbsafe.DataDirLocked):
            dbsafe.DataDirLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(5)
        with dbsafe.DataDirLock(tmp_path) as lock:
            assert lock.held
    finally:
        if holder.poll() is None:
            holder.kill()


# ------------------------------------------------------------------------- the last log's witness, the medium
def office_files(tmp_path: Path, port: int, office: str) -> tuple[Path, Path, Path]:
    """(office file, data dir, event log) of the example office on the broker at ``port``, open all day in a
    zone where it is midday (the test never meets the office's midnight)."""
    import yaml

    from tests.conftest import midday_zone
    from waitroom import config

    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["office"]["id"] = office
    data["office"]["hours"] = {day: ["00:00", "23:59"] for day in config.WEEKDAYS}
    data["office"]["timezone"] = midday_zone(time.time())
    data["broker"]["port"] = port
    cfg_path = tmp_path / "office.yaml"
    cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    d = tmp_path / "data"
    return cfg_path, d, d / data["controller"]["database"]


def waitroom_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "waitroom.cli", *args]


ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}


def start_controller(cfg_path: Path, d: Path, *extra: str) -> subprocess.Popen[bytes]:
    d.mkdir(exist_ok=True)
    log_file = (d.parent / "controller.log").open("wb")  # truncated: this start's lines only
    args = waitroom_cmd("controller", "--config", str(cfg_path), "--data-dir", str(d), "--wait", "5", *extra)
    return subprocess.Popen(args, stderr=log_file, env=ENV)


def refused_at_start(cfg_path: Path, d: Path, missing: Path | None, code: int, *extra: str) -> str:
    """Start the controller and expect it to refuse: exit ``code`` with one CRITICAL line (returned), and no
    new log made meanwhile at ``missing`` (the harm the refusal prevents)."""
    proc = start_controller(cfg_path, d, *extra)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            assert missing is None or not missing.exists(), "the controller began a new, empty log"
            time.sleep(0.05)
        assert proc.wait(30) == code, (d.parent / "controller.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = (d.parent / "controller.log").read_text()
    critical = [line for line in text.splitlines() if "CRITICAL" in line]
    assert len(critical) == 1 and "Traceback" not in text, text
    return critical[0]


def issue(rt: object, n: int) -> list[str]:
    numbers = []
    for _ in range(n):
        reply = rt.request_reply("ticket.issue", {"service": "pass"}, timeout=0.5, retries=120)  # type: ignore[attr-defined]
        assert reply["ok"], reply
        numbers.append(reply["result"]["ticket"]["number"])
    return numbers


def remove_log(db: Path) -> None:
    """The log is lost with its side files (deleted, or a card swapped)."""
    for p in (db, *dbsafe._side_files(db)):
        p.unlink(missing_ok=True)


def test_a_log_lost_on_its_first_day_is_no_first_start(broker, tmp_path: Path) -> None:
    """A new office's first day: the status of the start said the new log held nothing (events 0, new), so a
    log written all day and then lost (deleted, a card swapped) was taken for a first start at the next start:
    an empty office, A001 again, the day's tickets gone. Now the controller notes in its status that the log
    holds events after its first commit (once; the controller here is killed, it never stops cleanly): the
    next start refuses with the message, exit 65, status missing. `waitroom db forget` is the one way to
    begin a new log on purpose."""
    from waitroom import config
    from waitroom.node import NodeRuntime

    cfg_path, d, db = office_files(tmp_path, broker.port, "firstday")
    rt = NodeRuntime(config.load(cfg_path), "disp-1")
    assert rt.start(wait=10)
    proc = start_controller(cfg_path, d)  # a fresh office: a first start
    try:
        assert issue(rt, 3) == ["A001", "A002", "A003"]
        assert dbsafe.read_status(d)["status"] == "ok"
    finally:
        proc.kill()  # no clean stop: the note after the first commit is all the status has
        proc.wait()
    kept = dbsafe.backup(db, tmp_path / "copies")
    remove_log(db)
    for _ in range(2):  # and again: its own status now says "missing"
        line = refused_at_start(cfg_path, d, db, dbsafe.EXIT_DAMAGED)
        assert f"The event log {db} is missing, but it held events up to seq " in line, line
        assert "waitroom db restore" in line and f"waitroom db forget --data-dir {d}" in line
        assert dbsafe.read_status(d)["status"] == "missing"
    # the file put back is taken
    shutil.copyfile(kept, db)
    assert dbsafe.open_checked(d, db.name) == db and dbsafe.read_status(d)["status"] == "ok"
    dbsafe.release_data_dir(d)
    remove_log(db)
    assert refused_at_start(cfg_path, d, db, dbsafe.EXIT_DAMAGED)
    # the operator's way to a new log on purpose (the controller's office file is not needed: the status
    # names the log)
    out = subprocess.run(
        waitroom_cmd("db", "forget", "--data-dir", str(d)),
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    assert out.returncode == 0 and f"{db}: forgotten" in out.stdout and "new, empty log" in out.stdout, out
    proc = start_controller(cfg_path, d)
    try:
        assert issue(rt, 1) == ["A001"]
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        rt.stop()
    status = dbsafe.read_status(d)
    assert status["status"] == "ok" and status["last_seq"] >= 2 and status["stopped"]


def test_an_older_copy_or_another_log_in_its_place_is_refused(broker, tmp_path: Path) -> None:
    """A log put in the place of the controller's own -- an older copy (copied back by hand instead of
    `waitroom db restore`, which checks) or another office's -- used to be taken as it was: the tickets after
    its end were handed out again. Now the status holds the log's identity and, after a clean stop, its last
    seq."""
    from waitroom import config
    from waitroom.node import NodeRuntime

    cfg_path, d, db = office_files(tmp_path, broker.port, "copied")
    rt = NodeRuntime(config.load(cfg_path), "disp-1")
    assert rt.start(wait=10)
    proc = start_controller(cfg_path, d)
    try:
        assert issue(rt, 2) == ["A001", "A002"]
        copy = dbsafe.backup(db, tmp_path / "copies")  # this morning's copy
        assert issue(rt, 2) == ["A003", "A004"]
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        rt.stop()
    last = seqs(db)[-1]
    status = dbsafe.read_status(d)
    assert status["last_seq"] == last and status["log_id"] and status["created"] and status["stopped"]
    right = dbsafe.backup(db, tmp_path / "copies", tag="right")
    remove_log(db)
    shutil.copyfile(copy, db)
    for _ in range(2):  # and again: its own status now says "replaced"
        line = refused_at_start(cfg_path, d, None, dbsafe.EXIT_DAMAGED)
        assert f"The event log {db} is not the one the controller used last: it ends at seq " in line, line
        assert f"held events up to seq {last} (an older copy?)" in line and "waitroom db forget" in line
        assert dbsafe.read_status(d)["status"] == "replaced"
    assert seqs(db)[-1] < last  # left as it was
    # another log (with its own identity) in its place
    remove_log(db)
    issue_tickets(db, 9, [T0])
    with pytest.raises(
        dbsafe.DatabaseReplaced, match=r"its identity is [0-9a-f]{32}, the controller's last log"
    ):
        dbsafe.open_checked(d, db.name)
    dbsafe.release_data_dir(d)
    # the right file back: it is taken
    other = db.read_bytes()
    remove_log(db)
    shutil.copyfile(right, db)
    assert dbsafe.open_checked(d, db.name) == db and dbsafe.read_status(d)["status"] == "ok"
    dbsafe.release_data_dir(d)
    # or, on purpose, the other log: `waitroom db forget`
    remove_log(db)
    db.write_bytes(other)
    with pytest.raises(dbsafe.DatabaseReplaced):
        dbsafe.open_checked(d, db.name)
    dbsafe.release_data_dir(d)
    dbsafe.forget(d)
    dbsafe.release_data_dir(d)
    assert dbsafe.open_checked(d, db.name) == db and dbsafe.read_status(d)["status"] == "ok"


def test_a_data_directory_on_a_medium_that_is_not_mounted_is_refused(broker, tmp_path: Path) -> None:
    """The data directory on a USB SSD or a second partition that failed to mount: the controller used to
    start on the empty mount point beneath and take it for a first start (A001 again, the day's tickets
    gone). Now a data directory that /etc/fstab puts on a medium that is not mounted stops the start with one
    line naming both, exit 66 (not restarted by systemd), and nothing is written on the mount point."""
    cfg_path, d, db = office_files(tmp_path, broker.port, "unmounted")
    d.mkdir()  # the empty mount point of the root file system
    fstab = tmp_path / "fstab"
    fstab.write_text(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "proc /proc proc defaults 0 0\n"
        "PARTUUID=0a1b2c3d-01 / ext4 defaults,noatime 0 1\n"
        f"LABEL=WAITROOM {d} ext4 defaults,noatime,nofail 0 2\n"
    )
    line = refused_at_start(cfg_path, d, db, dbsafe.EXIT_NOT_MOUNTED, "--fstab", str(fstab))
    assert f"{d} lies on {d}, which {fstab} mounts, but nothing is mounted there now" in line, line
    assert f"`mount {d}`" in line and f"remove that entry from {fstab}" in line
    assert list(d.iterdir()) == []  # no lock, no status, no log on the root file system
    assert dbsafe.EXIT_NOT_MOUNTED == 66
    # the operator's override refuses there too: a new log on the empty mount point is the mistake itself
    with pytest.raises(dbsafe.DataDirNotMounted):
        dbsafe.forget(d, fstab=fstab)
    assert list(d.iterdir()) == []
    # without that entry (the data lives on the root file system from now on) it is a first start
    fstab.write_text("proc /proc proc defaults 0 0\n")
    assert dbsafe.open_checked(d, db.name, fstab=fstab) == db and dbsafe.read_status(d)["new"] is True


def test_which_mounts_the_data_directory_needs(tmp_path: Path) -> None:
    d = tmp_path / "var lib" / "waitroom"
    d.mkdir(parents=True)
    fstab = tmp_path / "fstab"
    units = tmp_path / "units"
    units.mkdir()

    def check(text: str, path: Path = d) -> tuple[str, str] | None:
        fstab.write_text(text)
        return dbsafe.not_mounted(path, fstab=fstab, mount_units=units)

    assert check("") is None
    assert (
        check("/dev/sda1 / ext4 defaults 0 1\n# LABEL=X {d} ext4 defaults 0 2\n".replace("{d}", str(d)))
        is None
    )
    assert check(f"UUID=1234 none swap sw 0 0\n/dev/sdb1 {tmp_path}/other ext4 defaults 0 2\n") is None
    # a parent of the data directory (the mount point's space written as in fstab)
    parent = str(tmp_path / "var lib").replace(" ", "\\040")
    assert check(f"/dev/sdb1 {parent} ext4 defaults 0 2\n") == (str(tmp_path / "var lib"), str(fstab))
    escaped = str(d).replace(" ", "\\040")
    assert check(f"/dev/sdb1\t{escaped}/\text4\tdefaults\t0\t2\n") == (str(d), str(fstab))  # tabs, a slash
    # mounted: fine (/proc is mounted wherever the tests run)
    assert check("proc /proc proc defaults 0 0\n", Path("/proc/self")) is None
    # a symlinked data directory counts where it leads
    link = tmp_path / "link"
    link.symlink_to(d)
    assert check(f"/dev/sdb1 {parent} ext4 defaults 0 2\n", link) == (str(tmp_path / "var lib"), str(fstab))
    # a systemd mount unit instead of an fstab line
    (units / "srv-waitroom.mount").write_text(
        f"[Unit]\nDescription=data\n\n[Mount]\nWhat=/dev/sdb1\nWhere={d}\n"
    )
    assert check("") == (str(d), str(units / "srv-waitroom.mount"))


# ---------------------------------------------------------------------------------------------- recover
@pytest.mark.parametrize("method", [None, False])
def test_recover_a_truncated_log_keeps_every_readable_event(tmp_path: Path, method: bool | None) -> None:
    db = make_log(tmp_path / "events.db")
    os.truncate(db, db.stat().st_size - PAGE // 2)
    report = dbsafe.recover(db, use_cli=method)
    broken = Path(report.broken)
    assert broken.exists() and broken.parent == tmp_path and ".broken-" in broken.name
    assert dbsafe.quick_check(db).ok
    got = seqs(db)
    assert report.events == len(got) and report.missing_seqs == [] and got == list(range(1, len(got) + 1))
    assert len(got) >= 2990, "at most the rows of the torn page are gone"
    store = EventStore(db)
    try:
        assert store.reply_for("disp-1", "r5")[1]["id"] == "r5", "stored replies survive: still idempotent"
    finally:
        store.close()
    assert dbsafe.read_status(tmp_path)["status"] == "recovered"


@pytest.mark.parametrize("method", [None, False])
def test_recover_a_page_corrupted_log_reports_exactly_what_was_lost(
    tmp_path: Path, method: bool | None
) -> None:
    db = make_log(tmp_path / "events.db")
    corrupt_page(db, db.stat().st_size // PAGE // 2)
    report = dbsafe.recover(db, use_cli=method)
    got = seqs(db)
    lost = sorted(set(range(1, 3001)) - set(got))
    assert lost, "a page of events is gone"
    assert len(lost) < 60, "one 4 KiB page holds a few dozen events, no more is lost"
    assert report.missing_events == len(lost)
    assert [s for a, b in report.missing_seqs for s in range(a, b + 1)] == lost
    assert report.events == 3000 - len(lost) and report.last_seq == 3000
    assert "missing events" in report.summary()
    assert dbsafe.quick_check(db).ok and dbsafe.quick_check(report.broken).ok is False


def office_day(db: Path, start: float, tickets: int, calls: int) -> list[str]:
    """An office day of the example office on the log ``db`` from ``start``: ``tickets`` issued, then
    counter c1 calls ``calls`` of them (each call ends the one before as served); the numbers issued."""
    from waitroom import config
    from waitroom.controller import Office

    now = [start]
    store = EventStore(db)
    try:
        office = Office(config.load(config.EXAMPLE_CONFIG), store, clock=lambda: now[0])

        def run(node: str, op: str, **args: object) -> dict:
            now[0] += 30
            out = office.handle(node, encode(command(op, args)))
            assert out.reply["ok"], out.reply
            return out.reply["result"]

        run("counter-1", "counter.open", counter="c1")
        numbers = [run("disp-1", "ticket.issue", service="pass")["ticket"]["number"] for _ in range(tickets)]
        for _ in range(calls):
            run("counter-1", "counter.call_next", counter="c1")
        return numbers
    finally:
        store.close()


def test_the_controller_goes_on_after_a_salvage_that_lost_the_start_of_the_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tuesday mid-morning the page with the day's first events is damaged. `waitroom db recover` salvages
    the rest, but the day's start and its first tickets are gone, and the calls of those tickets name tickets
    the log no longer has: the controller died at start on them (a traceback, again at every restart), and
    without the day's start it would have begun the day again at A001. Now it passes over what does not fit,
    rebuilds the day from its events and numbers after the highest readable ticket."""
    from waitroom import config
    from waitroom.controller import Office

    cfg = config.load(config.EXAMPLE_CONFIG)
    db = tmp_path / cfg.controller.database
    monday, tuesday = T0 + 3600, T0 + 86400 + 3600  # 10:00 in Berlin
    office_day(db, monday, tickets=20, calls=10)
    issued = office_day(db, tuesday, tickets=60, calls=30)
    assert issued[-1] == "A060"
    store = EventStore(db)
    start = store.db.execute("SELECT MAX(seq) FROM events WHERE type='day_started'").fetchone()[0]
    store.close()
    # the page that holds Tuesday's start (its text may linger on other pages too, in their free space)
    pattern = b'"type":"day_started","ts":' + str(tuesday + 30).encode()
    where = ["--config", str(config.EXAMPLE_CONFIG), "--data-dir", str(tmp_path)]
    original = db.read_bytes()
    for at in sorted({m.start() // PAGE for m in re.finditer(re.escape(pattern), original)}):
        db.write_bytes(original)
        corrupt_page(db, at)
        assert main(["db", "recover", *where]) == 0
        dbsafe.release_data_dir(tmp_path)
        if start not in seqs(db):
            break
    else:
        raise AssertionError("no page with Tuesday's start found")
    salvaged = seqs(db)
    lost = set(range(1, salvaged[-1] + 1)) - set(salvaged)
    assert min(lost) > 1 and max(lost) < salvaged[-1] - 20, "Monday and the rest of Tuesday are there"
    clock = [tuesday + 3 * 3600]
    capsys.readouterr()  # the logging set up by ``main`` writes to stderr
    for expected in ("A061", "A062"):  # and again after a restart
        store = EventStore(db)
        try:
            office = Office(cfg, store, clock=lambda: clock[0])
            assert office.state.day == "2025-12-02"
            out = office.handle("disp-1", encode(command("ticket.issue", {"service": "pass"})))
            assert out.reply["ok"] and out.reply["result"]["ticket"]["number"] == expected, out.reply
            out = office.handle("counter-1", encode(command("counter.call_next", {"counter": "c1"})))
            assert out.reply["ok"], out.reply
        finally:
            store.close()
    err = capsys.readouterr().err
    assert err.count("the start of day 2025-12-02 was lost; rebuilt from its events") == 2
    assert "passed over" in err and "their tickets or counters were in events that were lost" in err


def test_an_event_the_controller_cannot_apply_stops_it_with_a_clear_message(tmp_path: Path) -> None:
    """A log with an event this version does not know (written by a newer one before a downgrade): one
    CRITICAL line naming the log and the event, the status file says it, exit 65 (systemd does not restart);
    after `waitroom db recover` the controller passes over that event."""
    import yaml

    from waitroom import config
    from waitroom.controller import Office

    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    data["broker"]["port"] = 9  # never reached
    cfg_path = tmp_path / "office.yaml"
    cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True))
    db = tmp_path / data["controller"]["database"]
    office_day(db, T0 + 3600, tickets=5, calls=2)
    store = EventStore(db)
    last = store.last_seq()
    store.commit([{"seq": last + 1, "ts": T0 + 7200, "type": "ticket_teleported", "ticket": "x"}], None)
    store.close()
    where = ["--config", str(cfg_path), "--data-dir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "controller", *where, "--wait", "1"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        timeout=60,
        check=False,
    )
    assert proc.returncode == dbsafe.EXIT_DAMAGED, proc.stderr
    critical = [line for line in proc.stderr.splitlines() if "CRITICAL" in line]
    assert len(critical) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        f"{db} has an event the controller cannot apply (seq {last + 1}, 'ticket_teleported'" in critical[0]
    )
    status = dbsafe.read_status(tmp_path)
    assert (status["status"], status["code"], status["seq"]) == ("damaged", "event_does_not_fit", last + 1)
    assert main(["db", "recover", *where]) == 0
    dbsafe.release_data_dir(tmp_path)
    store = EventStore(db)
    try:
        office = Office(config.load(cfg_path), store, clock=lambda: T0 + 7300)
        assert office.state.seq == last + 1 and len(office.state.tickets) == 5
    finally:
        store.close()


def test_recover_refuses_a_missing_file_clearly(tmp_path: Path) -> None:
    with pytest.raises(dbsafe.DatabaseError, match="no such event log"):
        dbsafe.recover(tmp_path / "events.db")


# ----------------------------------------------------------------------------------------------- backup
def test_online_backup_while_the_controller_writes(tmp_path: Path) -> None:
    db = make_log(tmp_path / "events.db", events=500, replies=100)
    store = EventStore(db)
    stop = threading.Event()
    written = [500]

    def writer() -> None:
        while not stop.is_set():
            n = written[0] + 1
            store.commit([{"seq": n, "ts": T0 + n, "type": "ticket_issued", "ticket": "A001"}], None)
            written[0] = n

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        time.sleep(0.05)
        path = dbsafe.backup(db, tmp_path / "backups", tag="nightly")
    finally:
        stop.set()
        t.join(5)
        store.close()
    assert path.parent == tmp_path / "backups" and path.name.endswith("-nightly.db")
    res = dbsafe.quick_check(path)
    assert res.ok
    got = seqs(path)
    assert got == list(range(1, len(got) + 1)), "a consistent snapshot: a gap-free prefix of the log"
    assert 500 <= len(got) <= written[0]
    assert not Path(str(path) + "-wal").exists(), "a backup is one self-contained file"


def test_backup_retention_per_tag(tmp_path: Path) -> None:
    db = make_log(tmp_path / "events.db", events=20, replies=0)
    made = [dbsafe.backup(db, tmp_path / "b", tag="nightly", keep=3) for _ in range(5)]
    upgrade = dbsafe.backup(db, tmp_path / "b", tag="pre-upgrade", keep=3)
    left = dbsafe.list_backups(tmp_path / "b", db)
    assert sorted(left) == sorted([*made[-3:], upgrade])
    with pytest.raises(dbsafe.DatabaseError, match="tag"):
        dbsafe.backup(db, tmp_path / "b", tag="../x")


def test_restore_puts_the_backup_in_place_and_keeps_the_current_log(tmp_path: Path) -> None:
    db = make_log(tmp_path / "events.db", events=100, replies=0)
    path = dbsafe.backup(db, tmp_path / "backups")
    store = EventStore(db)
    store.commit([{"seq": 101, "ts": T0 + 101, "type": "ticket_issued"}], None)
    store.close()
    with pytest.raises(dbsafe.DatabaseError, match=r"1 readable events after .* \(seq 100\): seq 101\.\.101"):
        dbsafe.restore(path, db, data_dir=tmp_path)  # that event would be lost: only with force
    assert seqs(db) == list(range(1, 102))
    kept = dbsafe.restore(path, db, data_dir=tmp_path, force=True)
    assert seqs(db) == list(range(1, 101)) and seqs(kept)[-1] == 101
    assert dbsafe.read_status(tmp_path)["status"] == "restored"
    # a damaged backup is refused and nothing is touched
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"x" * 8192)
    with pytest.raises(dbsafe.DatabaseError, match="not a usable backup"):
        dbsafe.restore(bad, db, data_dir=tmp_path)
    assert seqs(db) == list(range(1, 101))


def test_restoring_last_night_s_backup_over_today_s_damaged_log_is_refused(tmp_path: Path, capsys) -> None:
    """Mid-morning the log is damaged. Last night's backup holds yesterday; the damaged log still holds the
    morning's tickets on its readable pages. Restoring the backup would lose them and the controller would
    number today's tickets from the start again: two citizens with the same number. ``waitroom db restore``
    says so and points to ``recover``; ``--force`` restores anyway."""
    db = tmp_path / "events.db"
    d = ["--data-dir", str(tmp_path)]
    now = [T0]  # Monday 09:00 in Berlin

    def issue(n: int) -> list[str]:
        return issue_tickets(db, n, now)

    assert issue(3) == ["A001", "A002", "A003"]
    assert main(["db", "backup", *d, "--tag", "nightly"]) == 0
    backup = Path(capsys.readouterr().out.split(":")[0])
    assert issue(120) == [f"A{i:03d}" for i in range(4, 124)]  # spread over many pages
    before = seqs(db)
    corrupt_page(db, 3)
    assert main(["db", "check", *d]) == dbsafe.EXIT_DAMAGED
    capsys.readouterr()
    files = lambda: sorted(p.name for p in tmp_path.iterdir() if p.name != dbsafe.LOCK_NAME)  # noqa: E731
    untouched = (db.read_bytes(), files())
    assert main(["db", "restore", *d, str(backup)]) == 1
    err = capsys.readouterr().err
    assert " of them tickets issued" in err and "waitroom db recover" in err and "--force" in err, err
    assert (db.read_bytes(), files()) == untouched
    # recover keeps what is readable: numbering goes on after the highest number it kept
    assert main(["db", "recover", *d]) == 0
    capsys.readouterr()
    assert seqs(db)[-1] == before[-1]
    assert issue(1) == ["A124"]
    # --force: the operator's choice, with what it costs (the morning's numbers again)
    assert main(["db", "restore", *d, "--force", str(backup)]) == 0
    assert issue(1) == ["A004"]


# ------------------------------------------------------------------------------------------------- CLI
def test_waitroom_db_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_log(tmp_path / "events.db", events=40, replies=5)
    d = ["--data-dir", str(tmp_path)]
    assert main(["db", "check", *d]) == 0
    assert "ok (40 events" in capsys.readouterr().out
    assert main(["db", "backup", *d, "--tag", "pre-upgrade", "--keep", "2"]) == 0
    backup = Path(capsys.readouterr().out.split(":")[0])
    assert backup.exists()
    corrupt_page(tmp_path / "events.db", 2)
    assert main(["db", "check", *d]) == dbsafe.EXIT_DAMAGED
    assert main(["db", "restore", *d, str(backup)]) == 0
    assert main(["db", "check", *d, "--full"]) == 0
    capsys.readouterr()
    assert main(["db", "restore", *d, str(tmp_path / "nope.db")]) == 1
    assert "nope.db" in capsys.readouterr().err
    assert main(["db", "check", "--data-dir", str(tmp_path / "empty")]) == 1


def test_the_admin_page_says_why_the_controller_does_not_start(broker, tmp_path: Path) -> None:
    """A controller stopped by its event log (missing here; damaged and replaced alike) showed on the admin
    page only as "no connection to the controller": the reason and what to do were in the journal of another
    machine's shell. The web app shares the data directory: the page now says it in words, with the
    controller's message as the detail, and the alarm is gone once the controller starts again."""
    from tests.test_clock import alarm_text
    from tests.web_helpers import login
    from waitroom import config
    from waitroom.node import NodeRuntime
    from waitroom.web import create_app

    cfg_path, d, db = office_files(tmp_path, broker.port, "adminlog")
    cfg = config.load(cfg_path)
    rt = NodeRuntime(cfg, "disp-1")
    assert rt.start(wait=10)
    proc = start_controller(cfg_path, d)
    try:
        assert issue(rt, 2) == ["A001", "A002"]
    finally:
        proc.kill()
        proc.wait()
    app = create_app(
        cfg, data_dir=d, test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True}
    )
    app.extensions["waitroom_users"].add("admin", "correct-horse-1", "admin")
    try:
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        assert 'id="alarm-event_log' not in admin.get("/admin/").get_data(as_text=True)
        remove_log(db)
        refused_at_start(cfg_path, d, db, dbsafe.EXIT_DAMAGED)
        html = admin.get("/admin/").get_data(as_text=True)
        assert alarm_text(html, "event_log_missing").startswith(
            "Die Steuerung ist angehalten: Ihr Ereignisprotokoll fehlt."
        )
        assert f"waitroom db forget --data-dir {d}" in html.split('id="alarm-event_log_missing"')[1]  # detail
        fragment = admin.get("/admin/alarms?lang=en").get_data(as_text=True)
        assert alarm_text(fragment, "event_log_missing").startswith(
            "The controller is stopped: its event log"
        )
        out = subprocess.run(
            waitroom_cmd("db", "forget", "--data-dir", str(d)), capture_output=True, env=ENV, check=False
        )
        assert out.returncode == 0, out
        proc = start_controller(cfg_path, d)
        try:
            assert issue(rt, 1) == ["A001"]
            assert 'id="alarm-event_log' not in admin.get("/admin/").get_data(as_text=True)
        finally:
            proc.terminate()
            proc.wait(20)
    finally:
        app.extensions["waitroom"].close()
        rt.stop()
