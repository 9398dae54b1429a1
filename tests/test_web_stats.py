"""The statistics of the admin pages (waitroom.web.stats) from a real SQLite event log written by the real
controller with a set clock: every finished ticket counted however the counter finished it, figures that add
up per service, and the CSV export as German Excel opens it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pytest

from tests.test_controller import Clock, ok
from waitroom import config
from waitroom.controller import Office
from waitroom.store import EventStore
from waitroom.web import stats

TZ = ZoneInfo("Europe/Berlin")
MONDAY_9 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ).timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY_9)


@pytest.fixture
def office(tmp_path, clock):
    store = EventStore(tmp_path / "e.db")
    yield Office(config.load(config.EXAMPLE_CONFIG), store, clock=clock)
    store.close()


def step(office: Office, clock: Clock, node: str, op: str, minutes: float = 1, **args: object) -> dict:
    clock.t += minutes * 60
    return ok(office, node, op, **args)


def test_a_ticket_finished_by_the_next_call_or_a_pause_is_served(office, clock, tmp_path):
    """The counter box's one-button day: "next" finishes the ticket being served (the controller marks it
    served without a ticket_served event), and so do a pause and closing the counter. Each of those is a
    served ticket with its service time, as when the served button was pressed."""
    for _ in range(4):
        ok(office, "disp-1", "ticket.issue", service="pass")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")  # A001
    step(office, clock, "counter-1", "counter.call_next", 4, counter="c1")  # A001 served after 4 min, A002
    step(office, clock, "counter-1", "counter.pause", 6, counter="c1")  # A002 served after 6 min
    ok(office, "counter-1", "counter.open", counter="c1")
    step(office, clock, "counter-1", "counter.call_next", 1, counter="c1")  # A003
    step(office, clock, "counter-1", "counter.close", 2, counter="c1")  # A003 served after 2 min
    day = stats.compute(tmp_path / "e.db", office.cfg, office.state.day)
    assert {t.number: t.state for t in office.state.tickets.values()} == {
        "A001": "served",
        "A002": "served",
        "A003": "served",
        "A004": "waiting",
    }
    doc = stats.as_dict(day)["services"]["pass"]
    assert (doc["issued"], doc["served"], doc["no_show"], doc["open"]) == (4, 3, 0, 1)
    assert doc["service_time"]["n"] == 3 and doc["service_time"]["mean_min"] == 4.0


def test_the_figures_of_every_service_add_up(office, clock, tmp_path):
    """issued + transferred in = served + not appeared + cancelled + transferred out + still open, per
    service; a ticket transferred to another service is finished there."""
    for svc in ("pass", "pass", "pass", "melde", "melde"):
        ok(office, "disp-1", "ticket.issue", service=svc)
    step(office, clock, "counter-1", "counter.call_next", counter="c1")  # A001
    step(office, clock, "counter-1", "counter.transfer", counter="c1", service="melde")  # A001 -> melde
    step(office, clock, "counter-1", "counter.call_next", counter="c1")  # B001 (melde waits longer)
    step(office, clock, "counter-1", "counter.no_show", counter="c1")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")  # the one before: served
    step(office, clock, "counter-1", "counter.served", counter="c1")
    step(office, clock, "counter-3", "counter.call_next", counter="c3")  # a melde ticket, being served
    waiting = next(t for t in office.state.tickets.values() if t.state == "waiting")
    ok(office, "disp-1", "ticket.cancel", ticket=waiting.id)
    doc = stats.as_dict(stats.compute(tmp_path / "e.db", office.cfg, office.state.day))["services"]
    states = [(t.service, t.state) for t in office.state.tickets.values()]
    for sid in ("pass", "melde"):
        s = doc[sid]
        assert s["issued"] + s["transferred_in"] == (
            s["served"] + s["no_show"] + s["cancelled"] + s["transferred_out"] + s["open"]
        ), (sid, s)
        assert s["served"] == states.count((sid, "served"))
        assert s["no_show"] == states.count((sid, "no_show"))
        assert s["cancelled"] == states.count((sid, "cancelled"))
        assert s["open"] == sum(1 for svc, st in states if svc == sid and st in ("waiting", "called"))
    assert (doc["pass"]["transferred_out"], doc["melde"]["transferred_in"]) == (1, 1)
    assert sum(s["open"] for s in doc.values()) == 1  # the one being served at c3


def test_a_day_without_tickets_has_zeros_and_no_times(office, clock, tmp_path):
    ok(office, "disp-1", "ticket.issue", service="pass")  # today; the day asked for is the day before
    day = stats.compute(tmp_path / "e.db", office.cfg, "2026-11-22")
    doc = stats.as_dict(day)
    assert doc["issued"] == 0 and doc["hours"] == {}
    assert all(s["issued"] == s["served"] == s["open"] == 0 for s in doc["services"].values())
    assert all(s["wait"]["mean_min"] is None for s in doc["services"].values())
    rows = list(csv.reader(io.StringIO(stats.to_csv(day).lstrip("\ufeff")), delimiter=";"))
    assert [r[2] for r in rows[1:]] == [*(s.id for s in office.cfg.services), "assistance"]


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25)])
def test_a_day_across_the_clock_change_has_its_own_hours(tmp_path, day, hours):
    """The office's day ends at its midnight, whether it had 23 or 25 hours: a ticket issued at 23:30 is on
    that day and in hour 23, one at 00:30 the next morning is not."""
    d = dt.date.fromisoformat(day)
    clock = Clock(dt.datetime(d.year, d.month, d.day, 0, 30, tzinfo=TZ).timestamp())
    cfg = config.load(config.EXAMPLE_CONFIG)
    always = {d: ("00:00", "23:59") for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    cfg = cfg.model_copy(update={"office": cfg.office.model_copy(update={"hours": always})})
    store = EventStore(tmp_path / "e.db")
    office = Office(cfg, store, clock=clock)
    try:
        start, end = stats.day_bounds(office.cfg, day)
        assert end - start == hours * 3600
        clock.t = end - 1800  # 23:30 local time
        ok(office, "disp-1", "ticket.issue", service="pass")
        clock.t = end + 1800  # 00:30 the next day
        ok(office, "disp-1", "ticket.issue", service="pass")
        doc = stats.as_dict(stats.compute(tmp_path / "e.db", office.cfg, day))
        assert doc["issued"] == 1 and doc["hours"] == {"23": {"pass": 1}}
    finally:
        store.close()


def test_the_csv_opens_in_german_excel(office, clock, tmp_path):
    """German Excel splits a CSV at semicolons, reads 4.5 as a date and a file without a byte order mark as
    Windows-1252: the export has a BOM, semicolons and decimal commas. No names in it: ids and numbers."""
    for _ in range(3):
        ok(office, "disp-1", "ticket.issue", service="pass")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")
    step(office, clock, "counter-1", "counter.served", 4.5, counter="c1")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")
    step(office, clock, "counter-1", "counter.no_show", counter="c1")
    text = stats.to_csv(stats.compute(tmp_path / "e.db", office.cfg, office.state.day))
    assert text.startswith("\ufeff") and "\r\n" in text
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    header = rows[0]
    assert {len(r) for r in rows} == {len(header)}
    assert header[:3] == ["day", "hour", "service"]
    total = {r[2]: dict(zip(header, r, strict=True)) for r in rows if r[1] == "total"}["pass"]
    assert (total["issued"], total["served"], total["no_show"], total["open"]) == ("3", "1", "1", "1")
    assert total["service_mean_min"] == "4,5"
    assert "Reisepass" not in text and "Schalter" not in text


def two_days_a_week_apart(office: Office, clock: Clock) -> None:
    """Monday 2026-11-23: two tickets, the first still being served at c1 when the day ends; Tuesday
    2026-12-01 (the next month): one ticket, served at c1."""
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "disp-1", "ticket.issue", service="pass")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")
    clock.t = dt.datetime(2026, 12, 1, 9, 0, tzinfo=TZ).timestamp()
    ok(office, "disp-1", "ticket.issue", service="pass")
    step(office, clock, "counter-1", "counter.call_next", counter="c1")
    step(office, clock, "counter-1", "counter.served", 5, counter="c1")


def test_a_range_across_months_counts_each_day_on_its_own(office, clock, tmp_path):
    """A range (here nine days, November into December) adds up its days: a ticket still being served when
    its day ended stays open, and is not served by the counter's first call of a later day."""
    two_days_a_week_apart(office, clock)
    whole, each = stats.compute_range(tmp_path / "e.db", office.cfg, "2026-11-23", "2026-12-01")
    assert [d.day for d in each][::8] == ["2026-11-23", "2026-12-01"] and len(each) == 9
    doc = stats.as_dict(whole)
    assert doc["day"] == "2026-11-23..2026-12-01" and doc["issued"] == 3
    s = doc["services"]["pass"]
    assert (s["issued"], s["served"], s["open"]) == (3, 1, 2)
    assert s["service_time"] == {**s["service_time"], "n": 1, "mean_min": 5.0}
    assert doc["hours"] == {"9": {"pass": 3}}
    rows = list(csv.reader(io.StringIO(stats.to_csv(*each)[1:]), delimiter=";"))
    assert rows[0][0] == "day" and [r[0] for r in rows].count("day") == 1
    totals = {(r[0], r[2]): r for r in rows if r[1] == "total"}
    assert totals["2026-11-23", "pass"][3:10] == ["2", "0", "0", "0", "0", "0", "2"]
    assert totals["2026-12-01", "pass"][3:10] == ["1", "1", "0", "0", "0", "0", "0"]
    assert totals["2026-11-24", "pass"][3] == "0"  # a day without tickets is there, with zeros
    for day, figures in (("2026-11-23", (2, 0, 2)), ("2026-12-01", (1, 1, 0)), ("2026-11-30", (0, 0, 0))):
        s = stats.as_dict(stats.compute(tmp_path / "e.db", office.cfg, day))["services"]["pass"]
        assert (s["issued"], s["served"], s["open"]) == figures, day  # each day alone: the same
    for first, last in (("2026-12-01", "2026-11-23"), ("2026-01-01", "2027-01-02")):
        with pytest.raises(ValueError, match="a range of 1 to 366 days"):
            stats.compute_range(tmp_path / "e.db", office.cfg, first, last)


