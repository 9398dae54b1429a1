"""Crowd benchmark: 2,000 ticket-status streams and 50 staff streams on the real ``waitroom web`` (gunicorn,
gevent worker), a real mosquitto and the real controller, while staff pages and ``/api/public`` are timed.

Over loopback only, with bounded counts and times. The load generator is one asyncio process (this one) with
raw sockets; its own ceiling is measured first against a minimal asyncio SSE server (``--raw-server``, a
separate process) that holds the same number of streams and fans one message out to all of them: the
fan-out time and the request latency there are the floor of what this client can see on this machine.

Then, against the web app:
- 100 tickets wait for ``pass``; 2,000 streams follow them (``/api/ticket/<id>/stream``, 20 per ticket), 50
  more follow ``/api/stream`` as the staff pages do;
- ``ROUNDS`` times ``counter.call_next`` at c1 (a counter node over MQTT): every waiting ticket moves up one
  place, so every stream whose ticket is not done gets an update; the time from the command to the last of
  them is "update reaches all streams";
- meanwhile 4 probes request ``GET /staff/c1`` (logged in) and ``GET /api/public`` in turn: p50/p99/max.

Run: ``python bench/bench_crowd.py [--streams 2000] [--workers 1]`` (about a minute). Targets (issue 14):
p99 <= 250 ms for the pages, every stream updated within 2 s. Figures depend on the machine; the ratios to
the raw baseline measured in the same run are the comparable part.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.1"
PASSWORD = "bench-password-1"
TICKETS = 100
STAFF_STREAMS = 50
ROUNDS = 6
PROBES = 4


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ------------------------------------------------------------------------------------ the raw baseline
async def raw_server(port: int) -> None:
    """Minimal SSE fan-out: GET /stream holds the connection, GET /fire sends one event to every stream,
    anything else answers a small JSON body."""
    streams: set[asyncio.StreamWriter] = set()
    n = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal n
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        path = head.split(b" ", 2)[1]
        if path.startswith(b"/stream"):
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nevent: state\ndata: {}\n\n"
            )
            streams.add(writer)
            with contextlib.suppress(ConnectionError):
                await reader.read()
            streams.discard(writer)
            writer.close()
            return
        if path.startswith(b"/fire"):
            n += 1
            msg = f'event: state\ndata: {{"n":{n}}}\n\n'.encode()
            for w in list(streams):
                w.write(msg)
        body = b'{"ok":true}'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, HOST, port, backlog=4096)
    async with server:
        await server.serve_forever()


# ------------------------------------------------------------------------------------ the load generator
class Stream:
    """One SSE client: counts ``event: state`` messages and remembers when each arrived."""

    def __init__(self, path: str, cookie: str = ""):
        self.path, self.cookie = path, cookie
        self.events: list[float] = []
        self.first = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def run(self, port: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        self.writer = writer
        extra = f"Cookie: {self.cookie}\r\n" if self.cookie else ""
        writer.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Accept: text/event-stream\r\n{extra}\r\n".encode()
        )
        tail = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.perf_counter()
            data = tail + chunk
            count = data.count(b"event: state\n")
            if count:
                self.events.extend([now] * count)
                self.first.set()
            tail = data[-16:]
            if tail.count(b"event: state\n"):
                tail = b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


async def get(port: int, path: str, cookie: str = "") -> tuple[int, float]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n{extra}\r\n".encode())
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, (time.perf_counter() - t0) * 1000


async def open_streams(port: int, paths: list[str], cookie: str = "") -> tuple[list[Stream], float]:
    streams = [Stream(p, cookie) for p in paths]
    t0 = time.perf_counter()
    for i, s in enumerate(streams):
        s.task = asyncio.create_task(s.run(port))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # a crowd arrives over a moment, not in one SYN burst
    await asyncio.wait_for(asyncio.gather(*(s.first.wait() for s in streams)), timeout=60)
    return streams, time.perf_counter() - t0


async def probe(port: int, paths: list[tuple[str, str]], stop: asyncio.Event, out: dict[str, list[float]]):
    i = 0
    while not stop.is_set():
        path, cookie = paths[i % len(paths)]
        i += 1
        try:
            status, ms = await get(port, path, cookie)
        except OSError:
            status, ms = 0, float("nan")
        out.setdefault(path.split("?")[0], []).append(ms if status == 200 else float("inf"))
        await asyncio.sleep(0.02)


async def probe_process(port: int, cookie: str) -> None:
    """The page probes (separate process): run until a line arrives on stdin, print the latencies as JSON."""
    stop = asyncio.Event()
    lat: dict[str, list[float]] = {}
    pages = [("/staff/c1", cookie), ("/api/public", "")]
    probes = [asyncio.create_task(probe(port, pages, stop, lat)) for _ in range(PROBES)]
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop.set()
    await asyncio.gather(*probes)
    print(json.dumps({k: [v if v != float("inf") else 1e9 for v in vs] for k, vs in lat.items()}))


async def wait_updates(streams: list[Stream], before: list[int], t0: float, timeout: float) -> list[float]:
    """Per stream, ms from t0 to its first event after ``before``; inf for those that got none."""
    deadline = time.perf_counter() + timeout
    pairs = list(zip(streams, before, strict=True))
    while time.perf_counter() < deadline and any(len(s.events) <= b for s, b in pairs):
        await asyncio.sleep(0.005)
    return [(s.events[b] - t0) * 1000 if len(s.events) > b else float("inf") for s, b in pairs]


async def baseline(n: int) -> dict[str, float]:
    from mqtt_broker.local import free_port, wait_for_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--raw-server", str(port)])
    try:
        wait_for_port(port, timeout=10)
        streams, connect_s = await open_streams(port, ["/stream"] * n)
        fan = []
        for _ in range(ROUNDS):
            before = [len(s.events) for s in streams]
            t0 = time.perf_counter()
            await get(port, "/fire")
            lat = await wait_updates(streams, before, t0, 5.0)
            fan.append(max(lat))
        lat_req = [(await get(port, "/x"))[1] for _ in range(200)]
        for s in streams:
            s.close()
        await asyncio.sleep(1.0)  # let the transports close: paho's select() needs fds below 1024 later
        return {
            "connect_s": connect_s,
            "fan_min": min(fan),
            "fan_med": statistics.median(fan),
            "req_p50": statistics.median(lat_req),
            "req_p99": pct(lat_req, 99),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def login_cookie(port: int) -> str:
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://{HOST}:{port}"
    html = opener.open(base + "/login", timeout=10).read().decode()
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"username": "anna", "password": PASSWORD, "csrf_token": token})
    opener.open(urllib.request.Request(base + "/login", data=form.encode()), timeout=10).read()
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def crowd(n_streams: int, workers: int) -> None:
    import yaml

    from mqtt_broker.local import Mosquitto, free_port, wait_for_port
    from waitroom import config
    from waitroom.node import NodeRuntime
    from waitroom.web.users import UserStore

    base = await baseline(n_streams + STAFF_STREAMS)
    print(
        f"load generator ceiling (raw asyncio SSE server, {n_streams + STAFF_STREAMS} streams): connect "
        f"{base['connect_s']:.2f} s; one message to all: min {base['fan_min']:.0f} ms, median "
        f"{base['fan_med']:.0f} ms; GET p50 {base['req_p50']:.1f} ms, p99 {base['req_p99']:.1f} ms",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        data = config.load(config.EXAMPLE_CONFIG).model_dump(mode="json", exclude_none=True)
        data["office"]["id"] = "crowd"
        data["office"]["hours"] = {d: ("00:00", "23:59") for d in config.WEEKDAYS}
        data["broker"]["port"] = broker.port
        data["steering"] = {**data.get("steering", {}), "intake_stop": {"enabled": False}}
        data["web"] = {"public_rate_per_min": 100000}  # one address plays the whole crowd
        # one dispenser node issues the crowd's 2,000 tickets: above the per-node rate of a real dispenser
        data["controller"] = {**data.get("controller", {}), "node_commands_per_s": 100000}
        cfg = config.parse(data)
        conf = Path(tmp) / "office.yaml"
        conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
        store = UserStore(Path(tmp) / "web-users.db")
        store.add("anna", PASSWORD, "staff")
        store.close()
        env = {**os.environ, "WAITROOM_SECRET_KEY": "bench-secret-key-0123456789abcdef"}
        from waitroom.service import ControllerService

        ctl = ControllerService(cfg, str(Path(tmp) / "crowd.db"))  # in this process: idle but for the calls
        ctl.start(wait=10)
        port = free_port()
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "waitroom.cli",
                "web",
                "--config",
                str(conf),
                "--data-dir",
                tmp,
                "--bind",
                f"{HOST}:{port}",
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "web.log", "wb"),  # noqa: SIM115
        )
        disp, counter = NodeRuntime(cfg, "disp-1"), NodeRuntime(cfg, "counter-1")
        streams: list[Stream] = []
        try:
            disp.start(wait=10)
            counter.start(wait=10)
            try:
                wait_for_port(port, timeout=30)
            except TimeoutError:
                sys.stderr.write((Path(tmp) / "web.log").read_text(errors="replace")[-3000:])
                raise
            deadline = time.monotonic() + 60
            while disp.state is None and time.monotonic() < deadline:  # the controller is up
                await asyncio.sleep(0.1)
            tickets = []
            for _ in range(TICKETS):
                tickets.append(disp.request("ticket.issue", {"service": "pass"}, timeout=10)["ticket"]["id"])
            await asyncio.sleep(1.0)
            cookie = login_cookie(port)
            idle = sum(rss_mib(p) for p in children(web.pid))
            paths = [f"/api/ticket/{tickets[i % TICKETS]}/stream" for i in range(n_streams)]
            streams, connect_s = await open_streams(port, paths)
            staff, _ = await open_streams(port, ["/api/stream"] * STAFF_STREAMS, cookie)
            everyone = streams + staff
            print(
                f"web ({workers} gevent worker(s)): {n_streams} ticket streams + {STAFF_STREAMS} staff"
                f" streams connected and got their first message in {connect_s:.2f} s; worker RSS idle"
                f" {idle:.0f} MiB, with the streams {sum(rss_mib(p) for p in children(web.pid)):.0f} MiB",
                flush=True,
            )
            # the page probes run in a process of their own: this one's event loop is busy reading 2,050
            # streams during every burst and would delay the probes' own reads
            prober = subprocess.Popen(
                [sys.executable, __file__, "--probe", str(port), "--cookie", cookie],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            await asyncio.sleep(1.5)
            called: list[str] = []
            reach, got = [], []
            for _ in range(ROUNDS):
                done_before = set(called[:-1])  # tickets done before this round send nothing new
                watch = [
                    s for s, p in zip(streams, paths, strict=True) if p.split("/")[3] not in done_before
                ] + staff
                before = [len(s.events) for s in watch]
                t0 = time.perf_counter()
                res = counter.request("counter.call_next", {"counter": "c1"}, timeout=5)
                called.append(res["call"].get("ticket_id") or tickets[len(called)])
                ms = await wait_updates(watch, before, t0, 5.0)
                reach.append(max(ms))
                got.append(sum(1 for x in ms if x != float("inf")) / len(watch))
                await asyncio.sleep(0.5)
            out, _ = prober.communicate(b"stop\n", timeout=60)
            lat: dict[str, list[float]] = json.loads(out)
            print(
                f"update (call_next) reaches every stream: min {min(reach):.0f} ms, median "
                f"{statistics.median(reach):.0f} ms, max {max(reach):.0f} ms (target 2000 ms; "
                f"{min(got) * 100:.1f} % of streams updated in the worst round); "
                f"ratio to the raw baseline: median {statistics.median(reach) / base['fan_med']:.1f}x",
                flush=True,
            )
            for path, values in lat.items():
                values = [float("inf") if v >= 1e9 else v for v in values]
                finite = [v for v in values if v != float("inf")]
                print(
                    f"GET {path:<11} during the crowd ({len(values)} requests): p50"
                    f" {statistics.median(finite):.1f} ms, p99 {pct(values, 99):.1f} ms,"
                    f" max {max(values):.1f} ms, errors "
                    f"{len(values) - len(finite)} (target p99 250 ms); p99 / raw p99 "
                    f"{pct(values, 99) / base['req_p99']:.1f}x",
                    flush=True,
                )
            for s in everyone:
                s.close()
        finally:
            for s in streams:
                s.close()
            disp.stop()
            counter.stop()
            web.terminate()
            try:
                web.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                web.kill()
            ctl.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--raw-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cookie", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    raise_nofile()
    if args.raw_server:
        asyncio.run(raw_server(args.raw_server))
        return
    if args.probe:
        asyncio.run(probe_process(args.probe, args.cookie))
        return
    logging.basicConfig(level=logging.WARNING, format="(log) %(name)s: %(message)s")
    asyncio.run(crowd(args.streams, args.workers))


if __name__ == "__main__":
    main()
