"""Import from the booking system: a real-format .ics (VTIMEZONE Europe/Berlin, an update with a higher
SEQUENCE, cancellations, an RRULE with an EXDATE and a cancelled occurrence) and a CSV with a column mapping,
into a real controller; re-import is idempotent, also across a restart; the CLI over a real broker."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from tests.test_appointments import at
from tests.test_controller import MONDAY_9, Clock
from waitroom import appointments as codes
from waitroom import config, contract
from waitroom.appointments import csv_import, ics
from waitroom.appointments.cli import import_once
from waitroom.appointments.importer import FeedError
from waitroom.controller import Office
from waitroom.store import EventStore

DATA = Path(__file__).parent / "data"
SERVICE_MAP = {
    "Personalausweis beantragen": "pass",
    "10115": "melde",
    "Anmeldung einer Wohnung": "melde",
    "Führerschein umschreiben": "fuehrerschein",
}


def with_mapping(cfg: config.Config, **csv: object) -> config.Config:
    bs = cfg.appointments.booking_system
    spec = bs.csv
    if csv:
        spec = spec.model_copy(
            update={
                "start_format": "%d.%m.%Y %H:%M",
                "columns": spec.columns.model_copy(update=csv),
            }
        )
    bs = bs.model_copy(update={"service_map": SERVICE_MAP, "csv": spec})
    return cfg.model_copy(update={"appointments": cfg.appointments.model_copy(update={"booking_system": bs})})


@pytest.fixture
def cfg():
    return with_mapping(
        config.load(config.EXAMPLE_CONFIG),
        uid="Vorgang",
        code="Nummer",
        service="Dienstleistung",
        start="Beginn",
        status="Status",
        sequence="Revision",
    )


@pytest.fixture
def store(tmp_path):
    s = EventStore(tmp_path / "events.db")
    yield s
    s.close()


def sender(office: Office):
    def send(op, args, rid):
        return office.handle("web", contract.encode(contract.command(op, args, rid))).reply

    return send


def book(office: Office) -> dict[str, tuple[str, float, bool]]:
    return {a.code: (a.service, a.slot, a.cancelled) for a in office.state.appointments.values()}


def test_ics_entries_time_zones_series_and_errors(cfg):
    parsed = ics.parse((DATA / "appointments.ics").read_bytes(), cfg, MONDAY_9)
    by_key = {e.key: e for e in parsed.entries}
    e1 = by_key["termin-1001@buergerbuero.example"]
    assert (e1.code, e1.service, e1.slot, e1.version) == ("ZMS1001", "pass", at(1, "09:15"), 0)
    assert by_key["termin-1002@buergerbuero.example"].service == "melde"  # mapped by the booking system's id
    assert by_key["termin-1003@buergerbuero.example"].cancelled
    e4 = by_key["termin-1004@buergerbuero.example"]  # UTC time; no code of its own: derived from the UID
    assert e4.slot == at(1, "14:00") and e4.code == codes.code_for_uid(e4.key) and codes.is_generated(e4.code)
    series = sorted((e for e in parsed.entries if e.key.startswith("serie-77")), key=lambda e: e.slot)
    days = [
        (dt.datetime.fromtimestamp(e.slot, config.ZoneInfo("Europe/Berlin")).day, e.cancelled) for e in series
    ]
    assert sorted(days) == [(24, False), (26, True), (27, False)]  # the 25th is an EXDATE
    assert len({e.code for e in series}) == 3
    errors = {e.where: e.message for e in parsed.errors}
    assert "all-day" in errors["UID termin-1005@buergerbuero.example"]
    assert "Hundesteuer" in errors["UID termin-1006@buergerbuero.example"]
    with pytest.raises(FeedError):
        ics.parse(b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n", cfg, MONDAY_9)


@pytest.mark.parametrize("tzid", ["Europe", "America/", "Etc"])
def test_a_tzid_that_is_a_folder_of_the_zone_database_is_one_clear_feed_error(cfg, tmp_path, tzid):
    """A TZID such as "Europe" (a folder of the time zone database, not a zone) made the calendar library
    open that folder as a zone file: IsADirectoryError, not a FeedError, so ``waitroom appointments import``
    ended with a traceback and ``--poll`` stopped importing. Now it is one error naming the TZID."""
    text = (DATA / "appointments.ics").read_text("utf-8").replace("TZID=Europe/Berlin:", f"TZID={tzid}:")
    assert f"TZID={tzid}:" in text
    feed = tmp_path / "feed.ics"
    feed.write_text(text, "utf-8")
    name = tzid.rstrip("/").rsplit("/", 1)[-1]
    with pytest.raises(FeedError, match=f"TZID of the calendar is '{name}', which is no time zone"):
        import_once(cfg, str(feed), lambda *a: pytest.fail("nothing is sent"), now=MONDAY_9)


def test_ics_import_update_cancel_and_idempotent_reimport(cfg, store, tmp_path):
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    send = sender(office)
    rep = import_once(cfg, str(DATA / "appointments.ics"), send, now=MONDAY_9, since_seq=office.state.seq)
    assert (rep.booked, rep.cancelled, rep.moved, len(rep.errors)) == (5, 0, 0, 2)
    assert rep.skipped == 2  # 1003 and the 26th of the series: cancelled before we ever saw them
    b = book(office)
    assert b["ZMS1001"] == ("pass", at(1, "09:15"), False) and "ZMS1003" not in b
    seq = office.state.seq
    again = import_once(cfg, str(DATA / "appointments.ics"), send, now=MONDAY_9, since_seq=office.state.seq)
    assert again.unchanged == 5 and again.booked == 0 and office.state.seq == seq  # nothing changed
    rev2 = import_once(
        cfg, str(DATA / "appointments-rev2.ics"), send, now=MONDAY_9, since_seq=office.state.seq
    )
    assert (rev2.moved, rev2.cancelled, rev2.unchanged) == (1, 1, 3)
    b = book(office)
    assert b["ZMS1001"] == ("pass", at(1, "10:30"), False)  # moved by the higher SEQUENCE
    assert b["ZMS1002"][2] is True  # cancelled
    # the older file again changes nothing: its revisions are not newer than the book's
    seq = office.state.seq
    old = import_once(cfg, str(DATA / "appointments.ics"), send, now=MONDAY_9, since_seq=office.state.seq)
    assert old.booked == old.moved == old.cancelled == 0 and office.state.seq == seq
    # after a restart of the controller, the same import is still a no-op (stored replies and the book)
    office2 = Office(cfg, store, clock=Clock(MONDAY_9))
    again2 = import_once(
        cfg, str(DATA / "appointments-rev2.ics"), sender(office2), now=MONDAY_9, since_seq=office2.state.seq
    )
    assert again2.booked == again2.moved == again2.cancelled == 0 and office2.state.seq == seq
    # an imported appointment is checked in like any other (tomorrow, at the dispenser)
    office2.wall = Clock(at(1, "10:20"))
    out = office2.handle(
        "disp-1", contract.encode(contract.command("appointment.checkin", {"code": "zms1001"}))
    )
    assert out.reply["ok"] and out.reply["result"]["ticket"]["appointment"] == at(1, "10:30")


def test_csv_import_with_column_mapping(cfg, store):
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    send = sender(office)
    rep = import_once(cfg, str(DATA / "appointments.csv"), send, now=MONDAY_9, since_seq=office.state.seq)
    assert (rep.booked, rep.skipped) == (3, 1)  # 88003 cancelled before it was booked
    errors = {e.where: e.message for e in rep.errors}
    assert set(errors) == {"line 5", "line 6"} and "Hundesteuer" in errors["line 5"]
    assert "31.11.2026" in errors["line 6"]
    b = book(office)
    assert b["T88001"] == ("pass", at(1, "09:45"), False) and b["T88002"][0] == "melde"
    derived = codes.code_for_uid("88006")
    assert b[derived] == ("fuehrerschein", at(2, "08:15"), False)
    seq = office.state.seq
    assert (
        import_once(
            cfg, str(DATA / "appointments.csv"), send, now=MONDAY_9, since_seq=office.state.seq
        ).unchanged
        == 3
    )
    assert office.state.seq == seq
    # a file without revisions: a changed time is a move, the file is the truth
    plain = cfg.model_copy(deep=True)
    plain = with_mapping(
        plain,
        sequence=None,
        uid="Vorgang",
        code="Nummer",
        service="Dienstleistung",
        start="Beginn",
        status="Status",
    )
    text = (
        (DATA / "appointments.csv")
        .read_text(encoding="utf-8")
        .replace("24.11.2026 09:45", "24.11.2026 13:00")
    )
    rep2 = csv_import.parse(text, plain, MONDAY_9)
    from waitroom.appointments.importer import apply_entries

    out = apply_entries(plain, rep2, send, MONDAY_9, office.state.seq)
    assert out.moved == 1 and book(office)["T88001"][1] == at(1, "13:00")
    with pytest.raises(FeedError):
        csv_import.parse("a;b\n1;2\n", cfg, MONDAY_9)


def test_cli_imports_over_mqtt(broker, tmp_path, capsys):
    from tests.conftest import office_config
    from waitroom.cli import main
    from waitroom.service import ControllerService

    cfg = with_mapping(office_config(broker.port, office_id="imp1"))
    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    assert svc.start(wait=10)
    try:
        conf = tmp_path / "office.yaml"
        conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
        tomorrow = dt.datetime.now(cfg.office.tz).date() + dt.timedelta(days=1)
        csv_file = tmp_path / "termine.csv"
        csv_file.write_text(
            "uid;code;service;start;status;sequence\n"
            f"a1;QA1;Personalausweis beantragen;{tomorrow}T10:00;booked;0\n"
            f"a2;QA2;melde;{tomorrow}T10:15;cancelled;0\n"
            f"a3;QA3;nichts;{tomorrow}T10:30;booked;0\n",
            encoding="utf-8",
        )
        args = [
            "appointments",
            "import",
            str(csv_file),
            "-c",
            str(conf),
            "--json",
            "--data-dir",
            str(tmp_path),
        ]
        assert main(args) == 3  # one entry failed
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["booked"] == 1 and report["skipped"] == 1
        assert report["errors"][0]["entry"] == "line 4"
        assert "QA1" in svc.office.state.appointments
        seq = svc.office.state.seq
        assert main(args) == 3
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["unchanged"] == 1 and report["booked"] == 0 and svc.office.state.seq == seq
        assert (
            main(["appointments", "import", str(tmp_path / "missing.ics"), "-c", str(conf), "--no-memory"])
            == 1
        )
        assert list((tmp_path / "appointments-import").glob("*.json"))  # the feed's bookings remembered
    finally:
        svc.stop()


def test_feed_url_is_fetched_and_bad_sources_are_one_clear_error(cfg, store):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        office = Office(cfg, store, clock=Clock(MONDAY_9))
        url = f"http://127.0.0.1:{srv.server_port}/appointments.ics"
        rep = import_once(cfg, url, sender(office), now=MONDAY_9, since_seq=office.state.seq)
        assert rep.booked == 5 and "ZMS1001" in office.state.appointments
        with pytest.raises(FeedError, match="cannot fetch"):
            import_once(cfg, url.replace("appointments.ics", "nope.ics"), sender(office), now=MONDAY_9)
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(FeedError, match="only files and http"):
        import_once(cfg, "ftp://example.org/x.ics", sender(office), now=MONDAY_9)


def test_a_feed_whose_transfer_breaks_off_cancels_nothing(cfg, store, tmp_path):
    """The booking system's server (or the network) breaks the transfer off: fewer bytes than its
    Content-Length. The short body was imported as the whole feed, so every appointment after the cut was
    cancelled as gone from the feed, and its citizens came for nothing. Now it is one clear error and nothing
    is cancelled; a chunked transfer that breaks off too (it raised http.client.IncompleteRead), and a feed
    URL that is no URL (it raised ValueError or http.client.InvalidURL: a traceback, and --poll stopped)."""
    import http.server
    import threading

    body = (DATA / "appointments.csv").read_bytes()
    cut = body.index(b"\n88002;") + 1  # after the first appointment
    serve = {"cut": False, "chunked": False}

    class Feed(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            if serve["chunked"]:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n" % (cut, body[:cut]))  # and no last chunk
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:cut] if serve["cut"] else body)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Feed)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        office = Office(cfg, store, clock=Clock(MONDAY_9))
        url, memory = f"http://127.0.0.1:{srv.server_port}/termine.csv", tmp_path / "memory"
        rep = import_once(
            cfg, url, sender(office), now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory
        )
        assert rep.booked == 3
        before = book(office)
        for serve["cut"], serve["chunked"] in ((True, False), (False, True)):
            with pytest.raises(FeedError, match="broke off"):
                import_once(cfg, url, sender(office), now=MONDAY_9, memory_dir=memory)
        assert book(office) == before  # nothing cancelled
        for bad in ("http://127.0.0.1:port/x.ics", "http://[::1/x.ics", "http://exa mple.org/x.ics"):
            with pytest.raises(FeedError, match="cannot fetch"):  # one line, no traceback
                import_once(cfg, bad, sender(office), now=MONDAY_9)
    finally:
        srv.shutdown()
        srv.server_close()


def test_entries_gone_from_the_feed_are_cancelled(cfg, store, tmp_path):
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    send, memory = sender(office), tmp_path / "memory"
    feed = tmp_path / "feed.ics"
    text = (DATA / "appointments.ics").read_bytes().decode("utf-8")  # CRLF kept
    feed.write_bytes(text.encode("utf-8"))
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert rep.booked == 5
    series_27 = next(
        a.code
        for a in office.state.appointments.values()
        if a.service == "sonstiges" and a.slot == at(4, "08:30")
    )
    # the booking system adds an EXDATE for the 27th and drops termin-1004 altogether
    text = text.replace(
        "EXDATE;TZID=Europe/Berlin:20261125T083000",
        "EXDATE;TZID=Europe/Berlin:20261125T083000,20261127T083000",
    )
    start = text.index("BEGIN:VEVENT\r\nUID:termin-1004")
    text = text[:start] + text[text.index("END:VEVENT\r\n", start) + len("END:VEVENT\r\n") :]
    feed.write_bytes(text.encode("utf-8"))
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    gone_1004 = codes.code_for_uid("termin-1004@buergerbuero.example")
    assert rep.cancelled == 2 and rep.unchanged == 3, rep
    assert office.state.appointments[series_27].cancelled and office.state.appointments[gone_1004].cancelled
    seq = office.state.seq
    again = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=seq, memory_dir=memory)
    assert again.cancelled == 0 and office.state.seq == seq
    # a feed that comes back empty is a broken export: nothing is cancelled
    feed.write_text("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nEND:VCALENDAR\r\n", encoding="utf-8")
    empty = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=seq, memory_dir=memory)
    assert empty.cancelled == 0 and empty.errors and office.state.seq == seq


def test_a_memory_that_cannot_be_written_is_one_error_and_the_import_is_done(cfg, store, tmp_path):
    """The folder in which the import remembers a feed's bookings cannot be written (a full or read-only
    disk; here a file in its place): the entries were sent, but the save raised OSError out of the import,
    so ``waitroom appointments import`` ended with a traceback and ``--poll`` stopped. Now the report has
    one error saying so and the import is counted."""
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    memory = tmp_path / "memory"
    memory.write_text("not a folder", encoding="utf-8")
    feed = str(DATA / "appointments.ics")
    rep = import_once(cfg, feed, sender(office), now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert rep.booked == 5 and "ZMS1001" in office.state.appointments
    kept = [e.message for e in rep.errors if e.where == "(feed)"]
    assert len(kept) == 1 and "cannot keep what this import booked" in kept[0], rep.errors
    memory.unlink()  # room again: the next import remembers
    rep = import_once(cfg, feed, sender(office), now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert rep.unchanged == 5 and list(memory.iterdir())
    assert not [e for e in rep.errors if e.where == "(feed)"]


# A city's export as it comes: columns the import does not map (a name, an e-mail address) before the mapped
# ones, a blank line, a name with an unquoted separator, a row cut short. No real person: invented names.
EXPORT = (
    "Name;E-Mail;Vorgang;Nummer;Dienstleistung;Beginn;Status;Revision\r\n"
    "Muster, Max;max.muster@example.org;88001;T88001;Personalausweis beantragen;24.11.2026 09:45;gebucht;0"
    "\r\n"
    "\r\n"
    "Beispiel; Erika;erika.beispiel@example.org;88002;T88002;Anmeldung einer Wohnung;24.11.2026 10:15;"
    "gebucht;0\r\n"
    "Probe, Paul;paul.probe@example.org;88003\r\n"
    "Test, Tina;tina.test@example.org;88004;T88004;Führerschein umschreiben;25.11.2026 08:15;gebucht;0\r\n"
)


def test_csv_errors_name_the_file_line_and_show_no_unmapped_value(cfg):
    parsed = csv_import.parse(EXPORT.encode("utf-8"), cfg, MONDAY_9)
    assert sorted(e.code for e in parsed.entries) == ["T88001", "T88004"]
    errors = {e.where: e.message for e in parsed.errors}
    assert set(errors) == {"line 4", "line 5"}  # the blank line 3 counts
    assert "9 fields, the header has 8" in errors["line 4"]  # the separator in the name shifted the row
    assert "3 fields" in errors["line 5"] and "Dienstleistung" in errors["line 5"]
    for msg in errors.values():
        for personal in ("Beispiel", "Erika", "erika", "@example", "Probe", "Paul"):
            assert personal not in msg


def test_csv_rows_may_end_with_an_empty_field_after_the_last_column(cfg):
    text = "Vorgang;Nummer;Dienstleistung;Beginn;Status;Revision\n88001;T88001;10115;24.11.2026 09:45;;0;\n"
    parsed = csv_import.parse(text, cfg, MONDAY_9)
    assert not parsed.errors and [e.service for e in parsed.entries] == ["melde"]


def test_two_bookings_with_one_code_the_second_is_reported_not_merged(cfg, store, tmp_path):
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    send, memory = sender(office), tmp_path / "memory"
    feed = tmp_path / "termine.csv"
    feed.write_text(
        "Vorgang;Nummer;Dienstleistung;Beginn;Status;Revision\n"
        "88001;T88001;Personalausweis beantragen;24.11.2026 09:45;gebucht;0\n"
        "88012;T88001;Anmeldung einer Wohnung;27.11.2026 10:30;gebucht;0\n",
        encoding="utf-8",
    )
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert rep.booked == 1 and rep.unchanged == 0
    assert [(e.where, e.message) for e in rep.errors] == [
        ("line 3", "booking code T88001 is already the code of line 2; not imported")
    ]
    assert book(office)["T88001"] == ("pass", at(1, "09:45"), False)
    # the second booking leaves the feed: the first one's appointment is not cancelled with it
    feed.write_text(
        "Vorgang;Nummer;Dienstleistung;Beginn;Status;Revision\n"
        "88001;T88001;Personalausweis beantragen;24.11.2026 09:45;gebucht;0\n",
        encoding="utf-8",
    )
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert (rep.cancelled, rep.errors) == (0, []) and book(office)["T88001"][2] is False


def test_csv_in_another_encoding_names_the_line_and_the_setting(cfg):
    text = (
        "Vorgang;Nummer;Dienstleistung;Beginn;Status;Revision\n"
        "88004;T88004;Führerschein umschreiben;25.11.2026 08:15;;0\n"
    )
    with pytest.raises(FeedError, match=r"line 2: .*appointments\.booking_system\.csv\.encoding"):
        csv_import.parse(text.encode("cp1252"), cfg, MONDAY_9)
    spec = cfg.appointments.booking_system.csv.model_copy(update={"encoding": "cp1252"})
    bs = cfg.appointments.booking_system.model_copy(update={"csv": spec})
    latin = cfg.model_copy(
        update={"appointments": cfg.appointments.model_copy(update={"booking_system": bs})}
    )
    assert [e.service for e in csv_import.parse(text.encode("cp1252"), latin, MONDAY_9).entries] == [
        "fuehrerschein"
    ]


def test_csv_with_another_separator_or_empty_says_so(cfg):
    with pytest.raises(FeedError, match=r"separated by ',', not ';' .*csv\.delimiter"):
        csv_import.parse("Vorgang,Nummer,Dienstleistung,Beginn\n1,T1,10115,24.11.2026 09:45\n", cfg, MONDAY_9)
    with pytest.raises(FeedError, match="empty"):
        csv_import.parse(b"", cfg, MONDAY_9)
    with pytest.raises(FeedError, match="empty"):
        csv_import.parse(b"\xef\xbb\xbf\r\n", cfg, MONDAY_9)


def test_a_broken_ics_entry_is_one_error_and_the_others_are_imported(cfg, store, tmp_path):
    """A VEVENT whose DTSTART or SEQUENCE cannot be read, or that has no DTSTART, is one error naming its UID
    and the property; the other entries are imported (one such entry made the whole feed fail: "cannot
    unfold the events"). An entry imported before and broken now is not cancelled as gone: the booking
    system still lists it, and its citizen still comes."""
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    send, memory = sender(office), tmp_path / "memory"
    feed = tmp_path / "feed.ics"
    text = (DATA / "appointments.ics").read_bytes().decode("utf-8")
    feed.write_bytes(text.encode("utf-8"))
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert rep.booked == 5
    before = book(office)
    broken = (
        text.replace("DTSTART:20261124T130000Z", "DTSTART:2026-11-24 13:00")  # termin-1004
        .replace(
            "SEQUENCE:1\r\nDTSTART;TZID=Europe/Berlin:20261124T083000",
            "SEQUENCE:eins\r\nDTSTART;TZID=Europe/Berlin:20261124T083000",
        )  # the series' first VEVENT
        .replace("DTSTART;TZID=Europe/Berlin:20261124T100000\r\n", "")  # termin-1003
        .replace("CATEGORIES:10115", "CATEGORIES:10116")  # termin-1002: a service the mapping lacks
    )
    parsed = ics.parse(broken, cfg, MONDAY_9)
    errors = {e.where: e.message for e in parsed.errors}
    assert errors["UID termin-1004@buergerbuero.example"].startswith("DTSTART: ")
    assert errors["UID serie-77@buergerbuero.example"].startswith("SEQUENCE: ")
    assert errors["UID termin-1003@buergerbuero.example"] == "no DTSTART"
    assert "'10116' maps to no service" in errors["UID termin-1002@buergerbuero.example"]
    assert {e.key for e in parsed.entries} == {"termin-1001@buergerbuero.example"}
    feed.write_bytes(broken.encode("utf-8"))
    seq = office.state.seq
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=seq, memory_dir=memory)
    assert rep.cancelled == 0 and len(rep.errors) >= 3, rep
    assert book(office) == before and office.state.seq == seq
    feed.write_bytes(text.encode("utf-8"))  # repaired: the next import finds everything as it was
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=seq, memory_dir=memory)
    assert rep.cancelled == rep.booked == 0 and book(office) == before


def test_a_broken_csv_row_does_not_cancel_what_it_booked_before(cfg, store, tmp_path):
    """A row the import booked before that now cannot be read (a start time mistyped in the export) is an
    error naming its line; its appointment stays booked (it was cancelled as gone from the feed)."""
    office = Office(cfg, store, clock=Clock(MONDAY_9))
    send, memory = sender(office), tmp_path / "memory"
    feed = tmp_path / "termine.csv"
    text = (DATA / "appointments.csv").read_text(encoding="utf-8")
    feed.write_text(text, encoding="utf-8")
    import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=office.state.seq, memory_dir=memory)
    assert not office.state.appointments["T88001"].cancelled
    feed.write_text(text.replace("24.11.2026 09:45", "24.11.2026 9.45 Uhr"), encoding="utf-8")
    seq = office.state.seq
    rep = import_once(cfg, str(feed), send, now=MONDAY_9, since_seq=seq, memory_dir=memory)
    assert [e.where for e in rep.errors if "9.45 Uhr" in e.message] == ["line 2"]
    assert rep.cancelled == 0 and not office.state.appointments["T88001"].cancelled
    assert office.state.seq == seq
