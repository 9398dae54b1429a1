"""The controller's operations on a real SQLite event log, without a broker."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from waitroom import config, contract
from waitroom.controller import NodeRateLimit, Office
from waitroom.store import EventStore

TZ = ZoneInfo("Europe/Berlin")
MONDAY_9 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=TZ).timestamp()


class Clock:
    def __init__(self, t: float = MONDAY_9):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def cfg():
    return config.load(config.EXAMPLE_CONFIG)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def office(cfg, tmp_path, clock):
    store = EventStore(tmp_path / "events.db")
    yield Office(cfg, store, clock=clock)
    store.close()


def cmd(office: Office, node: str, op: str, rid: str | None = None, **args):
    payload = contract.encode(contract.command(op, args, rid))
    return office.handle(node, payload)


def ok(office: Office, node: str, op: str, **args):
    out = cmd(office, node, op, **args)
    assert out.reply["ok"], out.reply
    return out.reply["result"]


def err(office: Office, node: str, op: str, **args) -> str:
    out = cmd(office, node, op, **args)
    assert out.reply["ok"] is False, out.reply
    assert out.reply["error"]["message"]
    return out.reply["error"]["code"]


def test_numbers_per_prefix_and_day(office, clock):
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A002"
    assert ok(office, "disp-1", "ticket.issue", service="melde")["ticket"]["number"] == "B001"
    clock.t += 86400  # next day: numbering restarts, yesterday's waiting tickets expire
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"
    assert len(office.state.waiting()) == 1


def test_ticket_start_is_configurable(cfg, tmp_path, clock):
    cfg = cfg.model_copy(update={"office": cfg.office.model_copy(update={"ticket_start": 100})})
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    assert ok(office, "disp-1", "ticket.issue", service="sonstiges")["ticket"]["number"] == "D100"


def test_counter_calls_only_its_services_priority_first_then_longest_waiting(office, clock):
    ok(office, "disp-1", "ticket.issue", service="fuehrerschein")  # C001: c1 does not serve it
    clock.t += 10
    ok(office, "disp-1", "ticket.issue", service="melde")  # B001
    clock.t += 10
    ok(office, "disp-1", "ticket.issue", service="pass")  # A001
    clock.t += 10
    ok(office, "web", "ticket.issue", service="pass", priority=True)  # A002 priority
    calls = [ok(office, "counter-1", "counter.call_next", counter="c1")["call"]["ticket"] for _ in range(3)]
    assert calls == ["A002", "B001", "A001"]
    assert err(office, "counter-1", "counter.call_next", counter="c1") == "nobody_waiting"
    # the last call was finished as served by the refused call_next: its effect is kept
    assert office.state.ticket("A001").state == "served"
    assert ok(office, "counter-4", "counter.call_next", counter="c4")["call"]["ticket"] == "C001"


def test_recall_served_no_show_and_call_events(office):
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "disp-1", "ticket.issue", service="pass")
    out = cmd(office, "counter-1", "counter.call_next", counter="c1")
    (_kind, call), *_ = [m for m in office.event_messages(out.events) if m[0] == "call"]
    assert call["ticket"] == "A001" and call["counter"] == "c1" and call["spoken"]["de"] == "Schalter eins"
    out = cmd(office, "counter-1", "counter.recall", counter="c1")
    assert [p["recall"] for k, p in office.event_messages(out.events) if k == "call"] == [True]
    assert ok(office, "counter-1", "counter.no_show", counter="c1")["ticket"]["state"] == "no_show"
    assert err(office, "counter-1", "counter.served", counter="c1") == "not_serving"
    ok(office, "counter-1", "counter.call_next", counter="c1")
    assert ok(office, "counter-1", "counter.served", counter="c1")["ticket"] == {
        "number": "A002",
        "state": "served",
    }


def test_transfer_keeps_arrival_time(office, clock):
    a = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]
    clock.t += 600
    ok(office, "disp-1", "ticket.issue", service="fuehrerschein")  # C001, arrived later
    ok(office, "counter-1", "counter.call_next", counter="c1")
    ok(office, "counter-1", "counter.transfer", counter="c1", service="fuehrerschein")
    t = office.state.ticket("A001")
    assert t.state == "waiting" and t.service == "fuehrerschein" and t.issued_at == a["issued_at"]
    # at the driving-licence counter, the transferred ticket is first: it arrived earlier
    assert ok(office, "counter-4", "counter.call_next", counter="c4")["call"]["ticket"] == "A001"
    # transfer to a named counter: only that counter may call it
    ok(office, "counter-4", "counter.transfer", counter="c4", to_counter="c2")
    assert err(office, "counter-1", "counter.call_next", counter="c1") == "nobody_waiting"
    assert office.state.ticket("A001").state == "waiting"
    assert ok(office, "counter-2", "counter.call_next", counter="c2")["call"]["ticket"] == "A001"


def test_park_and_call_back(office):
    ok(office, "disp-1", "ticket.issue", service="melde")
    ok(office, "counter-3", "counter.call_next", counter="c3")
    ok(office, "counter-3", "counter.park", counter="c3")
    assert office.state.ticket("B001").state == "parked"
    assert err(office, "counter-3", "counter.call_next", counter="c3") == "nobody_waiting"
    call = ok(office, "counter-3", "counter.call_ticket", counter="c3", ticket="b1")["call"]
    assert call["ticket"] == "B001" and "parked" in call["reason"]


def test_a_ticket_number_typed_as_the_display_shows_it_is_found(office):
    """The display shows and the voice says "B 2"; staff who type that (or "b 002") call ticket B002."""
    for _ in range(3):
        ok(office, "disp-1", "ticket.issue", service="melde")
    for typed, number in ((" B 2 ", "B002"), ("b 003", "B003"), ("B\t1", "B001")):
        assert (
            ok(office, "counter-3", "counter.call_ticket", counter="c3", ticket=typed)["call"]["ticket"]
            == number
        )
    assert err(office, "counter-3", "counter.call_ticket", counter="c3", ticket="B 1 2") == "unknown_ticket"


def test_a_ticket_number_is_ascii_letters_and_digits_and_a_bad_one_is_unknown(office, monkeypatch):
    ok(office, "disp-1", "ticket.issue", service="melde")
    ok(office, "counter-3", "counter.call_next", counter="c3")
    ok(office, "counter-3", "counter.park", counter="c3")
    rebuilt = []
    monkeypatch.setattr(office, "rebuild", lambda: rebuilt.append(1))
    for bad in (
        "b\u0661",
        "B\u00b9",
        "B" + "1" * 5000,
        "\u0392001",
    ):  # Arabic-Indic one, superscript, huge, Greek B
        assert err(office, "counter-3", "counter.call_ticket", counter="c3", ticket=bad) == "unknown_ticket"
    assert rebuilt == []  # answered as an unknown ticket, not as an internal fault that rebuilds the state
    assert (
        ok(office, "counter-3", "counter.call_ticket", counter="c3", ticket="b1")["call"]["ticket"] == "B001"
    )


def test_counter_open_pause_close(office):
    assert ok(office, "counter-1", "counter.pause", counter="c1", reason="Mittag")["counter"] == {
        "id": "c1",
        "state": "paused",
        "reason": "Mittag",
    }
    assert office.snapshot()["counters"][0]["state"] == "paused"
    ok(office, "counter-1", "counter.close", counter="c1")
    ok(office, "disp-1", "ticket.issue", service="pass")
    # a closed counter calls nobody: the staff open it first (nothing changes meanwhile)
    assert err(office, "counter-1", "counter.call_next", counter="c1") == "counter_closed"
    assert office.state.counters["c1"].state == "closed" and office.state.n_waiting("pass") == 1
    ok(office, "counter-1", "counter.open", counter="c1")
    assert ok(office, "counter-1", "counter.call_next", counter="c1")["call"]["ticket"] == "A001"
    assert office.state.counters["c1"].state == "open"


def test_assistance_lifecycle_and_escalation(office, clock):
    a = ok(office, "sb-1", "assist.request", terminal="sb-1")["assist"]
    assert a["state"] == "pending"
    # pressing again while pending: the same request
    assert ok(office, "sb-1", "assist.request", terminal="sb-1")["assist"]["id"] == a["id"]
    clock.t += 130
    out = office.tick()
    assert [e["type"] for e in out.events] == ["assist_escalated"] and office.state.assists[
        a["id"]
    ].level == 1
    clock.t += 200
    assert office.tick().events[0]["level"] == 2
    assert office.tick().events == []
    ok(office, "counter-2", "assist.acknowledge", request=a["id"])
    assert err(office, "web", "assist.acknowledge", request=a["id"]) == "invalid_state"
    assert office.state.assists[a["id"]].counter == "c2"
    ok(office, "web", "assist.resolve", request=a["id"])
    assert office.snapshot()["assistance"] == []
    b = ok(office, "sb-1", "assist.request", terminal="sb-1")["assist"]
    assert ok(office, "sb-1", "assist.cancel", terminal="sb-1")["assist"]["state"] == "cancelled"
    assert b["id"] != a["id"]


def test_appointment_checkin(office, clock):
    ok(office, "web", "appointment.book", code="k7p2q", service="pass", slot=clock.t + 1800)
    assert err(office, "disp-1", "appointment.checkin", code="NOPE1") == "unknown_appointment"
    t = ok(office, "disp-1", "appointment.checkin", code=" K7P2Q ")["ticket"]
    assert t["appointment"] == clock.t + 1800
    # checking in twice gives the same ticket, not a second one
    assert ok(office, "disp-1", "appointment.checkin", code="K7P2Q")["ticket"]["number"] == t["number"]
    # a late arrival becomes a walk-in by the default rule, queued from now without the appointment
    ok(office, "web", "appointment.book", code="LATE1", service="pass", slot=clock.t - 3600)
    late = ok(office, "disp-1", "appointment.checkin", code="LATE1")["ticket"]
    assert late["appointment"] is None and late["issued_at"] == clock.t
    # ... or is refused, where the office says so
    office.cfg = office.cfg.model_copy(
        update={
            "steering": office.cfg.steering.model_copy(
                update={
                    "appointments": office.cfg.steering.appointments.model_copy(
                        update={"late_arrival": "refuse"}
                    )
                }
            )
        }
    )
    ok(office, "web", "appointment.book", code="LATE2", service="pass", slot=clock.t - 3600)
    assert err(office, "disp-1", "appointment.checkin", code="LATE2") == "appointment_expired"
    # an appointment of another day is not valid today
    ok(office, "web", "appointment.book", code="TOMORROW", service="pass", slot=clock.t + 86400)
    assert err(office, "disp-1", "appointment.checkin", code="TOMORROW") == "appointment_expired"


def test_offline_lease_and_report(office, clock):
    lease = ok(office, "disp-1", "ticket.lease", service="pass", count=5)["lease"]
    assert (lease["prefix"], lease["first"], lease["count"]) == ("A", 900, 5)
    assert ok(office, "disp-1", "ticket.lease", service="pass", count=5)["lease"]["first"] == 905
    # walk-in numbering is untouched by leases: no number twice, and citizens still get A001
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"
    issued = clock.t - 120
    t = ok(office, "disp-1", "ticket.report_offline", service="pass", number=902, issued_at=issued)["ticket"]
    assert t["number"] == "A902" and office.state.ticket("A902").issued_at == issued
    again = ok(office, "disp-1", "ticket.report_offline", service="pass", number=902, issued_at=issued)[
        "ticket"
    ]
    assert again["id"] == t["id"]
    assert (
        err(office, "disp-1", "ticket.report_offline", service="pass", number=2, issued_at=issued)
        == "forbidden"
    )
    assert err(office, "disp-1", "ticket.lease", service="pass", count=95) == "numbers_used_up"  # 910..1004


def test_intake_manual_override(office):
    ok(office, "web", "intake.set", service="fuehrerschein", open=False, reason="Annahmeschluss")
    assert err(office, "disp-1", "ticket.issue", service="fuehrerschein") == "intake_stopped"
    snap = office.snapshot()
    svc = next(s for s in snap["services"] if s["id"] == "fuehrerschein")
    assert svc["intake_open"] is False and svc["intake_reason"] == "Annahmeschluss"
    ok(office, "web", "intake.set", service="fuehrerschein", auto=True)
    ok(office, "disp-1", "ticket.issue", service="fuehrerschein")


@pytest.mark.parametrize(
    "node,payload,code",
    [
        ("disp-1", b"not json", "bad_json"),
        ("disp-1", b"[1,2]", "bad_json"),
        ("disp-1", b"\xff\xfe", "bad_json"),
        (
            "disp-1",
            b'{"id": "x", "op": "ticket.issue", "args": {"service": "pass"}, "pad": "' + b"x" * 20000 + b'"}',
            "too_large",
        ),
        ("disp-1", b'{"op": "ticket.issue", "args": {"service": "pass"}}', "bad_request"),
        ("disp-1", b'{"id": "a b", "op": "ticket.issue"}', "bad_request"),
        ("disp-1", b'{"id": "r1", "op": "ticket.print_money"}', "unknown_op"),
        ("disp-1", b'{"id": "r1", "op": "counter.call_next", "args": {"counter": "c1"}}', "forbidden"),
        ("display-1", b'{"id": "r1", "op": "ticket.issue", "args": {"service": "pass"}}', "forbidden"),
        ("nobody", b'{"id": "r1", "op": "ticket.issue", "args": {"service": "pass"}}', "unknown_node"),
        ("disp-1", b'{"id": "r1", "op": "ticket.issue", "args": {"service": "mars"}}', "unknown_service"),
        ("disp-1", b'{"id": "r1", "op": "ticket.issue", "args": {"service": 7}}', "unknown_service"),
        (
            "disp-1",
            b'{"id": "r1", "op": "ticket.issue", "args": {"service": "pass", "priority": "yes"}}',
            "bad_request",
        ),
        (
            "disp-1",
            b'{"id": "r1", "op": "ticket.issue", "args": {"service": "pass", "slot": NaN}}',
            "bad_json",
        ),
        ("disp-1", b'{"id": "r1", "op": "ticket.issue", "args": {"service": "pass\\udc80"}}', "bad_json"),
        ("disp-1", b'{"id": "r1", "op": "x", "args": ' + b"[" * 1000 + b"]" * 1000 + b"}", "bad_json"),
        ("disp-1", b'{"id": "r1", "op": "ticket.issue", "args": []}', "bad_request"),
        ("counter-1", b'{"id": "r1", "op": "counter.call_next", "args": {"counter": "c2"}}', "forbidden"),
        (
            "counter-1",
            b'{"id": "r1", "op": "counter.call_next", "args": {"counter": "c99"}}',
            "unknown_counter",
        ),
        ("sb-1", b'{"id": "r1", "op": "assist.request", "args": {"terminal": "sb-2"}}', "unknown_node"),
        ("web", b'{"id": "r1", "op": "ticket.lease", "args": {"service": "pass"}}', "forbidden"),
        (
            "disp-1",
            b'{"id": "r1", "op": "ticket.lease", "args": {"service": "pass", "count": 100000}}',
            "bad_request",
        ),
        (
            "web",
            b'{"id": "r1", "op": "counter.call_ticket", "args": {"counter": "c1", "ticket": "Z999"}}',
            "unknown_ticket",
        ),
    ],
)
def test_bad_input_gets_an_error_reply_and_changes_nothing(office, node, payload, code):
    before = office.store.last_seq()
    out = office.handle(node, payload)
    assert out.reply["ok"] is False and out.reply["error"]["code"] == code, out.reply
    if b'"id": "r1"' in payload:
        assert out.reply["id"] == "r1"  # even a broken command is answered with its request id
    assert out.events == [] or [e["type"] for e in out.events] == ["day_started"]
    assert office.store.last_seq() <= before + 1
    assert not office.state.tickets


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("ticket.issue", {"service": "x" * 16000}),
        ("ticket.issue", {"service": "\\" * 8000}),  # a backslash is two bytes in JSON
        ("counter.call_ticket", {"counter": "c1", "ticket": "\U0001f600" * 4000}),
        ("x" * 16000, {}),
    ],
)
def test_an_error_reply_quoting_a_huge_value_stays_within_its_bound(office, op, args):
    """Error messages quote the bad value; cut, so a reply stays within the 1024 bytes of the contract
    (it echoed up to 16 KB back)."""
    rid = "r" * 64
    payload = contract.encode({"id": rid, "op": op, "args": args})
    assert len(payload) <= contract.MAX_PAYLOAD_BYTES
    reply = office.handle("web", payload).reply
    assert reply["ok"] is False and reply["id"] == rid and reply["error"]["message"]
    assert reply["error"]["code"] in ("unknown_service", "unknown_ticket", "unknown_op")
    assert len(contract.encode(reply)) <= 1024


def test_same_request_id_has_its_effect_once(office):
    first = cmd(office, "disp-1", "ticket.issue", rid="req-1", service="pass").reply
    again = cmd(office, "disp-1", "ticket.issue", rid="req-1", service="pass").reply
    assert again == {**first, "repeated": True} and len(office.state.tickets) == 1
    other = cmd(office, "disp-1", "ticket.issue", rid="req-1", service="melde").reply
    assert other["error"]["code"] == "duplicate" and len(office.state.tickets) == 1
    # the same id from another node is another request
    assert cmd(office, "web", "ticket.issue", rid="req-1", service="pass").reply["ok"]


def test_a_query_changes_nothing_and_its_repeat_is_answered_anew(office):
    """Queries (ticket.show, ticket.reservation, appointment.slots / .show) are asked by public pages and the
    city: their replies are not stored, so a flood of them fills neither the disk nor the memory, and a
    repeat says how things stand now."""
    assert {n for n, op in contract.OPS.items() if op.query} == {
        "ticket.reservation",
        "ticket.show",
        "appointment.slots",
        "appointment.show",
    }
    tid = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["id"]
    first = cmd(office, "web", "ticket.show", rid="q-1", tickets=[tid]).reply
    assert first["result"]["tickets"][0]["state"] == "waiting"
    assert cmd(office, "web", "ticket.cancel", rid="c-1", ticket=tid).reply["ok"]
    again = cmd(office, "web", "ticket.show", rid="q-1", tickets=[tid]).reply
    assert "repeated" not in again and again["result"]["tickets"][0]["state"] == "cancelled"
    assert office.store.reply_for("web", "q-1") is None
    assert office.store.reply_for("web", "c-1") is not None  # a command's reply is stored as before


def test_state_is_rebuilt_exactly_from_the_log(cfg, tmp_path, clock):
    path = tmp_path / "events.db"
    office = Office(cfg, EventStore(path), clock=clock)
    for svc in ["pass", "melde", "pass", "fuehrerschein", "sonstiges"]:
        ok(office, "disp-1", "ticket.issue", service=svc)
        clock.t += 30
    ok(office, "counter-1", "counter.call_next", counter="c1")
    ok(office, "counter-1", "counter.park", counter="c1")
    ok(office, "counter-3", "counter.call_next", counter="c3")
    ok(office, "counter-4", "counter.pause", counter="c4", reason="Pause")
    ok(office, "sb-1", "assist.request", terminal="sb-1")
    ok(office, "web", "intake.set", service="melde", open=False, reason="voll")
    office.refresh_forecast()  # the summary shows the last full forecast, refreshed off the command path
    before = json.dumps(office.snapshot(), sort_keys=True)
    office.store.close()
    rebuilt = Office(cfg, EventStore(path), clock=clock)
    assert json.dumps(rebuilt.snapshot(), sort_keys=True) == before
    assert ok(rebuilt, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A003"


def test_snapshot_and_public_payloads(office):
    ok(office, "disp-1", "ticket.issue", service="pass")
    snap = office.snapshot()
    assert snap["office"] == "mitte" and snap["seq"] == office.state.seq
    assert [s["id"] for s in snap["services"]] == ["pass", "melde", "fuehrerschein", "sonstiges"]
    assert "waiting" not in snap and snap["services"][0]["waiting"] == 1  # counts, never the ticket list
    page = office.queue_page("pass")
    assert page["total"] == 1 and page["tickets"][0]["ticket"] == "A001" and page["seq"] == snap["seq"]
    pub = office.public(snap)
    assert set(pub) == {"v", "office", "name", "ts", "services"}
    assert "waiting" not in pub and "calls" not in pub  # no ticket list in the public part
    assert pub["services"][0]["waiting"] == 1
    assert not any("walk_in" in s for s in pub["services"])  # said only of a service by appointment only


def test_the_public_part_marks_a_service_by_appointment_only(cfg, tmp_path, clock):
    services = [s.model_copy(update={"walk_in": s.id != "fuehrerschein"}) for s in cfg.services]
    office = Office(cfg.model_copy(update={"services": services}), EventStore(tmp_path / "e.db"), clock=clock)
    pub = {s["id"]: s for s in office.public()["services"]}
    assert pub["fuehrerschein"]["walk_in"] is False and "walk_in" not in pub["pass"]


def test_stored_replies_are_pruned_after_two_days(office, clock):
    cmd(office, "disp-1", "ticket.issue", rid="old-1", service="pass")
    assert office.store.reply_for("disp-1", "old-1") is not None
    clock.t += 3 * 86400
    office.tick()
    assert office.store.reply_for("disp-1", "old-1") is None
    assert office.store.last_seq() >= 2  # the events stay


# ------------------------------------------------------------------------- contract correctness (issue 12)
def test_unknown_arguments_of_a_newer_node_are_ignored(office):
    t = ok(office, "disp-1", "ticket.issue", service="pass", colour="red", v2_field={"a": 1})["ticket"]
    assert t["number"] == "A001"


def test_office_hours_are_enforced(office, clock):
    clock.t = dt.datetime(2026, 11, 24, 7, 30, tzinfo=TZ).timestamp()  # Tuesday before opening: leases only
    assert err(office, "disp-1", "ticket.issue", service="pass") == "office_closed"
    assert ok(office, "disp-1", "ticket.lease", service="pass", count=5)["lease"]["first"] == 900
    clock.t = dt.datetime(2026, 11, 24, 20, 10, tzinfo=TZ).timestamp()  # Tuesday 20:10, open 08:00-16:00
    assert err(office, "disp-1", "ticket.issue", service="pass") == "office_closed"
    assert err(office, "disp-1", "ticket.lease", service="pass", count=5) == "office_closed"
    clock.t = dt.datetime(2026, 11, 28, 10, 0, tzinfo=TZ).timestamp()  # Saturday: closed all day
    assert err(office, "disp-1", "ticket.issue", service="pass") == "office_closed"
    assert not office.state.tickets


def test_the_clock_behind_the_log_refuses_instead_of_numbering_again(office, clock):
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"
    clock.t += 30
    ok(office, "disp-1", "ticket.issue", service="pass")
    good = clock.t
    clock.t -= 86400  # a Pi without a real-time clock boots with yesterday's time
    office = Office(office.cfg, office.store, clock=clock)  # (a restart: one that ran goes on, test_clock)
    assert err(office, "disp-1", "ticket.issue", service="pass") == "clock_behind"
    assert "clock" in office.alarms and office.snapshot()["alarms"]["clock"]
    assert office.tick().events == []  # nothing time-driven either
    clock.t = good + 5  # the time sync corrects it: the same day goes on, no number twice
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A003"
    assert not office.alarms
    clock.t -= 20  # a small NTP step back is tolerated
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A004"


def test_a_small_step_back_across_midnight_does_not_start_the_day_again(cfg, tmp_path):
    hours = {d: ["00:00", "23:59"] for d in config.WEEKDAYS}
    cfg = cfg.model_copy(update={"office": cfg.office.model_copy(update={"hours": hours})})
    midnight = dt.datetime(2026, 11, 24, 0, 0, tzinfo=TZ).timestamp()
    clock = Clock(midnight + 5)
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"
    clock.t = midnight - 15  # NTP steps back 20 s, across midnight
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A002"
    assert office.state.day == "2026-11-24"
    clock.t = midnight + 10
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A003"


def test_offline_tickets_carry_times_checked_against_the_lease(office, clock):
    lease = ok(office, "disp-1", "ticket.lease", service="pass", count=5)["lease"]
    for bad in (0, -1e308, clock.t + 3600, clock.t - 7200):
        code = err(
            office, "disp-1", "ticket.report_offline", service="pass", number=lease["first"], issued_at=bad
        )
        assert code == "bad_request", bad
    clock.t += 600
    t = ok(office, "disp-1", "ticket.report_offline", service="pass", number=900, issued_at=clock.t - 300)
    assert t["ticket"]["issued_at"] == clock.t - 300


def test_a_report_made_before_is_no_licence_for_bad_values(office, clock):
    """A second report of an offline ticket answers as the first did, but only for a valid report: any
    priority or time was answered ok once the number had been reported."""
    ok(office, "disp-1", "ticket.lease", service="pass", count=5)
    args = {"service": "pass", "number": 900, "issued_at": clock.t}
    first = ok(office, "disp-1", "ticket.report_offline", **args)["ticket"]
    assert ok(office, "disp-1", "ticket.report_offline", **args)["ticket"]["id"] == first["id"]
    for bad in ({"priority": "yes"}, {"priority": None}, {"issued_at": -1e30}, {"issued_at": clock.t + 7200}):
        assert err(office, "disp-1", "ticket.report_offline", **{**args, **bad}) == "bad_request", bad
    assert len(office.state.tickets) == 1


@pytest.mark.parametrize("reason", [{"a": 1}, ["x"], 7, True])
def test_a_reason_that_is_no_text_is_refused(office, reason):
    """Free-text reasons go to the displays and the log: a number, list or object was shown as its Python
    text ("{'a': 1}") instead of being refused."""
    t = ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]
    assert err(office, "web", "intake.set", service="pass", open=False, reason=reason) == "bad_request"
    assert err(office, "disp-1", "ticket.cancel", ticket=t["number"], reason=reason) == "bad_request"
    assert err(office, "web", "counter.pause", counter="c1", reason=reason) == "bad_request"
    assert office.intake_open("pass") == (True, "")
    assert office.state.tickets[t["id"]].state == "waiting"
    ok(office, "web", "intake.set", service="pass", open=False, reason="Annahmeschluss")
    ok(office, "disp-1", "ticket.cancel", ticket=t["number"], reason="print_failed")
    assert office.intake_open("pass") == (False, "Annahmeschluss")


@pytest.mark.parametrize("slot", [float("inf"), 1e308, 10**400, -5, True, "morgen"])
def test_appointment_slots_must_be_real_times(office, slot):
    payload = contract.encode(
        contract.command("appointment.book", {"code": "K7P2Q", "service": "pass", "slot": 0})
    )
    payload = payload.replace(b'"slot":0', b'"slot":' + json.dumps(slot).encode())
    out = office.handle("web", payload)
    assert out.reply["ok"] is False and out.reply["error"]["code"] in ("bad_request", "bad_json"), out.reply
    assert json.loads(contract.encode(out.reply)) == out.reply  # the reply itself is plain JSON


def test_a_service_whose_numbers_are_used_up_says_so(office):
    ok(office, "disp-1", "ticket.issue", service="pass")
    office.state.next_number["A"] = 899
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A899"
    assert err(office, "disp-1", "ticket.issue", service="pass") == "numbers_used_up"


def test_a_flooding_node_is_rate_limited_and_the_others_are_not(cfg):
    limits = NodeRateLimit(cfg)
    t = 1000.0
    flood = [limits.allow("counter-1", now=t + i * 0.001) for i in range(200)]  # 1,000 a second
    assert flood[:60] == [True] * 60 and flood.count(True) < 70  # the burst, then about 20 a second
    assert limits.allow("disp-1", now=t + 0.2)  # another node is not affected
    assert limits.allow("counter-1", now=t + 5)  # and the flooder gets its share again later
    assert all(limits.allow("web", now=t + i * 0.001) for i in range(300))  # the web app speaks for many


def test_an_error_reply_names_its_details_as_fields(office):
    """A refusal carries its details as fields (error.data), so that a node can say them in its own words
    instead of showing the English message: which counter, which ticket, in which state."""
    reply = cmd(office, "web", "counter.call_next", counter="c2").reply
    assert reply["error"]["code"] == "nobody_waiting" and reply["error"]["data"] == {"counter": "c2"}
    reply = cmd(office, "web", "counter.call_ticket", counter="c2", ticket="Z999").reply
    assert reply["error"]["data"] == {"ticket": "Z999"}
    reply = cmd(
        office, "web", "counter.call_ticket", counter="c2", ticket="Muster"
    ).reply  # not number-shaped
    assert reply["error"]["code"] == "unknown_ticket" and "data" not in reply["error"]
    cmd(office, "web", "counter.pause", counter="c2", reason="besprechung")
    reply = cmd(office, "web", "counter.call_next", counter="c2").reply
    assert reply["error"] == {
        "code": "counter_closed",
        "message": "counter c2 is paused; open it (counter.open) before calling",
        "data": {"counter": "c2", "state": "paused"},
    }
    reply = cmd(office, "web", "ticket.issue", service="mars").reply
    assert reply["error"]["code"] == "unknown_service" and reply["error"]["data"] == {"service": "mars"}
    # what was typed as a booking code may be a name: not echoed as a field (replies are kept for two days)
    reply = cmd(office, "web", "appointment.checkin", code="Frau Muster").reply
    assert reply["error"]["code"] == "unknown_appointment" and "data" not in reply["error"]
    # a refusal without details has no data field; a value that is not text or a whole number is left out,
    # and text is cut
    assert "data" not in cmd(office, "web", "ticket.issue").reply["error"]
    err = contract.error_reply(
        "r1", contract.ErrorCode.BAD_REQUEST, "m", {"a": [1], "b": True, "c": "x" * 99}
    )
    assert err["error"]["data"] == {"c": "x" * contract.REPLY_DATA_CHARS}


def test_an_action_on_the_ticket_a_stale_screen_shows_changes_nothing(office):
    """``current``: the ticket the sender shows as called. A double "next" (both sent with what the screen
    showed before the first) called two tickets, finishing the first one as served unseen; a "no-show" from
    a page older than a call made at the counter's buttons marked the newly called citizen as not appeared."""
    for _ in range(3):
        ok(office, "disp-1", "ticket.issue", service="pass")
    assert ok(office, "web", "counter.call_next", counter="c1", current="")["call"]["ticket"] == "A001"
    second = cmd(office, "web", "counter.call_next", counter="c1", current="").reply
    assert second["error"]["code"] == "invalid_state"
    assert second["error"]["data"] == {"counter": "c1", "state": "serving", "ticket": "A001"}
    assert office.state.ticket("A001").state == "called" and office.state.ticket("A002").state == "waiting"
    # the counter's own button calls the next one; the page still shows A001
    ok(office, "counter-1", "counter.call_next", counter="c1")
    for op in ("counter.no_show", "counter.served", "counter.park", "counter.recall", "counter.close"):
        reply = cmd(office, "web", op, counter="c1", current="A001").reply
        assert reply["error"]["data"] == {"counter": "c1", "state": "serving", "ticket": "A002"}, op
    reply = cmd(office, "web", "counter.transfer", counter="c1", service="melde", current="a1").reply
    assert reply["error"]["code"] == "invalid_state"
    reply = cmd(office, "web", "counter.pause", counter="c1", reason="Pause", current="A001").reply
    assert reply["error"]["code"] == "invalid_state"
    assert office.state.ticket("A002").state == "called" and office.state.counters["c1"].state == "open"
    # what the screen shows is what is called (number in any spelling, or the id): done
    assert ok(office, "web", "counter.no_show", counter="c1", current="a2")["ticket"]["state"] == "no_show"
    reply = cmd(office, "web", "counter.served", counter="c1", current="A002").reply
    assert reply["error"]["data"] == {"counter": "c1", "state": "idle"}
    tid = office.state.ticket("A003").id
    ok(office, "web", "counter.call_ticket", counter="c1", ticket="A003", current="")
    assert ok(office, "web", "counter.served", counter="c1", current=tid)["ticket"]["number"] == "A003"
    # without it, as before (the counter's buttons, older clients); a wrong type is a bad request
    assert cmd(office, "web", "counter.open", counter="c1", current=7).reply["ok"] is True  # not an argument
    assert err(office, "web", "counter.close", counter="c1", current=7) == "bad_request"
    assert err(office, "web", "counter.close", counter="c1", current="x" * 41) == "bad_request"
    assert ok(office, "web", "counter.close", counter="c1", current="")["counter"]["state"] == "closed"


