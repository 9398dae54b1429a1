"""Web benchmark: the real ``waitroom web`` (gunicorn, one gevent worker), a real mosquitto and controller.
The crowd (2,000 streams) is bench/bench_crowd.py.

Prints, over loopback only and with bounded request counts:
- requests/s and p50/p99 latency of ``GET /api/public`` and of the public waiting page ``GET /waiting`` from 4
  client threads (keep-alive connections);
- SSE fan-out: 50 concurrent ``/api/stream`` clients; the time from sending ``counter.call_next`` (a counter
  node over MQTT) to the ``call`` event arriving at each client and at the last of them (p50/p99);
- one what-if comparison through ``POST /admin/whatif.json`` (2 rule sets x 10 days of the bundled Monday);
- the RSS of the web worker idle and with the 50 streams open.

Run: ``python bench/bench_web.py`` (about half a minute). Figures depend on the machine; nothing is asserted.
"""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import json
import logging
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from mqtt_broker.local import Mosquitto, free_port, wait_for_port
from waitroom import config
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService
from waitroom.web.users import UserStore

CLIENT_THREADS = 4
REQUESTS_PER_THREAD = 250
SSE_CLIENTS = 50
SSE_ROUNDS = 20
GUNICORN_THREADS = SSE_CLIENTS + 24  # only used with --worker-class gthread (the default is gevent)
ALL_DAY = {d: ("00:00", "23:59") for d in config.WEEKDAYS}
PASSWORD = "bench-password-1"
HOST = "127.0.0.1"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def bench_cfg(port: int) -> config.Config:
    data = config.load(config.EXAMPLE_CONFIG).model_dump(mode="json", exclude_none=True)
    data["office"]["id"] = "bench"
    data["office"]["hours"] = ALL_DAY
    data["broker"]["port"] = port
    data["steering"] = {**data.get("steering", {}), "intake_stop": {"enabled": False}}
    data["web"] = {**data.get("web", {}), "public_rate_per_min": 100000}  # one address makes every request
    return config.parse(data)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    """gunicorn's single worker: the child of the master process."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def load(port: int, path: str) -> tuple[float, list[float], int]:
    """CLIENT_THREADS keep-alive clients, REQUESTS_PER_THREAD each: (requests/s, latencies ms, errors)."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(CLIENT_THREADS + 1)

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        mine = []
        start.wait()
        for _ in range(REQUESTS_PER_THREAD):
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                ok = False
            mine.append((time.perf_counter() - t0) * 1000)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout=120)
    return len(lat) / (time.perf_counter() - t0), lat, errors[0]


