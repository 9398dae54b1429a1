"""The dispenser node through a real mosquitto and the real controller, with gpiozero's mock pins."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.dispenser import (
    DEFAULT_PINS,
    EVENT,
    CodeReader,
    Dispenser,
    RateLimiter,
    load_options,
    parse_code,
    resolve_pins,
)
from tests.printer_server import PrinterServer
from ticket_printer.preview import latest
from waitroom.config import Config
from waitroom.contract import Topics, decode
from waitroom.errors import ConfigError


def wait_until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def with_dispenser(cfg: Config, printer: dict, **options: object) -> Config:
    nodes = [
        n.model_copy(update={"options": {**n.options, **options}}) if n.id == "disp-1" else n
        for n in cfg.nodes
    ]
    return cfg.model_copy(update={"printer": printer, "nodes": nodes})


@pytest.fixture
def make(node, mock_pins, tmp_path, monkeypatch):
    monkeypatch.setenv("WAITROOM_DATA_DIR", str(tmp_path / "var"))
    made: list[Dispenser] = []

    def factory(cfg: Config, *, wait_leases: bool = True) -> Dispenser:
        from waitroom.node import NodeRuntime

        rt = NodeRuntime(cfg, "disp-1")
        assert rt.start(wait=10)
        d = Dispenser(rt, cfg, cfg.node("disp-1"), pins=mock_pins)
        d.start()
        made.append(d)
        if wait_leases:
            wait_until(lambda: all(d.store.remaining(d.today(), s) > 0 for s in d.services), 10)
        return d

    yield factory
    for d in made:
        d.stop()
        d.runtime.stop()


def press(d: Dispenser, name: str, hold: float = 0.06) -> None:
    pin = d.buttons[name].pin
    pin.drive_low()
    time.sleep(hold)
    pin.drive_high()


def files(folder: Path, suffix: str = ".bin") -> list[Path]:
    return sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []


def test_press_prints_ticket_and_publishes_health(cfg, controller, node, make, tmp_path):
    folder = tmp_path / "tickets"
    web = node("web")
    health: list[dict] = []
    web.subscribe(Topics(cfg.office.id).health("disp-1"), lambda t, p: health.append(decode(p)))
    d = make(with_dispenser(cfg, {"preview": {"folder": str(folder), "keep": 5}}))
    assert d.leds["pass"].is_lit and d.status_led is not None and not d.status_led.is_lit
    press(d, "pass")
    wait_until(lambda: latest(folder, 1))
    png = latest(folder, 1)[0]
    assert png.name.endswith(
        "-A001.png"
    )  # the offline reserve comes from A900 up, not from the walk-in range
    wait_until(lambda: any(h.get("last_ticket_png") == png.name for h in health))
    h = [h for h in health if h.get("last_ticket_png") == png.name][-1]
    assert h["printer"] == "ok" and h["last_ticket"] == "A001" and h["controller"] == "online"
    waiting = controller.office.state.waiting("pass")
    assert [t.number for t in waiting] == ["A001"]


def test_bouncing_contacts_give_one_ticket(cfg, controller, make, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}))
    pin = d.buttons["melde"].pin
    for _ in range(6):  # contact bounce: edges a millisecond apart
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    time.sleep(0.08)
    for _ in range(4):
        pin.drive_high()
        pin.drive_low()
    pin.drive_high()
    wait_until(lambda: files(folder))
    time.sleep(0.3)
    assert len(files(folder)) == 1
    assert b"B001" in files(folder)[0].read_bytes()
    assert d.buttons["melde"].bounces > 0


def test_rate_limiter_unit():
    now = [0.0]
    rl = RateLimiter(interval_s=3, burst=4, per_minute=6, clock=lambda: now[0])
    assert rl.allow("a") and not rl.allow("a")  # the same button at once again
    now[0] = 3.5
    assert rl.allow("a") and rl.allow("b") and rl.allow("c")  # burst of 4 used up
    assert not rl.allow("d")
    now[0] = 13.6  # 6 per minute: one token every 10 s
    assert rl.allow("d") and not rl.allow("e")


def test_rate_limiter_forgets_expired_check_in_codes_but_not_a_recent_one():
    """Each booking code is a key of its own: a dispenser that runs for months must not keep them all."""
    now = [0.0]
    rl = RateLimiter(interval_s=3, burst=10_000, per_minute=600, clock=lambda: now[0])
    for n in range(1000):
        now[0] = n * 0.1  # 1,000 codes in 100 s
        assert rl.allow(f"checkin:C{n:04d}")
    assert not rl.allow("checkin:C0999")  # read again at once: a double read, still known
    assert len(rl._last) <= 257  # RateLimiter.KEYS and the newest


def test_hammering_a_button_prints_one_ticket(cfg, controller, make, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}))
    for _ in range(8):
        press(d, "pass", hold=0.04)
        time.sleep(0.04)
    wait_until(lambda: files(folder))
    time.sleep(0.3)
    assert len(files(folder)) == 1
    assert d.health()["refused"]["rate_limited"] == 7
    assert d.last_refusal["text"]["de"].startswith("Bitte einen Moment warten")


def test_print_failure_cancels_the_ticket(cfg, controller, make):
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # nothing listens there any more
    printer = {
        "backend": "network",
        "network": {"host": "127.0.0.1", "port": port, "timeout_s": 0.5},
        "status_query": False,
    }
    d = make(with_dispenser(cfg, printer, print_retries=1))
    out = d.issue("pass")
    assert out.kind == "refused" and out.reason == "print_failed" and out.number == "A001"
    wait_until(lambda: controller.office.state.ticket("A001").state == "cancelled")
    assert controller.office.state.waiting("pass") == []
    h = d.health()
    assert h["printer"] == "offline" and "not reachable" in h["printer_error"] and h["status"] == "error"
    assert h["printer_fault"] == "printer_unreachable"
    assert h["last_refusal"]["reason"] == "print_failed"
    # The next press is refused before a number is taken; the status LED blinks fast.
    assert d.issue("pass").reason == "printer"
    wait_until(lambda: d.status_led.pattern == "fast")  # after the three refusal flashes
    assert len(controller.office.state.tickets) == 1


def test_a_failed_printer_reads_as_a_german_sentence_on_the_admin_page(cfg, controller, make, tmp_path):
    """The printer cannot be reached: the dispenser's health carries a stable fault code next to its English
    detail, and the admin page says it as a German sentence, the detail folded away for the technician; once
    the printer prints again the line is gone."""
    from tests.web_helpers import health_details, health_lines, login, wait_for
    from waitroom.web import create_app

    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # nothing listens there any more
    printer = {
        "backend": "network",
        "network": {"host": "127.0.0.1", "port": port, "timeout_s": 0.5},
        "status_query": False,
        "status_interval_s": 1,
    }
    d = make(with_dispenser(cfg, printer, print_retries=0))
    app = create_app(
        cfg,
        data_dir=tmp_path / "web",
        test_config={"SECRET_KEY": "test-secret-key-0123456789", "TESTING": True},
    )
    app.extensions["waitroom_users"].add("admin", "correct-horse-1", "admin")
    live = app.extensions["waitroom"]
    try:
        admin = app.test_client()
        assert login(admin, "admin").status_code == 302
        assert d.issue("pass").reason == "print_failed"
        wait_for(lambda: live.nodes.get("disp-1", {}).get("health", {}).get("printer_fault"), timeout=10)
        assert live.nodes["disp-1"]["health"]["printer_fault"] == "printer_unreachable"
        html = admin.get("/admin/nodes").get_data(as_text=True)
        shown = health_lines(html, "disp-1")
        assert shown["printer_error"] == (
            "warn",
            "⚠ Achtung: Letzter Druckfehler: Der Drucker ist nicht erreichbar. Kabel, Stromversorgung und "
            "die Druckereinstellung (printer) in der Konfiguration prüfen.",
        )
        assert "printer_fault" not in shown  # said with its detail, not as a line of its own
        summary, detail = health_details(html, "disp-1")["printer_error"]
        assert summary == "Technische Angabe" and f"printer 127.0.0.1:{port} not reachable" in detail
        said = " ".join(text for _, text in shown.values())
        assert "reachable" not in said and "printer_unreachable" not in said
        english = health_lines(admin.get("/admin/nodes?lang=en").get_data(as_text=True), "disp-1")
        assert english["printer_error"][1].startswith(
            "⚠ Warning: Last printing error: The printer cannot be reached."
        )
        sink = PrinterServer(port=port)  # the printer is switched on again
        try:
            time.sleep(1.1)  # status_interval_s: without status queries only a print tells it is back
            assert d.issue("pass").kind == "printed"
            wait_for(
                lambda: (
                    "printer_fault" not in live.nodes["disp-1"]["health"]
                    or not live.nodes["disp-1"]["health"]["printer_fault"]
                ),
                timeout=10,
            )
            assert "printer_error" not in health_lines(
                admin.get("/admin/nodes").get_data(as_text=True), "disp-1"
            )
        finally:
            sink.close()
    finally:
        live.close()


def test_intake_stop(cfg, controller, node, make, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}))
    node("web").request("intake.set", {"service": "melde", "open": False, "reason": "Annahmeschluss"})
    wait_until(lambda: d.intake.get("melde", (True, ""))[0] is False)
    wait_until(lambda: not d.leds["melde"].is_lit)
    assert d.leds["pass"].is_lit
    assert d.leds["melde"].pin.state == 0
    press(d, "melde")
    wait_until(lambda: d.last_refusal is not None)
    time.sleep(0.2)
    assert files(folder) == []
    r = d.health()
    assert r["intake_stopped"] == {"melde": "Annahmeschluss"}
    assert r["last_refusal"]["reason"] == "intake_stopped"
    assert "Meldeangelegenheiten" in r["last_refusal"]["text"]["de"]


@pytest.mark.slow
def test_offline_block_survives_restart_and_is_reported(cfg, make, tmp_path):
    from waitroom.service import ControllerService

    db = str(tmp_path / "events.db")
    svc = ControllerService(cfg, db)
    assert svc.start(wait=10)
    folder = tmp_path / "raw"
    folder.mkdir()
    dcfg = with_dispenser(
        cfg, {"backend": "file", "file": {"path": str(folder)}}, request_timeout_s=0.5, request_retries=0
    )
    d = make(dcfg)
    assert d.issue("pass").number == "A001"
    svc.stop()
    wait_until(lambda: not d.controller_reachable)
    first = [d.issue("pass"), d.issue("pass")]
    assert [(o.kind, o.number) for o in first] == [("offline", "A900"), ("offline", "A901")]
    raw = files(folder)[-1].read_bytes()
    assert b"Wartezeit wird ermittelt" in raw and b"A901" in raw
    assert b"(k" not in raw  # no status page yet: the ticket id comes with the report
    d.stop()
    d.runtime.stop()
    d2 = make(dcfg, wait_leases=False)  # restarted while the controller is still down
    assert d2.issue("pass").number == "A902"
    assert d2.health()["offline_unreported"] == 3
    svc2 = ControllerService(cfg, db)
    assert svc2.start(wait=10)
    try:
        wait_until(lambda: d2.health()["offline_unreported"] == 0, 10)
        tickets = {t.number: t for t in svc2.office.state.tickets.values()}
        assert {"A900", "A901", "A902", "A001"} <= set(tickets)
        assert tickets["A900"].offline and tickets["A900"].origin == "disp-1"
        assert tickets["A900"].issued_at < tickets["A902"].issued_at
        d2.sync()  # reporting again changes nothing (idempotent)
        assert len([t for t in svc2.office.state.tickets.values() if t.offline]) == 3
    finally:
        svc2.stop()


def test_appointment_checkin(cfg, controller, node, make, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, press_interval_s=0))
    node("web").request("appointment.book", {"code": "K7P2Q", "service": "pass", "slot": time.time() + 600})
    out = d._checkin("https://warten.example/a/k7p2q")
    assert out.kind == "printed"
    raw = files(folder)[-1].read_bytes()
    assert b"Termin: " in raw and out.number.encode() in raw
    unknown = d._checkin("ZZZZZ")
    assert unknown.kind == "notice" and unknown.reason == "unknown_appointment"
    assert "Buchungscode unbekannt".encode("cp858") in files(folder)[-1].read_bytes()


def test_scanner_reads_key_events(tmp_path):
    codes: list[str] = []
    reader = CodeReader(str(tmp_path / "events"), "de", codes.append)
    keys = [37, 8, 25, 3, 16, 28, 21, 2, 4, 96]  # K 7 P 2 Q Enter, Z(de) 1 3 Enter(keypad)
    raw = b"".join(EVENT.pack(0, 0, 1, k, 1) + EVENT.pack(0, 0, 1, k, 0) for k in keys)
    raw += EVENT.pack(0, 0, 0, 0, 0)  # a SYN event is ignored
    path = tmp_path / "events"
    path.write_bytes(raw)
    with open(path, "rb") as f:
        reader.read_events(f)
    assert codes == ["K7P2Q", "Z13"]
    assert parse_code("https://x/a/k7p2q/") == "K7P2Q" and parse_code("ab") is None
    assert struct.calcsize("llHHi") == EVENT.size


# Key codes (Linux input) of what a scanner types for the booking confirmation's QR code, as a German (QWERTZ)
# or a US keyboard: the same characters need other keys and the shift key ("/" is Shift+7 on a German one).
SHIFT = 42
_LETTERS = (35, 20, 25, 31, 17, 30, 19, 18, 49, 45, 50, 38)
_DE = {c: (k, False) for c, k in zip("htpswarenxml", _LETTERS, strict=True)}
_DE |= {c.upper(): (k, True) for c, (k, _) in _DE.items()} | {"K": (37, True), "Q": (16, True)}
_DE |= {"7": (8, False), "2": (3, False), ".": (52, False), ":": (52, True), "/": (8, True)}
_US = {**_DE, "y": (21, False), "z": (44, False), ":": (39, True), "/": (53, False)}


def typed(text: str, keys: dict[str, tuple[int, bool]]) -> bytes:
    """The key events of ``text`` followed by Enter: key down and up, with Shift held around shifted keys."""
    raw = b""
    for ch in text:
        code, shifted = keys[ch]
        raw += EVENT.pack(0, 0, 1, SHIFT, 1) if shifted else b""
        raw += EVENT.pack(0, 0, 1, code, 1) + EVENT.pack(0, 0, 0, 0, 0) + EVENT.pack(0, 0, 1, code, 0)
        raw += EVENT.pack(0, 0, 1, SHIFT, 0) if shifted else b""
    return raw + EVENT.pack(0, 0, 1, 28, 1) + EVENT.pack(0, 0, 1, 28, 0)


@pytest.mark.parametrize("layout", ["de", "us"])
def test_the_booking_qr_code_scanned_as_a_german_or_us_keyboard_checks_in(layout, tmp_path):
    """The booking confirmation's QR code holds the check-in URL (https://.../a/K7P2Q). A scanner set to a
    German keyboard types "/" as Shift+7 and ":" as Shift+.: read without the shift key, the URL became
    "HTTPS..77WARTEN.EXAMPLE7A7K7P2Q", no code, and every citizen with a booking got "Buchungscode
    unbekannt"."""
    url = "https://warten.example/a/K7P2Q"
    codes: list[str] = []
    path = tmp_path / "events"
    path.write_bytes(typed(url, _DE if layout == "de" else _US))
    with open(path, "rb") as f:
        CodeReader(str(path), layout, codes.append).read_events(f)
    assert codes == [url.upper()] and parse_code(codes[0]) == "K7P2Q"