def test_the_statistics_page_and_csv_take_a_range(cfg, controller, tmp_path, office, clock):
    from tests.web_helpers import PASSWORD, in_berlin, login
    from waitroom.web import create_app

    two_days_a_week_apart(office, clock)
    app = create_app(
        in_berlin(cfg),  # the days are Berlin's, as those of the office that wrote the log
        data_dir=tmp_path / "web",
        test_config={"SECRET_KEY": "k" * 32, "TESTING": True, "WAITROOM_STATS_DB": tmp_path / "e.db"},
    )
    try:
        app.extensions["waitroom_users"].add("admin", PASSWORD, "admin")
        c = app.test_client()
        login(c, "admin")
        html = c.get("/admin/stats?day=2026-11-23&to=2026-12-01").get_data(as_text=True)
        assert "<h1>Statistik 2026-11-23 – 2026-12-01</h1>" in html and 'value="2026-12-01"' in html
        assert "/admin/stats.csv?day=2026-11-23&amp;to=2026-12-01" in html
        compact = c.get("/admin/stats?day=20261123&to=20261201").get_data(as_text=True)  # ISO 8601 basic
        assert "<h1>Statistik 2026-11-23 – 2026-12-01</h1>" in compact and 'value="2026-11-23"' in compact
        # every service together, below the table: issued, served, not appeared, cancelled, -, -, open
        total = re.search(r"<tfoot><tr><th scope=\"row\">Alle Anliegen</th>((?:<td>[^<]*</td>){7})", html)
        assert re.findall(r"<td>([^<]*)</td>", total.group(1)) == ["3", "1", "0", "0", "–", "–", "2"]
        assert "<li>Mittlere Reaktionszeit: – (Max. –)</li>" in html  # it said "– min (max –)"
        r = c.get("/admin/stats.csv?day=2026-11-23&to=2026-12-01")
        assert r.headers["Content-Disposition"].endswith(f'{cfg.office.id}-2026-11-23-2026-12-01.csv"')
        days = {line.split(";")[0] for line in r.get_data(as_text=True).splitlines()[1:]}
        assert len(days) == 9 and {"2026-11-23", "2026-12-01"} <= days
        for query, said in (
            ("day=2026-12-01&to=2026-11-23", "höchstens 366 Tage"),
            ("day=2026-01-01&to=2027-01-02", "höchstens 366 Tage"),
            ("day=2026-11-23&to=bald", "Feld „bis“ fehlt oder ist ungültig"),  # the form's word (not „to“)
            ("day=gestern", "Feld „Tag“ fehlt oder ist ungültig"),
        ):
            for path in ("/admin/stats", "/admin/stats.csv"):
                r = c.get(f"{path}?{query}")
                assert r.status_code == 400 and said in r.get_data(as_text=True), (path, query)
    finally:
        app.extensions["waitroom"].close()


