"""The counter and assistance commands under hostile input: any node, any argument of any JSON type, unknown
fields, request ids used again with the same or other content. Each command gets exactly one reply with a
stable code and an id to match it, nothing is decided twice, the controller never fails, and the queue index
and the event log stay exact. Real SQLite files, no broker (tests/test_one_reply.py sends raw payloads through
a real mosquitto)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_engine import Clock, check_index, indexed
from tests.test_engine import cfg as cfg  # the fixture: the example office, open all day
from waitroom import contract
from waitroom.controller import Office
from waitroom.store import EventStore

STAFF_OPS = sorted(n for n, op in contract.OPS.items() if n.startswith(("counter.", "assist.")))
NODES = ["web", "web", "web", "counter-1", "counter-1", "counter-2", "sb-1", "disp-1", "display-1", "ghost"]
CODES = {c.value for c in contract.ErrorCode}

# values an argument may take: ids of the office, near misses, and every JSON type
scalars = st.one_of(
    st.sampled_from(["c1", "c2", "c4", "c9", "C1", "", " ", "pass", "melde", "mars", "sb-1", "counter-1"]),
    st.sampled_from(["A001", "a1", "A002", "B001", "Z999", "A0", "A-1", "h1", "h2", "h0", "x" * 41]),
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
ARG_NAMES = sorted(
    {a for n in STAFF_OPS for a in contract.OPS[n].args} | {"colour", "node_id", "role", "self"}
)


@st.composite
def commands(draw: st.DrawFn) -> tuple[str, dict]:
    op = draw(st.sampled_from([*STAFF_OPS, "counter.print_money"]))
    known = list(contract.OPS[op].args) if op in contract.OPS else []
    names = draw(st.lists(st.sampled_from(known + ARG_NAMES), max_size=4, unique=True))
    args = {n: draw(values) for n in names}
    # often well-formed enough to reach the operation itself
    if "counter" in known and draw(st.booleans()):
        args["counter"] = draw(st.sampled_from(["c1", "c2", "c3", "c4"]))
    if "request" in known and draw(st.booleans()):
        args["request"] = draw(st.sampled_from(["h1", "h2"]))
    if "terminal" in known and draw(st.booleans()):
        args["terminal"] = "sb-1"
    return op, args


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(NODES), commands(), st.integers(0, 7), st.sampled_from(["plain", "args", "id"])
        ),
        min_size=5,
        max_size=40,
    )
)
def test_every_staff_command_gets_one_stable_answer_and_nothing_twice(cfg, tmp_path_factory, steps):
    db = tmp_path_factory.mktemp("staff") / "events.db"
    clock = Clock()
    office = Office(cfg, EventStore(db), clock=clock)
    for service in ("pass", "pass", "melde", "fuehrerschein"):  # someone to call
        office.handle("disp-1", contract.encode(contract.command("ticket.issue", {"service": service})))
    office.handle("sb-1", contract.encode(contract.command("assist.request", {"terminal": "sb-1"})))
    sent: dict[tuple[str, str], tuple[bytes, dict]] = {}  # (node, request id) -> (canonical command, reply)
    for node, (op, args), rid_n, shape in steps:
        clock.t += 5
        rid = f"r{rid_n}"  # few ids: they are used again, with the same content or another
        payload = {"id": rid, "op": op, "args": args}
        if shape == "args":
            payload["args"] = list(args.values())  # args not an object
        elif shape == "id" and rid_n == 0:
            payload["id"] = 7  # no request id to answer with
        raw = contract.encode(payload)
        before = office.store.last_seq()
        out = office.handle(node, raw)
        reply = out.reply
        assert reply is not None and isinstance(reply["ok"], bool)
        assert reply["id"] == (payload["id"] if isinstance(payload["id"], str) else None)
        assert len(contract.encode(reply)) <= 1024
        if not reply["ok"]:
            assert reply["error"]["code"] in CODES and reply["error"]["message"], reply
            assert reply["error"]["code"] != "internal", reply
            # a refusal changes nothing; call_next finishes the current ticket even when nobody waits
            kinds = [e["type"] for e in out.events]
            assert kinds == [] or (reply["error"]["code"] == "nobody_waiting" and kinds == ["ticket_served"])
        try:  # what the controller keys a request id with: the operation and its known arguments
            role = cfg.role_of(node)
            parsed = contract.parse_command(payload, role) if role is not None else None
        except contract.ContractError:
            parsed = None
        content = parsed and contract.canonical({"op": parsed.op.name, "args": parsed.args})
        key = (node, payload["id"])
        if parsed is not None and key in sent:
            first, first_reply = sent[key]
            if content == first:  # a retry: the first reply again, nothing done now
                assert reply.get("repeated") is True, (payload, reply)
                again = {k: v for k, v in reply.items() if k != "repeated"}
                assert contract.canonical(again) == contract.canonical(first_reply)
            else:  # the same id for another command
                assert reply["ok"] is False and reply["error"]["code"] == "duplicate", (payload, reply)
            assert office.store.last_seq() == before and not out.events
        elif parsed is not None:
            assert "seq" in reply, reply  # decided: kept for the request id
            sent[key] = (content, reply)
        check_index(office)
    numbers = [t.number for t in office.state.tickets.values()]
    assert len(numbers) == len(set(numbers)) == 4  # no command of a counter or a terminal issues a ticket
    assert sum(1 for a in office.state.assists.values() if a.state in ("pending", "acknowledged")) <= 1
    rebuilt = Office(cfg, EventStore(db), clock=clock)
    assert indexed(rebuilt.state) == indexed(office.state)
    for part in ("counters", "calls", "assistance"):
        assert rebuilt.snapshot()[part] == office.snapshot()[part], part