def test_a_scanner_unplugged_and_plugged_in_again_reads_codes_again(tmp_path, monkeypatch):
    """A USB scanner not there at boot, and unplugged (a bumped cable) once it worked: the reader looks for it
    again, so check-in works when it is back; it used to end at the first error until the dispenser
    restarted."""
    monkeypatch.setattr(CodeReader, "RETRY_S", 0.05, raising=False)
    path = tmp_path / "scanner"  # not there yet
    codes: list[str] = []
    reader = CodeReader(str(path), "de", codes.append)
    reader.start()
    fds: list[int] = []

    def opened() -> bool:  # once the reader has the device open (no reader yet: ENXIO)
        try:
            fds.append(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    try:
        for code, keys in (("K7P2Q", [37, 8, 25, 3, 16]), ("Z13", [21, 2, 4])):
            os.mkfifo(path)  # plugged in
            wait_until(opened)
            os.write(fds[-1], b"".join(EVENT.pack(0, 0, 1, k, 1) for k in [*keys, 28]))
            wait_until(lambda code=code: code in codes)
            path.unlink()  # unplugged: the reader sees the device go
            os.close(fds.pop())
        assert codes == ["K7P2Q", "Z13"]
    finally:
        reader.stop()


def test_pin_map_and_options(cfg):
    from firmware_config.pins import load_file

    pinmap = load_file(Path(__file__).parent.parent / "firmware_config/pinmaps/dispenser.yaml")
    assert pinmap.revision("v1").all_pins() == DEFAULT_PINS
    node = cfg.node("disp-1")
    assert resolve_pins(cfg, node)["button1"] == 5
    bad = cfg.model_copy(update={"nodes": [node.model_copy(update={"pins": {"buton1": 7}})]})
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.pins\.buton1: unknown pin name"):
        resolve_pins(bad, bad.nodes[0])
    opt = node.model_copy(update={"options": {"lease_sise": 3}})
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.options\.lease_sise: unknown option"):
        load_options(cfg.model_copy(update={"nodes": [opt]}), opt)


@pytest.mark.slow
def test_offline_tickets_survive_a_controller_that_says_retry_later(cfg, make, tmp_path):
    """A controller back with its clock behind its log (a Pi before its time sync) answers clock_behind: the
    offline tickets stay unreported and are reported once it is in step, not dropped as rejected."""
    from waitroom.service import ControllerService

    db = str(tmp_path / "events.db")
    svc = ControllerService(cfg, db)
    assert svc.start(wait=10)
    folder = tmp_path / "raw"
    folder.mkdir()
    dcfg = with_dispenser(
        cfg, {"backend": "file", "file": {"path": str(folder)}}, request_timeout_s=0.5, request_retries=0
    )
    d = make(dcfg)
    assert d.issue("pass").number == "A001"
    svc.stop()
    wait_until(lambda: not d.controller_reachable)
    assert [d.issue("pass").number, d.issue("melde").number] == ["A900", "B900"]
    skew = [-3600.0]
    behind = ControllerService(cfg, db, clock=lambda: time.time() + skew[0])
    assert behind.start(wait=10)
    try:
        wait_until(lambda: d.controller_reachable)
        time.sleep(1.0)
        d.sync()  # answered clock_behind: nothing decided, so nothing may be dropped
        assert d.health()["offline_unreported"] == 2
        assert {t.state for t in d.store.tickets()} == {"printed"}
        skew[0] = 0.0  # the time sync

        # The node syncs again and again (as its loop does): a late "clock_behind" answer to an earlier try
        # of the same request id (a busy machine) only delays the report to the next sync, it drops nothing.
        def reported() -> bool:
            d.sync()
            return d.health()["offline_unreported"] == 0

        wait_until(reported, timeout=30)
        numbers = {t.number for t in behind.office.state.tickets.values()}
        assert {"A001", "A900", "B900"} <= numbers
    finally:
        behind.stop()


@pytest.mark.slow
def test_a_press_while_the_controller_says_retry_later_prints_an_offline_ticket(cfg, make, tmp_path):
    """clock_behind decides nothing: the citizen gets a ticket from the leased numbers, not three beeps."""
    from waitroom.service import ControllerService

    db = str(tmp_path / "events.db")
    svc = ControllerService(cfg, db)
    assert svc.start(wait=10)
    folder = tmp_path / "raw"
    folder.mkdir()
    dcfg = with_dispenser(
        cfg, {"backend": "file", "file": {"path": str(folder)}}, request_timeout_s=0.5, request_retries=0
    )
    d = make(dcfg)
    assert d.issue("pass").number == "A001"
    svc.stop()
    behind = ControllerService(cfg, db, clock=lambda: time.time() - 3600)
    assert behind.start(wait=10)
    try:
        wait_until(lambda: d.controller_reachable)
        out = d.issue("pass")
        assert (out.kind, out.number) == ("offline", "A900")
        assert b"A900" in files(folder)[-1].read_bytes()
        assert d.store.deferred() == []  # nothing was decided there: no orphan to cancel
    finally:
        behind.stop()


def test_a_printer_back_after_a_failure_prints_again_without_status_queries(cfg, controller, make):
    """With ``status_query: false`` nothing but a print can tell that the printer is back: a failed ticket
    must not leave the dispenser refusing every press until it is restarted."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # nothing listens there now
    printer = {
        "backend": "network",
        "network": {"host": "127.0.0.1", "port": port, "timeout_s": 0.5},
        "status_query": False,
    }
    printer["status_interval_s"] = 1
    d = make(with_dispenser(cfg, printer, print_retries=0))
    assert d.issue("pass").reason == "print_failed"
    assert d.health()["printer"] == "offline"
    assert d.issue("pass").reason == "printer"  # at once: refused before a number is taken
    sink = PrinterServer(port=port)  # the printer is switched on again (it answers no status query)
    time.sleep(1.1)
    try:
        out = d.issue("pass")
        assert (out.kind, out.number) == ("printed", "A002")
        wait_until(lambda: sink.jobs)
        assert b"A002" in sink.jobs[0]
        assert d.health()["printer"] == "unknown"  # as before the failure: nothing asks it
        wait_until(lambda: d.status_led.pattern == "off")
    finally:
        sink.close()


def test_an_unusable_data_directory_still_gives_online_tickets(cfg, controller, make, tmp_path, monkeypatch):
    """A data directory that cannot be written (read-only or worn-out SD card, a file in its place): the
    dispenser starts, prints online tickets and says why in one log line and its health; without the
    controller a press beeps (no offline number: it could not be kept on disk before printing)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("WAITROOM_DATA_DIR", str(blocker / "var"))
    folder = tmp_path / "tickets"
    d = make(with_dispenser(cfg, {"preview": {"folder": str(folder), "keep": 5}}), wait_leases=False)
    out = d.issue("pass")
    assert (out.kind, out.number) == ("printed", "A001")
    h = d.health()
    assert h["status"] == "degraded" and "not-a-folder" in h["offline_store"]
    assert h["offline_store_fault"] == "store_unusable"
    controller.stop()
    wait_until(lambda: not d.controller_reachable)
    out = d.issue("pass")
    assert (out.kind, out.reason) == ("refused", "store")
    assert d.last_refusal["text"]["de"].startswith("Keine Verbindung")
    assert len(latest(folder, 10)) == 1


def test_a_full_disk_at_an_offline_press_is_one_log_line_and_a_beep(cfg, controller, make, tmp_path, caplog):
    """The offline number cannot be written (disk full): no ticket, a beep, one log line without a traceback
    and the health says it; once there is space again the next press prints an offline ticket."""
    import logging
    import sqlite3

    folder = tmp_path / "tickets"
    d = make(with_dispenser(cfg, {"preview": {"folder": str(folder), "keep": 5}}))
    controller.stop()
    wait_until(lambda: not d.controller_reachable)
    with d.store.lock:  # fill the database to a page limit: SQLite's "database or disk is full"
        db = d.store.db
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(sqlite3.OperationalError, match="full"):  # void tickets of another day
            for n in range(10000):
                db.execute("INSERT INTO offline_ticket VALUES ('2000-01-01','x','X',?,0,0,'void')", (n,))
    caplog.set_level(logging.INFO, logger="edge.dispenser")
    outs = [d.issue("pass"), d.issue("melde"), d.issue("pass")]
    assert [(o.kind, o.reason) for o in outs] == [("refused", "store")] * 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "full" in errors[0].getMessage() and errors[0].exc_info is None
    assert d.health()["status"] == "degraded" and "full" in d.health()["offline_store"]
    assert d.health()["offline_store_fault"] == "store_full"
    with d.store.lock:
        d.store.db.execute("PRAGMA max_page_count=1000000")
    out = d.issue("pass")
    assert (out.kind, out.number) == ("offline", "A900")
    assert d.health()["offline_store"] == "ok" and d.health()["offline_store_fault"] is None


def test_a_contact_shorter_than_the_debounce_does_not_leave_the_button_held(cfg, controller, make, tmp_path):
    """A 5 ms contact (a glitch, a graze) is no press; the button must not stay "held": that made the stuck
    alarm go off and swallowed the next real press (its release counted as the end of the long one)."""
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, stuck_s=1))
    press(d, "pass", hold=0)  # released at once: a 5 ms sleep took over 30 ms on a loaded machine (a press)
    time.sleep(1.3)
    assert d.health()["buttons_stuck"] == [] and not d.buttons["pass"].is_pressed
    assert files(folder) == []
    press(d, "pass", hold=0.1)
    wait_until(lambda: files(folder))
    assert b"A001" in files(folder)[0].read_bytes()