def test_a_chart_says_no_value_as_a_dash_not_as_zero_minutes(office, clock, tmp_path):
    """A service nobody was called for has no mean wait: its bar is empty and says "–" (it said "0.0 min",
    as if everybody had been called at once)."""
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "disp-1", "ticket.issue", service="melde")
    step(office, clock, "counter-1", "counter.call_next", 3, counter="c1")
    doc = stats.as_dict(stats.compute(tmp_path / "e.db", office.cfg, office.state.day))
    waits = {k: v["wait"]["mean_min"] for k, v in doc["services"].items()}
    called = next(k for k, v in waits.items() if v is not None)
    svg = stats.bars_chart(waits, {}, "Mittlere Wartezeit", "min")
    said = dict(re.findall(r'font-size="12">([a-z]+)</text>.*?font-size="12">([^<]*)</text>', svg))
    assert said[called] == "3,0 min" and said["sonstiges"] == "–"
    assert sum(1 for v in said.values() if v == "–") == len(waits) - 1


def test_the_hours_chart_names_every_service_in_full_in_a_list(office, clock, tmp_path):
    """The legend was drawn in the picture, 150 px a service: from the fifth service on it ran off the
    picture's right edge, and every name was cut at 20 letters ("Registration of addr"). Now it is a list in
    the page, beside the picture, with every name whole."""
    ok(office, "disp-1", "ticket.issue", service="pass")
    day = stats.compute(tmp_path / "e.db", office.cfg, office.state.day)
    long = "Beglaubigungen und Führungszeugnisse"
    labels = {sid: f"{long} {i}" for i, sid in enumerate(day.services)}
    labels.update({f"extra{i}": f"Extra {i}" for i in range(4)})
    for i in range(4):
        day.services[f"extra{i}"] = day.services[next(iter(day.services))]
    html = stats.hours_chart(day, labels, "Nummern je Stunde")
    svg, _, legend = html.partition("</svg>")
    assert not re.search(r"<text[^>]*>Beglaubigungen", svg)  # no names drawn in the picture
    names = re.findall(r"</svg> ([^<]+)</li>", legend)
    assert names == [labels[sid] for sid in day.services] and len(names) == 8


