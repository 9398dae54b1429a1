"""Benchmark of the node processes: ``python bench/bench_nodes.py [--repeats 5] [--code DIR]``.

For each node role (counter, assist, dispenser, display) it starts the real ``waitroom node ROLE`` process
(``--pins mock``, SDL's dummy video and audio) against a real mosquitto and a running controller, and prints:

- *import + start*: from the process spawn to its log line ``<role> node <id> running`` (imports, the
  configuration, the MQTT connection, the node's own start), min and median over the repeats;
- *RSS*: VmRSS of /proc/<pid>/status once the node has run ``--settle-s`` seconds (the display has drawn its
  board by then), min and median; VmHWM (the peak) beside it. The dispenser runs with ``--simulate`` and
  first prints a ticket (a press of its first button on its sim topic, as the demo's virtual buttons do; the
  ticket is out when its PNG is in the preview folder), so its figure is that of a dispenser that has
  printed, not of one that has only started.

In the same run, a raw baseline: a bare ``python -c 'import paho.mqtt.client'`` process (what any MQTT
node in Python costs at least) and an empty interpreter. ``--code DIR`` runs the nodes from another
checkout (e.g. ``--code /path/to/main`` for the figures before a change).

Targets (issue 17): counter, assist and dispenser RSS <= 35 MB, display <= 80 MB, counter import + start
<= 0.8 s. The exit code is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_dispenser import Sink  # noqa: E402
from mqtt_broker.local import Mosquitto  # noqa: E402
from waitroom import config  # noqa: E402

NODES = {"counter": "counter-1", "assist": "sb-1", "dispenser": "disp-1", "display": "display-1"}
RSS_TARGET_MB = {"counter": 35.0, "assist": 35.0, "dispenser": 35.0, "display": 80.0}
START_TARGET_S = {"counter": 0.8}
# Pi Zero 2 W (4x Cortex-A53 at 1 GHz) against this machine, for the estimate column: CPython runs about
# 8x slower on one such core than on a current x86 core (a rough figure, not measured here), and a cold start
# from the SD card adds more; resident memory of the same modules on arm64 is about what it is on x86-64.
PI_TIME_FACTOR = 8.0


def status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Sample:
    start_s: float
    rss_mb: float
    hwm_mb: float


@dataclass
class Result:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def stat(self, attr: str) -> tuple[float, float]:
        values = [getattr(s, attr) for s in self.samples]
        return min(values), statistics.median(values)


def run_until(
    argv: list[str],
    env: dict[str, str],
    marker: str,
    settle_s: float,
    timeout: float,
    cwd: Path,
    after_start: Callable[[], None] | None = None,
) -> Sample:
    """Start a process, wait for ``marker`` on its stderr/stdout, run ``after_start`` (e.g. print a ticket),
    let it run ``settle_s``, measure, stop it.

    ``cwd`` is a scratch folder: ``python -m`` puts the working directory first on sys.path, and the code
    measured must be the installed (or ``--code``) one, not a checkout that happens to be the cwd."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = threading.Event()
    lines: list[str] = []
    started = [0.0]

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if not seen.is_set() and marker in line:
                started[0] = time.perf_counter() - t0
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not seen.wait(timeout):
            raise RuntimeError(f"{' '.join(argv[-6:])}: no {marker!r} within {timeout} s:\n{''.join(lines)}")
        if after_start is not None:
            try:
                after_start()
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}:\n{''.join(lines)}") from None
        time.sleep(settle_s)
        rss = status_kb(proc.pid, "VmRSS")
        hwm = status_kb(proc.pid, "VmHWM")
        if rss is None or hwm is None or proc.poll() is not None:
            raise RuntimeError(f"{argv[-6:]} exited early:\n{''.join(lines)}")
        return Sample(started[0], rss / 1024, hwm / 1024)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(2)


def print_one_ticket(
    office: str,
    node: str,
    button: str,
    port: int,
    previews: Path,
    sink: Sink | None = None,
    timeout: float = 20.0,
) -> None:
    """Press a dispenser's service button through its sim topic; return once the ticket is out: its PNG in
    the preview folder, or (``sink``) its cut at the network printer."""
    import logging

    import paho.mqtt.publish as publish

    from waitroom import contract

    # publish.single logs "Client is not connected" as an error after its own clean disconnect
    logging.getLogger("paho.mqtt.client").setLevel(logging.CRITICAL)

    def printed() -> bool:
        if sink is not None:
            return len(sink.done) > tickets_before
        return previews.exists() and bool(set(previews.glob("*.png")) - before)

    tickets_before = len(sink.done) if sink is not None else 0
    before = set(previews.glob("*.png")) if previews.exists() else set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # until the controller has answered: the node may still connect
        publish.single(
            contract.Topics(office).sim(node),
            contract.encode({"button": button, "action": "press"}),
            hostname="127.0.0.1",
            port=port,
        )
        for _ in range(20):
            if printed():
                return
            time.sleep(0.1)
    raise RuntimeError(f"{node}: no ticket printed within {timeout} s")