def test_all_buttons_at_once_a_press_beyond_the_queue_is_told_to_wait(cfg, controller, make, tmp_path):
    """Every service button pressed at the same moment: the tickets the queue holds are printed once each;
    a press beyond it is refused as 'busy' with "please wait, then press again" (its record said "printer
    fault", which sent staff to a printer that was fine)."""
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, burst=10))
    printing, started = threading.Event(), threading.Event()
    slow = d.printer.print_ticket

    def print_slowly(data):  # a printer that takes its time: the presses arrive while it prints
        started.set()
        printing.wait(5)
        return slow(data)

    d.printer.print_ticket = print_slowly
    d.checkin("not a booking code")  # the printer is busy with the notice for it
    assert started.wait(5)
    pins = [d.buttons[s].pin for s in d.services]
    for pin in pins:
        pin.drive_low()
    time.sleep(0.08)
    for pin in pins:
        pin.drive_high()
    assert d.health()["refused"] == {"unknown_appointment": 1, "busy": 1}  # the queue holds three
    assert d.last_refusal["reason"] == "busy" and d.last_refusal["service"] == d.services[-1]
    assert d.last_refusal["text"]["de"] == "Bitte einen Moment warten, dann erneut drücken."
    printing.set()
    wait_until(lambda: len(files(folder)) == len(d.services))
    time.sleep(0.3)
    printed = [f.name.rsplit("-", 1)[1] for f in files(folder) if "NOTICE" not in f.name]
    assert sorted(printed) == ["A001.bin", "B001.bin", "C001.bin"]
    assert sum(len(controller.office.state.waiting(s)) for s in d.services) == len(printed)


