"""Benchmark: button press (release edge) to the last byte received by a network printer, through a real
mosquitto and the real controller. Prints p50/p90/p99/max in ms. Goal: p99 < 50 ms.

    .venv/bin/python bench/bench_dispenser.py [--presses 150] [--backend network|preview]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpiozero.pins.mock import MockFactory

from edge.dispenser import Dispenser
from mqtt_broker.local import Mosquitto
from waitroom import config
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService

CUT = b"\x1dV"


class Sink:
    """A local raw-TCP printer recording when each job's last byte arrived."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.done: list[float] = []
        self.event = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = bytearray()
                while chunk := conn.recv(65536):
                    buf.extend(chunk)
                if CUT in buf:
                    self.done.append(time.perf_counter())
                    self.event.set()


def _broker() -> Mosquitto:
    """The project's local mosquitto; BENCH_NODELAY=1 adds set_tcp_nodelay (to compare)."""
    if os.environ.get("BENCH_NODELAY") != "1":
        return Mosquitto()
    from mqtt_broker.local import free_port, render_local_config

    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-mosquitto-"))
    work.chmod(0o755)
    conf = render_local_config(port, work / "mosquitto.conf", "\nset_tcp_nodelay true\n")
    return Mosquitto(port=port, config=conf, workdir=work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presses", type=int, default=150)
    ap.add_argument("--backend", choices=["network", "preview"], default="network")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-dispenser-"))
    os.environ["WAITROOM_DATA_DIR"] = str(tmp)
    sink = Sink()
    with _broker() as broker:
        base = config.load(config.EXAMPLE_CONFIG)
        printer = (
            {"backend": "network", "network": {"host": "127.0.0.1", "port": sink.port}, "status_query": False}
            if args.backend == "network"
            else {"preview": {"folder": str(tmp / "tickets"), "keep": 5}}
        )
        nodes = [
            n.model_copy(update={"options": {"press_interval_s": 0, "burst": 50, "per_minute": 600}})
            if n.id == "disp-1"
            else n
            for n in base.nodes
        ]
        # Open all day so that the example office takes tickets whenever the benchmark runs.
        office = base.office.model_copy(
            update={"id": "bench", "hours": {d: ("00:00", "23:59") for d in config.WEEKDAYS}}
        )
        cfg = base.model_copy(
            update={
                "office": office,
                "nodes": nodes,
                "printer": printer,
                "broker": base.broker.model_copy(update={"port": broker.port}),
            }
        )
        svc = ControllerService(cfg, str(tmp / "events.db"))
        svc.start()
        rt = NodeRuntime(cfg, "disp-1")
        rt.start()
        d = Dispenser(rt, cfg, cfg.node("disp-1"), pins=MockFactory())
        done_preview: list[float] = []
        d.on_outcome = lambda out: done_preview.append(time.perf_counter())
        d.start()
        time.sleep(1.5)  # state, leases
        services = d.services
        lat: list[float] = []
        for i in range(args.presses):
            pin = d.buttons[services[i % len(services)]].pin
            sink.event.clear()
            n_before = len(sink.done) if args.backend == "network" else len(done_preview)
            pin.drive_low()
            time.sleep(0.04)
            t0 = time.perf_counter()
            pin.drive_high()  # the ticket is requested on release
            deadline = time.monotonic() + 5
            marks = sink.done if args.backend == "network" else done_preview
            while len(marks) == n_before and time.monotonic() < deadline:
                time.sleep(0.0005)
            if len(marks) == n_before:
                print(f"press {i}: no ticket within 5 s", file=sys.stderr)
                continue
            lat.append((marks[-1] - t0) * 1000)
            time.sleep(0.07)
        refused = {k: v for k, v in d.tally.items() if k.startswith("refused_")}
        d.stop()
        rt.stop()
        svc.stop()
    lat.sort()

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))]

    print(
        f"dispenser press -> last byte at the {args.backend} printer, {len(lat)} presses "
        f"(broker + controller + dispenser on this machine, {os.cpu_count()} cores)"
    )
    print(
        f"  p50 {pct(50):.1f} ms   p90 {pct(90):.1f} ms   p99 {pct(99):.1f} ms   max {lat[-1]:.1f} ms   "
        f"mean {statistics.mean(lat):.1f} ms"
    )
    if refused:
        print(f"  refused presses: {refused}")
    print(f"  goal p99 < 50 ms: {'met' if pct(99) < 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
