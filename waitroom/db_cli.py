"""``waitroom db ...``: check, back up, restore and salvage the controller's event log.

Exit codes: 0 done / the log is fine, 65 (``dbsafe.EXIT_DAMAGED``) the log is damaged, 66
(``dbsafe.EXIT_NOT_MOUNTED``) the data directory's medium is not mounted (``forget``), 73
(``dbsafe.EXIT_LOCKED``) a controller runs on the data directory (restore, recover and forget need it
stopped), 1 anything else (a missing file, a bad argument), always with one line on stderr saying what to do.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from waitroom import config, dbsafe
from waitroom.errors import ConfigError

log = logging.getLogger(__name__)


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(data dir, event log) from --data-dir and the office configuration's controller.database."""
    database = "events.db"
    if args.config:
        database = config.load(args.config).controller.database
    data_dir = config.data_dir(args.data_dir)
    return data_dir, config.in_data_dir(database, args.data_dir)


def cmd_check(args: argparse.Namespace) -> int:
    _, db = _paths(args)
    res = dbsafe.quick_check(db, full=args.full)
    if args.json:
        print(json.dumps(res.__dict__, ensure_ascii=False))
    else:
        print(res.summary())
    if not Path(db).is_file():
        return 1
    return 0 if res.ok else dbsafe.EXIT_DAMAGED


def cmd_backup(args: argparse.Namespace) -> int:
    data_dir, db = _paths(args)
    dest = Path(args.dest) if args.dest else data_dir / dbsafe.BACKUP_DIR
    path = dbsafe.backup(db, dest, tag=args.tag, keep=args.keep)
    print(f"{path}: written")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    data_dir, db = _paths(args)
    kept = dbsafe.restore(args.backup, db, data_dir=data_dir, force=args.force)
    print(
        f"{db}: restored from {args.backup}" + (f"; the previous log is kept as {kept}" if kept != db else "")
    )
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    data_dir, db = _paths(args)
    use_cli = {"auto": None, "sqlite3": True, "python": False}[args.method]
    report = dbsafe.recover(db, data_dir=data_dir, use_cli=use_cli)
    print(report.summary())
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    data_dir, db = _paths(args)
    db, previous = dbsafe.forget(data_dir, db if args.config else None)
    was = f" (its last status: {previous.get('status')})" if previous else ""
    print(
        f"{db}: forgotten{was}. The controller's next start takes the log as it is now: "
        + ("the one in its place." if db.exists() else "a new, empty log (ticket numbers begin again at 1).")
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    data_dir, db = _paths(args)
    dest = Path(args.dest) if args.dest else data_dir / dbsafe.BACKUP_DIR
    for p in dbsafe.list_backups(dest, db):
        print(f"{p}  {p.stat().st_size} bytes")
    status = dbsafe.read_status(data_dir)
    if status:
        print(f"status: {status.get('status')} ({status.get('path')})")
    return 0


def _run(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        except dbsafe.DataDirNotMounted as exc:
            print(f"waitroom db: {exc.message}", file=sys.stderr)
            return dbsafe.EXIT_NOT_MOUNTED
        except dbsafe.DataDirLocked as exc:
            print(f"waitroom db: {exc.message}", file=sys.stderr)
            return dbsafe.EXIT_LOCKED
        except dbsafe.DatabaseDamaged as exc:
            print(f"waitroom db: {exc.message}", file=sys.stderr)
            return dbsafe.EXIT_DAMAGED
        except (dbsafe.DatabaseError, OSError) as exc:
            print(f"waitroom db: {exc}", file=sys.stderr)
            return 1

    return wrapped


def register(subparsers: Any) -> None:
    """Add ``waitroom db`` with its subcommands."""
    p = subparsers.add_parser("db", help="check, back up, restore or salvage the controller's event log")
    sub = p.add_subparsers(dest="db_command", required=True, metavar="WHAT")

    def cmd(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("--config", "-c", help="office configuration (for controller.database)")
        sp.add_argument(
            "--data-dir", help="the controller's data folder (default $WAITROOM_DATA_DIR or ./var)"
        )
        sp.set_defaults(func=_run(func))
        return sp

    sp = cmd("check", cmd_check, "integrity check of the event log (exit 65 when it is damaged)")
    sp.add_argument("--full", action="store_true", help="PRAGMA integrity_check instead of quick_check")
    sp.add_argument("--json", action="store_true", help="print the result as JSON")

    sp = cmd("backup", cmd_backup, "online backup through SQLite's backup API (the controller may run)")
    sp.add_argument("--dest", help="backup folder (default <data dir>/backups)")
    sp.add_argument("--tag", default="manual", help="nightly, pre-upgrade, manual (default manual)")
    sp.add_argument("--keep", type=int, default=14, help="backups of this tag to keep (default 14)")

    sp = cmd("restore", cmd_restore, "replace the event log by a backup (the controller must be stopped)")
    sp.add_argument("backup", help="backup file (see `waitroom db list`)")
    sp.add_argument(
        "--force",
        action="store_true",
        help="restore although the current log holds events after the backup (they are lost, and their "
        "ticket numbers are handed out again; `waitroom db recover` keeps them)",
    )

    sp = cmd("recover", cmd_recover, "salvage a damaged event log into a new one; the damaged file is kept")
    sp.add_argument(
        "--method",
        choices=["auto", "sqlite3", "python"],
        default="auto",
        help="auto: row by row plus sqlite3's .recover when it works (default)",
    )

    sp = cmd(
        "forget",
        cmd_forget,
        "let the controller's next start begin a new, empty event log in place of a missing one, or go on "
        "with another log put in its place (the controller must be stopped; the last status is kept in the "
        "new one)",
    )

    sp = cmd("list", cmd_list, "list the backups and the last check result")
    sp.add_argument("--dest", help="backup folder (default <data dir>/backups)")