class BreakingPrinter:
    """A printer on a device file (a FIFO here, as /dev/usb/lp0): it takes the start of the first ticket (with
    its number) and then stops taking anything (paper out mid-ticket, cable pulled: the write breaks off);
    everything sent to it later is kept in ``later``."""

    def __init__(self, path: Path, first: int = 1500):
        os.mkfifo(path)
        self.path, self.first = path, first
        self.got, self.later = b"", b""
        self.stop = threading.Event()
        self.broke: Callable[[], object] = lambda: True  # the sender has seen the break (before a reopen)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)  # the printer's small buffer, before a byte comes
        while len(self.got) < self.first:
            try:
                chunk = os.read(fd, self.first - len(self.got))
            except BlockingIOError:
                chunk = b""
            self.got += chunk
            if not chunk:  # nobody writes yet
                time.sleep(0.01)
        os.close(fd)  # the writer's next bytes find nobody: EPIPE, the ticket broke off
        while not self.broke():
            time.sleep(0.01)
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)  # anything sent again
        while not self.stop.wait(0.02):
            with contextlib.suppress(BlockingIOError):
                self.later += os.read(fd, 65536)
        os.close(fd)


@pytest.mark.parametrize("print_retries", [0, 1])
def test_a_ticket_that_broke_off_while_printing_is_kept_and_not_printed_again(
    print_retries, cfg, controller, make, tmp_path
):
    """The printer takes the start of the ticket, number included, and then stops (paper out mid-ticket): the
    citizen may hold that number. It used to be printed a second time (print_retries: a second copy of the
    same number) or, when that failed too, cancelled at the controller: a citizen with a number that is
    never called. Now a ticket that broke off is not sent again and stays in the queue; the press beeps."""
    printer = BreakingPrinter(tmp_path / "lp0")
    settings = {"backend": "file", "profile": "POS-5890", "file": {"path": str(printer.path)}}
    d = make(with_dispenser(cfg, settings, print_retries=print_retries))
    printer.broke = lambda: d.printer.last_fault
    try:
        out = d.issue("pass")
        time.sleep(0.3)  # anything sent again would have reached the printer
    finally:
        printer.stop.set()
    assert b"A001" in printer.got  # the number is on the paper in the citizen's hand
    assert printer.later == b""  # not printed a second time
    assert (out.kind, out.reason, out.number) == ("refused", "print_failed", "A001")
    time.sleep(0.3)  # a cancel would have reached the controller
    assert [t.number for t in controller.office.state.waiting("pass")] == ["A001"]
    h = d.health()
    assert h["printer_fault"] == "printer_send_failed" and h["last_refusal"]["number"] == "A001"


