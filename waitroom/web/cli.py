"""``waitroom web``: serve the web app with gunicorn, and manage its user accounts.

    waitroom web [--config FILE] [--node web] [--bind 127.0.0.1:8080] [--workers 1] [--demo]
    waitroom web create-admin --username NAME     (password from a prompt or $WAITROOM_USER_PASSWORD)
    waitroom web add-user --username NAME [--role staff|admin|booking] [--counters c1,c2]
                          [--replace [--no-must-change]]

A password set with ``--replace`` is one handed over (IT resets a forgotten one): as after a reset on the
admin's accounts page, the user must choose their own at the next login (``must_change``), unless
``--no-must-change`` says it is the user's own. A new account without ``--replace`` (the first admin, typed
by the person who will use it) is not marked; ``--must-change`` marks it.

gunicorn runs the app with the **gevent** worker: every request and every open live stream (SSE) is a
greenlet of a few kilobytes instead of a thread, so thousands of idle ticket-status streams cost little and
never take the staff pages' place (see docs/architecture.md, "The web app under a crowd"). Each worker is
its own MQTT client of the web node (client id with the process id) and keeps its own office copy; logins,
sessions and rate-limit counters live in SQLite files of the data directory, shared by every worker.
``--worker-class gthread`` keeps the old thread-per-request server (then ``--threads`` streams at most).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import Any

from waitroom.config import data_dir

log = logging.getLogger(__name__)

PASSWORD_ENV = "WAITROOM_USER_PASSWORD"


def _data_dir(args: argparse.Namespace) -> Path:
    return data_dir(args.data_dir)


def cmd_run(args: argparse.Namespace) -> int:
    from waitroom.cli import load_config
    from waitroom.errors import ConfigError
    from waitroom.web.settings import secret_key, web_settings

    cfg = load_config(args.config)
    try:  # fail before forking: a missing production secret or a bad web: section stops here
        secret_key(web_settings(cfg, args.config), demo=args.demo)
        if cfg.role_of(args.node) is None:
            raise ConfigError(
                args.config, [f"nodes: no node {args.node!r}; add {{id: {args.node}, role: web}}"]
            )
        accounts = cfg.node(args.node).workers
        if args.workers > accounts:
            raise ConfigError(
                args.config,
                [
                    f"nodes[{args.node}].workers: {accounts}, but --workers {args.workers}: every worker "
                    "needs an MQTT account of its own (set workers, then regenerate the broker's password "
                    "file and ACL)"
                ],
            )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    ddir = _data_dir(args)

    def factory() -> Any:
        from waitroom.web import create_app

        return create_app(cfg, demo=args.demo, node_id=args.node, data_dir=ddir)

    from waitroom.serving import serve

    log.info("serving the web app of office %s on http://%s", cfg.office.id, args.bind)
    serve(
        factory,
        args.bind,
        args.threads,
        workers=args.workers,
        worker_class=args.worker_class,
        log_level=args.log_level,
        access_log=args.access_log,
    )
    return 0


def _password(args: argparse.Namespace) -> str:
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("the passwords differ")
    return first


def _store(args: argparse.Namespace) -> Any:
    from waitroom.cli import load_config
    from waitroom.web.settings import in_data_dir, web_settings
    from waitroom.web.users import UserStore

    cfg = load_config(args.config)
    return UserStore(in_data_dir(_data_dir(args), web_settings(cfg, args.config).users_db)), cfg


def cmd_add_user(args: argparse.Namespace, role: str | None = None) -> int:
    from waitroom.web.users import UserError

    store, cfg = _store(args)
    counters = [c for c in (args.counters or "").split(",") if c] if hasattr(args, "counters") else []
    unknown = [c for c in counters if c not in cfg.counter_ids]
    if unknown:
        print(
            f"unknown counter(s) {', '.join(unknown)}; known: {', '.join(sorted(cfg.counter_ids))}",
            file=sys.stderr,
        )
        return 1
    try:
        must_change = args.replace if args.must_change is None else args.must_change
        user = store.add(
            args.username,
            _password(args),
            role or args.role,
            counters,
            replace=args.replace,
            must_change=must_change,
        )
        if args.replace:  # a new password ends every login of that account, in every worker
            from waitroom.web.security import SessionStore

            ended = SessionStore(store.path).revoke_user(user.name)
            if ended:
                print(f"{ended} session(s) of {user.name} ended")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    later = "; a new password must be chosen at the next login" if user.must_change else ""
    print(f"user {user.name} ({user.role}) saved in {store.path}{later}")
    return 0


def cmd_create_admin(args: argparse.Namespace) -> int:
    return cmd_add_user(args, role="admin")


def register(subparsers: Any) -> None:
    from waitroom.cli import add_config_arg

    p = subparsers.add_parser(
        "web", help="serve the web app (staff, admin, public pages) with gunicorn; manage its users"
    )
    add_config_arg(p)
    p.add_argument(
        "--data-dir",
        help="folder of the user database and the event log (default $WAITROOM_DATA_DIR or ./var)",
    )
    p.add_argument("--node", "-n", default="web", help="node id of the web app (role web; default web)")
    p.add_argument("--bind", "-b", default="127.0.0.1:8080", help="address:port (default 127.0.0.1:8080)")
    p.add_argument("--workers", "-w", type=int, default=1, help="gunicorn worker processes (default 1)")
    p.add_argument(
        "--worker-class",
        choices=("gevent", "gthread"),
        default="gevent",
        help="gevent (default): thousands of live streams per worker; gthread: a thread per request",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=64,
        help="gthread only: threads = concurrent requests and live streams (default 64)",
    )
    p.add_argument("--log-level", default="info", help="gunicorn log level (default info)")
    p.add_argument("--access-log", action="store_true", help="gunicorn access log on stderr")
    p.add_argument("--demo", action="store_true", help="demo mode: /demo page, generated secret key")
    p.set_defaults(func=cmd_run)
    sub = p.add_subparsers(dest="web_command", metavar="ACTION")

    for name, func, helptext in (
        ("create-admin", cmd_create_admin, "create the first (or another) admin"),
        ("add-user", cmd_add_user, "add a staff or admin account"),
    ):
        q = sub.add_parser(name, help=helptext)
        add_config_arg(q)
        q.add_argument("--data-dir", help="folder of the user database (default $WAITROOM_DATA_DIR or ./var)")
        q.add_argument(
            "--username",
            "-u",
            required=True,
            help="login name (the password comes from a prompt or $WAITROOM_USER_PASSWORD)",
        )
        q.add_argument(
            "--replace",
            action="store_true",
            help="overwrite an existing account (new password; the user must change it at the next login)",
        )
        q.add_argument(
            "--must-change",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="the user must choose a new password at the next login (default: with --replace, a password "
            "handed over is a temporary one); --no-must-change: the password is the user's own",
        )
        if name == "add-user":
            q.add_argument(
                "--role",
                choices=("staff", "admin", "booking"),
                default="staff",
                help="staff (counters), admin (everything) or booking (the booking page, for 115 agents); "
                "default staff",
            )
            q.add_argument("--counters", help="comma-separated counters this user may operate (default: all)")
        q.set_defaults(func=func)