def test_no_citizen_waits_for_a_closed_counter(cfg, tmp_path, office, clock):
    """A ticket transferred to one counter is called by that counter only. Transferring to a closed counter
    was accepted, and a counter that closed (at the end of the day) kept the tickets sent to it: they waited
    for a counter that would not call them, hidden from the other counters' lists, until the day ended."""
    for _ in range(3):
        ok(office, "disp-1", "ticket.issue", service="pass")
        clock.t += 60
    ok(office, "counter-4", "counter.close", counter="c4")
    ok(office, "counter-1", "counter.call_next", counter="c1")  # A001
    out = cmd(office, "counter-1", "counter.transfer", counter="c1", to_counter="c4").reply
    assert out["error"]["code"] == "counter_closed"
    assert out["error"]["data"] == {"counter": "c4", "state": "closed"}
    assert office.state.ticket("A001").state == "called" and office.state.counters["c1"].current
    # to an open counter (or a paused one: it comes back), then that counter closes for the day
    ok(office, "counter-1", "counter.transfer", counter="c1", to_counter="c2")
    ok(office, "counter-2", "counter.pause", counter="c2", reason="Pause")
    assert office.state.ticket("A001").target_counter == "c2"
    assert ok(office, "counter-1", "counter.call_next", counter="c1")["call"]["ticket"] == "A002"
    ok(office, "counter-2", "counter.close", counter="c2")
    t = office.state.ticket("A001")
    assert t.state == "waiting" and t.target_counter is None and t.service == "pass"
    assert office.queue_page("pass")["tickets"][0]["ticket"] == "A001"  # still first: it came first
    assert ok(office, "counter-1", "counter.call_next", counter="c1")["call"]["ticket"] == "A001"
    # the log gives the same state again
    rebuilt = Office(cfg, office.store, clock=clock)
    assert rebuilt.state.ticket("A001").state == "called" and rebuilt.state.counters["c1"].current == t.id
    assert [x.number for x in rebuilt.state.waiting()] == ["A003"]