def test_an_offline_ticket_that_broke_off_while_printing_is_reported(cfg, controller, make, tmp_path):
    """The same with the controller unreachable: the offline number whose start is on paper is reported when
    the controller is back (it used to be void: a citizen holding a number the controller never heard of)."""
    printer = BreakingPrinter(tmp_path / "lp0")
    settings = {"backend": "file", "profile": "POS-5890", "file": {"path": str(printer.path)}}
    d = make(with_dispenser(cfg, settings, print_retries=1))
    printer.broke = lambda: d.printer.last_fault
    controller.stop()
    wait_until(lambda: not d.controller_reachable)
    try:
        out = d.issue(
            "pass", lang="ar"
        )  # an offline ticket without its QR code: the Arabic one is long enough
    finally:
        printer.stop.set()
    assert (out.kind, out.reason, out.number) == ("refused", "print_failed", "A900")
    assert b"A900" in printer.got and printer.later == b""
    assert d.health()["offline_unreported"] == 1  # reported once the controller answers again


def test_a_booking_code_whose_ticket_is_done_prints_no_ticket_of_that_number(
    cfg, controller, node, make, tmp_path
):
    """A citizen called and marked as not appeared (or served) scans the booking code again: the controller
    answers with that ticket, and the dispenser printed it again -- a ticket for a number that is never called
    again, and a citizen who waits for it. Now a slip says the number is no longer in the queue and sends the
    citizen to the reception; a ticket still waiting is printed again (a lost ticket), as before."""
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, press_interval_s=0))
    web = node("web")
    web.request("appointment.book", {"code": "K7P2Q", "service": "pass", "slot": time.time() + 600})
    first = d._checkin("K7P2Q")
    again = d._checkin("K7P2Q")  # the ticket lost: printed again with the same number
    assert (first.kind, again.kind, again.number) == ("printed", "printed", first.number)
    web.request("counter.call_ticket", {"counter": "c1", "ticket": first.number})
    web.request("counter.no_show", {"counter": "c1"})
    late = d._checkin("K7P2Q")
    assert (late.kind, late.reason) == ("notice", "ticket_done")
    slip = files(folder)[-1].read_bytes()
    assert (
        f"Ihre Nummer {first.number} für diesen Termin".encode("cp858") in slip
    )  # (the slip wraps after it)
    assert d.last_refusal["text"]["de"] == (
        f"Ihre Nummer {first.number} für diesen Termin ist nicht mehr in der Warteschlange. Bitte wenden Sie "
        "sich an den Empfang."
    )
    assert len(files(folder)) == 3


