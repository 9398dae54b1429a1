"""``waitroom appointments import FILE|URL``: import the booking system's appointments over MQTT.

The command is a client of a node with role ``web`` (``--node``, default ``web``; an office that runs the
import beside the web app gives it a node of its own, e.g. ``{id: termin-import, role: web}``, with its own
MQTT password). ``--poll`` repeats the import of ``appointments.booking_system.feed_url`` (or the given
source) every ``poll_min`` minutes until stopped; each run is idempotent.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from waitroom.appointments import csv_import, ics
from waitroom.appointments.importer import FeedError, FeedMemory, Parsed, Report, Send, apply_entries
from waitroom.config import Config
from waitroom.errors import ConfigError, WaitroomError

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 8 * 1024 * 1024


def read_source(source: str, timeout: float = 30.0) -> bytes:
    """The bytes of a file or an http(s) URL (at most MAX_FEED_BYTES)."""
    if source.startswith(("http://", "https://")):
        try:
            req = urllib.request.Request(source, headers={"User-Agent": "waitroom-appointments-import"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = resp.read(MAX_FEED_BYTES + 1)
                declared = resp.headers.get("Content-Length", "")
        except http.client.IncompleteRead as exc:  # a chunked transfer that broke off
            raise FeedError(f"the transfer of {source} broke off after {len(exc.partial)} bytes") from None
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, OSError, ValueError) as exc:
            raise FeedError(f"cannot fetch {source}: {exc}") from None
        # a body shorter than announced is a broken transfer, not the feed: imported, the entries after the
        # break would be cancelled as gone from it
        if declared.isdigit() and len(data) < int(declared) <= MAX_FEED_BYTES:
            raise FeedError(f"the transfer of {source} broke off after {len(data)} of {declared} bytes")
    elif "://" in source:
        raise FeedError(f"{source}: only files and http(s) URLs can be imported")
    else:
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read {source}: {exc.strerror}") from None
    if len(data) > MAX_FEED_BYTES:
        raise FeedError(f"{source} is larger than {MAX_FEED_BYTES // (1024 * 1024)} MiB")
    return data


def detect_format(source: str, data: bytes) -> str:
    head = data[:64].lstrip(b"\xef\xbb\xbf \r\n\t").upper()
    if head.startswith(b"BEGIN:VCALENDAR"):
        return "ics"
    if source.lower().split("?")[0].endswith((".ics", ".ical", ".ifb")):
        return "ics"
    return "csv"


def parse_source(cfg: Config, source: str, data: bytes, now: float, fmt: str | None = None) -> Parsed:
    kind = fmt or detect_format(source, data)
    return ics.parse(data, cfg, now) if kind == "ics" else csv_import.parse(data, cfg, now)


def import_once(
    cfg: Config,
    source: str,
    send: Send,
    *,
    now: float | None = None,
    fmt: str | None = None,
    since_seq: int | None = None,
    memory_dir: Path | None = None,
) -> Report:
    """Read, parse and send one source; a source that cannot be read at all raises FeedError. With
    ``memory_dir``, what the last import of this source booked and this one no longer lists is cancelled."""
    now = time.time() if now is None else now
    data = read_source(source)
    memory = FeedMemory(memory_dir, source) if memory_dir is not None else None
    return apply_entries(cfg, parse_source(cfg, source, data, now, fmt), send, now, since_seq, memory)


def runtime_sender(runtime: Any, timeout: float = 5.0) -> Send:
    def send(op: str, args: dict[str, Any], rid: str) -> dict[str, Any]:
        return dict(runtime.request_reply(op, args, timeout=timeout, retries=2, request_id=rid))

    return send


def cmd_import(args: argparse.Namespace) -> int:
    from waitroom.config import data_dir
    from waitroom.config import load_or_exit as load_config
    from waitroom.mqtt import MqttLink
    from waitroom.node import NodeRuntime

    cfg = load_config(args.config or os.environ.get("WAITROOM_CONFIG") or "")
    source = args.source or cfg.appointments.booking_system.feed_url
    if not source:
        print(
            "waitroom appointments import: give FILE|URL or set appointments.booking_system.feed_url",
            file=sys.stderr,
        )
        return 2
    role = cfg.role_of(args.node)
    if role is None or cfg.node(args.node).role != "web":
        print(
            f"waitroom appointments import: no node {args.node!r} with role web in the configuration",
            file=sys.stderr,
        )
        return 1
    link = MqttLink(cfg.broker, cfg.office.id, args.node, role, client_suffix=f"-import-{os.getpid()}")
    rt = NodeRuntime(cfg, args.node, link=link)
    if not rt.start(wait=args.connect_timeout):
        print(
            f"waitroom appointments import: broker {cfg.broker.host}:{cfg.broker.port} not reachable",
            file=sys.stderr,
        )
        rt.stop()
        return 1
    stop = threading.Event()
    worst = 0
    try:
        while True:
            try:
                seq = _state_seq(rt)
                memory = None if args.no_memory else data_dir(args.data_dir) / "appointments-import"
                rep = import_once(
                    cfg, source, runtime_sender(rt), fmt=args.format, since_seq=seq, memory_dir=memory
                )
            except FeedError as exc:
                print(f"waitroom appointments import: {exc}", file=sys.stderr)
                worst = 1
            else:
                if args.json:
                    print(json.dumps(rep.as_dict(), ensure_ascii=False))
                else:
                    print(f"{source}: {rep.summary()}")
                    for e in rep.errors:
                        print(f"  {e.where}: {e.message}")
                worst = max(worst, 3 if rep.errors else 0)
            if not args.poll or stop.wait(cfg.appointments.booking_system.poll_min * 60):
                break
    except KeyboardInterrupt:
        pass
    finally:
        rt.stop()
    return worst


def _state_seq(rt: Any, wait: float = 5.0) -> int | None:
    """The seq of the office state the node has (retained; it comes right after connecting)."""
    deadline = time.monotonic() + wait
    while rt.state is None and time.monotonic() < deadline:
        time.sleep(0.05)
    seq = (rt.state or {}).get("seq")
    return seq if isinstance(seq, int) else None


def register(subparsers: Any) -> None:
    """Add ``waitroom appointments`` with its subcommands."""
    p = subparsers.add_parser("appointments", help="appointments: import from the booking system")
    sub = p.add_subparsers(dest="appointments_command", required=True, metavar="WHAT")
    sp = sub.add_parser(
        "import",
        help="import an iCalendar or CSV file or feed URL (exit 3 when entries failed)",
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.add_argument(
        "source", nargs="?", help="file or http(s) URL (default appointments.booking_system.feed_url)"
    )
    sp.add_argument("--config", "-c", help="office configuration (default $WAITROOM_CONFIG)")
    sp.add_argument("--node", default="web", help="node id with role web to send as (default web)")
    sp.add_argument("--format", choices=["ics", "csv"], help="default: from the content")
    sp.add_argument("--poll", action="store_true", help="repeat every booking_system.poll_min minutes")
    sp.add_argument("--json", action="store_true", help="print each report as JSON")
    sp.add_argument(
        "--data-dir",
        help="where the import remembers each feed's bookings (default $WAITROOM_DATA_DIR or ./var)",
    )
    sp.add_argument(
        "--no-memory",
        action="store_true",
        help="do not cancel entries that disappeared since the last import",
    )
    sp.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to reach the broker")
    sp.set_defaults(func=_guard(cmd_import))


def _guard(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        except WaitroomError as exc:
            print(f"waitroom appointments: {exc}", file=sys.stderr)
            return 1

    return wrapped
