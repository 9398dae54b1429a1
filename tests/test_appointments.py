"""The appointment book in the controller: book with a slot check, move, cancel, free slots, check-in; the
book survives restarts and day changes; booking codes."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.test_controller import MONDAY_9, TZ, Clock, cmd, err, ok
from waitroom import appointments as codes
from waitroom import config, contract
from waitroom.controller import Office
from waitroom.store import EventStore


def at(day: int, hhmm: str) -> float:
    """Epoch seconds of HH:MM on Monday 2026-11-23 + ``day`` days."""
    h, m = map(int, hhmm.split(":"))
    d = dt.date(2026, 11, 23) + dt.timedelta(days=day)
    return dt.datetime(d.year, d.month, d.day, h, m, tzinfo=TZ).timestamp()


@pytest.fixture
def cfg():
    return config.load(config.EXAMPLE_CONFIG)


@pytest.fixture
def clock():
    return Clock(MONDAY_9)


@pytest.fixture
def office(cfg, tmp_path, clock):
    store = EventStore(tmp_path / "events.db")
    yield Office(cfg, store, clock=clock)
    store.close()


def test_booking_codes_are_short_unambiguous_and_checked():
    seen = {codes.new_code() for _ in range(2000)}
    # random draws from 31**5 bodies: two equal among 2,000 happen (~7 % of runs); the book itself refuses a
    # code it holds (Office._new_booking_code draws again)
    assert len(seen) >= 1990
    for code in seen:
        assert len(code) == 6 and codes.is_generated(code)
        assert not set(code) & set("01OIL")
        # every single wrong character and every swap of neighbours is caught by the check character
        for i, ch in enumerate(code):
            for other in codes.ALPHABET:
                if other != ch:
                    assert not codes.is_generated(code[:i] + other + code[i + 1 :])
        for i in range(len(code) - 1):
            if code[i] != code[i + 1]:
                assert not codes.is_generated(code[:i] + code[i + 1] + code[i] + code[i + 2 :])
    assert codes.code_for_uid("abc@booking") == codes.code_for_uid("abc@booking")
    assert codes.normalize(" k7p-2qx ") == "K7P2QX"
    assert codes.format_code("K7P2QX") == "K7P-2QX"


def test_book_with_slot_check_offers_only_what_the_counters_can_serve(office):
    slot = at(0, "10:00")
    # pass is served by c1, c2 and c4: three appointments can start at 10:00, the fourth is refused
    booked = [
        ok(office, "web", "appointment.book", service="pass", slot=slot, check_slot=True)["appointment"]
        for _ in range(3)
    ]
    assert all(codes.is_generated(b["code"]) and b["state"] == "booked" for b in booked)
    assert {office.state.appointments[b["code"]].counter for b in booked} == {"c1", "c2", "c4"}
    assert err(office, "web", "appointment.book", service="pass", slot=slot, check_slot=True) == (
        "slot_unavailable"
    )
    # the same slot is still taken as it is from the booking system (no check), planned on no counter
    ext = ok(office, "web", "appointment.book", code="EXT001", service="pass", slot=slot)["appointment"]
    assert office.state.appointments[ext["code"]].counter is None
    # off the grid, in the past, closed days, beyond the horizon: refused with the same stable code, and the
    # reason as a field (a booking client offers other slots for a full one, not for one in the past)
    for bad, reason in (
        (slot, "full"),
        (at(0, "10:07"), "off_grid"),
        (at(0, "08:45"), "past"),
        (at(5, "10:00"), "off_grid"),
        (at(0, "17:00"), "off_grid"),
        (at(40, "10:00"), "beyond_horizon"),
    ):
        reply = cmd(office, "web", "appointment.book", service="pass", slot=bad, check_slot=True).reply
        assert reply["error"]["code"] == "slot_unavailable", reply
        assert reply["error"]["data"] == {"service": "pass", "reason": reason}, (bad, reply)
    free = ok(office, "web", "appointment.slots", service="pass", day="2026-11-23")["slots"]
    times = {s for s, _ in free["free"]}
    assert slot not in times and at(0, "10:15") in times and at(0, "09:00") not in times  # lead time 30 min
    assert free["days"][0][0] == "2026-11-23" and all(n > 0 for _, n in free["days"])
    assert err(office, "web", "appointment.slots", service="pass", day="2027-11-23") == "bad_request"
    assert err(office, "web", "appointment.slots", service="nope") == "unknown_service"


def test_walk_in_share_limits_the_hour(cfg, tmp_path, clock):
    # one counter, share 0.5: 30 of 60 minutes for appointments of 9 minutes -> 3 per hour
    cfg = cfg.model_copy(
        update={
            "counters": [cfg.counters[0].model_copy(update={"services": ["pass"]})],
            "nodes": [n for n in cfg.nodes if n.role != "counter"],
            "steering": cfg.steering.model_copy(update={"weights": {}}),
            "appointments": cfg.appointments.model_copy(update={"walk_in_share": 0.5}),
        }
    )
    office = Office(cfg, EventStore(tmp_path / "one.db"), clock=clock)
    hour = [at(1, f"10:{m:02d}") for m in (0, 15, 30, 45)]
    for s in hour[:3]:
        ok(office, "web", "appointment.book", service="pass", slot=s, check_slot=True)
    assert err(office, "web", "appointment.book", service="pass", slot=hour[3], check_slot=True) == (
        "slot_unavailable"
    )
    ok(office, "web", "appointment.book", service="pass", slot=at(1, "11:00"), check_slot=True)


def test_move_and_cancel(office, clock):
    a = ok(office, "web", "appointment.book", service="pass", slot=at(0, "11:00"), check_slot=True)
    code = a["appointment"]["code"]
    moved = ok(office, "web", "appointment.move", code=code.lower(), slot=at(0, "11:30"), check_slot=True)
    assert moved["appointment"]["slot"] == at(0, "11:30") and moved["appointment"]["changed"]
    again = ok(office, "web", "appointment.move", code=code, slot=at(0, "11:30"), check_slot=True)
    assert again["appointment"]["changed"] is False
    assert err(office, "web", "appointment.move", code=code, slot=at(0, "11:31"), check_slot=True) == (
        "slot_unavailable"
    )
    assert err(office, "web", "appointment.move", code="NOSUCH", slot=at(0, "11:30")) == "unknown_appointment"
    assert ok(office, "web", "appointment.show", code=code)["appointment"]["state"] == "booked"
    assert ok(office, "web", "appointment.cancel", code=code)["appointment"]["changed"] is True
    assert ok(office, "web", "appointment.cancel", code=code)["appointment"]["changed"] is False
    assert ok(office, "web", "appointment.show", code=code)["appointment"]["state"] == "cancelled"
    assert err(office, "disp-1", "appointment.checkin", code=code) == "appointment_cancelled"
    assert err(office, "web", "appointment.move", code=code, slot=at(0, "12:00")) == "appointment_cancelled"
    # a checked-in appointment can be neither moved nor cancelled
    b = ok(office, "web", "appointment.book", service="melde", slot=at(0, "09:45"), check_slot=True)
    code_b = b["appointment"]["code"]
    ok(office, "disp-1", "appointment.checkin", code=code_b)
    assert err(office, "web", "appointment.cancel", code=code_b) == "invalid_state"
    assert err(office, "web", "appointment.move", code=code_b, slot=at(0, "12:00")) == "invalid_state"
    assert ok(office, "web", "appointment.show", code=code_b)["appointment"]["ticket"]["number"] == "B001"
    # the cancelled slot is free again
    free = ok(office, "web", "appointment.slots", service="pass", day="2026-11-23")["slots"]["free"]
    assert [at(0, "11:30"), 3] in free


def test_same_code_twice_and_versions(office):
    base = {"code": "ZMS4711", "service": "pass", "slot": at(1, "10:00")}
    assert ok(office, "web", "appointment.book", **base, version=1)["appointment"]["changed"]
    assert not ok(office, "web", "appointment.book", **base, version=1)["appointment"]["changed"]
    assert not ok(office, "web", "appointment.book", **base)["appointment"]["changed"]
    other = {**base, "slot": at(1, "11:00")}
    assert err(office, "web", "appointment.book", **other) == "appointment_exists"
    assert ok(office, "web", "appointment.book", **other, version=2)["appointment"]["slot"] == at(1, "11:00")
    assert not ok(office, "web", "appointment.book", **base, version=1)["appointment"]["changed"]  # older
    assert ok(office, "web", "appointment.cancel", code="ZMS4711", version=3)["appointment"]["changed"]
    assert not ok(office, "web", "appointment.book", **other, version=2)["appointment"]["changed"]
    assert office.state.appointments["ZMS4711"].cancelled
    # a newer revision books it again
    assert ok(office, "web", "appointment.book", **other, version=4)["appointment"]["state"] == "booked"


def test_notes_can_be_switched_off(cfg, tmp_path, clock, office):
    a = ok(office, "web", "appointment.book", service="pass", slot=at(1, "10:00"), note="  Dolmetscher  TR ")
    assert a["appointment"]["note"] == "Dolmetscher TR"
    assert err(office, "web", "appointment.book", service="pass", slot=at(1, "10:00"), note="x" * 81) == (
        "bad_request"
    )
    # 200 characters of 4 bytes each (the most note_max allows): the reply would pass its 1024 bytes
    wide = cfg.model_copy(update={"appointments": cfg.appointments.model_copy(update={"note_max": 200})})
    office3 = Office(wide, EventStore(tmp_path / "wide.db"), clock=clock)
    slot = {"service": "pass", "slot": at(1, "10:00")}
    assert err(office3, "web", "appointment.book", **slot, note="\U0001f600" * 200) == "bad_request"
    reply = cmd(office3, "web", "appointment.book", **slot, note="\U0001f600" * 100).reply
    assert reply["ok"] and len(contract.encode(reply)) <= 1024
    off = cfg.model_copy(update={"appointments": cfg.appointments.model_copy(update={"notes": False})})
    office2 = Office(off, EventStore(tmp_path / "off.db"), clock=clock)
    b = ok(office2, "web", "appointment.book", service="pass", slot=at(1, "10:00"), note="Dolmetscher")
    assert "note" not in b["appointment"] and office2.state.appointments[b["appointment"]["code"]].note == ""


def test_the_book_survives_restart_and_day_changes(cfg, tmp_path, clock):
    path = tmp_path / "events.db"
    office = Office(cfg, EventStore(path), clock=clock)
    args = {"service": "pass", "slot": at(2, "10:00"), "check_slot": True, "note": "n"}
    code = ok(office, "web", "appointment.book", **args)["appointment"]["code"]
    gone = ok(office, "web", "appointment.book", service="pass", slot=at(1, "10:00"))["appointment"]["code"]
    ok(office, "web", "appointment.cancel", code=gone)
    office.store.close()
    clock.t = at(1, "09:00")  # next day: a new day_started carries the book
    office = Office(cfg, EventStore(path), clock=clock)
    ok(office, "disp-1", "ticket.issue", service="pass")
    assert office.state.day == "2026-11-24"
    a = office.state.appointments[code]
    assert (a.service, a.slot, a.note, a.counter) == ("pass", at(2, "10:00"), "n", "c1")
    assert office.state.appointments[gone].cancelled
    assert err(office, "disp-1", "appointment.checkin", code=code) == "appointment_expired"  # not today
    office.store.close()
    clock.t = at(2, "09:55")
    office = Office(cfg, EventStore(path), clock=clock)
    t = ok(office, "disp-1", "appointment.checkin", code=codes.format_code(code))["ticket"]
    assert t["appointment"] == at(2, "10:00")
    office.store.close()


def test_checkin_at_the_counter_calls_at_once(office, clock):
    code = ok(office, "web", "appointment.book", service="pass", slot=at(0, "09:15"))["appointment"]["code"]
    ok(office, "disp-1", "ticket.issue", service="pass")  # a walk-in waits longer
    out = ok(office, "web", "appointment.checkin", code=code, counter="c2")
    assert out["call"]["counter"] == "c2" and out["ticket"]["state"] == "called"
    assert office.state.counters["c2"].current == out["ticket"]["id"]
    assert err(office, "web", "appointment.checkin", code=code, counter="c2") == "invalid_state"
    assert err(office, "disp-1", "appointment.checkin", code=code, counter="c2") == "forbidden"
    code2 = ok(office, "web", "appointment.book", service="pass", slot=at(0, "09:30"))["appointment"]["code"]
    assert err(office, "web", "appointment.checkin", code=code2, counter="c5") == "counter_closed"
    assert office.state.appointments[code2].ticket is None  # nothing issued by the refused check-in


def test_repeated_request_id_is_idempotent(office):
    args = {"code": "IMP1", "service": "pass", "slot": at(1, "10:00"), "version": 0}
    first = cmd(office, "web", "appointment.book", rid="imp-abc-0", **args)
    again = cmd(office, "web", "appointment.book", rid="imp-abc-0", **args)
    assert again.reply == {**first.reply, "repeated": True} and not again.events


def test_checkin_for_a_service_taken_out_of_the_office_file_is_one_clear_refusal(cfg, tmp_path, clock):
    """Führerschein moves to another office while appointments for it are booked: checking such an
    appointment in answered bad_request "appointment.checkin: 'fuehrerschein'" (a KeyError); now it is
    unknown_service naming the service, and no ticket is issued."""
    path = tmp_path / "events.db"
    office = Office(cfg, EventStore(path), clock=clock)
    slot = at(0, "09:20")
    code = ok(office, "web", "appointment.book", service="fuehrerschein", slot=slot)["appointment"]["code"]
    office.store.close()
    fewer = cfg.model_copy(update={"services": [s for s in cfg.services if s.id != "fuehrerschein"]})
    office = Office(fewer, EventStore(path), clock=clock)
    reply = cmd(office, "disp-1", "appointment.checkin", code=code).reply
    assert reply["error"]["code"] == "unknown_service", reply
    assert "fuehrerschein" in reply["error"]["message"]
    assert reply["error"]["data"] == {"code": code, "service": "fuehrerschein"}
    assert office.state.tickets == {}
    office.store.close()