@pytest.mark.slow
def test_a_check_in_while_the_controller_says_retry_later_is_not_called_an_unknown_code(
    cfg, controller, node, make, tmp_path
):
    """A controller back with its clock behind its log answers clock_behind (nothing decided): the citizen's
    valid booking code was answered with "Buchungscode unbekannt"; now "Check-in gerade nicht möglich"."""
    from waitroom.service import ControllerService

    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, request_timeout_s=0.5))
    node("web").request("appointment.book", {"code": "K7P2Q", "service": "pass", "slot": time.time() + 600})
    controller.stop()
    behind = ControllerService(cfg, str(tmp_path / "events.db"), clock=lambda: time.time() - 3600)
    assert behind.start(wait=10)
    try:
        wait_until(lambda: d.controller_reachable)
        out = d._checkin("K7P2Q")
        assert (out.kind, out.reason) == ("notice", "clock_behind")
        assert "Check-in gerade nicht möglich".encode("cp858") in files(folder)[-1].read_bytes()
    finally:
        behind.stop()


def test_two_booking_codes_scanned_one_after_the_other_both_check_in(cfg, controller, node, make, tmp_path):
    """A couple with two appointments scans both codes within a few seconds: the second was refused as a
    button hammered (press_interval_s applied to every check-in alike), with three beeps and no slip. Now the
    interval holds per code: the same code read twice at once (a scanner's double read) prints one ticket."""
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}))  # press_interval_s 3
    web = node("web")
    for code in ("K7P2Q", "M4X8R"):
        web.request("appointment.book", {"code": code, "service": "pass", "slot": time.time() + 600})
    outs = [d._checkin("K7P2Q"), d._checkin("M4X8R"), d._checkin("M4X8R")]
    assert [(o.kind, o.reason) for o in outs] == [
        ("printed", ""),
        ("printed", ""),
        ("refused", "rate_limited"),
    ]
    assert len(files(folder)) == 2 and outs[0].number != outs[1].number


