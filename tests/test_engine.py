"""The office engine (issue 10): the incremental queue index, group commit, and messages whose size does not
depend on the length of the queue. Real SQLite files, no broker."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from waitroom import config, contract
from waitroom.controller import Office
from waitroom.model import OfficeState, slot_key, walk_key
from waitroom.steering import PoolView, RuleSelector
from waitroom.store import EventStore

T0 = 1795420800.0  # a Monday


class Clock:
    def __init__(self, t: float = T0 + 9 * 3600):
        self.t = t

    def __call__(self) -> float:
        return self.t


def all_day(data: dict) -> dict:
    data["office"]["hours"] = {d: ["00:00", "23:59"] for d in config.WEEKDAYS}
    data["steering"] = {**data.get("steering", {}), "intake_stop": {"enabled": False}}
    return data


@pytest.fixture
def cfg() -> config.Config:
    return config.parse(all_day(yaml.safe_load(config.EXAMPLE_CONFIG.read_text())))


def send(office: Office, node: str, op: str, rid: str | None = None, **args: object) -> dict:
    return office.handle(node, contract.encode(contract.command(op, args, rid))).reply


# ------------------------------------------------------------------------------------------- the index
def brute_force(state: OfficeState) -> dict:
    """What the index must hold, from a scan of every ticket of the day."""
    waiting = [t for t in state.tickets.values() if t.state == "waiting"]
    out: dict = {}
    for t in waiting:
        if t.target_counter is not None:
            key = ("targeted", t.target_counter)
        elif t.appointment is not None:
            key = ("appointment", t.service)
        else:
            key = ("priority" if t.priority else "normal", t.service)
        out.setdefault(key, []).append(t)
    for key, lst in out.items():
        lst.sort(key=slot_key if key[0] == "appointment" else walk_key)
    return {k: [t.id for t in v] for k, v in out.items()}


def indexed(state: OfficeState) -> dict:
    p = state.pool
    out = {}
    for name in ("normal", "priority", "appointment", "targeted"):
        for key, lst in getattr(p, name).items():
            if lst:
                out[(name, key)] = [t.id for t in lst]
    return out


def check_index(office: Office) -> None:
    s = office.state
    assert indexed(s) == brute_force(s)
    counts = {}
    for t in s.tickets.values():
        if t.state == "waiting":
            counts[t.service] = counts.get(t.service, 0) + 1
    assert {k: v for k, v in s.waiting_count.items() if v} == counts
    assert set(s.parked) == {t.id for t in s.tickets.values() if t.state == "parked"}
    targeted: dict = {}
    for t in s.tickets.values():
        if t.state == "waiting" and t.target_counter is not None:
            n = targeted.setdefault(t.target_counter, {})
            n[t.service] = n.get(t.service, 0) + 1
    assert s.pool.targeted_n == targeted
    # the services whose waiting tickets no open counter can call, as a scan of every ticket says
    open_ = {cid for cid, c in s.counters.items() if c.state == "open"}
    stuck = {
        t.service
        for t in s.tickets.values()
        if t.state == "waiting"
        and (
            t.target_counter not in open_
            if t.target_counter is not None
            else not open_ & {c.id for c in office.cfg.counters if t.service in c.services}
        )
    }
    assert set(office.staffing.since) == stuck
    assert set(s.open_assists.values()) == {
        a.id for a in s.assists.values() if a.state in ("pending", "acknowledged")
    }
    # the next ticket of every counter is the one the rules pick from a full copy of the queue
    sel = RuleSelector()
    for c in office.cfg.counters:
        cs = s.counters.get(c.id)
        if cs is None:  # the day has not started yet
            continue
        fast = sel.choose(
            office.cfg, c.id, office.clock(), s.pool, cs.calls_since_priority, cs.priority_calls
        )
        full = sel.choose(
            office.cfg, c.id, office.clock(), PoolView(s.pool), cs.calls_since_priority, cs.priority_calls
        )
        assert (fast and fast.ticket.id) == (full and full.ticket.id)


OPS = st.sampled_from(
    ["issue", "issue", "issue", "priority", "book", "call", "call", "served", "transfer", "park", "back",
     "cancel", "pause", "open", "close", "help", "ack", "offline", "tick"]
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(OPS, st.integers(0, 1000)), min_size=10, max_size=80))
def test_the_index_always_matches_a_full_scan(cfg, tmp_path_factory, steps):
    db = tmp_path_factory.mktemp("idx") / "events.db"
    clock = Clock()
    office = Office(cfg, EventStore(db), clock=clock)
    services = [s.id for s in cfg.services]
    counters = [(n.id, n.counter) for n in cfg.nodes if n.role == "counter"]
    for n, (op, k) in enumerate(steps):
        clock.t += 7 + k % 90
        node, counter = counters[k % len(counters)]
        svc = services[k % len(services)]
        if op == "issue":
            send(office, "disp-1", "ticket.issue", service=svc)
        elif op == "priority":
            send(office, "disp-1", "ticket.issue", service=svc, priority=True)
        elif op == "book":
            code = f"K{n:04d}"
            send(office, "web", "appointment.book", code=code, service=svc, slot=clock.t + k)
            send(office, "disp-1", "appointment.checkin", code=code)
        elif op == "call":
            send(office, node, "counter.call_next", counter=counter)
        elif op == "served":
            send(office, node, "counter.served", counter=counter)
        elif op == "transfer":
            if k % 2:
                send(office, node, "counter.transfer", counter=counter, service=svc)
            else:
                send(office, node, "counter.transfer", counter=counter, to_counter=f"c{1 + k % 5}")
        elif op == "park":
            send(office, node, "counter.park", counter=counter)
        elif op == "back" and office.state.parked:
            number = next(iter(office.state.parked.values())).number
            send(office, node, "counter.call_ticket", counter=counter, ticket=number)
        elif op == "cancel":
            waiting = office.state.waiting()
            if waiting:
                send(office, "web", "ticket.cancel", ticket=waiting[k % len(waiting)].number)
        elif op == "pause":
            send(office, node, "counter.pause", counter=counter)
        elif op == "open":
            send(office, node, "counter.open", counter=counter)
        elif op == "close":  # its transferred tickets go back to their service's queue
            send(office, node, "counter.close", counter=counter)
        elif op == "help":
            send(office, "sb-1", "assist.request", terminal="sb-1")
        elif op == "ack" and office.state.open_assists:
            send(office, "web", "assist.resolve", request=next(iter(office.state.open_assists.values())))
        elif op == "offline":
            lease = send(office, "disp-1", "ticket.lease", service=svc, count=5)
            if lease["ok"]:
                first = lease["result"]["lease"]["first"]
                send(
                    office,
                    "disp-1",
                    "ticket.report_offline",
                    service=svc,
                    number=first,
                    issued_at=clock.t - 300,
                )
        elif op == "tick":
            office.tick()
        check_index(office)
    # and the log rebuilds the very same index
    rebuilt = Office(cfg, EventStore(db), clock=clock)
    assert indexed(rebuilt.state) == indexed(office.state)
    check_index(rebuilt)


# ------------------------------------------------------------------------------------------- group commit
def test_a_batch_is_one_transaction_and_a_repeated_id_in_it_gets_the_first_reply(cfg, tmp_path):
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=Clock())
    issue = contract.encode(contract.command("ticket.issue", {"service": "pass"}, "same"))
    other = contract.encode(contract.command("ticket.issue", {"service": "melde"}, "same"))
    outs = office.handle_batch(
        [("disp-1", issue), ("disp-1", issue), ("disp-1", other), ("web", issue), ("disp-1", b"{")]
    )
    first, again, clash, web, bad = (o.reply for o in outs)
    assert first["ok"] and again == {**first, "repeated": True}  # the same answer once more, no second ticket
    assert clash["error"]["code"] == "duplicate"
    assert web["ok"] and web["result"]["ticket"]["number"] == "A002"  # request ids are per node
    assert bad["error"]["code"] == "bad_json"
    assert first["seq"] <= web["seq"] == office.state.seq
    db = sqlite3.connect(tmp_path / "e.db")
    assert db.execute("SELECT COUNT(DISTINCT ts) FROM replies").fetchone()[0] == 1  # one commit
    numbers = "SELECT json_extract(data, '$.number') FROM events WHERE type='ticket_issued'"
    assert [r[0] for r in db.execute(numbers)] == ["A001", "A002"]


def test_a_failed_commit_answers_every_command_of_the_batch_and_loses_nothing(cfg, tmp_path):
    store = EventStore(tmp_path / "e.db")
    office = Office(cfg, store, clock=Clock())
    assert send(office, "disp-1", "ticket.issue", service="pass")["ok"]
    store.db.execute("PRAGMA query_only=1")  # the disk refuses writes from now on
    cmds = [
        ("disp-1", contract.encode(contract.command("ticket.issue", {"service": "pass"}, f"r{i}")))
        for i in range(5)
    ]
    outs = office.handle_batch(cmds)
    assert [o.reply["error"]["code"] for o in outs] == ["internal"] * 5
    assert all(not o.events for o in outs)  # nothing to publish
    assert office.state.n_waiting("pass") == 1  # the state is the log's again
    store.db.execute("PRAGMA query_only=0")
    again = office.handle_batch(cmds)  # the nodes retry with the same ids
    assert [o.reply["result"]["ticket"]["number"] for o in again] == ["A002", "A003", "A004", "A005", "A006"]


def test_an_internal_error_in_a_batch_keeps_the_commands_before_it(cfg, tmp_path, monkeypatch):
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=Clock())
    real = Office.op_counter_pause

    def broken(self, node_id, role, counter, reason=""):
        self._emit("counter_paused", counter=counter, reason="half done")
        raise RuntimeError("a bug")

    monkeypatch.setattr(Office, "op_counter_pause", broken)
    outs = office.handle_batch(
        [
            ("disp-1", contract.encode(contract.command("ticket.issue", {"service": "pass"}, "a"))),
            ("counter-1", contract.encode(contract.command("counter.pause", {"counter": "c1"}, "b"))),
            ("disp-1", contract.encode(contract.command("ticket.issue", {"service": "pass"}, "c"))),
        ]
    )
    assert [o.reply.get("ok") for o in outs] == [True, False, True]
    assert outs[1].reply["error"]["code"] == "internal"
    assert office.state.counters["c1"].state == "open"  # the half-done pause is undone
    monkeypatch.setattr(Office, "op_counter_pause", real)
    rebuilt = Office(cfg, EventStore(tmp_path / "e.db"), clock=Clock())
    assert sorted(t.number for t in rebuilt.state.waiting()) == ["A001", "A002"]


# ------------------------------------------------------------------------------------------- bounded messages
def big_office(n_services: int = 20, n_counters: int = 40) -> config.Config:
    """The largest office the documented bound is for (ids of 8 characters), with long texts."""
    services = [
        {
            "id": f"svc-{i:04d}",
            "prefix": chr(65 + i),
            "name": {"de": "Beglaubigungen, Führungszeugnisse & Gebührenerstattung " * 2, "en": "x" * 80},
        }
        for i in range(n_services)
    ]
    counters = [
        {
            "id": f"ctr-{i:04d}",
            "name": {"de": "Raum 2.14 (Bürgerservice Außenstelle Süd)", "en": "Room 2.14"},
            "services": [s["id"] for s in services[i % n_services :][:4]] or [services[0]["id"]],
            "initially": "open",
        }
        for i in range(n_counters)
    ]
    nodes = [{"id": f"c-{i:04d}", "role": "counter", "counter": c["id"]} for i, c in enumerate(counters)]
    nodes += [{"id": f"sb-{i}", "role": "assist"} for i in range(12)]
    nodes += [{"id": "disp-1", "role": "dispenser"}, {"id": "web", "role": "web"}]
    data = {
        "office": {"id": "big", "name": "Bürgerbüro", "timezone": "Europe/Berlin"},
        "services": services,
        "counters": counters,
        "nodes": nodes,
    }
    return config.parse(all_day(data))


def test_every_message_stays_within_its_documented_bound_at_3000_waiting(tmp_path):
    cfg = big_office()
    clock = Clock()
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    services = [s.id for s in cfg.services]

    def batch(items):
        for k in range(0, len(items), 250):
            for o in office.handle_batch(items[k : k + 250]):
                assert o.reply["ok"], o.reply

    batch(
        [
            # in Leichte Sprache: the longest language code, which the summary's calls carry
            (
                "disp-1",
                contract.encode(
                    contract.command("ticket.issue", {"service": services[i % 20], "lang": "de-LS"})
                ),
            )
            for i in range(3000)
        ]
    )
    reason = "Besprechung mit der Amtsleitung wegen Umbau" * 2  # longer than the summary keeps
    for n in cfg.nodes:
        if n.role == "counter":
            send(office, n.id, "counter.call_next", counter=n.counter)
            send(office, n.id, "counter.park", counter=n.counter)
            send(office, n.id, "counter.call_next", counter=n.counter)
        elif n.role == "assist":
            send(office, n.id, "assist.request", terminal=n.id)
    for _ in range(100):  # many parked tickets
        send(office, "c-0000", "counter.call_next", counter="ctr-0000")
        send(office, "c-0000", "counter.park", counter="ctr-0000")
    for _ in range(contract.QUEUE_NO_SHOW + 5):  # and more not appeared than a page lists
        send(office, "c-0000", "counter.call_next", counter="ctr-0000")
        send(office, "c-0000", "counter.no_show", counter="ctr-0000")
    send(office, "c-0000", "counter.call_next", counter="ctr-0000")
    send(office, "c-0001", "counter.pause", counter="ctr-0001", reason=reason[:80])
    send(office, "web", "intake.set", service=services[3], open=False, reason=reason)
    office.refresh_forecast()
    summary = contract.encode(office.snapshot())
    assert office.state.n_waiting() > 2800 and len(json.loads(summary)["counters"]) == 40
    assert len(summary) <= contract.STATE_BOUND_BYTES, len(summary)
    good = clock.t
    clock.t -= 10 * 365 * 86400  # and a clock alarm on top (the longest "behind" a Pi's clock can be)
    office.tick()
    alarmed = contract.encode(office.snapshot())
    assert json.loads(alarmed)["alerts"][0]["code"] == "clock_stepped_back"  # while it runs
    assert len(alarmed) <= contract.STATE_BOUND_BYTES, len(alarmed)
    restarted = Office(cfg, office.store, clock=clock)  # after a restart without the time
    restarted.tick()
    alarmed = contract.encode(restarted.snapshot())
    assert json.loads(alarmed)["alerts"][0]["code"] == "clock_behind"
    assert len(alarmed) <= contract.STATE_BOUND_BYTES, len(alarmed)
    clock.t = good
    office.tick()
    # and the unstaffed-service alarms on top: every counter but the first closed, so that all but a few
    # services have nobody to call their citizens
    for n in cfg.nodes[1:40]:
        send(office, n.id, "counter.close", counter=n.counter)
    clock.t += cfg.controller.unstaffed_alarm_after_s
    office.tick()
    alarmed = contract.encode(office.snapshot())
    assert len(json.loads(alarmed)["alerts"]) == contract.SUMMARY_UNSTAFFED
    assert len(alarmed) <= contract.STATE_BOUND_BYTES, len(alarmed)
    for sid in services:
        page = contract.encode(office.queue_page(sid))
        assert len(page) <= contract.QUEUE_BOUND_BYTES, (sid, len(page))
    pages = [office.queue_page(sid) for sid in services]
    page = max(pages, key=lambda p: p["total"])
    assert page["total"] > 100 and len(page["tickets"]) == contract.QUEUE_PAGE
    assert [t["ticket"] for t in page["tickets"]][:3] == sorted(t["ticket"] for t in page["tickets"])[:3]
    page = max(pages, key=lambda p: p["parked_total"])
    assert page["parked_total"] > contract.QUEUE_PARKED and len(page["parked"]) == contract.QUEUE_PARKED
    assert max(len(p["no_show"]) for p in pages) == contract.QUEUE_NO_SHOW  # the newest ones only
    for c in cfg.counters:
        assert len(contract.encode(office.counter_detail(c.id))) <= 1024
    assert len(contract.encode(office.public())) <= contract.STATE_BOUND_BYTES


def test_the_summary_keeps_its_bound_with_every_counter_paused_and_every_intake_stopped(tmp_path):
    """The worst case of the summary's texts: all 40 counters paused and all 20 intakes stopped, each with a
    long reason with umlauts, 10 help requests, 10 calls, the unstaffed and clock alarms. It was 9.3 KB (over
    the 8 KiB bound): the reasons are cut shorter, then left out, only when they would pass the bound; the
    counter's own topic keeps its whole reason."""
    cfg = big_office()
    clock = Clock()
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    services = [s.id for s in cfg.services]
    for i in range(600):
        send(office, "disp-1", "ticket.issue", service=services[i % 20], lang="de-LS")
    reason = "Rückfrage beim Straßenverkehrsamt zur Übergabe der Führerscheine"
    counters = [n for n in cfg.nodes if n.role == "counter"]
    for n in counters[:3]:  # a few paused counters keep their 40 characters
        send(office, n.id, "counter.call_next", counter=n.counter)
        send(office, n.id, "counter.pause", counter=n.counter, reason=reason)
    assert [c["reason"] for c in office.snapshot()["counters"][:3]] == [reason[:40]] * 3
    for n in cfg.nodes:
        if n.role == "counter":
            send(office, n.id, "counter.call_next", counter=n.counter)
            send(office, n.id, "counter.pause", counter=n.counter, reason=reason)
        elif n.role == "assist":
            send(office, n.id, "assist.request", terminal=n.id)
    for sid in services:
        send(office, "web", "intake.set", service=sid, open=False, reason=reason * 2)
    clock.t += 3600
    office.tick()
    good = clock.t
    clock.t -= 10 * 365 * 86400  # a time sync steps the clock back while it runs
    office.tick()
    snap = office.snapshot()
    assert {a["code"] for a in snap["alerts"]} == {"unstaffed_service", "clock_stepped_back"}
    assert len(snap["calls"]) == 10 and len(snap["assistance"]) == 10
    assert all(c["state"] == "paused" for c in snap["counters"])
    assert len(contract.encode(snap)) <= contract.STATE_BOUND_BYTES, len(contract.encode(snap))
    assert office.counter_detail(counters[0].counter)["reason"] == reason
    clock.t = good