def test_a_retry_in_the_batch_of_a_failed_commit_gets_no_ok_for_what_is_not_in_the_log(office, caplog):
    """A node's retry decided in the same batch as the command it repeats (both waited in the inbox), and a
    request decided after its node voided it in that batch: when the batch cannot be committed (the disk is
    full), every answer says so. The retry used to get the first command's ``ok`` again, with a number that
    was never written: the node printed it, and the next ticket.issue handed the same number out again."""
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"

    def issue(rid: str) -> tuple[str, bytes]:
        return ("disp-1", contract.encode(contract.command("ticket.issue", {"service": "pass"}, rid)))

    void = contract.encode(contract.command("request.void", {"request": "late-1"}, "v-1"))
    items = [issue("r-1"), issue("r-1"), ("disp-1", void), issue("late-1")]
    items += [issue(f"pad-{i}") for i in range(40)]  # more than the log's free room
    db = office.store.db
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")  # the disk is full
    try:
        replies = [o.reply for o in office.handle_batch(items)]
    finally:
        db.execute("PRAGMA max_page_count=1073741823")
    assert [r["id"] for r in replies[:4]] == ["r-1", "r-1", "v-1", "late-1"]
    # the log names the cause (the error SQLite rolled back for), not "cannot rollback" after it
    failed = [r for r in caplog.records if r.getMessage().startswith("could not write the event log")]
    assert len(failed) == 1 and "full" in str(failed[0].exc_info[1]), failed[0].exc_info
    assert {(r["ok"], str(r.get("error"))) for r in replies} == {
        (False, str({"code": "internal", "message": "event log not writable"}))
    }, replies[:4]
    assert [e["number"] for e in office.store.events() if e["type"] == "ticket_issued"] == ["A001"]
    # the retries once there is room: decided now, and no number twice
    assert (
        cmd(office, "disp-1", "ticket.issue", rid="r-1", service="pass").reply["result"]["ticket"]["number"]
        == "A002"
    )
    assert ok(office, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A003"
    assert cmd(office, "disp-1", "ticket.issue", rid="late-1", service="pass").reply["ok"]  # not voided


def test_a_log_that_cannot_be_written_is_an_alarm_until_a_write_succeeds(office, clock):
    """A full disk refuses every command ``internal``; the summary tells the admin and every counter
    (``log_unwritable``, since the first failed write, with the database's words) until a write succeeds."""
    ok(office, "disp-1", "ticket.issue", service="pass")
    db = office.store.db
    db.execute(f"PRAGMA max_page_count={db.execute('PRAGMA page_count').fetchone()[0]}")  # the disk is full
    failed_at = int(clock())
    try:
        for _ in range(40):  # until the log's last page is full
            if not cmd(office, "disp-1", "ticket.issue", service="pass").reply["ok"]:
                break
        else:
            raise AssertionError("the log never filled up")
        clock.t += 60
        assert err(office, "disp-1", "ticket.issue", service="pass") == "internal"
        (alert,) = office.state_message()[0]["alerts"]
        assert alert["code"] == "log_unwritable" and "full" in alert["data"]["error"]
        assert failed_at <= alert["data"]["since"] < failed_at + 60  # the first failed write, not the last
    finally:
        db.execute("PRAGMA max_page_count=1073741823")
    ok(office, "disp-1", "ticket.issue", service="pass")
    assert "alerts" not in office.state_message()[0]


# ------------------------------------------------------------------------- request.void (an orphaned request)
def test_a_voided_request_that_arrives_later_issues_nothing_and_gets_request_voided(office, tmp_path, clock):
    void = cmd(office, "disp-1", "request.void", rid="v-1", request="lost-1").reply
    assert void["ok"] and void["result"] == {"request": {"id": "lost-1", "state": "voided"}}
    late = cmd(office, "disp-1", "ticket.issue", rid="lost-1", service="pass").reply
    assert late["ok"] is False and late["error"]["code"] == "request_voided"
    assert late["id"] == "lost-1" and late["error"]["data"] == {"request": "lost-1"}
    assert not office.state.tickets  # nothing issued, nothing to cancel
    # idempotent: the void again (its own id: the stored reply; a new id: the same answer), the late one again
    assert cmd(office, "disp-1", "request.void", rid="v-1", request="lost-1").reply == {
        **void,
        "repeated": True,
    }
    again = cmd(office, "disp-1", "request.void", rid="v-2", request="lost-1").reply
    assert again["result"] == void["result"]
    assert cmd(office, "disp-1", "ticket.issue", rid="lost-1", service="pass").reply == late
    # the void is in the log's replies: a restarted controller still refuses the late command
    restarted = Office(office.cfg, EventStore(tmp_path / "events.db"), clock=clock)
    assert cmd(restarted, "disp-1", "ticket.issue", rid="lost-1", service="pass").reply == late
    assert ok(restarted, "disp-1", "ticket.issue", service="pass")["ticket"]["number"] == "A001"  # no gap


def test_voiding_a_decided_request_answers_what_was_decided(office):
    first = cmd(office, "disp-1", "ticket.issue", rid="slow-1", service="pass").reply
    done = cmd(office, "disp-1", "request.void", rid="v-1", request="slow-1").reply
    assert done["result"] == {"request": {"id": "slow-1", "state": "decided", "result": first["result"]}}
    assert office.state.tickets[first["result"]["ticket"]["id"]].state == "waiting"  # nothing undone by it
    ok(office, "web", "intake.set", service="melde", open=False, reason="Annahmeschluss")
    refused = cmd(office, "disp-1", "ticket.issue", rid="slow-2", service="melde").reply
    assert refused["error"]["code"] == "intake_stopped"
    done = cmd(office, "disp-1", "request.void", rid="v-2", request="slow-2").reply
    assert done["result"]["request"] == {"id": "slow-2", "state": "decided", "error": refused["error"]}


def test_a_void_and_its_request_in_one_batch_are_decided_in_order(office):
    def batch(*items):
        return [o.reply for o in office.handle_batch([("disp-1", contract.encode(c)) for c in items])]

    issue = contract.command("ticket.issue", {"service": "pass"}, "in-1")
    void = contract.command("request.void", {"request": "in-1"}, "in-1-v")
    first, settled = batch(issue, void)
    assert settled["result"]["request"]["state"] == "decided" and first["ok"]
    issue = contract.command("ticket.issue", {"service": "pass"}, "in-2")
    void = contract.command("request.void", {"request": "in-2"}, "in-2-v")
    settled, late = batch(void, issue)
    assert settled["result"]["request"]["state"] == "voided" and late["error"]["code"] == "request_voided"
    assert [t.number for t in office.state.tickets.values()] == ["A001"]


def test_a_node_voids_only_its_own_request_ids(office):
    cmd(office, "web", "ticket.issue", rid="theirs", service="pass")

    def void(rid: str, **args: object) -> dict:
        return office.handle("disp-1", contract.encode(contract.command("request.void", args, rid))).reply

    out = void("v-1", request="theirs", node="web")
    assert out["error"]["code"] == "forbidden" and out["error"]["data"] == {"node": "web"}
    # request ids are per node: the same id of disp-1 is another request, which never arrived
    mine = void("v-2", request="theirs", node="disp-1")
    assert mine["result"]["request"]["state"] == "voided"
    assert cmd(office, "web", "ticket.issue", rid="theirs", service="pass").reply["repeated"] is True
    assert err(office, "disp-1", "request.void") == "bad_request"  # no request id
    assert err(office, "disp-1", "request.void", request="not a request id!") == "bad_request"
    assert err(office, "disp-1", "request.void", request=7) == "bad_request"
    assert err(office, "display-1", "request.void", request="x") == "forbidden"  # not its role
    assert len(office.state.tickets) == 1


def test_a_voided_request_id_is_kept_as_long_as_the_replies(office, clock):
    cmd(office, "disp-1", "request.void", rid="v-1", request="lost-1")
    clock.t += 86400  # a day later (the next office day): still void
    office.tick()
    assert cmd(office, "disp-1", "ticket.issue", rid="lost-1", service="pass").reply["error"]["code"] == (
        "request_voided"
    )
    clock.t += 2 * 86400  # pruned with the replies of its time
    office.tick()
    assert office.store.reply_for("disp-1", "lost-1") is None


# ------------------------------------------------------------------------------------ unstaffed services
def unstaffed(office: Office) -> dict[str, tuple[int, float]]:
    """The unstaffed_service alarms of the summary: service -> (waiting, since)."""
    return {
        a["data"]["service"]: (a["data"]["waiting"], a["data"]["since"])
        for a in office.snapshot().get("alerts", [])
        if a["code"] == "unstaffed_service"
    }


def test_closing_the_last_counter_of_a_service_with_citizens_waiting_raises_an_alarm(office, clock):
    """The last open counter of a service closes while its citizens wait: nothing refused (a clerk may have
    to leave), but after the grace time the summary says which service, how many wait and since when; it
    ends when a counter serving the service opens again."""
    for _ in range(3):
        ok(office, "disp-1", "ticket.issue", service="sonstiges")  # only c3 serves it
    assert ok(office, "counter-3", "counter.close", counter="c3")["counter"]["state"] == "closed"
    closed = clock.t
    assert unstaffed(office) == {}  # not at once: a counter may be closed for a moment
    clock.t += 119
    office.tick()
    assert unstaffed(office) == {}
    clock.t += 1
    office.tick()
    assert unstaffed(office) == {"sonstiges": (3, closed)}
    ok(office, "disp-1", "ticket.issue", service="sonstiges")
    assert unstaffed(office) == {"sonstiges": (4, closed)}  # the count follows at once
    assert office.alarms == {}  # the old English field knows only the clock
    ok(office, "counter-3", "counter.open", counter="c3")
    assert unstaffed(office) == {}  # at once, without waiting for a tick


def test_a_pause_of_the_only_counter_raises_it_after_the_grace_time_and_a_short_one_never(office, clock):
    ok(office, "disp-1", "ticket.issue", service="sonstiges")
    ok(office, "counter-3", "counter.pause", counter="c3", reason="pause")
    clock.t += 90
    office.tick()
    ok(office, "counter-3", "counter.open", counter="c3")  # back after a minute and a half: no alarm
    clock.t += 60
    office.tick()
    assert unstaffed(office) == {}
    ok(office, "counter-3", "counter.pause", counter="c3", reason="mittag")
    paused = clock.t
    clock.t += 120
    office.tick()
    assert unstaffed(office) == {"sonstiges": (1, paused)}
    # another counter calls the ticket by its number: nobody waits any more, the alarm ends
    ok(office, "counter-1", "counter.call_ticket", counter="c1", ticket="D001")
    assert unstaffed(office) == {}
    # a new citizen while it is still paused: waits unserved from now on
    ok(office, "disp-1", "ticket.issue", service="sonstiges")
    arrived = clock.t
    clock.t += 120
    office.tick()
    assert unstaffed(office) == {"sonstiges": (1, arrived)}


def test_an_alarm_needs_every_counter_of_the_service_away_and_ends_when_the_queue_empties(office, clock):
    ok(office, "disp-1", "ticket.issue", service="fuehrerschein")  # c4 open, c5 closed (initially)
    clock.t += 600
    office.tick()
    assert unstaffed(office) == {}
    ok(office, "counter-4", "counter.close", counter="c4")
    clock.t += 600
    office.tick()
    assert unstaffed(office) == {"fuehrerschein": (1, clock.t - 600)}
    ok(office, "web", "ticket.cancel", ticket="C001")
    assert unstaffed(office) == {}


def test_a_transfer_or_a_check_in_to_a_service_without_an_open_counter_raises_it(office, clock):
    ok(office, "web", "appointment.book", code="K7P2Q", service="sonstiges", slot=clock.t + 1800)
    ok(office, "counter-3", "counter.close", counter="c3")
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "counter-1", "counter.call_next", counter="c1")
    ok(office, "counter-1", "counter.transfer", counter="c1", service="sonstiges")
    transferred = clock.t
    clock.t += 60
    assert ok(office, "disp-1", "appointment.checkin", code="K7P2Q")["ticket"]["appointment"]
    clock.t += 60
    office.tick()
    assert unstaffed(office) == {"sonstiges": (2, transferred)}