def test_a_check_in_while_the_printer_is_known_broken_does_not_queue_a_number_nobody_holds(
    cfg, controller, node, make
):
    """A walk-in press with the printer known to be broken is refused before a number is taken; a scanned
    booking code was checked in all the same: its ticket waited in the queue, called on the display while
    the citizen, with nothing printed, did not know the number. Now the check-in waits for a printer too."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # nothing listens there any more
    printer = {
        "backend": "network",
        "network": {"host": "127.0.0.1", "port": port, "timeout_s": 0.5},
        "status_query": False,
    }
    d = make(with_dispenser(cfg, printer, print_retries=0))
    node("web").request("appointment.book", {"code": "K7P2Q", "service": "pass", "slot": time.time() + 600})
    assert d.issue("pass").reason == "print_failed"  # the printer is known to be broken from now on
    out = d._checkin("K7P2Q")
    assert (out.kind, out.reason) == ("refused", "printer")
    assert (
        controller.office.state.appointments["K7P2Q"].ticket is None
    )  # not checked in: the code works later
    assert controller.office.state.waiting("pass") == []


def test_a_stuck_button_released_is_no_longer_reported_stuck(cfg, controller, node, make, tmp_path):
    """A button held down (a bag leaning on it) is reported stuck in the health record, which the admin page
    shows as an error. Once it was released, the record said "stuck" until something else changed it: with
    the controller unreachable (nothing syncs), for good. Now the release is published at once."""
    health: list[dict] = []
    web = node("web")
    web.subscribe(Topics(cfg.office.id).health("disp-1"), lambda t, p: health.append(decode(p)))
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, stuck_s=1))
    controller.stop()
    wait_until(lambda: not d.controller_reachable)
    pin = d.buttons["pass"].pin
    pin.drive_low()
    wait_until(lambda: health and health[-1]["buttons_stuck"] == ["pass"])
    assert health[-1]["status"] == "error"
    pin.drive_high()
    wait_until(lambda: health[-1]["buttons_stuck"] == [])
    assert health[-1]["status"] != "error" and files(folder) == []  # and no ticket for the long press


# ----------------------------------------------------------------------------- a ticket request without reply
def stopped(pid: int) -> bool:
    """Every thread of the process is stopped (SIGSTOP is delivered asynchronously)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return all(Path(t, "stat").read_text().rsplit(")", 1)[1].split()[0] == "T" for t in tasks)