def office_config(port: int, folder: Path, code: str | None = None, printer_port: int | None = None) -> Path:
    """The example office bound to the broker; with ``--code``, that checkout's example (its schema); with
    ``printer_port``, its ticket printer is a network printer on that local port."""
    example = Path(code) / "waitroom" / "examples" / "office.yaml" if code else config.EXAMPLE_CONFIG
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    data["office"]["hours"] = {day: ["00:00", "23:59"] for day in config.WEEKDAYS}
    data.setdefault("broker", {}).update(host="127.0.0.1", port=port)
    if printer_port is not None:
        data["printer"] = {
            "backend": "network",
            "network": {"host": "127.0.0.1", "port": printer_port},
            "status_query": False,
        }
    path = folder / "office.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def fmt(res: Result, target_mb: float | None, target_s: float | None) -> tuple[str, bool]:
    t_min, t_med = res.stat("start_s")
    r_min, r_med = res.stat("rss_mb")
    _, h_med = res.stat("hwm_mb")
    checks = []
    if target_s is not None:
        checks.append((f"start <= {target_s:.1f} s", t_med <= target_s))
    if target_mb is not None:
        checks.append((f"RSS <= {target_mb:.0f} MB", r_med <= target_mb))
    line = (
        f"{res.name:<20} start {t_min:5.2f} / {t_med:5.2f} s   RSS {r_min:5.1f} / {r_med:5.1f} MB "
        f"(peak {h_med:5.1f})   Pi Zero 2 W est. {t_med * PI_TIME_FACTOR:4.1f} s"
    )
    if checks:
        line += "   " + ", ".join(f"{what} {'ok' if good else 'MISSED'}" for what, good in checks)
    return line, all(good for _, good in checks)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="runs per node (min and median are printed)")
    p.add_argument("--settle-s", type=float, default=3.0, help="seconds a node runs before RSS is read")
    p.add_argument("--roles", default=",".join(NODES), help="comma-separated roles to measure")
    p.add_argument("--code", help="run the nodes from this checkout instead of this one (PYTHONPATH)")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="waitroom-bench-nodes-"))
    env = dict(
        os.environ,
        WAITROOM_DATA_DIR=str(work / "var"),
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
        PYGAME_HIDE_SUPPORT_PROMPT="1",
        GPIOZERO_PIN_FACTORY="mock",
        PYTHONDONTWRITEBYTECODE="",
    )
    env.pop("PYTHONDONTWRITEBYTECODE")
    if args.code:
        env["PYTHONPATH"] = str(Path(args.code).resolve())
    py = sys.executable
    results: list[tuple[Result, float | None, float | None]] = []
    sink = Sink()  # a local network printer (raw TCP, port 9100 style)
    with Mosquitto() as broker:
        cfg = office_config(broker.port, work, args.code, sink.port)
        ctl = subprocess.Popen(
            [py, "-m", "waitroom", "controller", "--config", str(cfg), "--data-dir", str(work / "ctl")],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # The baseline in the same run: what importing the MQTT client alone costs a process.
            for name, code in (
                ("python (empty)", "pass"),
                ("python + paho.mqtt", "import paho.mqtt.client"),
            ):
                res = Result(name)
                for _ in range(args.repeats):
                    argv = [py, "-c", f"{code}\nprint('ready', flush=True)\nimport sys; sys.stdin.read()"]
                    res.samples.append(run_until(argv, env, "ready", 0.2, 30, work))
                results.append((res, None, None))
            runs: list[tuple[str, str, bool]] = []  # (row, role, the target applies)
            for role in [r for r in args.roles.split(",") if r]:
                runs.append((f"{role} node", role, True))
                if role == "dispenser":
                    runs.append(("dispenser (demo)", role, False))
            for row, role, targeted in runs:
                res = Result(row)
                argv = [py, "-m", "waitroom", "node", role, "--config", str(cfg), "--node", NODES[role]]
                argv += ["--pins", "mock"]
                after_start = None
                if role == "dispenser":
                    # Its buttons pressed on its sim topic; the node prints ESC/POS to the network printer
                    # as on a Pi, or (the demo) renders the ticket as a PNG preview.
                    demo = row.endswith("(demo)")
                    argv += ["--simulate"] + ([] if demo else ["--real-printer"])
                    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
                    node = next(n for n in data["nodes"] if n["id"] == NODES[role])
                    after_start = functools.partial(
                        print_one_ticket,
                        data["office"]["id"],
                        NODES[role],
                        node["services"][0],  # its first button
                        broker.port,
                        work / "var" / "tickets",  # the preview folder (printer.preview's default)
                        None if demo else sink,
                    )
                for _ in range(args.repeats):
                    res.samples.append(
                        run_until(
                            argv, env, f"node {NODES[role]} running", args.settle_s, 60, work, after_start
                        )
                    )
                results.append((res, RSS_TARGET_MB.get(role) if targeted else None, START_TARGET_S.get(role)))
        finally:
            ctl.terminate()
            ctl.wait(10)
            sink.sock.close()
    print(
        f"min / median over {args.repeats} runs each; RSS after {args.settle_s:.0f} s running"
        + (f"; code from {args.code}" if args.code else "")
    )
    ok = True
    for res, mb, s in results:
        line, good = fmt(res, mb, s)
        ok &= good
        print(line)
    print(
        f"(Pi Zero 2 W estimate: start x{PI_TIME_FACTOR:.0f} of this machine, RSS about the same; "
        "an estimate, not a measurement)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
