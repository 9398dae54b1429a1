"""Ticket printing: ESC/POS bytes, code page, PNG preview, serial (pty) and network (socket) backends."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest

from ticket_printer import TicketData, TicketPrinter, load_settings
from ticket_printer.backends import FileBackend, NetworkBackend, SerialBackend, decode_status
from ticket_printer.preview import latest
from ticket_printer.settings import FileSettings, NetworkSettings, SerialSettings
from waitroom.errors import ConfigError, PrinterError

ESC, GS = b"\x1b", b"\x1d"


def ticket(**kw: object) -> TicketData:
    base = dict(
        office_name="Bürgerbüro Mitte",
        number="A012",
        service={"de": "Führerschein-Gebühr 5 €", "en": "Driving licence"},
        issued_at=1764000000.0,
        ahead=3,
        eta_min=14,
        url="http://127.0.0.1:8080/t/7f3a9c2e1b",
    )
    base.update(kw)
    return TicketData(**base)  # type: ignore[arg-type]


def test_escpos_bytes_80mm(tmp_path):
    printer = TicketPrinter(load_settings({"backend": "file", "file": {"path": str(tmp_path / "out.bin")}}))
    printer.print_ticket(ticket())
    data = (tmp_path / "out.bin").read_bytes()
    # ESC @, then the code page CP858 (table 19 on the TM-T20II) chosen once for the whole ticket.
    assert data.startswith(ESC + b"@" + ESC + b"t\x13")
    assert data.count(ESC + b"t") == 1
    # Umlauts, ß and € in CP858: ü = 0x81, € = 0xD5.
    assert "Bürgerbüro".encode("cp858") in data and "Führerschein-Gebühr 5 €".encode("cp858") in data
    # The number at 6x6 (GS ! 0x55), right before it.
    assert GS + b"!\x55" + ESC + b"E\x01" in data[: data.index(b"A012")]
    size_byte = data[data.rindex(GS + b"!", 0, data.index(b"A012")) + 2]
    assert size_byte >> 4 >= 1 and size_byte & 0x0F >= 1  # at least double width and height
    # Native QR (GS ( k ... store data, print) with the status URL, then a partial cut at the end.
    url = b"http://127.0.0.1:8080/t/7f3a9c2e1b"
    assert GS + b"(k" + (len(url) + 3).to_bytes(2, "little") + b"1P0" + url in data
    assert GS + b"(k\x03\x001Q0" in data
    assert data.endswith(GS + b"V\x01")
    assert "Wartezeit: ca. 14 Min.".encode("cp858") in data and b"Vor Ihnen: 3" in data
    assert "Bitte achten Sie auf die Anzeige".encode("cp858") in data


def test_58mm_profile_wraps_and_rasterises_qr(tmp_path):
    s = load_settings({"profile": "POS-5890", "backend": "file", "file": {"path": str(tmp_path / "t.bin")}})
    assert s.width_dots == 384
    printer = TicketPrinter(s)
    blocks, data, _ = printer.render(ticket(service={"de": "Personalausweis / Reisepass / Kinderreisepass"}))
    assert b"(k" not in data  # this profile has no native QR: a raster image (GS v 0) instead
    assert GS + b"v0" in data
    assert GS + b"V" not in data  # no cutter on this model
    from ticket_printer.layout import Text

    texts = [b for b in blocks if isinstance(b, Text)]
    assert any(len(b.lines) > 1 for b in texts)  # the long service name wrapped
    for b in texts:
        for line in b.lines:
            assert len(line) * b.width <= 384 // (12 if b.font == "a" else 9)


def test_unprintable_text_is_replaced_visibly(tmp_path, caplog):
    printer = TicketPrinter(load_settings({"backend": "file", "file": {"path": str(tmp_path / "x.bin")}}))
    with caplog.at_level(logging.WARNING, "ticket_printer.layout"):
        _, data, replaced = printer.render(ticket(office_name="Łódź „Amt“ 区"))
    assert b'L\xa2dz "Amt" ?' in data  # ó is in CP858; Ł, ź, „ “ transliterated; 区 visibly '?'
    assert set(replaced) == {"Ł", "ź", "„", "“", "区"}
    assert "replaced 5 character(s)" in caplog.text


def test_offline_and_appointment_texts():
    printer = TicketPrinter(load_settings({}), backend=FileBackend(FileSettings(path=os.devnull)))
    _, offline, _ = printer.render(ticket(offline=True, eta_min=None, ahead=None))
    assert b"Wartezeit wird ermittelt" in offline and b"Min." not in offline
    _, appt, _ = printer.render(ticket(appointment=1764003600.0))
    assert b"Termin: 18:00 Uhr" in appt  # Europe/Berlin


def test_preview_png_and_keep_last(tmp_path):
    s = load_settings({"preview": {"folder": str(tmp_path / "tickets"), "keep": 3}})
    printer = TicketPrinter(s)
    paths = []
    for n in range(5):
        paths.append(printer.print_ticket(ticket(number=f"A{n:03d}")).path)
        time.sleep(0.002)
    newest = latest(tmp_path / "tickets", 10)
    assert newest == list(reversed(paths[-3:]))
    from PIL import Image

    img = Image.open(newest[0])
    assert img.mode == "L" and img.width == 576 + 16 and img.height > 600
    px = img.load()
    dark_rows = [y for y in range(img.height) if sum(px[x, y] < 128 for x in range(img.width)) > 150]
    assert dark_rows, "the big number and the QR code leave wide dark rows"
    assert latest(tmp_path / "missing", 3) == []


def test_settings_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"printer\.profile: unknown printer profile 'TM-T2'"):
        load_settings({"profile": "TM-T2"})
    with pytest.raises(ConfigError, match=r"printer\.network: section required"):
        load_settings({"backend": "network"})
    with pytest.raises(
        ConfigError, match=r"printer\.codepage: 'CP858' is not a code page of profile ZJ-5870"
    ):
        load_settings({"profile": "ZJ-5870"})
    with pytest.raises(ConfigError, match=r"printer\.colour: unknown key"):
        load_settings({"colour": "red"})


def test_usb_without_pyusb_says_what_to_install():
    try:
        import usb.core  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyusb is installed here")
    printer_cfg = {"backend": "usb", "usb": {"vendor_id": "0x04b8", "product_id": "0x0e15"}}
    with pytest.raises(PrinterError, match=r"pip install 'waitroom\[usb\]'"):
        TicketPrinter(load_settings(printer_cfg))


@pytest.mark.parametrize(
    ("answers", "status"),
    [
        ({1: 0x12, 2: 0x12, 4: 0x12}, "ok"),
        ({1: 0x12, 2: 0x12, 4: 0x1E}, "paper_low"),
        ({1: 0x1A, 2: 0x32, 4: 0x72}, "paper_out"),
        ({1: 0x1A, 2: 0x16, 4: 0x12}, "cover_open"),
        ({1: 0x1A, 2: 0x12, 4: 0x12}, "offline"),
        ({1: None}, "unknown"),
        ({1: 0xFF}, "unknown"),
    ],
)
def test_decode_status(answers, status):
    assert decode_status(answers) == status


def test_serial_printer_over_pty():
    master, slave = os.openpty()
    import tty

    tty.setraw(slave)
    backend = SerialBackend(SerialSettings(device=os.ttyname(slave), baudrate=19200))
    printer = TicketPrinter(load_settings({}), backend=backend)
    expected = printer.render(ticket())[1]
    got = bytearray()
    done = threading.Event()

    def drain() -> None:
        while len(got) < len(expected):
            got.extend(os.read(master, 65536))
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    printer.print_ticket(ticket())
    assert done.wait(5) and bytes(got) == expected

    def answer() -> None:  # a printer with the paper near its end
        replies = {1: 0x12, 2: 0x12, 4: 0x1E}
        for _ in range(3):
            q = os.read(master, 3)
            os.write(master, bytes([replies[q[2]]]))

    threading.Thread(target=answer, daemon=True).start()
    assert printer.query_status() == "paper_low"
    assert printer.can_print
    backend.close()
    os.close(master)
    os.close(slave)


class PrinterServer:
    """A local TCP 'printer' on port 0: collects each connection's bytes, answers DLE EOT queries."""

    def __init__(self, replies: dict[int, int]):
        self.replies = replies
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.jobs: list[bytes] = []
        self.received = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf = bytearray()
            with conn:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf.extend(chunk)
                    if buf.startswith(b"\x10\x04") and len(buf) % 3 == 0 and buf[-3:-1] == b"\x10\x04":
                        conn.sendall(bytes([self.replies[buf[-1]]]))
            if not buf.startswith(b"\x10\x04"):
                self.jobs.append(bytes(buf))
                self.received.set()

    def close(self) -> None:
        self.sock.close()


def test_network_printer_against_socket_server():
    server = PrinterServer({1: 0x1A, 2: 0x16, 4: 0x12})  # cover open
    try:
        printer = TicketPrinter(
            load_settings({}), backend=NetworkBackend(NetworkSettings(host="127.0.0.1", port=server.port))
        )
        printer.print_ticket(ticket())
        assert server.received.wait(5)
        assert server.jobs[0] == printer.render(ticket())[1]
        assert printer.query_status() == "cover_open"
        assert not printer.can_print
    finally:
        server.close()


def test_network_printer_unreachable():
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    printer = TicketPrinter(
        load_settings({}), backend=NetworkBackend(NetworkSettings(host="127.0.0.1", port=port, timeout_s=0.5))
    )
    with pytest.raises(PrinterError, match="not reachable"):
        printer.print_ticket(ticket())
    assert printer.status == "offline"
    assert printer.query_status() == "offline"


def test_file_backend_folder(tmp_path):
    printer = TicketPrinter(load_settings({}), backend=FileBackend(FileSettings(path=str(tmp_path))))
    path = printer.print_ticket(ticket()).path
    assert path.parent == tmp_path and path.suffix == ".bin"
    assert path.read_bytes() == printer.render(ticket())[1]