def settled(d: Dispenser) -> bool:
    return d.store.deferred() == [] and d.health()["offline_unreported"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("reached", [False, True], ids=["never-reached", "reply-lost"])
def test_a_ticket_request_without_reply_is_settled_with_the_controller(cfg, broker, make, tmp_path, reached):
    """The controller hangs while a citizen presses: the dispenser prints an offline number and keeps the
    request as an orphan. If the controller never read it (killed by the watchdog), the orphan is voided:
    nothing issued, nothing cancelled, the numbers go on without a gap (it was repeated as ticket.issue and
    cancelled: a cancelled ticket per outage in the statistics and a number missing on the displays). If the
    controller was only slow and issued it (its reply came too late), that ticket is withdrawn, as before."""
    from tests.test_crash_recovery import start_controller, write_config
    from waitroom import config
    from waitroom.web.stats import compute

    cfg_path = write_config(tmp_path, broker.port, office=cfg.office.id)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    proc = start_controller(cfg_path, data_dir)
    folder = tmp_path / "raw"
    folder.mkdir()
    dcfg = with_dispenser(
        config.load(cfg_path),
        {"backend": "file", "file": {"path": str(folder)}},
        request_timeout_s=0.5,
        request_retries=0,
    )
    try:
        d = make(dcfg, wait_leases=False)
        wait_until(lambda: all(d.store.remaining(d.today(), s) > 0 for s in d.services), 30)
        assert d.issue("pass").number == "A001"
        os.kill(proc.pid, signal.SIGSTOP)  # hangs: the broker still has it connected and sends it the press
        wait_until(lambda: stopped(proc.pid))
        out = d.issue("pass")
        assert (out.kind, out.number) == ("offline", "A900")
        assert [kind for _, kind, _ in d.store.deferred()] == ["orphan"]
        if reached:
            os.kill(proc.pid, signal.SIGCONT)  # only slow: it reads the press now and issues A002
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the watchdog: what it had not read is gone
            proc.wait()
            proc = start_controller(cfg_path, data_dir)
        wait_until(lambda: settled(d), 30)
        assert d.issue("pass").number == ("A003" if reached else "A002")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    db = data_dir / "mitte.db"
    with contextlib.closing(sqlite3.connect(db)) as log:
        rows = log.execute(
            "SELECT type, json_extract(data, '$.number'), json_extract(data, '$.reason') FROM events "
            "WHERE type IN ('ticket_issued', 'ticket_cancelled') ORDER BY seq"
        ).fetchall()
    issued = [n for kind, n, _ in rows if kind == "ticket_issued"]
    cancelled = [why for kind, _, why in rows if kind == "ticket_cancelled"]
    day = compute(db, dcfg, d.today())
    if reached:
        assert issued == ["A001", "A002", "A900", "A003"]  # the press first, then the report of A900
        assert cancelled == ["offline_fallback"] and day.services["pass"].cancelled == 1
    else:
        assert issued == ["A001", "A900", "A002"] and cancelled == []
        assert day.services["pass"].cancelled == 0 and day.services["pass"].issued == 3


def test_against_a_controller_without_request_void_a_late_ticket_is_still_withdrawn(
    cfg, controller, make, tmp_path, monkeypatch
):
    """A dispenser updated before its controller (one playbook run updates all hosts at once) is answered
    unknown_op to request.void: it repeats the request, as before the void, and withdraws the ticket, so
    none waits that nobody holds."""
    from waitroom import contract
    from waitroom.contract import ContractError, ErrorCode

    parse = contract.parse_command

    def older(data: dict, role: object) -> object:  # the controller of the last release
        if data.get("op") == "request.void":
            raise ContractError(ErrorCode.UNKNOWN_OP, "unknown operation 'request.void'")
        return parse(data, role)

    monkeypatch.setattr(contract, "parse_command", older)
    folder = tmp_path / "raw"
    folder.mkdir()
    dcfg = with_dispenser(
        cfg, {"backend": "file", "file": {"path": str(folder)}}, request_timeout_s=0.5, request_retries=0
    )
    d = make(dcfg)
    assert d.issue("pass").number == "A001"
    with controller.lock:  # the controller stalls: the press waits in its inbox, the dispenser gives up
        out = d.issue("pass")
    assert (out.kind, out.number) == ("offline", "A900")
    wait_until(lambda: settled(d), 30)
    tickets = {t.number: t for t in controller.office.state.tickets.values()}
    assert tickets["A002"].state == "cancelled" and tickets["A900"].state == "waiting"


def test_a_closed_office_is_no_printer_fault_and_its_refused_leases_are_not_asked_every_5_s(
    cfg, make, tmp_path, caplog, monkeypatch
):
    """Out of opening hours the controller refuses tickets and leases with office_closed. A press was told as
    "Drucker gestört" (reason "error") on the admin page, and the dispenser asked for a lease for every
    service every 5 s all night, each refusal a WARNING here and a line in the controller's log (about 3,000
    lines an hour each). Now the refusal is named office_closed ("Geschlossen"), and a refused lease is asked
    again after LEASE_RETRY_S, logged once per new reason."""
    import logging

    from edge.dispenser import node as dispenser_node
    from waitroom.service import ControllerService

    closed = cfg.model_copy(update={"office": cfg.office.model_copy(update={"hours": {}})})
    svc = ControllerService(closed, str(tmp_path / "events.db"))
    assert svc.start(wait=10)
    caplog.set_level(logging.DEBUG, logger="edge.dispenser.node")
    caplog.set_level(logging.INFO, logger="waitroom.controller")

    def asked() -> int:
        return sum(
            "ticket.lease" in r.getMessage() for r in caplog.records if r.name == "waitroom.controller"
        )

    def warned() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.name == "edge.dispenser.node"
            and r.levelno == logging.WARNING
            and "lease for" in r.getMessage()
        ]

    try:
        folder = tmp_path / "raw"
        folder.mkdir()
        d = make(
            with_dispenser(closed, {"backend": "file", "file": {"path": str(folder)}}), wait_leases=False
        )
        wait_until(lambda: len(warned()) == len(d.services), 10)
        for _ in range(3):
            d.sync()
        time.sleep(0.3)
        assert asked() == len(d.services)  # not again within LEASE_RETRY_S
        assert len(warned()) == len(d.services) and "office_closed" in warned()[0]
        monkeypatch.setattr(dispenser_node, "LEASE_RETRY_S", 0.2)
        time.sleep(0.3)
        d.sync()
        assert asked() >= 2 * len(d.services)  # asked again later ...
        assert len(warned()) == len(d.services)  # ... and the same refusal is not logged again

        out = d.issue("pass")
        assert (out.kind, out.reason) == ("refused", "office_closed")
        refusal = d.health()["last_refusal"]
        assert refusal["reason"] == "office_closed" and refusal["text"]["de"] == "Geschlossen"
        assert d.health()["refused"] == {"office_closed": 1}
        assert files(folder) == []
    finally:
        svc.stop()
