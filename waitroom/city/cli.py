"""``waitroom city``: the city-wide view for 115 agents and the city website.

    waitroom city run [--config city.yaml] [--bind 127.0.0.1:8090] [--threads 16]
    waitroom city check-config FILE
    waitroom city broker-files --out DIR [--config city.yaml] --passwords FILE.yaml [--port 8883 --no-tls]

``run`` follows every office on the city broker, publishes the recommendations and serves the page, the API
and the open-data feed (gunicorn, one worker: the live picture is in that process's memory).
``broker-files`` writes the city broker's mosquitto.conf, acl and passwd for the configured offices.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from waitroom.errors import ConfigError

log = logging.getLogger(__name__)


def _load(path: str) -> Any:
    from waitroom.city import config

    try:
        return config.load(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _load(args.file)
    print(f"{args.file}: OK - {cfg.city.name}: {len(cfg.offices)} offices, {len(cfg.services)} services")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from waitroom.serving import serve

    cfg = _load(args.config)

    def factory() -> Any:
        from waitroom.city.service import CityService
        from waitroom.city.web import create_app

        svc = CityService(cfg)
        if not svc.start(wait=args.wait):
            log.warning("city broker %s:%d not reachable yet; retrying", cfg.broker.host, cfg.broker.port)
        return create_app(cfg, svc.view, service=svc)

    log.info("city view of %s (%d offices) on http://%s", cfg.city.name, len(cfg.offices), args.bind)
    serve(factory, args.bind, args.threads)
    return 0


def cmd_broker_files(args: argparse.Namespace) -> int:
    import yaml

    from waitroom.city.broker import write_city_broker

    cfg = _load(args.config)
    try:
        passwords = yaml.safe_load(Path(args.passwords).read_text(encoding="utf-8")) or {}
        written = write_city_broker(cfg, Path(args.out), passwords, port=args.port, tls=not args.no_tls)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("city", help="the city view: every office's waits for 115, API, open data")
    sub = p.add_subparsers(dest="city_command", required=True, metavar="ACTION")
    default = os.environ.get("WAITROOM_CITY_CONFIG", "")

    sp = sub.add_parser("run", help="follow the offices on the city broker and serve the page and API")
    sp.add_argument("--config", "-c", default=default, required=not default, help="city configuration file")
    sp.add_argument(
        "--bind", default="127.0.0.1:8090", help="address:port to serve on (default 127.0.0.1:8090)"
    )
    sp.add_argument("--threads", type=int, default=16, help="gunicorn threads (default 16)")
    sp.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the city broker at start")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("check-config", help="validate a city configuration file (exit 1 on errors)")
    sp.add_argument("file", help="the city configuration (YAML)")
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("broker-files", help="write the city broker's mosquitto.conf, acl and passwd")
    sp.add_argument("--config", "-c", default=default, required=not default, help="city configuration file")
    sp.add_argument("--out", required=True, help="folder for the files")
    sp.add_argument(
        "--passwords",
        required=True,
        help="YAML file: account -> password (office-<id>, city-service, city-page)",
    )
    sp.add_argument("--port", type=int, default=8883, help="listener port (default 8883)")
    sp.add_argument("--no-tls", action="store_true", help="plain TCP listener on 127.0.0.1 (tests only)")
    sp.set_defaults(func=cmd_broker_files)
