"""Controller benchmark: command round trips through a real mosquitto, and rebuilding a busy day from the log.

Prints: ticket.issue round-trip p50/p99 (node -> broker -> controller -> SQLite commit -> reply), sustained
commands per second from 4 concurrent clients, and the time to rebuild the state of a 1,200-ticket day.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mqtt_broker.local import Mosquitto
from waitroom import config, contract
from waitroom.controller import Office
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService
from waitroom.store import EventStore

ALL_DAY = {d: ("00:00", "23:59") for d in config.WEEKDAYS}


def bench_cfg(port: int) -> config.Config:
    cfg = config.load(config.EXAMPLE_CONFIG)
    data = cfg.model_dump()
    data["office"]["hours"] = ALL_DAY
    data["broker"]["port"] = port
    data["steering"] = {**data.get("steering", {}), "intake_stop": {"enabled": False}}
    data["nodes"] += [{"id": f"disp-{i}", "role": "dispenser"} for i in (2, 3, 4)]
    data["controller"]["database"] = "bench.db"
    return config.parse(data)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        cfg = bench_cfg(broker.port)
        svc = ControllerService(cfg, str(Path(tmp) / "bench.db"))
        svc.start()
        nodes = [NodeRuntime(cfg, n) for n in ("disp-1", "disp-2", "disp-3", "disp-4")]
        for n in nodes:
            n.start()
        caller = NodeRuntime(cfg, "counter-3")
        caller.start()
        lat = []
        for i in range(300):
            t0 = time.perf_counter()
            nodes[0].request("ticket.issue", {"service": ["melde", "sonstiges"][i % 2]})
            lat.append((time.perf_counter() - t0) * 1000)
            if i % 10 != 9:  # the queue grows slowly, to about 30 waiting
                caller.request("counter.call_next", {"counter": "c3"})
        caller.stop()
        print(
            "ticket.issue round trip (1 client, 300 commands, 0-30 waiting): "
            f"p50 {statistics.median(lat):.1f} ms,"
            f" p99 {pct(lat, 99):.1f} ms"
        )

        # a busy office: 4 dispensers issue while 4 counters call, so the queue stays at a realistic length
        counters = [NodeRuntime(cfg, f"counter-{i}") for i in (1, 2, 3, 4)]
        for c in counters:
            c.start()
        per_client = 150

        def run(n: NodeRuntime) -> None:
            for i in range(per_client):
                n.request("ticket.issue", {"service": ["pass", "melde", "sonstiges"][i % 3]}, timeout=5)

        def serve(c: NodeRuntime) -> None:
            cid = "c" + c.node_id.split("-")[1]
            for _ in range(per_client):
                try:
                    c.request("counter.call_next", {"counter": cid}, timeout=5)
                except Exception:  # nobody waiting for this counter right now
                    time.sleep(0.01)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=run, args=(n,)) for n in nodes]
        threads += [threading.Thread(target=serve, args=(c,)) for c in counters]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
        print(
            f"sustained: {2 * len(nodes) * per_client / dt:.0f} commands/s from {2 * len(nodes)} clients "
            f"(issue + call next; each committed to SQLite with synchronous=FULL before its reply; "
            f"{len(svc.office.state.waiting())} still waiting at the end)"
        )
        for n in nodes + counters:
            n.stop()
        svc.stop()

        # rebuild: a day with 1,200 tickets, each called and served (~3,700 events)
        store = EventStore(Path(tmp) / "day.db")
        clock = [time.time()]
        office = Office(cfg, store, clock=lambda: clock[0])
        for i in range(1200):
            office.handle("disp-1", contract.encode(contract.command("ticket.issue", {"service": "pass"})))
            clock[0] += 1
            if i % 2:
                for c, node in (("c1", "counter-1"), ("c2", "counter-2")):
                    office.handle(
                        node, contract.encode(contract.command("counter.call_next", {"counter": c}))
                    )
        n_events = store.last_seq()
        t0 = time.perf_counter()
        Office(cfg, EventStore(Path(tmp) / "day.db"), clock=lambda: clock[0])
        print(f"rebuild after restart: {n_events} events in {(time.perf_counter() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
