"""The forecast's online feature state: it never looks into the future, and it computes the classical
predictors as the reference defines them."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from waitroom.forecast.events import ORDER, Event, replay, sort_key
from waitroom.forecast.features import BASE_FEATURES, QueueState

IDX = {n: i for i, n in enumerate(BASE_FEATURES)}
SERVICES = ("NE", "PS")


def random_stream(seed: int, n: int, servers: int, days: int) -> list[Event]:
    """Random but consistent tickets: arrival, then call/service end or abandonment, some at equal seconds;
    plus unqueued services and servers going off."""
    rng = random.Random(seed)
    ev: list[Event] = []
    for d in range(days):
        day = f"9902{d + 1:02d}"
        t = 8 * 3600
        for i in range(n):
            t += rng.choice((0, 0, 1, 5, 30, 120))
            tid = f"{day}:{i}"
            svc, prio = rng.choice(SERVICES), rng.choice((0, 1, 2))
            if rng.random() < 0.15:
                srv = f"S{rng.randrange(servers)}"
                ev.append(Event(day, d % 7, t, "direct", tid, svc, prio, srv))
                ev.append(Event(day, d % 7, t + rng.randint(0, 400), "end", tid, svc, prio, srv))
                continue
            ev.append(Event(day, d % 7, t, "arrival", tid, svc, prio))
            wait = rng.choice((0, 1, rng.randint(0, 900)))
            if rng.random() < 0.2:
                ev.append(Event(day, d % 7, t + wait, "abandon", tid, svc, prio))
            else:
                srv = rng.choice([None] + [f"S{k}" for k in range(servers)])
                ev.append(Event(day, d % 7, t + wait, "start", tid, svc, prio, srv))
                ev.append(Event(day, d % 7, t + wait + rng.randint(0, 600), "end", tid, svc, prio, srv))
            if rng.random() < 0.03:
                ev.append(
                    Event(
                        day, d % 7, t + rng.randint(0, 300), "server_off", server=f"S{rng.randrange(servers)}"
                    )
                )
    ev.sort(key=sort_key)
    return ev


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(1, 60),
    servers=st.integers(1, 5),
    days=st.integers(1, 2),
    future_seed=st.integers(0, 10**6),
)
def test_features_never_look_into_the_future(seed, n, servers, days, future_seed):
    """The features of a ticket are the same whether the stream goes on as it did, stops at its arrival, or
    goes on with a different future."""
    events = random_stream(seed, n, servers, days)
    full = {r.ticket: r.features for r in replay(events, SERVICES)}
    arrivals = [e for e in events if e.kind == "arrival"]
    rng = random.Random(future_seed)
    for a in rng.sample(arrivals, min(len(arrivals), 6)):
        cut = (a.day, a.t, ORDER["arrival"])
        past = [e for e in events if sort_key(e) < cut or (sort_key(e) == cut)]
        other_future = [
            Event(
                a.day,
                a.weekday,
                a.t + rng.randint(1, 999),
                rng.choice(("start", "end", "abandon")),
                f.ticket,
                f.service,
                f.priority,
                "S0",
            )
            for f in past
            if f.kind == "arrival"
        ]
        other_future.sort(key=sort_key)
        for stream in (past, past + other_future):
            got = {r.ticket: r.features for r in replay(stream, SERVICES)}
            assert got[a.ticket] == full[a.ticket]


def test_labels_are_the_waits_and_unserved_tickets_have_none():
    events = random_stream(7, 80, 3, 1)
    rows = {r.ticket: r for r in replay(events, SERVICES)}
    for e in events:
        if e.kind == "start":
            assert rows[e.ticket].wait == e.t - rows[e.ticket].t
        elif e.kind == "abandon":
            assert rows[e.ticket].wait is None


def test_queue_figures_follow_the_reference_definitions():
    s = QueueState(SERVICES)
    s.new_day(0)
    s.direct(28000, "d1", "PS", "A")  # an agent busy without a queue
    s.arrival(28800, "t1", "PS", 1)
    s.arrival(28810, "t2", "NE", 2)
    s.arrival(28820, "t3", "PS", 2)
    s.end(28830, "d1", "A")  # 830 s of service
    s.start(28840, "t1", "A")  # waited 40 s
    f = s.features(28900, "PS", 1)
    assert f[IDX["n_all"]] == 2 and f[IDX["n_type"]] == 1  # t2 (NE) and t3 (PS) wait
    assert f[IDX["n_ahead_type"]] == 1 and f[IDX["n_ahead_all"]] == 2 and f[IDX["n_higher_all"]] == 2
    assert f[IDX["hol_all"]] == 90 and f[IDX["hol_type"]] == 80
    assert f[IDX["les_all"]] == 40 and f[IDX["les_type"]] == 40 and f[IDX["mean1h_all"]] == 40
    assert f[IDX["servers"]] == 1 and f[IDX["busy"]] == 1 and f[IDX["mean_st"]] == 830
    assert f[IDX["ql_all"]] == (2 + 1) * 830 / 1
    # a priority-2 ticket has only the other priority-2 tickets ahead
    g = s.features(28900, "PS", 2)
    assert g[IDX["n_ahead_all"]] == 2 and g[IDX["n_higher_all"]] == 0
    # an hour later the window has moved on: no service time of the last hour, the long-run mean remains
    h = s.features(28840 + 3601, "NE", 0)
    assert h[IDX["mean1h_all"]] == 0 and h[IDX["mean_st"]] == 830 and h[IDX["les_all"]] == 40
    assert h[-2:] == [1.0, 0.0]  # the service indicators (NE, PS)


def test_abandonment_raises_the_rate_and_bends_the_queue_length_estimate():
    s = QueueState(SERVICES)
    s.new_day(0)
    for i in range(10):
        s.arrival(30000 + i, f"t{i}", "PS", 0)
    before = s.features(30600, "PS", 0)
    for i in range(5):
        s.abandon(30600 + i, f"t{i}")
    after = s.features(30700, "PS", 0)
    assert before[IDX["theta"]] == 0 and after[IDX["theta"]] > 0
    assert 5 * 0.5 ** (100 / 1800) - 0.01 < after[IDX["aband_30"]] < 5  # decayed with a 30-min half-life
    # with abandonment the corrected estimate is below the plain (n+1)/(s mu)
    assert after[IDX["ql_iw"]] < after[IDX["ql_ahead"]]


def test_paused_counter_stops_counting_as_working_and_ends_its_service():
    s = QueueState(SERVICES)
    s.new_day(0)
    s.arrival(30000, "a", "PS", 1)
    s.arrival(30001, "b", "PS", 1)
    s.start(30010, "a", "c1")
    s.start(30020, "b", "c2")
    assert s.features(30030, "PS", 1)[IDX["servers"]] == 2
    s.server_off(30040, "c2")
    f = s.features(30050, "PS", 1)
    assert f[IDX["servers"]] == 1 and f[IDX["busy"]] == 1
    # a counter that calls the next ticket has finished the one before
    s.arrival(30060, "c", "PS", 1)
    s.start(30070, "c", "c1")
    f = s.features(30080, "PS", 1)
    assert f[IDX["busy"]] == 1 and f[IDX["mean_st"]] == (20 + 60) / 2  # b ended by the pause, a by the call


def test_same_second_arrivals_do_not_see_each_other():
    ev = [Event("990201", 0, 30000, "arrival", f"t{i}", "PS", 1) for i in range(3)]
    rows = list(replay(ev, SERVICES))
    assert [r.features[IDX["n_all"]] for r in rows] == [0, 0, 0]