def test_a_new_ticket_gets_its_position_and_wait_without_a_new_forecast(cfg, tmp_path):
    clock = Clock()
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    for _ in range(6):
        send(office, "disp-1", "ticket.issue", service="fuehrerschein")
    office.refresh_forecast()
    costs = office.forecast_cost, office._forecast_at
    seventh = send(office, "disp-1", "ticket.issue", service="fuehrerschein")["result"]["ticket"]
    eighth = send(office, "disp-1", "ticket.issue", service="fuehrerschein")["result"]["ticket"]
    assert (office.forecast_cost, office._forecast_at) == costs  # no forecast on the command path
    assert (seventh["ahead"], eighth["ahead"]) == (6, 7)
    assert 0 < seventh["eta_min"] < eighth["eta_min"]
    fresh = office.refresh_forecast()
    assert abs(fresh.per_ticket[eighth["id"]] / 60 - eighth["eta_min"]) <= 2


# ------------------------------------------------------------------------------------ the sliced forecast
def busy_office(cfg, tmp_path, n: int = 160) -> tuple[Office, Clock]:
    clock = Clock()
    office = Office(cfg, EventStore(tmp_path / "e.db"), clock=clock)
    services = ["pass", "melde", "fuehrerschein", "sonstiges"]
    for k in range(n):
        send(office, "disp-1", "ticket.issue", service=services[k % 4])
    office.refresh_forecast()
    return office, clock


