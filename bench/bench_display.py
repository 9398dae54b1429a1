"""Benchmark of the call display: ``python bench/bench_display.py [--idle-s 20]``.

Prints: frame time of a full 1080p redraw and of an idle-frame check, call event to the first frame showing
it, call to gong start, CPU use per minute while idle, resident memory. Runs a real mosquitto, the real
controller and a display node with SDL's dummy video and audio drivers in this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from displays import settings as ds
from displays.board import Board
from displays.node import DisplayNode
from displays.render import Renderer
from mqtt_broker.local import Mosquitto
from waitroom import config
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ms(values: list[float]) -> str:
    values = sorted(values)
    return (
        f"median {statistics.median(values) * 1000:.1f} ms, "
        f"p95 {values[int(len(values) * 0.95) - 1] * 1000:.1f}"
        f" ms, max {values[-1] * 1000:.1f} ms (n={len(values)})"
    )


def bench_frames(snap: dict) -> None:
    s = ds.parse(
        {
            "ticker": {
                "de": "Bitte halten Sie Ihren Ausweis und alle Unterlagen bereit. Öffnungszeiten: "
                "Mo, Di 8-16 Uhr, Mi 8-13 Uhr, Do 10-18 Uhr, Fr 8-13 Uhr",
                "en": "Please have your ID and all documents ready.",
            }
        }
    )
    r = Renderer(s)
    board = Board()
    board.set_link(True)
    board.apply_state(snap)
    full, idle = [], []
    for i in range(40):
        board.apply_state({**snap, "seq": snap["seq"] + i + 1})  # a new version: the state is drawn again
        t0 = time.perf_counter()
        r.draw(board.screen(), highlight=bool(i % 2), now=time.time(), mono=i)
        full.append(time.perf_counter() - t0)
    for i in range(200):
        t0 = time.perf_counter()
        r.draw(board.screen(), highlight=True, now=time.time(), mono=float(40 + i) / s.fps)
        idle.append(time.perf_counter() - t0)
    print(f"1080p redraw after a state change:  {ms(full)}")
    print(f"1080p frame, ticker moving only:    {ms(idle)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--idle-s", type=float, default=20.0, help="seconds of idle CPU measurement")
    p.add_argument("--calls", type=int, default=10)
    args = p.parse_args()
    with Mosquitto() as broker, tempfile.TemporaryDirectory() as tmp:
        cfg = config.load(config.EXAMPLE_CONFIG)
        cfg = cfg.model_copy(
            update={
                "broker": cfg.broker.model_copy(update={"port": broker.port}),
                # open every day and all day: the bench runs on weekends and at night too
                "office": cfg.office.model_copy(
                    update={"id": "bench", "hours": {d: ("00:00", "23:59") for d in config.WEEKDAYS}}
                ),
            }
        )
        ctl = ControllerService(cfg, str(Path(tmp) / "ev.db"))
        ctl.start(wait=10)
        disp, counter, drt = (NodeRuntime(cfg, n) for n in ("disp-1", "counter-1", "display-1"))
        for rt in (disp, counter, drt):
            rt.start(wait=10)
        rss0 = rss_mb()
        dn = DisplayNode(
            drt,
            cfg,
            cfg.node("display-1"),
            settings=ds.parse({"screenshot_every_s": 0, "speech": False, "blink_s": 1}),
            data_dir=tmp,  # the calls it heard (displays.heard), not in ./var
        )
        dn.start()
        time.sleep(1.0)
        with ctl.lock:
            bench_frames(ctl.office.snapshot())

        to_frame, event_to_frame, to_gong = [], [], []
        for _ in range(args.calls):
            disp.request("ticket.issue", {"service": "pass"})
            t0 = time.monotonic()
            ticket = counter.request("counter.call_next", {"counter": "c1"})["call"]["ticket"]
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(k[0] == ticket for k in dn.shown):
                time.sleep(0.001)
            key = next(k for k in dn.shown if k[0] == ticket)
            to_frame.append(dn.shown[key] - t0)
            event_to_frame.append(dn.shown[key] - dn.received[key])
            dn.announcer.wait_idle(10)
            gong = next(p for p in dn.announcer.played if p.ticket == ticket and p.kind == "gong")
            to_gong.append(gong.start - t0)
            # the next call only after the silence kept between two announced calls (call_gap_s): this
            # measures one call's way to its gong, not the designed pause after the previous one
            time.sleep(dn.announcer.settings.call_gap_s + 0.05)
        print(f"call event received -> first frame: {ms(event_to_frame)}")
        print(f"call command sent -> first frame:   {ms(to_frame)}")
        print(f"call command sent -> gong starts:   {ms(to_gong)}")

        time.sleep(2.0)  # the last blink ends
        frames0, cpu0, t0 = dn.frames, time.process_time(), time.monotonic()
        time.sleep(args.idle_s)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
        print(
            f"idle: {cpu / wall * 60:.2f} CPU-seconds per minute ({cpu / wall * 100:.2f} % of one core; "
            f"whole process incl. controller and MQTT), {(dn.frames - frames0) / wall:.2f} frames/s drawn"
        )
        print(f"resident memory: {rss_mb():.0f} MB process, display node +{rss_mb() - rss0:.0f} MB")
        dn.stop()
        for rt in (disp, counter, drt):
            rt.stop()
        ctl.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
