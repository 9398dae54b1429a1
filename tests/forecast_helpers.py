"""A synthetic call-centre log in the anonymous-bank format: a multi-server queue with two service types,
priorities, skills and impatient callers, simulated event by event (no data of any person)."""

from __future__ import annotations

import heapq
import random
from pathlib import Path

HEADER = (
    "vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\tvru_time\tq_start\tq_exit\t"
    "q_time\toutcome\tser_start\tser_exit\tser_time\tserver"
)


def hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def simulate_day(rng: random.Random, servers: int = 4, rate_per_h: float = 70.0) -> list[dict]:
    """One day 8:00-16:00: Poisson arrivals (busier at 10-12), exponential service (PS 180 s, NE 300 s),
    patience exponential 240 s (priority callers 600 s); priority callers first, then FIFO; server 0 only
    serves NE, the others both; a call that finds a free agent never queues."""
    t, calls = 8 * 3600.0, []
    while True:
        lam = rate_per_h * (1.4 if 10 * 3600 <= t < 12 * 3600 else 1.0) / 3600
        t += rng.expovariate(lam)
        if t >= 16 * 3600:
            break
        kind = "NE" if rng.random() < 0.25 else "PS"
        prio = 2 if rng.random() < 0.3 else rng.choice((0, 1))
        calls.append(
            {
                "t": t,
                "type": kind,
                "prio": prio,
                "service": rng.expovariate(1 / (300 if kind == "NE" else 180)) + 5,
                "patience": rng.expovariate(1 / (600 if prio == 2 else 240)),
            }
        )
    free_at = [8 * 3600.0] * servers
    waiting: list[tuple[int, float, int]] = []
    events: list[tuple[float, int, int]] = [(c["t"], 1, i) for i, c in enumerate(calls)]
    heapq.heapify(events)
    out: list[dict] = []

    def can(srv: int, c: dict) -> bool:
        return srv != 0 or c["type"] == "NE"

    def dispatch(now: float) -> None:
        for srv in range(servers):
            if free_at[srv] > now:
                continue
            for k, (_, _, ci) in enumerate(sorted(waiting)):
                c = calls[ci]
                if not can(srv, c):
                    continue
                waiting.remove(sorted(waiting)[k])
                c.update(start=now, server=srv, outcome="AGENT")
                free_at[srv] = now + c["service"]
                heapq.heappush(events, (free_at[srv], 0, -1))
                break

    while events:
        now, kind, ci = heapq.heappop(events)
        if kind == 1:  # arrival
            c = calls[ci]
            idle = [s for s in range(servers) if free_at[s] <= now and can(s, c)]
            if idle:  # a free agent takes the call at once: it never queues
                c.update(start=now, server=idle[0], outcome="AGENT", queued=False)
                free_at[idle[0]] = now + c["service"]
                heapq.heappush(events, (free_at[idle[0]], 0, -1))
                continue
            c["queued"] = True
            waiting.append((-c["prio"], now, ci))
            heapq.heappush(events, (now + c["patience"], 2, ci))
        elif kind == 2:  # patience over
            entry = next((w for w in waiting if w[2] == ci), None)
            if entry is not None:
                waiting.remove(entry)
                calls[ci].update(outcome="HANG", start=now)
        dispatch(now)
    for c in calls:
        if "outcome" not in c:
            continue
        out.append(c)
    return out


def write_log(path: Path, days: int = 3, seed: int = 1, servers: int = 4, rate_per_h: float = 70.0) -> Path:
    rng = random.Random(seed)
    lines = [HEADER]
    cid = 1
    for d in range(days):
        date = f"9903{d + 1:02d}"
        for c in simulate_day(rng, servers, rate_per_h):
            vru0 = c["t"] - 8
            if c["queued"]:
                q0, qt = hms(c["t"]), int(c["start"]) - int(c["t"])
            else:
                q0, qt = "0:00:00", 0
            if c["outcome"] == "AGENT":
                s0, s1 = int(c["start"]), int(c["start"] + c["service"])
                ser = (hms(s0), hms(s1), str(s1 - s0), f"AGENT{c['server']}")
            else:
                ser = ("0:00:00", "0:00:00", "0", "NO_SERVER")
            lines.append(
                "\t".join(
                    [
                        "AA0101",
                        str(cid),
                        "0",
                        str(c["prio"]),
                        c["type"],
                        date,
                        hms(vru0),
                        hms(c["t"]),
                        "8",
                        q0,
                        hms(c["start"]) if c["queued"] else "0:00:00",
                        str(qt),
                        c["outcome"],
                        *ser,
                    ]
                )
            )
            cid += 1
        lines.append(
            "\t".join(["AA0101", str(cid), "0", "0", "PS", date, "9:00:00", "9:00:05", "5"] + ["0:00:00"] * 2)
            + "\t0\tPHANTOM\t0:00:00\t0:00:00\t0\tNO_SERVER"
        )
        cid += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
