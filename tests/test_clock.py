"""Time on a fake clock: the DST changes of Europe/Berlin (opening hours, the start of the day, numbering on
the 23- and 25-hour days), clock steps back and forward, midnight, a restart with the clock behind, offline
ticket times against the lease, and the controller's test-only clock file."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from waitroom import config, contract
from waitroom.controller import CLOCK_TOLERANCE_S, Office
from waitroom.ops.tickets import OFFLINE_SKEW_S
from waitroom.service import FileClock
from waitroom.store import EventStore

TZ = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
SPRING = dt.date(2026, 3, 29)  # 02:00 CET -> 03:00 CEST: a 23-hour day
AUTUMN = dt.date(2026, 10, 25)  # 03:00 CEST -> 02:00 CET: a 25-hour day
ALL_DAY = {d: ("00:00", "23:59") for d in config.WEEKDAYS}


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


def with_hours(hours: dict[str, tuple[str, str]]) -> config.Config:
    cfg = config.load(config.EXAMPLE_CONFIG)
    rules = cfg.steering.intake_stop.model_copy(update={"enabled": False})
    return cfg.model_copy(
        update={
            "office": cfg.office.model_copy(update={"hours": hours}),
            "steering": cfg.steering.model_copy(update={"intake_stop": rules}),
        }
    )


@pytest.fixture
def make(tmp_path: Path):
    stores: list[EventStore] = []

    def make_office(cfg: config.Config, clock: Clock, name: str = "events.db") -> Office:
        store = EventStore(tmp_path / name)
        stores.append(store)
        return Office(cfg, store, clock=clock)

    yield make_office
    for s in stores:
        s.close()


def issue(office: Office, service: str = "pass", node: str = "disp-1") -> dict:
    out = office.handle(node, contract.encode(contract.command("ticket.issue", {"service": service})))
    return out.reply


def number(office: Office) -> str:
    reply = issue(office)
    assert reply["ok"], reply
    return reply["result"]["ticket"]["number"]


def days_started(office: Office) -> list[str]:
    return [e["day"] for e in office.store.events() if e["type"] == "day_started"]


# ------------------------------------------------------------------------------------------------ DST
def test_spring_forward_keeps_one_day_and_its_numbers(make) -> None:
    clock = Clock(utc(2026, 3, 29, 0, 59, 30))  # 01:59:30 CET
    office = make(with_hours(ALL_DAY), clock)
    assert number(office) == "A001"
    clock.t += 60  # 03:00:30 CEST: one minute later, the wall clock jumped an hour
    assert dt.datetime.fromtimestamp(clock.t, TZ).hour == 3
    assert number(office) == "A002" and office.state.day == "2026-03-29"
    assert days_started(office) == ["2026-03-29"]


def test_the_23_hour_day_ends_at_local_midnight(make) -> None:
    start = dt.datetime(2026, 3, 29, 0, 0, 5, tzinfo=TZ).timestamp()
    clock = Clock(start)
    office = make(with_hours(ALL_DAY), clock)
    office.tick()  # the tick starts the day without a command
    assert office.state.day == "2026-03-29"
    assert number(office) == "A001"
    clock.t = start + 23 * 3600 - 10  # 23:59:55 CEST: still the 29th
    assert number(office) == "A002" and office.state.day == "2026-03-29"
    clock.t = start + 23 * 3600  # 00:00:05 CEST on the 30th: 23 hours after the last midnight
    office.tick()
    assert office.state.day == "2026-03-30"
    assert number(office) == "A001"
    assert days_started(office) == ["2026-03-29", "2026-03-30"]


def test_the_25_hour_day_never_gives_a_number_twice(make) -> None:
    start = dt.datetime(2026, 10, 25, 0, 0, tzinfo=TZ).timestamp()
    assert start == utc(2026, 10, 24, 22, 0)
    clock = Clock(start + 1)
    office = make(with_hours(ALL_DAY), clock)
    numbers, hours = [], []
    for _ in range(50):  # every half hour through all 25 hours, the repeated 02:00-03:00 included
        numbers.append(number(office))
        hours.append(dt.datetime.fromtimestamp(clock.t, TZ).strftime("%H:%M%z"))
        clock.t += 1800
    assert numbers == [f"A{i:03d}" for i in range(1, 51)]
    assert "02:30+0200" in hours and "02:30+0100" in hours  # the hour that comes twice, both times
    assert office.state.day == "2026-10-25" and days_started(office) == ["2026-10-25"]
    clock.t = start + 25 * 3600 + 1  # 00:00:01 CET on the 26th
    assert number(office) == "A001" and days_started(office) == ["2026-10-25", "2026-10-26"]


@pytest.mark.parametrize(
    ("day", "opens", "closes"),
    [
        (SPRING, utc(2026, 3, 29, 6, 0), utc(2026, 3, 29, 14, 0)),  # 08:00-16:00 CEST
        (dt.date(2026, 3, 28), utc(2026, 3, 28, 7, 0), utc(2026, 3, 28, 15, 0)),  # the day before: CET
        (AUTUMN, utc(2026, 10, 25, 7, 0), utc(2026, 10, 25, 15, 0)),  # 08:00-16:00 CET
        (dt.date(2026, 10, 24), utc(2026, 10, 24, 6, 0), utc(2026, 10, 24, 14, 0)),  # the day before: CEST
    ],
)
def test_opening_hours_follow_the_wall_clock_across_dst(
    make, day: dt.date, opens: float, closes: float
) -> None:
    cfg = with_hours({d: ("08:00", "16:00") for d in config.WEEKDAYS})
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=TZ).timestamp()
    assert cfg.office.opening(noon) == (opens, closes)
    clock = Clock(opens - 60)
    office = make(cfg, clock)
    reply = issue(office)
    assert reply["ok"] is False and reply["error"]["code"] == "office_closed"
    assert "08:00-16:00" in reply["error"]["message"]  # said in local time
    clock.t = opens
    assert number(office) == "A001"
    clock.t = closes + 1
    assert issue(office)["error"]["code"] == "office_closed"


def test_all_day_hours_close_at_midnight_on_the_25_hour_day() -> None:
    cfg = with_hours(ALL_DAY)
    opens, closes = cfg.office.opening(utc(2026, 10, 25, 12, 0))
    assert opens == utc(2026, 10, 24, 22, 0)
    assert closes == pytest.approx(utc(2026, 10, 25, 23, 0), abs=0.001)
    assert closes - opens == pytest.approx(25 * 3600, abs=0.001)


# ------------------------------------------------------------------------------------------------ steps
def test_a_forward_step_across_midnight_starts_the_new_day(make) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 23, 50, tzinfo=TZ).timestamp())
    office = make(with_hours(ALL_DAY), clock)
    assert [number(office), number(office)] == ["A001", "A002"]
    clock.t += 20 * 60  # 00:10 on the 24th
    assert number(office) == "A001"
    assert [t.number for t in office.state.waiting()] == ["A001"]  # yesterday's waiting tickets are gone
    assert days_started(office) == ["2026-11-23", "2026-11-24"]


def test_a_step_back_while_running_keeps_the_office_working_in_the_log_s_order(make) -> None:
    """A time sync steps back a clock that ran an hour ahead while the office runs. The controller used to
    refuse every command (counters included) for that hour. Now it goes on: its events keep the log's
    order (stamped at the last event's time until the clock has caught up), the day and its numbering go
    on, and the alarm says so until the clock is within the tolerance again."""
    good = dt.datetime(2026, 11, 23, 10, 0, tzinfo=TZ).timestamp()
    clock = Clock(good + 3600)  # an hour ahead
    office = make(with_hours(ALL_DAY), clock)
    assert number(office) == "A001"
    last = office.state.last_ts
    clock.t = good  # the time sync steps it back
    assert number(office) == "A002"
    call_next = contract.command("counter.call_next", {"counter": "c1"})
    call = office.handle("counter-1", contract.encode(call_next))
    assert call.reply["ok"] and call.reply["result"]["call"]["ticket"] == "A001", call.reply
    assert office.alerts["clock"] == {"code": "clock_stepped_back", "data": {"behind_s": 3600}}
    assert "stepped back" in office.snapshot()["alarms"]["clock"]
    stamps = [e["ts"] for e in office.store.events()]
    assert stamps == sorted(stamps) and stamps[-1] == last  # nothing before an earlier event
    clock.t = good + 3600 - CLOCK_TOLERANCE_S + 1  # within the tolerance of the last event again
    assert number(office) == "A003" and not office.alarms and not office.alerts
    assert days_started(office) == ["2026-11-23"]
    stamps = [e["ts"] for e in office.store.events()]
    assert stamps == sorted(stamps)


def test_tolerated_steps_back_keep_numbering(make) -> None:
    clock = Clock(dt.datetime(2026, 11, 23, 10, 0, tzinfo=TZ).timestamp())
    office = make(with_hours(ALL_DAY), clock)
    got = []
    for step in (0, -30, +45, -CLOCK_TOLERANCE_S + 1, +200):
        clock.t += step
        got.append(number(office))
    assert got == ["A001", "A002", "A003", "A004", "A005"]


def test_a_restart_with_the_clock_a_day_behind_refuses_until_the_time_sync(make, tmp_path: Path) -> None:
    today = dt.datetime(2026, 11, 24, 9, 0, tzinfo=TZ).timestamp()
    clock = Clock(today)
    office = make(with_hours(ALL_DAY), clock)
    assert [number(office), number(office), number(office)] == ["A001", "A002", "A003"]
    office.store.close()
    clock.t = today - 86400 + 120  # fake-hwclock: the Pi boots with yesterday's time
    again = make(with_hours(ALL_DAY), clock)  # a new controller on the same log
    assert again.state.day == "2026-11-24"
    reply = issue(again)
    assert reply["error"]["code"] == "clock_behind" and "behind the event log" in reply["error"]["message"]
    assert again.tick().events == []  # nor does the tick start "yesterday"
    assert again.snapshot()["alarms"]["clock"]
    clock.t = today + 60  # the time sync
    assert number(again) == "A004"
    assert days_started(again) == ["2026-11-24"] and "alarms" not in again.snapshot()


# ------------------------------------------------------------------------------------------------ offline
def test_offline_times_are_checked_against_the_lease_time(make) -> None:
    leased = dt.datetime(2026, 11, 23, 7, 30, tzinfo=TZ).timestamp()
    clock = Clock(leased)
    office = make(config.load(config.EXAMPLE_CONFIG), clock)

    def report(n: int, issued_at: float) -> dict:
        args = {"service": "pass", "number": n, "issued_at": issued_at}
        return office.handle("disp-1", contract.encode(contract.command("ticket.report_offline", args))).reply

    lease = office.handle(
        "disp-1", contract.encode(contract.command("ticket.lease", {"service": "pass", "count": 5}))
    ).reply["result"]["lease"]
    first = lease["first"]
    clock.t = leased + 3 * 3600  # the dispenser comes back three hours later
    too_early = report(first, leased - OFFLINE_SKEW_S - 1)
    assert too_early["error"]["code"] == "bad_request" and "lease" in too_early["error"]["message"]
    assert report(first, clock.t + OFFLINE_SKEW_S + 1)["error"]["code"] == "bad_request"  # the future
    # a dispenser clock a little behind the controller's is within the skew
    ok = report(first, leased - OFFLINE_SKEW_S + 1)
    assert ok["ok"] and ok["result"]["ticket"]["issued_at"] == leased - OFFLINE_SKEW_S + 1
    later = report(first + 1, leased + 3600)
    assert later["ok"] and later["result"]["ticket"]["issued_at"] == leased + 3600


# ------------------------------------------------------------------------------------------------ clock file
def test_the_clock_file_is_read_at_every_call(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    path.write_text("1774742400.5\n")
    clock = FileClock(path)
    assert clock() == 1774742400.5
    tmp = tmp_path / "clock.tmp"
    for t in (1774742401.0, 1774742300.0, 1774742300.25):  # back and forward, faster than the mtime ticks
        tmp.write_text(json.dumps(t))
        tmp.replace(path)
        assert clock() == t
    path.write_text("garbage")
    assert clock() == 1774742300.25  # an unreadable file keeps the last time (and logs it)
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="no epoch seconds"):
        FileClock(tmp_path / "empty")
    with pytest.raises(ValueError, match="no epoch seconds"):
        FileClock(tmp_path / "missing")


# ------------------------------------------------------------------------------------------------ the alarm
def alarm_text(html: str, code: str) -> str:
    """The sentence of one alarm on the admin page, as read (without its technical detail)."""
    from html import unescape

    m = re.search(rf'<div class="flash error" role="alert" id="alarm-{code}"><p>(.*?)</p>', html, re.S)
    assert m, f"no alarm {code}"
    return " ".join(unescape(m.group(1)).split())


def test_the_clock_alarm_reaches_the_admin_page_at_once(cfg, tmp_path: Path) -> None:
    """Through the real broker: the controller's clock falls a day behind its log (no command needed, the
    tick notices), the summary carries the alarm, the admin page shows it; after the time sync it is gone.
    While the controller runs it goes on at the log's time (clock_stepped_back); after a restart without the
    time it refuses (clock_behind)."""
    from tests.web_helpers import login, wait_for
    from waitroom.node import NodeRuntime
    from waitroom.service import ControllerService
    from waitroom.web import create_app

    clock = Clock(dt.datetime.now(TZ).timestamp())
    svc = ControllerService(cfg, str(tmp_path / "events.db"), clock=clock)
    assert svc.start(wait=10)
    disp = NodeRuntime(cfg, "disp-1")
    assert disp.start(wait=10)
    app = create_app(
        cfg,
        data_dir=tmp_path,
        test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True},
    )
    app.extensions["waitroom_users"].add("admin", "correct-horse-1", "admin")
    live = app.extensions["waitroom"]
    try:
        assert disp.request("ticket.issue", {"service": "pass"}, timeout=5)["ticket"]["number"] == "A001"
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        wait_for(lambda: live.state() is not None and live.state()["seq"] >= 2, timeout=10)
        assert 'id="alarm-' not in admin.get("/admin/").get_data(as_text=True)
        good = clock.t
        clock.t = good - 86400  # a time sync steps the clock back a day while the office runs: it goes on
        wait_for(lambda: (live.state() or {}).get("alerts"), timeout=10)
        assert live.state()["alerts"] == [{"code": "clock_stepped_back", "data": {"behind_s": 86400}}]
        assert alarm_text(admin.get("/admin/").get_data(as_text=True), "clock_stepped_back").startswith(
            "Die Uhr der Steuerung wurde um 1 Tg. 0 Std. hinter ihr Ereignisprotokoll zurückgestellt "
            "(Zeitsynchronisation). Sie arbeitet weiter"
        )
        assert disp.request("ticket.issue", {"service": "pass"}, timeout=5)["ticket"]["number"] == "A002"
        clock.t = good + 5  # caught up
        wait_for(lambda: "alerts" not in (live.state() or {"alerts": 1}), timeout=10)
        svc.stop()
        clock.t = good - 86400  # the Pi restarts without its time: refused until the time sync
        svc = ControllerService(cfg, str(tmp_path / "events.db"), clock=clock)
        assert svc.start(wait=10)
        wait_for(lambda: (live.state() or {}).get("alerts"), timeout=10)
        state = live.state()
        assert state["alerts"] == [{"code": "clock_behind", "data": {"behind_s": 86400}}]
        assert state["alarms"]["clock"]  # the old field, for readers of older versions of the contract
        html = admin.get("/admin/").get_data(as_text=True)
        assert alarm_text(html, "clock_behind") == (
            "Die Uhr der Steuerung geht 1 Tg. 0 Std. hinter ihrem Ereignisprotokoll zurück: Sie gibt keine "
            "Nummern aus, bis die Zeitsynchronisation die Uhr gestellt hat. Netzwerk und Zeitserver (NTP) "
            "prüfen."
        )
        # the fragment the open admin page merges from its live stream says the same
        fragment = admin.get("/admin/alarms").get_data(as_text=True)
        assert alarm_text(fragment, "clock_behind") == alarm_text(html, "clock_behind")
        said = re.sub(r"<[^>]+>", " ", html)  # what the page says (not its markup)
        assert "behind" not in said and "event log" not in said  # no English on the German page
        html = admin.get("/admin/?lang=en").get_data(as_text=True)
        assert alarm_text(html, "clock_behind").startswith(
            "The controller's clock is 1 d 0 h behind its event log"
        )
        reply = disp.request_reply("ticket.issue", {"service": "pass"}, timeout=5)
        assert reply["error"]["code"] == "clock_behind"
        clock.t = good + 10  # the time sync
        wait_for(lambda: "alerts" not in (live.state() or {"alerts": 1}), timeout=10)
        assert "alarms" not in live.state() and 'id="alarm-' not in admin.get("/admin/").get_data(
            as_text=True
        )
        assert 'id="alarm-' not in admin.get("/admin/alarms").get_data(as_text=True)
        assert disp.request("ticket.issue", {"service": "pass"}, timeout=5)["ticket"]["number"] == "A003"
    finally:
        live.close()
        disp.stop()
        svc.stop()


def test_the_controller_refuses_a_clock_file_without_a_time(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "clock").write_text("not a time\n")
    data = tmp_path / "data"
    cmd = [sys.executable, "-m", "waitroom", "controller", "--data-dir", str(data)]
    r = subprocess.run(
        [*cmd, "--clock-file", str(tmp_path / "clock")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "no epoch seconds" in r.stderr, r.stderr
    assert not data.exists() or not any(data.iterdir())  # refused before it touched the data


def test_a_retry_with_the_same_request_id_after_clock_behind_is_decided_again(make) -> None:
    """clock_behind means "not now": the refusal is not stored for the request id, so the node's retry of the
    same command (same id) gets a ticket once the time is synced, not the old refusal marked repeated."""
    good = dt.datetime(2026, 11, 23, 10, 0, tzinfo=TZ).timestamp()
    clock = Clock(good + 3600)
    office = make(with_hours(ALL_DAY), clock)
    assert number(office) == "A001"
    office.store.close()
    clock.t = good  # a restart, and the clock stepped back by the time sync
    office = make(with_hours(ALL_DAY), clock)
    raw = contract.encode({"id": "press-7", "op": "ticket.issue", "args": {"service": "pass"}})
    first = office.handle("disp-1", raw).reply
    assert first["error"]["code"] == "clock_behind"
    clock.t = good + 3600 + 5  # the time has caught up
    again = office.handle("disp-1", raw).reply
    assert again["ok"] and "repeated" not in again and again["result"]["ticket"]["number"] == "A002"
    once_more = office.handle("disp-1", raw).reply  # from now on the stored ok reply, as for every retry
    assert once_more["repeated"] and once_more["result"]["ticket"]["number"] == "A002"
