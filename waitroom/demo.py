"""``waitroom demo``: a whole office on this machine.

Starts an MQTT broker on 127.0.0.1 (the embedded amqtt broker by default, or a real mosquitto), the controller
with the bundled example office, one process per node of the office (dispenser, display, counters, assistance
button) running its real node code on gpiozero mock pins, and the web app on http://127.0.0.1:8080. The demo
page's virtual buttons drive the nodes' mock pins. Ctrl-C stops everything; a crashed process is restarted.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from waitroom import config

log = logging.getLogger(__name__)

ALL_DAY = {day: ["00:00", "23:59"] for day in config.WEEKDAYS}
DEMO_USER, DEMO_PASSWORD = "demo", "demo-waitroom"  # created by the demo web app (waitroom/web/demo.py)


class PortProbeFilter(logging.Filter):
    """Drops amqtt's complaint about a client that connected and closed without sending a packet.

    That is what a port probe does (the demo waits for the broker's port before it starts the nodes):
    amqtt logs it as ``ERROR amqtt.broker: No data from ...: No data to decode MQTT packet fixed header``
    and a warning after it, on every clean start. A client that sends a broken packet is still logged."""

    PROBE = "No data to decode MQTT packet fixed header"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.PROBE not in record.getMessage()


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started: float = field(default=0.0)

    def start(self, log_dir: Path) -> None:
        out = open(log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()
        self.started = time.monotonic()


def demo_config(source: Path, port: int, target: Path, web_port: int) -> Path:
    """The example office, open all day every day (a demo runs at any hour), bound to the demo broker."""
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["office"]["hours"] = ALL_DAY
    data["office"]["public_url"] = f"http://127.0.0.1:{web_port}"
    data.setdefault("broker", {})["port"] = port
    data["broker"]["host"] = "127.0.0.1"
    target.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    config.load(target)  # validate before starting anything
    return target


def start_broker(kind: str, port: int) -> object:
    from mqtt_broker.local import EmbeddedBroker, Mosquitto

    if kind == "mosquitto":
        return Mosquitto(port=port).start()
    return EmbeddedBroker(port=port).start()


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cmd_demo(args: argparse.Namespace) -> int:
    from mqtt_broker.local import free_port, wait_for_port

    data_dir = Path(args.data_dir)
    if args.fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if not port_free(args.port):
        print(f"waitroom demo: port {args.port} is in use; stop what uses it or pass --port", file=sys.stderr)
        return 1
    mqtt_port = args.mqtt_port if port_free(args.mqtt_port) else free_port()
    t0 = time.monotonic()
    logging.getLogger("amqtt.broker").addFilter(PortProbeFilter())
    broker = start_broker(args.broker, mqtt_port)
    cfg_path = demo_config(Path(args.config), mqtt_port, data_dir / "office.yaml", args.port)
    cfg = config.load(cfg_path)

    env = dict(
        os.environ,
        WAITROOM_DATA_DIR=str(data_dir.resolve()),
        PYTHONUNBUFFERED="1",
        GPIOZERO_PIN_FACTORY="mock",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
    )
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        env.setdefault("SDL_VIDEODRIVER", "dummy")
    env.setdefault("SDL_AUDIODRIVER", os.environ.get("SDL_AUDIODRIVER", "dummy" if args.quiet else ""))
    if not env["SDL_AUDIODRIVER"]:
        del env["SDL_AUDIODRIVER"]
    exe = [sys.executable, "-m", "waitroom.cli", "--log-level", args.log_level]
    common = ["--config", str(cfg_path)]
    children = [Child("controller", [*exe, "controller", *common, "--data-dir", str(data_dir)], env)]
    for node in cfg.nodes:
        if node.role == "web":
            continue
        children.append(
            Child(
                node.id,
                [*exe, "node", node.role, *common, "--node", node.id, "--pins", "mock", "--simulate"],
                env,
            )
        )
    web_node = next((n.id for n in cfg.nodes if n.role == "web"), "web")
    children.append(
        Child(
            "web",
            [
                *exe,
                "web",
                *common,
                "--node",
                web_node,
                "--bind",
                f"127.0.0.1:{args.port}",
                "--demo",
                "--data-dir",
                str(data_dir),
            ],
            env,
        )
    )

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for child in children:
        child.start(log_dir)
        time.sleep(0.15)  # staggered: amqtt mishandles many clients connecting in the same instant
    try:
        wait_for_port(args.port, timeout=60)
        print(
            f"\n  waitroom demo is running: http://127.0.0.1:{args.port}/  (started in "
            f"{time.monotonic() - t0:.1f} s)\n  staff and admin pages: log in as {DEMO_USER} / "
            f"{DEMO_PASSWORD} (this account exists only in the demo)\n"
            f"  MQTT broker ({args.broker}) on 127.0.0.1:{mqtt_port}; "
            f"logs in {log_dir}/\n  Ctrl-C stops everything.\n",
            file=sys.stderr,
            flush=True,
        )
    except TimeoutError:
        log.error("the web app did not come up; see %s/web.log", log_dir)
    while not stop.wait(1.0):
        for child in children:
            if child.proc and child.proc.poll() is not None:
                code = child.proc.returncode
                if child.restarts >= 5:
                    log.error(
                        "%s exited (%s) too often; see %s/%s.log", child.name, code, log_dir, child.name
                    )
                    child.proc = None
                    continue
                log.warning(
                    "%s exited with %s; restarting (see %s/%s.log)", child.name, code, log_dir, child.name
                )
                child.restarts += 1
                time.sleep(min(2**child.restarts, 10) / 10)
                child.start(log_dir)
    log.info("stopping the demo")
    for child in reversed(children):
        if child.proc and child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    for child in reversed(children):
        if child.proc:
            try:
                child.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                child.proc.kill()
    broker.stop()
    print("waitroom demo stopped.", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a whole office on this machine (web UI on http://127.0.0.1:8080)")
    p.add_argument("--config", "-c", default=str(config.EXAMPLE_CONFIG), help="office configuration to demo")
    p.add_argument("--port", type=int, default=8080, help="web port (default 8080)")
    p.add_argument("--mqtt-port", type=int, default=1883, help="broker port (a free one if taken)")
    p.add_argument(
        "--broker",
        choices=["embedded", "mosquitto"],
        default="embedded",
        help="embedded amqtt (no set-up) or a real mosquitto (must be installed)",
    )
    p.add_argument(
        "--data-dir",
        default=os.environ.get("WAITROOM_DATA_DIR", "var/demo"),
        help="event log, ticket previews, screenshots and logs (default var/demo)",
    )
    p.add_argument("--fresh", action="store_true", help="start with an empty office (delete the data dir)")
    p.add_argument("--quiet", action="store_true", help="no sound (announcements are still synthesized)")
    p.set_defaults(func=cmd_demo)