def test_commands_run_between_the_slices_of_a_forecast_which_is_that_of_its_start(cfg, tmp_path):
    office, clock = busy_office(cfg, tmp_path)
    clock.t += 60
    expected = office.predictor.forecast(office.state, cfg, office.selector, clock())
    seq = office.state.seq
    assert office.forecast_slice() is False and office.forecasting  # one slice, not the whole walk
    # meanwhile: new tickets, calls, and a ticket the walk's copy holds called and sent to another counter
    first = send(office, "disp-1", "ticket.issue", service="pass")["result"]["ticket"]
    second = send(office, "disp-1", "ticket.issue", service="pass")["result"]["ticket"]
    send(office, "counter-1", "counter.call_next", counter="c1")
    far = sorted(
        (t for t in office.state.tickets.values() if t.state == "waiting" and t.service == "melde"),
        key=lambda t: t.issued_at,
    )[20]
    assert far.id in expected.per_ticket  # the walk reaches it
    send(office, "counter-2", "counter.call_ticket", counter="c2", ticket=far.number)
    send(office, "counter-2", "counter.transfer", counter="c2", to_counter="c3")
    slices = 1
    while not office.forecast_slice():
        slices += 1
    assert slices > 3 and not office.forecasting
    fc = office.forecast()
    assert (fc.per_ticket, fc.per_service, fc.ahead, fc.now) == (
        expected.per_ticket,
        expected.per_service,
        expected.ahead,
        expected.now,
    )
    assert office._forecast_seq == seq and office.forecast_due() > 0  # the next one is due in its time
    # the tickets issued while it ran are not in it: they are still counted behind everybody it knew
    assert first["id"] not in fc.per_ticket
    assert office._fresh == {first["id"]: 0, second["id"]: 1}
    t2 = office.state.tickets[second["id"]]
    assert office.eta_s(t2) == pytest.approx(fc.new_ticket_eta("pass", 1), abs=1e-6)


def test_a_sliced_forecast_begun_before_a_new_day_is_dropped(cfg, tmp_path):
    office, clock = busy_office(cfg, tmp_path, n=80)
    assert office.forecast_slice() is False
    clock.t += 86400  # the next morning: the day starts anew, the old queue is gone
    office.tick()
    while not office.forecast_slice():
        pass
    fc = office.forecast()
    assert fc.now == clock() and fc.per_ticket == {}
    assert office.state.n_waiting() == 0


def test_a_whole_forecast_drops_the_sliced_one_under_way(cfg, tmp_path):
    office, clock = busy_office(cfg, tmp_path, n=80)
    assert office.forecast_slice() is False
    send(office, "disp-1", "ticket.issue", service="pass")
    clock.t += 30
    fc = office.refresh_forecast()  # what a reader who needs it now (tests, a rebuild) gets
    assert not office.forecasting and fc.now == clock() and office._forecast_seq == office.state.seq
    assert office._fresh == {}