def test_a_ticket_transferred_to_a_counter_that_is_not_open_waits_for_nobody(office, clock):
    """Only the named counter calls a ticket transferred to it: while it is paused, that ticket waits for
    nobody, whether or not other counters serve its service; one transferred to an open counter that does
    not serve its service is called there."""
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "disp-1", "ticket.issue", service="pass")
    ok(office, "counter-1", "counter.call_next", counter="c1")
    ok(office, "counter-1", "counter.transfer", counter="c1", to_counter="c3")  # c3: no pass
    clock.t += 600
    office.tick()
    assert unstaffed(office) == {}
    ok(office, "counter-3", "counter.pause", counter="c3", reason="pause")
    paused = clock.t
    clock.t += 600
    office.tick()
    assert unstaffed(office) == {"pass": (1, paused)}  # A002 waits for c1, c2, c4: not counted
    ok(office, "counter-3", "counter.close", counter="c3")  # it goes back to the pass queue: served
    assert unstaffed(office) == {}


def test_no_alarm_outside_opening_hours_and_the_morning_counts_from_the_opening(cfg, tmp_path, clock):
    """Monday 08:00-16:00. A service nobody opened in the morning: from opening plus the grace time; after
    closing the citizens still there are served, without an alarm."""
    counters = [c.model_copy(update={"initially": "closed"}) if c.id == "c3" else c for c in cfg.counters]
    cfg = cfg.model_copy(update={"counters": counters})
    clock.t = MONDAY_9 - 3600  # 08:00, the opening
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    ok(office, "disp-1", "ticket.issue", service="sonstiges")
    clock.t += 119
    office.tick()
    assert unstaffed(office) == {}
    clock.t += 1
    office.tick()
    assert unstaffed(office) == {"sonstiges": (1, MONDAY_9 - 3600)}
    # the log rebuilds the same time (a restart does not start the grace time again)
    assert unstaffed(Office(cfg, office.store, clock=clock)) == {"sonstiges": (1, MONDAY_9 - 3600)}
    clock.t = MONDAY_9 + 7 * 3600 + 1  # 16:00:01: closed
    office.tick()
    assert office.state.n_waiting("sonstiges") == 1 and unstaffed(office) == {}
    assert "alerts" not in office.snapshot()


def test_the_summary_carries_at_most_three_unstaffed_services_the_longest_first(office, clock):
    for sid in ("pass", "melde", "fuehrerschein", "sonstiges"):
        ok(office, "disp-1", "ticket.issue", service=sid)
    for c in ("c1", "c2", "c3", "c4"):
        clock.t += 10
        ok(office, f"counter-{c[1]}", "counter.close", counter=c)
    clock.t += 300
    office.tick()
    # melde and sonstiges since c3 closed, then fuehrerschein and pass (c4), at the same time: by id
    assert list(unstaffed(office)) == ["melde", "sonstiges", "fuehrerschein"]
