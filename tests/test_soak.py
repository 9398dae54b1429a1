"""The fault soak (bench/soak.py) for one office day: the real controller process on a file clock, a real
mosquitto, and one fault of every kind; its invariant checks must hold, and must catch a broken log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench.soak import KINDS, Soak
from waitroom.store import EventStore

pytestmark = pytest.mark.slow

# the invariant is 2 s (python -m bench soak); other test runs share the two cores here
MAX_ANSWER_S = 8.0


def test_one_office_day_with_every_fault_keeps_every_invariant(tmp_path: Path, mosquitto_bin: str) -> None:
    # 2026-10-25 is the 25-hour day (end of summer time in Europe/Berlin); its midnight window ends in the
    # 26th
    soak = Soak(tmp_path, seed=12, step_s=120, max_answer_s=MAX_ANSWER_S, start=dt.date(2026, 10, 25))
    try:
        stats = soak.run(days=1, faults=9)
    finally:
        soak.close()
    assert stats.violations == []
    # the disk-full episodes need a tmpfs of their own (root, and a container that may mount)
    expected = set(KINDS) if soak.tmpfs else set(KINDS) - {"disk_full"}
    assert set(stats.faults) == expected and sum(stats.faults.values()) == 9
    assert stats.days == 1 and stats.ok > 300
    assert stats.controller_restarts == 2 and stats.broker_restarts == 1
    assert stats.clock_refusals == 1  # booted with the clock behind: refused until the time sync
    assert stats.stepped_back_ok == 1  # stepped back while running: went on at once
    assert stats.offline_tickets >= 1
    if soak.tmpfs:
        assert stats.disk_full_internal >= 1  # the full disk was really hit: clear internal errors
    assert len(stats.answer_after_restart_s) == 2 and max(stats.answer_after_restart_s) <= MAX_ANSWER_S


def test_the_checks_find_a_number_twice_and_a_lost_ticket(tmp_path: Path) -> None:
    soak = Soak(tmp_path, seed=1, step_s=120, max_answer_s=2, start=dt.date(2026, 3, 29))
    try:
        store = EventStore(soak.db)
        day = {"type": "day_started", "ts": 1.0, "seq": 1, "day": "2026-03-29", "numbers": {}, "counters": {}}
        issued = {"type": "ticket_issued", "service": "pass", "node": "disp-1", "number": "A001"}
        events = [
            day,
            {**issued, "ts": 2.0, "seq": 2, "id": "t1"},
            {**issued, "ts": 3.0, "seq": 3, "id": "t2"},
        ]
        store.commit_batch(events, [])
        store.close()
        soak.acked_tickets["t9"] = "A002"  # an ok reply whose ticket the log does not have
        soak.acked.append(("disp-1", "r1"))  # and whose reply was not stored
        soak.check_log("a planted fault")
        text = "\n".join(soak.stats.violations)
        assert "A001 issued twice on 2026-03-29" in text
        assert "acked ticket A002 (t9) is not in the log" in text
        assert "('disp-1', 'r1') is not in the stored replies" in text
        assert len(soak.stats.violations) == 3
    finally:
        soak.close()
