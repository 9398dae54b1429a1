"""The ``waitroom`` command: one entry point with subcommands for every process of an office."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from waitroom import __version__, paths
from waitroom.errors import ConfigError, HardwareError

log = logging.getLogger("waitroom")

# Node roles -> "module:factory". A factory takes (runtime, cfg, node, *, pins, simulate) and returns an obj.
# with start() and stop(); the same code runs on a Pi and, with pins="mock", on a laptop or in the demo.
NODE_ROLES: dict[str, str] = {
    "dispenser": "edge.dispenser:create",
    "counter": "edge.counter:create",
    "assist": "edge.assist:create",
    "display": "displays.node:create",
}
# Roles whose node has no GPIO pins: they get no pin factory, so gpiozero is not loaded (2.4 MB, issue 17).
ROLES_WITHOUT_PINS = frozenset({"display"})
# Modules that add their own subcommands with register(subparsers).
COMMAND_MODULES = [
    "waitroom.web.cli",
    "waitroom.sim.cli",
    "mqtt_broker.cli",
    "waitroom.demo",
    "waitroom.city.cli",
    "waitroom.predict_eval",
    "waitroom.db_cli",
    "waitroom.appointments.cli",
]


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr; under systemd (JOURNAL_STREAM set) without our own timestamp, journald adds one."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), format=fmt, stream=sys.stderr, force=True
    )
    for noisy in ("transitions", "amqtt", "werkzeug", "waitroom.paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# Roles that start from their validated-config cache (waitroom.nodeconfig): no pydantic in the node process.
CACHED_ROLES = frozenset({"counter", "assist", "dispenser", "display"})


def load_config(path: str | Path) -> Any:
    """``config.load_or_exit``; the schema (pydantic) is imported when a command loads a configuration."""
    from waitroom import config

    return config.load_or_exit(path)


def data_dir(args: argparse.Namespace) -> Path:
    return paths.data_dir(getattr(args, "data_dir", None))


def wait_for_signal(alive: Callable[[], bool] | None = None, done: threading.Event | None = None) -> None:
    """Tell systemd we are ready, pet its watchdog while ``alive()`` holds, return on SIGINT or SIGTERM (or
    when ``done`` is set)."""
    from waitroom.systemd import Watchdog

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    dog = Watchdog(alive)
    dog.ready()
    while not stop.wait(0.5) and not (done is not None and done.is_set()):
        dog.poll()
    dog.stopping()


def add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("WAITROOM_CONFIG", str(paths.EXAMPLE_CONFIG)),
        help="office configuration file (default: $WAITROOM_CONFIG or the bundled example office)",
    )


# Sections a process validates when it starts, as "module:function(cfg)": check-config runs them too.
SECTION_CHECKS = {
    "display": "displays.settings:for_node",  # the office's section; each display node adds its options
    "web": "waitroom.web.settings:web_settings",
}


NAMED_FILE = "printer.logo: file "


def check_sections(cfg: Any) -> list[str]:
    """What the nodes and the web app validate when they start (each node's options, pins and printer, the
    ``display:`` and ``web:`` sections), so that a file ``check-config`` passes also starts every process."""
    from waitroom import nodeconfig

    errors: list[str] = []

    def collect(ref: str, *a: Any) -> None:
        module, _, func = ref.partition(":")
        try:
            getattr(importlib.import_module(module), func)(*a)
        except ConfigError as exc:
            # Files the configuration names (a printer logo) are checked where the node runs, when it builds
            # its cache: check-config may run elsewhere (Ansible validates the file on the admin's target).
            errors.extend(e for e in exc.errors if e not in errors and not e.startswith(NAMED_FILE))
        except ValueError as exc:  # a node's own check that names its key in the message
            errors.append(str(exc))

    for node in cfg.nodes:
        if node.role in nodeconfig.PREPARE:
            collect(nodeconfig.PREPARE[node.role], cfg, node)
    for ref in SECTION_CHECKS.values():
        collect(ref, cfg)
    return errors


# ------------------------------------------------------------------------------------------------ commands
def cmd_check_config(args: argparse.Namespace) -> int:
    from waitroom import config

    try:
        cfg = config.load(args.file)
        errors = check_sections(cfg)
        if errors:
            raise ConfigError(args.file, errors)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.file}: OK - office {cfg.office.id} ({cfg.office.name}): {len(cfg.services)} services, "
        f"{len(cfg.counters)} counters, {len(cfg.nodes)} nodes"
    )
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    import sqlite3

    from waitroom import dbsafe
    from waitroom.service import ControllerService

    cfg = load_config(args.config)
    clock = None
    if getattr(args, "clock_file", None):  # tests only (python -m bench soak): before the data is locked
        from waitroom.service import FileClock

        try:
            clock = FileClock(args.clock_file)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 1
        log.warning("test clock: the time comes from %s, not from the system clock", args.clock_file)
    db = paths.in_data_dir(cfg.controller.database, getattr(args, "data_dir", None))
    try:
        if getattr(args, "recover", False):
            report = dbsafe.recover(db, data_dir=db.parent)
            log.warning("event log recovered: %s", report)
        # the medium, the lock, then the integrity check and the witness of the last log
        db = dbsafe.open_checked(db.parent, db.name, fstab=getattr(args, "fstab", None) or dbsafe.FSTAB)
    except dbsafe.DataDirNotMounted as exc:
        log.critical("%s", exc.message)
        return dbsafe.EXIT_NOT_MOUNTED  # systemd does not restart on this (RestartPreventExitStatus)
    except dbsafe.DataDirLocked as exc:
        log.critical("%s", exc.message)
        return dbsafe.EXIT_LOCKED  # systemd does not restart on this (RestartPreventExitStatus)
    except dbsafe.DatabaseDamaged as exc:
        log.critical("%s", exc.message)
        return dbsafe.EXIT_DAMAGED
    except dbsafe.DataDirNotWritable as exc:
        log.critical("%s", exc.message)
        return dbsafe.EXIT_NOT_WRITABLE  # systemd starts it again: back by itself once there is room
    except (dbsafe.DatabaseError, OSError) as exc:  # --recover: nothing to salvage, or the salvage failed
        log.critical("the event log %s could not be salvaged: %s", db, exc)
        return dbsafe.EXIT_DAMAGED
    try:
        svc = ControllerService(cfg, str(db), **({"clock": clock} if clock is not None else {}))
    except dbsafe.EventDoesNotFit as exc:  # the state cannot be rebuilt from the log
        log.critical("%s", exc.message)
        with contextlib.suppress(OSError):
            dbsafe.write_status(
                db.parent,
                "damaged",
                code="event_does_not_fit",
                path=str(db),
                seq=exc.seq,
                message=exc.message,
                exit_code=dbsafe.EXIT_DAMAGED,
            )
        return dbsafe.EXIT_DAMAGED  # systemd does not restart on this: a restart would not change it
    except (OSError, sqlite3.OperationalError) as exc:  # the log's first write (its WAL) on a full disk
        log.critical("%s", dbsafe.DataDirNotWritable(db, exc).message)
        return dbsafe.EXIT_NOT_WRITABLE
    # The status witnesses this log: its identity now, that a new log holds events after its first commit
    # (once, not per command), its last seq at a clean stop. A log lost later is then no first start.
    store = svc.store
    last_seq = store.last_seq()
    dbsafe.note_log(db.parent, db, **store.identity(), last_seq=last_seq)
    if last_seq == 0:
        store.on_first_events = lambda seq: dbsafe.note_log(db.parent, db, last_seq=seq, new=False)
    # What the controller built so far (modules, configuration, the day's state rebuilt from the event log)
    # lives as long as the process: out of the collector's way, a full collection scans only what came since
    # (bench/bench_controller.py: 30-80 ms pauses of the engine became 3-8 ms at 1,000-3,000 waiting).
    gc.collect()
    gc.freeze()
    if not svc.start(wait=args.wait):
        log.warning(
            "broker %s:%d not reachable yet; retrying in the background", cfg.broker.host, cfg.broker.port
        )
    log.info("controller for office %s running (event log %s)", cfg.office.id, db)
    wait_for_signal(svc.alive, done=svc.stepped_down)
    svc.stop()
    if svc.final_seq is not None:
        dbsafe.note_log(db.parent, db, last_seq=svc.final_seq, stopped=round(time.time(), 3))
    if svc.stepped_down.is_set():
        log.critical("controller stopped: another controller of office %s is running", cfg.office.id)
        return dbsafe.EXIT_LOCKED  # systemd does not restart on this (RestartPreventExitStatus)
    log.info("controller stopped")
    return 0


def resolve_factory(role: str) -> Callable[..., Any]:
    module, func = NODE_ROLES[role].split(":")
    return getattr(importlib.import_module(module), func)


def cmd_node(args: argparse.Namespace) -> int:
    from waitroom.node import NodeRuntime

    if args.real_printer and (args.role != "dispenser" or not args.simulate):
        print("--real-printer is for a dispenser with --simulate", file=sys.stderr)
        return 2

    cfg = None
    if args.role in CACHED_ROLES:  # validated in a short-lived process; exits 1 on a configuration error
        from waitroom import nodeconfig

        cfg = nodeconfig.load_for_node(args.config, args.node, args.role)
    if cfg is None:
        cfg = load_config(args.config)
    try:
        node = cfg.node(args.node)
    except KeyError:
        print(
            f"{args.config}: no node {args.node!r} (nodes: {', '.join(n.id for n in cfg.nodes)})",
            file=sys.stderr,
        )
        return 1
    if node.role != args.role:
        print(f"node {node.id} is a {node.role}, not a {args.role}", file=sys.stderr)
        return 1
    runtime = NodeRuntime(cfg, node.id)
    pins = None
    extra = {"real_printer": True} if args.real_printer else {}
    try:
        if args.role not in ROLES_WITHOUT_PINS:
            from edge.hardware import pin_factory

            pins = pin_factory(args.pins or os.environ.get("GPIOZERO_PIN_FACTORY"))
        instance = resolve_factory(args.role)(runtime, cfg, node, pins=pins, simulate=args.simulate, **extra)
    except ConfigError as exc:  # validated here (no cache could be written): named as check-config names it
        from waitroom.nodeconfig import in_file

        print(in_file(exc, args.config), file=sys.stderr)
        return 1
    except HardwareError as exc:  # no GPIO library, a pin busy: one line, not a traceback from gpiozero
        log.critical("%s node %s cannot start: %s", args.role, node.id, exc)
        return 1
    if not runtime.start(wait=args.wait):  # it goes on trying; each failed attempt is only a debug line
        broker = cfg.broker
        log.warning(
            "MQTT broker %s:%d not reachable yet; retrying in the background", broker.host, broker.port
        )
    try:
        instance.start()
    except HardwareError as exc:  # the display's screen, a dispenser's pins (made at start)
        log.critical("%s node %s cannot start: %s", args.role, node.id, exc)
        runtime.stop()
        return 1
    log.info("%s node %s running", args.role, node.id)
    wait_for_signal(runtime.alive)
    instance.stop()
    runtime.stop()
    return 0


# Commands defined in this module: started alone, they do not import the modules above (Flask, the simulator,
# ...), so a controller or a node restarted by systemd answers sooner.
CORE_COMMANDS = ("check-config", "controller", "node")


def build_parser(core_only: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="waitroom", description="Queue management for citizen-service offices."
    )
    parser.add_argument("--version", action="version", version=f"waitroom {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("WAITROOM_LOG_LEVEL", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("check-config", help="validate an office configuration file and exit (1 on errors)")
    p.add_argument("file", help="the office configuration (YAML)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("controller", help="run the office controller (owns the queue)")
    add_config_arg(p)
    p.add_argument("--data-dir", help="folder of the event log (default $WAITROOM_DATA_DIR or ./var)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the broker at start")
    p.add_argument(
        "--recover",
        action="store_true",
        help="salvage the readable events of a damaged event log into a new one (the old file is kept)",
    )
    p.add_argument(
        "--clock-file",
        default=os.environ.get("WAITROOM_CLOCK_FILE"),
        help="tests only: take the time from the epoch seconds in this file (default $WAITROOM_CLOCK_FILE)",
    )
    p.add_argument(
        "--fstab",
        help="tests only: the fstab whose mounts must be there before the controller starts on its data "
        "(default /etc/fstab)",
    )
    p.set_defaults(func=cmd_controller)

    p = sub.add_parser("node", help="run one node (dispenser, display, counter, assist)")
    p.add_argument(
        "role", choices=sorted(NODE_ROLES), help="what the node is; its entry in nodes must have it"
    )
    add_config_arg(p)
    p.add_argument("--node", "-n", required=True, help="node id from the configuration")
    p.add_argument("--pins", help="gpiozero pin factory: mock, lgpio, rpigpio, native (default: gpiozero's)")
    p.add_argument(
        "--simulate",
        action="store_true",
        help="accept virtual button presses on the node's sim topic (demo; needs --pins mock)",
    )
    p.add_argument(
        "--real-printer",
        action="store_true",
        help="dispenser with --simulate: print on the configured printer instead of the PNG preview "
        "(e.g. to try a printer before the buttons are wired)",
    )
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the broker at start")
    p.set_defaults(func=cmd_node)

    for name in () if core_only else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _describe_subcommands(parser)
    return parser


def _describe_subcommands(parser: argparse.ArgumentParser) -> None:
    """A subcommand's ``--help`` opens with its one-line help of the list above it, unless it has its own."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    sub.description = helps[name][:1].upper() + helps[name][1:] + "."
                _describe_subcommands(sub)


def _command_of(argv: list[str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--log-level")
    pre.add_argument("command", nargs="?")
    return pre.parse_known_args(argv)[0].command


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(core_only=_command_of(argv) in CORE_COMMANDS)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ConfigError as exc:  # found after loading, e.g. an unreadable client certificate
        print(exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