GEVENT_PROBE = """
from gevent import monkey

monkey.patch_all()  # as gunicorn's gevent worker does
import sys
from pathlib import Path

import gevent

from waitroom import config
from waitroom.web import stats

turns = []
busy = [True]


def other_request():  # another request or a live stream of the same worker: it runs whenever it can
    while busy[0]:
        turns.append(1)
        gevent.sleep(0)


gevent.spawn(other_request)
gevent.sleep(0)
before = len(turns)
stats.compute_range(Path(sys.argv[1]), config.load(config.EXAMPLE_CONFIG), "2026-11-23", "2026-12-22")
during = len(turns) - before
busy[0] = False
print(during)
"""


def test_a_long_range_lets_the_worker_s_other_requests_run(office, clock, tmp_path):
    """Under gunicorn's gevent worker the statistics of a long range (a year of a busy office is half a
    million events, seconds of work) hand the process to the worker's other greenlets between batches: the
    staff pages and the live streams of that worker did not run until the statistics were done."""
    import subprocess
    import sys

    for _ in range(30):
        ok(office, "disp-1", "ticket.issue", service="pass")
    for _ in range(5):
        step(office, clock, "counter-1", "counter.call_next", counter="c1")
    out = subprocess.run(
        [sys.executable, "-c", GEVENT_PROBE, str(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert int(out.stdout.strip()) >= 30  # one turn at least per day of the range


def test_the_csv_has_the_appointments_of_each_day(office, clock, tmp_path):
    """The export has what the page shows of the appointments, per day and service: booked, kept, missed,
    cancelled... (the page showed them, the CSV did not)."""
    monday = dt.datetime(2026, 11, 23, tzinfo=TZ)
    at = {
        k: (monday + dt.timedelta(days=d, hours=h)).timestamp()
        for k, (d, h) in {
            "kept": (0, 10),
            "missed": (0, 11),
            "cancelled": (0, 12),
            "tuesday": (1, 10),
        }.items()
    }
    code = {
        k: ok(office, "web", "appointment.book", service="pass", slot=slot, check_slot=True)["appointment"][
            "code"
        ]
        for k, slot in at.items()
    }
    ok(office, "web", "appointment.cancel", code=code["cancelled"])
    clock.t = at["kept"] - 300
    ok(office, "disp-1", "appointment.checkin", code=code["kept"])
    clock.t = at["tuesday"] - 3600  # the next day: Monday's 11:00 was missed
    ok(office, "disp-1", "ticket.issue", service="melde")
    whole, each = stats.compute_range(tmp_path / "e.db", office.cfg, "2026-11-23", "2026-11-24")
    rows = list(csv.reader(io.StringIO(stats.to_csv(*each)[1:]), delimiter=";"))
    header = rows[0]
    total = {(r[0], r[2]): dict(zip(header, r, strict=True)) for r in rows if r[1] == "total"}
    appts = {k: v for k, v in total["2026-11-23", "pass"].items() if k.startswith("appt_")}
    assert appts == {
        "appt_booked": "2",
        "appt_kept": "1",
        "appt_early": "0",
        "appt_late": "0",
        "appt_missed": "1",
        "appt_open": "0",
        "appt_cancelled": "1",
    }
    tuesday = total["2026-11-24", "pass"]
    assert tuesday["appt_booked"] == "1" and tuesday["appt_missed"] == "1"  # missed by now (the real time)
    assert total["2026-11-24", "melde"]["appt_booked"] == "0"
    assert stats.as_dict(whole)["appointments"]["pass"] == {
        "booked": 3,
        "kept": 1,
        "early": 0,
        "late": 0,
        "missed": 2,
        "open": 0,
        "cancelled": 1,
    }
    assert stats.as_dict(each[0])["appointments"]["pass"]["booked"] == 2  # the day alone
