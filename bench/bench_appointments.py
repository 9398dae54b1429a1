"""Appointments on the controller's command path (issue 15): the cost of ``appointment.slots`` (free slots of
one service over the whole horizon) and of a checked ``appointment.book``, with a full book.

The example office (5 counters, 8-10 hours a day), 29 days of horizon, filled to capacity through the booking
page's own path (``check_slot``), then timed in process against a real SQLite event log (no broker: this is
the engine's CPU time per command, which blocks the other commands of the office while it runs). Each figure
is repeated and printed as min / median.

    .venv/bin/python bench/bench_appointments.py          (python -m bench appointments)
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from waitroom import config, contract  # noqa: E402
from waitroom.controller import Office  # noqa: E402
from waitroom.store import EventStore  # noqa: E402

REPEAT = 20


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(office: Office, op: str, **args: object) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = office.handle("web", contract.encode(contract.command(op, args)))
    return out.reply, time.perf_counter() - t0


def main() -> None:
    cfg = config.load(config.EXAMPLE_CONFIG)
    tz = cfg.office.tz
    monday = dt.datetime(2026, 11, 23, 7, 0, tzinfo=tz).timestamp()
    with tempfile.TemporaryDirectory() as tmp:
        office = Office(cfg, EventStore(Path(tmp) / "events.db"), clock=Clock(monday))
        services = [s.id for s in cfg.services]
        empty = [run(office, "appointment.slots", service=s)[1] for s in services for _ in range(3)]
        booked = 0
        book_times = []
        t_fill = time.perf_counter()
        for day in range(cfg.appointments.horizon_days + 1):
            d = (dt.datetime.fromtimestamp(monday, tz) + dt.timedelta(days=day)).date().isoformat()
            for sid in services:
                reply, _ = run(office, "appointment.slots", service=sid, day=d)
                for slot, n in reply["result"]["slots"]["free"]:
                    for _ in range(n):
                        r, secs = run(office, "appointment.book", service=sid, slot=slot, check_slot=True)
                        if r["ok"]:
                            booked += 1
                            book_times.append(secs)
        fill_s = time.perf_counter() - t_fill
        per_day = booked / (cfg.appointments.horizon_days + 1)
        full = [run(office, "appointment.slots", service=s)[1] for s in services for _ in range(REPEAT // 4)]
        # a day with room: cancel some of tomorrow's bookings, then time the checked booking there
        tomorrow = (dt.datetime.fromtimestamp(monday, tz) + dt.timedelta(days=1)).date()
        codes = [
            a.code
            for a in office.state.appointments.values()
            if dt.datetime.fromtimestamp(a.slot, tz).date() == tomorrow
        ][:REPEAT]
        for c in codes:
            run(office, "appointment.cancel", code=c)
        rebook = []
        for _ in codes:
            free = run(office, "appointment.slots", service="pass", day=tomorrow.isoformat())[0]
            slots = free["result"]["slots"]["free"]
            if not slots:
                break
            r, secs = run(office, "appointment.book", service="pass", slot=slots[0][0], check_slot=True)
            rebook.append(secs)
        office.store.close()

    def fmt(xs: list[float]) -> str:
        return f"{min(xs) * 1000:.1f} / {statistics.median(xs) * 1000:.1f} ms"

    print(f"book filled to capacity: {booked} appointments in 29 days ({per_day:.0f} a day), {fill_s:.1f} s")
    print(f"appointment.slots, 29-day horizon, empty book (min / median): {fmt(empty)}")
    print(f"appointment.slots, 29-day horizon, full book (min / median):  {fmt(full)}")
    print(f"appointment.book with check_slot, full book (min / median):   {fmt(book_times)}")
    if rebook:
        print(f"appointment.book into a cancelled slot (min / median):        {fmt(rebook)}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench import no_arguments

    no_arguments(__doc__)
    main()