class StreamClient(threading.Thread):
    """One browser's /api/stream: records when each ``call`` event arrives."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.ready = threading.Event()
        self.calls: dict[str, float] = {}  # ticket number -> perf_counter at arrival
        self.stop = False
        self.sock: socket.socket | None = None

    def run(self) -> None:
        sock = socket.create_connection((HOST, self.port), timeout=30)
        self.sock = sock
        sock.sendall(
            f"GET /api/stream HTTP/1.1\r\nHost: {HOST}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        buf = b""
        event = None
        try:
            while not self.stop:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                now = time.perf_counter()
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    line = line.rstrip(b"\r")
                    if line.startswith(b"event: "):
                        event = line[7:].decode()
                    elif line.startswith(b"data: ") and event is not None:
                        if event == "state":
                            self.ready.set()
                        elif event == "call":
                            data = json.loads(line[6:])
                            self.calls.setdefault(str(data.get("ticket")), now)
                        event = None
        except OSError:
            return

    def close(self) -> None:
        self.stop = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


def whatif_request(port: int) -> tuple[float, dict]:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://{HOST}:{port}"

    def token(path: str) -> str:
        html = opener.open(base + path, timeout=10).read().decode()
        m = re.search(r'name="csrf-token" content="([^"]+)"', html)
        assert m, "no CSRF token"
        return m.group(1)

    form = urllib.parse.urlencode({"username": "admin", "password": PASSWORD, "csrf_token": token("/login")})
    opener.open(urllib.request.Request(base + "/login", data=form.encode()), timeout=10).read()
    body = {
        "scenario": "mitte-monday",
        "replications": 10,
        "seed": 1,
        "rule_sets": {"c3-fs": {"skills": {"c3": ["melde", "sonstiges", "fuehrerschein"]}}},
    }
    req = urllib.request.Request(
        base + "/admin/whatif.json",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-CSRFToken": token("/admin/whatif")},
    )
    t0 = time.perf_counter()
    report = json.loads(opener.open(req, timeout=30).read())["report"]
    return time.perf_counter() - t0, report


def whatif_office_hours() -> None:
    """The page's simulation in the example office's real hours (08-16, intake stop on), which the all-day
    office above cannot show: the default (3 variants, 10 days) and the largest request (50 days)."""
    from waitroom.sim import whatif

    office = config.load(config.EXAMPLE_CONFIG)
    scenario = Path(__file__).resolve().parents[1] / "waitroom/examples/scenarios/mitte-monday.yaml"
    sets = {
        "current": None,
        "c3-fs": {"skills": {"c3": ["melde", "sonstiges", "fuehrerschein"]}},
        "c4-fs-only": {"skills": {"c4": ["fuehrerschein"]}},
        "strict": {"priority": {"normal_per_priority": 0}},
    }
    for days in (10, 50):
        t0 = time.perf_counter()
        rep = whatif(office, scenario, sets, days, 1, predict=False)
        print(
            f"what-if simulation, office hours, 4 rule sets x {days} days ({rep['speed']['citizens']} "
            f"citizens): {time.perf_counter() - t0:.2f} s (the page runs it as a background job)"
        )


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="(log) %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as tmp, Mosquitto() as broker:
        cfg = bench_cfg(broker.port)
        conf = Path(tmp) / "office.yaml"
        conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
        store = UserStore(Path(tmp) / "web-users.db")
        store.add("admin", PASSWORD, "admin")
        store.close()
        svc = ControllerService(cfg, str(Path(tmp) / "bench.db"))
        svc.start(wait=10)
        disp, counter = NodeRuntime(cfg, "disp-1"), NodeRuntime(cfg, "counter-1")
        disp.start(wait=10)
        counter.start(wait=10)
        port = free_port()
        env = {**os.environ, "WAITROOM_SECRET_KEY": "bench-secret-key-0123456789abcdef"}
        proc = subprocess.Popen(
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
                "--threads",
                str(GUNICORN_THREADS),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        streams: list[StreamClient] = []
        try:
            wait_for_port(port, timeout=30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the web node has the controller's snapshot
                try:
                    with urllib.request.urlopen(f"http://{HOST}:{port}/api/state", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                time.sleep(0.2)
            for _ in range(5):  # some waiting tickets make the pages realistic
                disp.request("ticket.issue", {"service": "pass"})
            worker = worker_pid(proc.pid)
            load(port, "/api/public")  # warm-up: imports, template cache
            idle_rss = rss_kb(worker)
            print(
                f"web worker RSS idle: {idle_rss / 1024:.1f} MiB "
                f"(gunicorn master {rss_kb(proc.pid) / 1024:.1f} MiB)"
            )

            for path in ("/api/public", "/waiting"):
                rate, lat, errors = load(port, path)
                print(
                    f"GET {path:<12} {CLIENT_THREADS} threads x {REQUESTS_PER_THREAD}: {rate:6.0f} req/s, "
                    f"p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms, errors {errors}"
                )

            streams = [StreamClient(port) for _ in range(SSE_CLIENTS)]
            for s in streams:
                s.start()
            t_conn = time.perf_counter()
            for s in streams:
                if not s.ready.wait(timeout=20):
                    raise RuntimeError("an SSE client got no state event")
            print(
                f"SSE: {SSE_CLIENTS} streams connected and got their first state in "
                f"{(time.perf_counter() - t_conn) * 1000:.0f} ms"
            )
            every, last = [], []
            for _ in range(SSE_ROUNDS):
                disp.request("ticket.issue", {"service": "pass"})
                time.sleep(0.05)  # let the state fan-out pass
                t0 = time.perf_counter()
                res = counter.request("counter.call_next", {"counter": "c1"})
                number = str(res["call"]["ticket"])
                end = time.monotonic() + 5
                while time.monotonic() < end and not all(number in s.calls for s in streams):
                    time.sleep(0.002)
                arrived = [(s.calls[number] - t0) * 1000 for s in streams if number in s.calls]
                if len(arrived) < SSE_CLIENTS:
                    print(f"  round {number}: only {len(arrived)} of {SSE_CLIENTS} clients got the call")
                every += arrived
                if arrived:
                    last.append(max(arrived))
            print(
                f"SSE fan-out, call_next -> 'call' event at {SSE_CLIENTS} clients ({SSE_ROUNDS} calls): "
                f"per client p50 {statistics.median(every):.1f} ms, p99 {pct(every, 99):.1f} ms; "
                f"last client p50 {statistics.median(last):.1f} ms, max {max(last):.1f} ms"
            )
            print(f"web worker RSS with {SSE_CLIENTS} streams open: {rss_kb(worker) / 1024:.1f} MiB")
            for s in streams:
                s.close()
            streams = []

            seconds, report = whatif_request(port)
            print(
                f"what-if POST /admin/whatif.json (2 rule sets x {report['replications']} days, "
                f"{report['speed']['citizens']} citizens): {seconds:.2f} s "
                f"(simulation {report['speed']['seconds']:.2f} s)"
            )
            print(f"web worker RSS after the what-if: {rss_kb(worker) / 1024:.1f} MiB")
            whatif_office_hours()
        finally:
            for s in streams:
                s.close()
            proc.terminate()
            try:
                _, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            if proc.returncode not in (0, -15):
                sys.stderr.write(err.decode(errors="replace")[-3000:])
            disp.stop()
            counter.stop()
            svc.stop()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import no_arguments

    no_arguments(__doc__)
    main()
