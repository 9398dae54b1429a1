"""The calls a display heard, kept across a restart (``displays.heard``) and used by ``MissedCalls``: real
files in a temporary data directory; a damaged file or one that cannot be written costs one log line and
nothing else."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from displays import heard
from displays.board import CallView
from displays.heard import HeardFile
from displays.missed import KEEP_AFTER_WINDOW_S, MissedCalls


def view(ticket: str, counter: str, ts: float) -> CallView:
    return CallView(ticket, counter, {"de": counter}, {"de": counter}, ts)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "displays.heard" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return heard.path_for("display-1", tmp_path / "var")  # the folder is made by the first write


# ------------------------------------------------------------------------------------------ the file
def test_the_heard_calls_survive_a_new_store_on_the_same_file(path: Path, tmp_path: Path):
    assert path == tmp_path / "var" / "display-display-1-heard.json"
    keys = [("A012", "c3", 1733520000.123), ("B001", "c1", 1733520010.0)]
    store = HeardFile(path)
    assert store.load() == []  # no file yet: nothing heard, and nothing to say
    store.save(keys[:1])
    store.save(keys)  # the newest list wins
    store.close()
    assert HeardFile(path).load() == keys
    data = json.loads(path.read_bytes())
    assert data == {"format": 1, "calls": [["A012", "c3", 1733520000.123], ["B001", "c1", 1733520010.0]]}
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind


def test_the_file_holds_only_call_keys_and_at_most_a_few_kb(path: Path):
    many = [(f"A{i:03d}", f"c{i % 30}", 1733520000.0 + i * 0.5) for i in range(1000)]
    store = HeardFile(path)
    assert store.write(many)
    assert path.stat().st_size < 4096
    loaded = store.load()
    assert loaded == many[-heard.MAX_CALLS :]  # the newest ones
    # a ticket id a third-party publisher made too long is left out, not a reason to reject the file
    assert store.write([("A" * 500, "c1", 1.0), ("A001", "c1", 2.0)])
    assert store.load() == [("A001", "c1", 2.0)]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not JSON (damaged or cut short)"),
        (b'{"format":1,"calls":[["A001","c1",1733520', "not JSON (damaged or cut short)"),
        (b"\x00\xff\xfe\x13 garbage", "not JSON (damaged or cut short)"),
        (b"[1, 2, 3]", "not a list of heard calls (no format)"),
        (b'{"format":1,"calls":{"A001":1}}', "not a list of heard calls"),
        (b'{"format":1,"calls":[["A001","c1","soon"]]}', "calls[0] is not [ticket, counter, time]"),
        (b'{"format":1,"calls":[["A001","c1",NaN]]}', "calls[0] is not [ticket, counter, time]"),
        (
            b'{"format":2,"calls":[["A001","c1",1.0,"room 3"]]}',
            "written by a newer version (format 2; this one",
        ),
        (b" " * (heard.MAX_BYTES + 1), "larger than 64 KB"),
    ],
)
def test_a_damaged_or_foreign_file_is_ignored_with_one_line(path: Path, caplog, content: bytes, reason: str):
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.INFO):
        assert HeardFile(path).load() == []
    assert len(warnings(caplog)) == 1
    assert reason in warnings(caplog)[0] and str(path) in warnings(caplog)[0]


def test_a_damaged_file_does_not_stop_missed_calls_and_is_replaced(path: Path, caplog):
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"format":1,"calls":[["A001"')  # cut short by a power cut (not by this module)
    local = [0.0]
    store = HeardFile(path)
    with caplog.at_level(logging.INFO):
        missed = MissedCalls(60, clock=lambda: local[0], store=store)
    assert missed.restored == 0 and len(warnings(caplog)) == 1
    missed.observe(1000.0, fresh=True)
    assert [c.ticket for c in missed.decide([view("A001", "c1", 990.0)], {"c1": "A001"})] == ["A001"]
    store.close()
    assert HeardFile(path).load() == [("A001", "c1", 990.0)]


@pytest.mark.parametrize("where", ["the folder is a file", "the file is a folder"])
def test_a_file_that_cannot_be_written_costs_one_line_and_nothing_else(tmp_path: Path, caplog, where: str):
    """A read-only or full disk looks the same to the display: the write fails, the calls stay in memory."""
    if where == "the folder is a file":
        (tmp_path / "var").write_text("not a folder")
    else:
        (tmp_path / "var" / "display-display-1-heard.json").mkdir(parents=True)
    store = HeardFile(heard.path_for("display-1", tmp_path / "var"))
    local = [0.0]
    with caplog.at_level(logging.INFO):
        missed = MissedCalls(60, clock=lambda: local[0], store=store)
        missed.observe(1000.0, fresh=True)
        missed.heard(("A001", "c1", 995.0))
        assert store.flush()
        missed.heard(("A002", "c1", 999.0))
        assert store.flush()
        calls = [view("A002", "c1", 999.0), view("B001", "c2", 998.0)]
        late = missed.decide(calls, {"c1": "A002", "c2": "B001"})
        store.close()
    assert [c.ticket for c in late] == ["B001"]  # heard calls are still not announced twice; missed ones are
    assert (store.writes, store.errors) == (0, 3)
    cannot = [w for w in warnings(caplog) if w.startswith("cannot write")]
    assert len(cannot) == 1 and "a restart may announce a recent call again" in cannot[0]


def test_a_write_that_works_again_is_said_once(tmp_path: Path, caplog):
    (tmp_path / "var").write_text("not a folder yet")
    store = HeardFile(heard.path_for("display-1", tmp_path / "var"))
    with caplog.at_level(logging.INFO):
        assert not store.write([("A001", "c1", 1.0)])
        (tmp_path / "var").unlink()
        assert store.write([("A001", "c1", 1.0)])
        assert store.write([("A002", "c1", 2.0)])
    said = [r.getMessage() for r in caplog.records if r.name == "displays.heard"]
    assert len(said) == 2 and said[1].endswith("is written again")


# ------------------------------------------------------------------------------------------ MissedCalls
def test_a_restart_does_not_announce_again_what_was_heard_but_announces_what_was_missed(path: Path):
    local = [0.0]
    first = MissedCalls(60, clock=lambda: local[0], store=HeardFile(path))
    first.observe(1000.0, fresh=True)
    first.heard(("A001", "c1", 1000.0))  # heard live and announced
    late = first.decide([view("B001", "c2", 990.0)], {"c2": "B001"})  # missed during a blip: announced late
    assert [c.ticket for c in late] == ["B001"]
    first.store.close()  # type: ignore[union-attr]

    local[0] += 20  # the display restarts; meanwhile counter c3 called C001
    calls = [view("C001", "c3", 1015.0), view("A001", "c1", 1000.0), view("B001", "c2", 990.0)]
    serving = {"c1": "A001", "c2": "B001", "c3": "C001"}
    again = MissedCalls(60, clock=lambda: local[0], store=HeardFile(path))
    assert again.restored == 2
    again.observe(1019.0, fresh=False)  # the retained state
    assert again.decide(calls, serving) == []  # C001 held until the controller's time is known
    again.observe(1020.0, fresh=True)  # a live message
    assert [c.ticket for c in again.decide(calls, serving)] == ["C001"]  # only the one missed while down
    again.store.close()  # type: ignore[union-attr]

    local[0] += 5  # and once more: nothing of it is announced a third time
    third = MissedCalls(60, clock=lambda: local[0], store=HeardFile(path))
    third.observe(1025.0, fresh=True)
    assert third.decide(calls, serving) == []

    fresh = MissedCalls(60, clock=lambda: local[0], store=HeardFile(path.with_name("other.json")))
    fresh.observe(1025.0, fresh=True)  # a display without the file (a new SD card) announces them all
    assert [c.ticket for c in fresh.decide(calls, serving)] == ["B001", "A001", "C001"]


def test_only_the_calls_of_the_window_are_kept(path: Path):
    local = [0.0]
    store = HeardFile(path)
    missed = MissedCalls(60, clock=lambda: local[0], store=store)
    missed.observe(1000.0, fresh=True)
    missed.heard(("A001", "c1", 995.0))
    missed.heard(("A002", "c1", 999.0))
    assert store.flush() and store.load() == [("A001", "c1", 995.0), ("A002", "c1", 999.0)]

    local[0] += 60 + KEEP_AFTER_WINDOW_S - 2  # A001 is now older than the window and the margin; A002 is not
    missed.heard(("B001", "c2", 1088.0))
    assert store.flush() and store.load() == [("A002", "c1", 999.0), ("B001", "c2", 1088.0)]
    writes = store.writes
    # a stale call (older than the window) changes nothing that a restart needs: no write
    assert missed.decide([view("Z001", "c9", 500.0)], {"c9": "Z001"}) == []
    assert store.flush() and store.writes == writes
    store.close()
    assert missed.recent() == [("A002", "c1", 999.0), ("B001", "c2", 1088.0)]


def test_a_call_is_stored_once_its_announcement_began(path: Path):
    local = [0.0]
    store = HeardFile(path)
    missed = MissedCalls(60, clock=lambda: local[0], store=store)
    missed.observe(1000.0, fresh=True)
    missed.heard(("A001", "c1", 999.0), announcing=True)  # queued for its gong
    late = missed.decide([view("B001", "c2", 990.0)], {"c2": "B001"}, announcing=True)
    assert [c.ticket for c in late] == ["B001"]
    assert missed.decide([view("A001", "c1", 999.0)], {"c1": "A001"}) == []  # this process knows it
    assert store.flush() and store.load() == []  # a restart now announces both
    missed.played(("B001", "c2", 990.0))
    missed.played(("Z001", "c9", 998.0))  # not one of its calls: nothing
    assert store.flush() and store.load() == [("B001", "c2", 990.0)]
    missed.played(("A001", "c1", 999.0))
    assert store.flush() and store.load() == [("A001", "c1", 999.0), ("B001", "c2", 990.0)]
    store.close()


def test_the_node_is_told_once_when_writing_fails_and_once_when_it_works_again(tmp_path: Path):
    """The display node puts it in its health (``heard_error`` and the fault ``heard_unwritable``), so a full
    or read-only card shows on the admin page, not only in the log."""
    (tmp_path / "var").write_text("not a folder yet")
    store = HeardFile(heard.path_for("display-1", tmp_path / "var"))
    told: list[str | None] = []
    store.on_change = told.append
    assert not store.write([("A001", "c1", 1.0)])
    assert not store.write([("A002", "c1", 2.0)])
    assert len(told) == 1 and told[0] is not None and "display-display-1-heard.json" in told[0]
    (tmp_path / "var").unlink()
    assert store.write([("A002", "c1", 2.0)])
    assert store.write([("A003", "c1", 3.0)])
    assert told[1:] == [None]
