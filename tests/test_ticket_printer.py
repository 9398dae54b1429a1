"""Ticket printing: ESC/POS bytes, code page, PNG preview, serial (pty) and network (socket) backends."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.printer_server import PrinterServer
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
    # the profile data lists no cutter, but 58 mm models with an auto-cutter need GS V (others ignore it)
    assert data.endswith(ESC + b"d\x06" + GS + b"V\x01")
    assert data.startswith(ESC + b"@" + ESC + b"t\x13")  # CP858 under Epson's number 19, not 53
    from ticket_printer.layout import Text

    texts = [b for b in blocks if isinstance(b, Text)]
    assert any(len(b.lines) > 1 for b in texts)  # the long service name wrapped
    for b in texts:
        for line in b.lines:
            assert len(line) * b.width <= 384 // (12 if b.font == "a" else 9)


def test_58mm_a_long_compound_is_hyphenated_between_syllables_and_arabic_cut_only_to_fit(tmp_path):
    """On 58 mm paper (32 columns) a German compound longer than a line breaks with a hyphen between two
    syllables, not after the 32nd letter; the printed lines give the name again without the hyphen."""
    s = load_settings({"profile": "POS-5890", "backend": "file", "file": {"path": str(tmp_path / "t.bin")}})
    printer = TicketPrinter(s)
    name = "Staatsangehörigkeitsangelegenheiten"
    blocks, data, _ = printer.render(ticket(service={"de": name, "en": "Nationality"}))
    from ticket_printer.layout import Text

    shown = next(b for b in blocks if isinstance(b, Text) and b.lines[0].startswith("Staats"))
    assert shown.lines == ("Staatsangehörigkeitsangelegen-", "heiten"), shown.lines
    assert all(len(line) <= 32 for line in shown.lines)
    assert "Staatsangehörigkeitsangelegen-".encode("cp858") in data
    # shaped right-to-left text (printed as an image) is cut by characters, to stay on the paper
    from ticket_printer import raster

    arabic = "الأحوالالمدنيةوالجوازاتوالإقامةوشؤونالأجانب"
    lines = raster.wrap(arabic, True, 24, 384, rtl=True)
    assert len(lines) > 1 and not any(line.endswith("-") for line in lines)
    assert all(raster.width(line, True, 24, True) <= 384 for line in lines)


@pytest.mark.parametrize("qr_size", [6, 10, 16])
def test_58mm_qr_code_of_a_long_address_fits_the_paper(qr_size, tmp_path):
    """A QR code wider than 58 mm paper (a long ticket address, a large ``qr_size``) is drawn with smaller
    modules, on the paper and in the preview; it used to fail the ticket (ValueError: image 472 dots wide,
    the paper 384), which the dispenser neither printed nor cancelled."""
    import qrcode

    from ticket_printer.layout import Qr
    from ticket_printer.preview import MARGIN, render_png

    s = load_settings({"profile": "POS-5890", "qr_size": qr_size})
    url = "https://termine.buergeramt.example.de/standorte/mitte/wartestand/t/" + "7f3a9c2e1b" * 12
    blocks, raw, _ = TicketPrinter(s).render(ticket(url=url))
    emu = interpret(raw)
    (qr,) = emu["images"]  # type: ignore[misc]
    assert qr.width <= 384
    decoded = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L)
    decoded.add_data(url)
    decoded.make(fit=True)
    assert qr.height >= decoded.modules_count * 2  # every module at least 2 dots: still scannable
    png = render_png([b for b in blocks if isinstance(b, Qr)], s.width_dots)
    px = png.convert("L").load()
    ink = [x for y in range(png.height) for x in range(png.width) if px[x, y] < 128]
    assert ink  # the preview shows it, whole: its quiet zone is white on both sides, nothing cut off
    assert min(ink) > MARGIN and max(ink) < MARGIN + s.width_dots - 1


def test_a_ticket_that_cannot_be_rendered_is_a_printer_error(tmp_path, monkeypatch):
    """A rendering failure is a ticket that did not go out (PrinterError: the dispenser cancels it and beeps),
    not an unexpected exception that left the issued ticket in the queue without a holder."""
    from waitroom.errors import PrinterError

    printer = TicketPrinter(load_settings({"backend": "file", "file": {"path": str(tmp_path / "t.bin")}}))

    def broken(blocks):  # type: ignore[no-untyped-def]
        raise ValueError("image 472 dots wide, the paper 384")

    monkeypatch.setattr(printer.renderer, "render", broken)
    with pytest.raises(PrinterError, match="could not be rendered") as raised:
        printer.print_ticket(ticket())
    assert not (tmp_path / "t.bin").exists()
    assert raised.value.fault == printer.last_fault == "ticket_unrenderable"  # the health says it too
    assert "472 dots wide" in printer.last_error


def test_unprintable_text_is_replaced_visibly(tmp_path, caplog):
    printer = TicketPrinter(load_settings({"backend": "file", "file": {"path": str(tmp_path / "x.bin")}}))
    with caplog.at_level(logging.WARNING, "ticket_printer.layout"):
        _, data, replaced = printer.render(ticket(office_name="Amt „Mitte“ – 区"))
    assert b'Amt "Mitte" - ?' in data  # „ “ – transliterated; 区 (no font here has it) visibly '?'
    assert set(replaced) == {"„", "“", "–", "区"}
    assert "replaced 4 character(s)" in caplog.text


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


def test_an_unwritable_ticket_file_is_its_own_fault(tmp_path):
    """The fault code tells a file that cannot be written from a printer that cannot be reached."""
    printer = TicketPrinter(
        load_settings({"backend": "file", "file": {"path": str(tmp_path / "no" / "t.bin")}})
    )
    with pytest.raises(PrinterError, match="cannot write printer data"):
        printer.print_ticket(ticket())
    assert printer.last_fault == "printer_output_unwritable" and "t.bin" in printer.last_error


def test_file_backend_folder(tmp_path):
    printer = TicketPrinter(load_settings({}), backend=FileBackend(FileSettings(path=str(tmp_path))))
    path = printer.print_ticket(ticket()).path
    assert path.parent == tmp_path and path.suffix == ".bin"
    assert path.read_bytes() == printer.render(ticket())[1]


# ------------------------------------------------------------------------------ languages and scripts
# An ESC/POS interpreter written for these tests (not python-escpos): it walks the byte stream, decodes text
# with the selected Epson code page and turns GS v 0 raster images back into bitmaps.
EPSON_CODEPAGES = {0: "cp437", 2: "cp850", 16: "cp1252", 17: "cp866", 19: "cp858"}
FIXED = {  # command -> number of parameter bytes
    b"\x1b@": 0,
    b"\x1bt": 1,
    b"\x1b!": 1,
    b"\x1bE": 1,
    b"\x1bM": 1,
    b"\x1ba": 1,
    b"\x1b-": 1,
    b"\x1bG": 1,
    b"\x1bd": 1,
    b"\x1b2": 0,
    b"\x1b3": 1,
    b"\x1d!": 1,
    b"\x1dB": 1,
    b"\x1db": 1,
    b"\x1dV": 1,
    b"\x1dL": 2,
    b"\x1d\x7c": 1,
}


def interpret(data: bytes) -> dict[str, object]:
    """Printed lines (text, GS ! size) in order, raster images, code page numbers and cut commands."""
    from PIL import Image

    out: dict[str, object] = {"lines": [], "images": [], "codepages": [], "cuts": 0, "qr": []}
    page, size, buf, i = "cp437", 0, bytearray(), 0

    def flush() -> None:
        out["lines"].append((buf.decode(page), size))  # type: ignore[union-attr]
        buf.clear()

    while i < len(data):
        b = data[i : i + 1]
        if b == b"\n":
            flush()
            i += 1
        elif b in (b"\x1b", b"\x1d"):
            cmd = data[i : i + 2]
            if cmd == b"\x1dv":  # GS v 0 m xL xH yL yH
                assert data[i + 2 : i + 3] == b"0", "raster command"
                xb = int.from_bytes(data[i + 4 : i + 6], "little")
                h = int.from_bytes(data[i + 6 : i + 8], "little")
                bits = data[i + 8 : i + 8 + xb * h]
                img = Image.frombytes("1", (xb * 8, h), bytes(bits)).point(lambda v: 255 - v)
                out["images"].append(img)  # type: ignore[union-attr]
                i += 8 + xb * h
            elif cmd == b"\x1d(":  # GS ( k pL pH ...
                n = int.from_bytes(data[i + 3 : i + 5], "little")
                out["qr"].append(data[i + 5 : i + 5 + n])  # type: ignore[union-attr]
                i += 5 + n
            elif cmd in FIXED:
                params = data[i + 2 : i + 2 + FIXED[cmd]]
                if cmd == b"\x1bt":
                    out["codepages"].append(params[0])  # type: ignore[union-attr]
                    page = EPSON_CODEPAGES[params[0]]
                elif cmd == b"\x1d!":
                    size = params[0]
                elif cmd == b"\x1dV":
                    out["cuts"] += 1  # type: ignore[operator]
                i += 2 + FIXED[cmd]
            else:
                raise AssertionError(f"unknown command {cmd!r} at {i}")
        else:
            buf += b
            i += 1
    return out


def ink_rows(img) -> list[int]:  # type: ignore[no-untyped-def]
    px = img.convert("L").load()
    return [y for y in range(img.height) if any(px[x, y] < 128 for x in range(img.width))]


@pytest.mark.parametrize("profile", ["TM-T20II", "POS-5890"])
@pytest.mark.parametrize("lang", ["de", "en", "tr", "ar", "uk", "ru", "de-LS"])
def test_ticket_in_each_language_bytes_and_preview_agree(profile, lang, tmp_path):
    from ticket_printer import raster
    from ticket_printer.layout import Raster, Text
    from ticket_printer.preview import render_png
    from waitroom import i18n

    s = load_settings({"profile": profile})
    printer = TicketPrinter(s)
    data = ticket(lang=lang, service={"de": "Personalausweis", "en": "ID card", "tr": "Kimlik kartı"})
    blocks, raw, replaced = printer.render(data)
    assert replaced == ()
    emu = interpret(raw)
    assert emu["codepages"] == [19]  # CP858 under Epson's number on both profiles
    assert emu["cuts"] == 1 and raw.rstrip(b"\x00\x01").endswith(b"\x1dV")
    lines = [text for text, _ in emu["lines"]]
    printed = " ".join(lines)
    # the number: printer text, scaled at least 2x2
    sizes = [sz for text, sz in emu["lines"] if text == "A012"]
    assert sizes and sizes[0] >> 4 >= 1 and sizes[0] & 0x0F >= 1
    # German texts as printer text in CP858 (umlauts and € intact)
    assert "Bitte achten Sie auf die Anzeige" in printed
    expected = i18n.t("ticket.note", lang)
    rasters = [b for b in blocks if isinstance(b, Raster)]
    if lang in ("de", "en", "de-LS"):
        assert expected in printed and not any(expected in " ".join(r.lines) for r in rasters)
    else:  # ğ ş ı, Cyrillic, Arabic: a raster image of exactly those words
        hit = [r for r in rasters if " ".join(r.lines) == expected]
        assert hit, (lang, [r.lines for r in rasters])
        assert hit[0].rtl == (lang == "ar")
        assert expected not in printed
        # every raster block reached the printer as the same bitmap
        got = emu["images"]
        want = [r.image() for r in rasters]
        for w in want:
            w_l = w.convert("L")
            assert any(
                g.size[1] == w.size[1] and g.convert("L").crop((0, 0, *w.size)).tobytes() == w_l.tobytes()
                for g in got
            ), lang
    if lang == "tr":
        assert any(" ".join(r.lines) == "Kimlik kartı" and r.px > raster.PX["a"] for r in rasters)  # large
        assert "Personalausweis" in printed  # German below
    # the preview pastes the same bitmaps: its height grows with every raster block
    png = render_png(blocks, s.width_dots)
    assert png.width == s.width_dots + 16
    assert any(isinstance(b, Text) and b.lines == ("A012",) for b in blocks)


def test_arabic_is_shaped_and_right_to_left():
    """Compared with a reference: the contextual forms drawn in visual order without any shaping engine."""
    from PIL import Image, ImageChops, ImageDraw, ImageFont

    from ticket_printer import raster

    word = "رقم"  # reh (does not join left), qaf, meem
    reference = "\ufee2\ufed7\ufead"  # meem final, qaf initial, reh isolated: left to right on paper
    shaped = raster.render_lines((word,), 40, False, "left", 300, True)
    basic = ImageFont.truetype(str(raster.font_path(False)), 40, layout_engine=ImageFont.Layout.BASIC)

    def drawn(text: str) -> Image.Image:
        img = Image.new("L", (300, shaped.height), 255)
        w = basic.getlength(text)
        ImageDraw.Draw(img).text((300 - w, round(40 * 0.95)), text, font=basic, fill=0, anchor="ls")
        return img.point(lambda v: 0 if v < 128 else 255, mode="1")

    def differing(a: Image.Image, b: Image.Image) -> int:
        return ImageChops.logical_xor(a, b).convert("L").tobytes().count(255)

    ink = shaped.convert("L").tobytes().count(0)
    assert ink > 200
    assert differing(shaped, drawn(reference)) <= ink * 0.02  # the same dots as the shaped reference
    assert differing(shaped, drawn(word)) > ink * 0.3  # isolated letters in logical order look different


def test_character_without_any_glyph_is_replaced_visibly(tmp_path, caplog):
    printer = TicketPrinter(load_settings({}))
    with caplog.at_level(logging.WARNING, "ticket_printer.layout"):
        blocks, _, replaced = printer.render(ticket(office_name="Łódź Amt 区"))
    from ticket_printer.layout import Raster

    assert replaced == ("区",)
    assert any(isinstance(b, Raster) and b.lines == ("Łódź Amt ?",) for b in blocks)


def test_artifacts_ticket_previews_in_arabic_and_turkish():
    """Kept under test-artifacts/ for review: the preview PNG and the raw ESC/POS bytes."""
    from pathlib import Path

    from ticket_printer.preview import render_png

    out = Path(__file__).resolve().parents[1] / "test-artifacts"
    out.mkdir(exist_ok=True)
    for lang, service in (
        ("ar", {"de": "Aufenthaltstitel", "ar": "تصريح الإقامة"}),
        ("tr", {"de": "Aufenthaltstitel", "tr": "Oturma izni"}),
    ):
        s = load_settings({})
        blocks, raw, _ = TicketPrinter(s).render(ticket(lang=lang, service=service))
        png = render_png(blocks, s.width_dots)
        png.save(out / f"ticket-{lang}.png")
        (out / f"ticket-{lang}.bin").write_bytes(raw)
        assert len(ink_rows(png)) > 300


PRINT_ONE = """
import os, sys, time
from ticket_printer import TicketData, TicketPrinter, load_settings

printer = TicketPrinter(load_settings({"backend": "file", "file": {"path": sys.argv[1]}}))
printer.print_ticket(TicketData(office_name="Amt", number="A1", service={"de": "P"}, issued_at=time.time()))
print(sorted(m for m in sys.modules if m.startswith("escpos")))
assert "ESCPOS_CAPABILITIES_PICKLE_DIR" not in os.environ  # not handed on to processes started later
"""


def test_escpos_database_is_parsed_once_and_kept_in_the_data_directory(tmp_path):
    """python-escpos parses its capabilities.json on every import and pickles it into a new temporary folder;
    the dispenser points it at <data dir>/cache: the second start reads the pickle, none goes to /tmp, and no
    printer class of escpos.printer (CUPS, USB, serial, ...) is loaded to render a ticket."""
    import subprocess
    import sys

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ESCPOS_CAPABILITIES_PICKLE_DIR"}
    env.update(WAITROOM_DATA_DIR=str(tmp_path / "var"), TMPDIR=str(scratch))

    def run() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", PRINT_ONE, str(tmp_path / "out.bin")],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert (tmp_path / "out.bin").read_bytes().startswith(ESC + b"@")
        return proc.stdout

    modules = run()
    (pickle,) = (tmp_path / "var" / "cache").glob("*.capabilities.pickle")
    written = pickle.stat().st_mtime_ns
    assert run() == modules
    assert pickle.stat().st_mtime_ns == written  # read, not parsed and written again
    assert list(scratch.rglob("*.pickle")) == []  # (python-escpos still makes an empty folder: mkdtemp() is
    # the default argument of its environ.get)
    # python-escpos' printer class is not needed for the bytes (ticket_printer/escpos_out.py)
    assert "'escpos.escpos'" not in modules and "escpos.printer" not in modules


FULL_DISK = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_disk_full_while_the_escpos_database_is_pickled_does_not_break_later_starts(tmp_path):
    """python-escpos writes its pickle while it parses: when the disk fills up meanwhile, the truncated file
    must not be moved into <data dir>/cache, where every later start (a dispenser validating its
    configuration) would read it and fail until someone deletes it; a damaged pickle there is replaced."""
    import subprocess
    import sys

    script = tmp_path / "print_one.py"
    script.write_text(PRINT_ONE)
    env = {k: v for k, v in os.environ.items() if k != "ESCPOS_CAPABILITIES_PICKLE_DIR"}
    env.update(WAITROOM_DATA_DIR=str(tmp_path / "var"), TMPDIR=str(tmp_path))
    out = str(tmp_path / "out.bin")

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )

    full = run("-c", FULL_DISK, str(script), out)
    assert full.returncode != 0  # nothing could be written: this start fails
    cache = tmp_path / "var" / "cache"
    assert [p.stat().st_size for p in cache.glob("*.capabilities.pickle")] == []  # no truncated pickle
    ok = run(str(script), out)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out.bin").read_bytes().startswith(ESC + b"@")
    (pickle,) = cache.glob("*.capabilities.pickle")
    pickle.write_bytes(pickle.read_bytes()[:4096])  # damaged (e.g. by an older version or a crash)
    ok = run(str(script), out)
    assert ok.returncode == 0, ok.stderr
    assert "capabilities cache" in ok.stderr and "failed" in ok.stderr
    assert run(str(script), out).returncode == 0
    assert pickle.stat().st_size > 4096  # written whole again


# ----------------------------------------------------------------- the renderer against python-escpos itself
def escpos_reference(profile: str, codepage: str, width_dots: int, blocks: list) -> bytes:
    """The same blocks through python-escpos' own ``Escpos`` printer class (what escpos_out.py did before it
    wrote the commands itself): the oracle for the renderer's bytes."""
    from escpos.escpos import Escpos

    from ticket_printer.escpos_out import GS_V, INIT, _logo
    from ticket_printer.facts import facts
    from ticket_printer.layout import Cut, Feed, Image, Qr, Raster, Text

    class Sink(Escpos):
        def __init__(self) -> None:
            super().__init__(profile=profile)
            self.chunks: list[bytes] = []

        def _raw(self, msg: bytes) -> None:
            self.chunks.append(msg)

    p = Sink()
    f = facts(profile, codepage)
    p._raw(INIT)
    p.magic.encoder.codepages[codepage.upper()] = f.slot
    p.charcode(codepage.upper())
    for b in blocks:
        if isinstance(b, Text):
            p.set(custom_size=True, width=b.width, height=b.height)
            p.set(align=b.align, bold=b.bold, font=b.font, invert=b.invert)
            for line in b.lines:
                p.textln(line)
            if b.invert:
                p.set(invert=False)
        elif isinstance(b, Raster):
            p.set(custom_size=True, width=1, height=1, align="left", bold=False)
            p.image(b.image(), impl="bitImageRaster", center=False)
        elif isinstance(b, Qr):
            p.set(custom_size=True, width=1, height=1, align="center")
            if p.profile.supports("qrCode"):
                p.qr(b.content, size=b.size, native=True)
                p.ln()
            else:
                p.qr(b.content, size=max(1, b.size // 2) * 2, native=False, center=True)
        elif isinstance(b, Image):
            p.set(align="center")
            p.image(_logo(b.path, width_dots), center=True)
        elif isinstance(b, Feed):
            p.ln(b.lines)
        elif isinstance(b, Cut):
            p.set(custom_size=True, width=1, height=1, align="left", bold=False)
            if b.mode == "none":
                p.ln(4)
            elif p.profile.supports("paperFullCut") or p.profile.supports("paperPartCut"):
                p.cut(mode="PART" if b.mode == "partial" else "FULL")
            else:
                p.print_and_feed(6)
                p._raw(GS_V[b.mode])
    return b"".join(p.chunks)


@pytest.mark.parametrize("profile", ["TM-T20II", "POS-5890", "TM-T88V", "default", "TSP600"])
def test_renderer_bytes_equal_python_escpos(profile, tmp_path):
    """Every kind of block, on profiles with and without native QR codes, cutter and known paper width, in
    every ticket language: the renderer's bytes are python-escpos' bytes."""
    from PIL import Image as PILImage

    from ticket_printer.escpos_out import EscposRenderer
    from ticket_printer.facts import facts
    from ticket_printer.layout import Cut, Feed, Image, Notice, Qr, Text

    logo = tmp_path / "logo.png"
    PILImage.new("L", (900, 120), 0).save(logo)  # wider than any paper: scaled to it
    f = facts(profile, "CP858")
    printer = TicketPrinter(load_settings({"profile": profile, "logo": str(logo)}))
    renderer = EscposRenderer(profile, "CP858", printer.width_dots)
    cases: list[list] = []
    for lang in ("de", "en", "tr", "ar", "uk", "ru", "de-LS"):
        cases.append(printer.render(ticket(lang=lang, priority=True))[0])
    for lang in ("de", "ar"):
        notice = Notice(
            office_name="Bürgeramt", key="dispenser.checkin_unknown", issued_at=1764000000.0, lang=lang
        )
        cases.append(printer.render(notice)[0])
    cases.append(
        [
            Text(
                ("Größe 3x2 ½ ¿ € ß", "zweite Zeile"), width=3, height=2, bold=True, align="right", font="b"
            ),
            Text(("invertiert",), invert=True, align="left"),
            Text(("Zeichen außerhalb: „ł ğ 😀“",)),
            Qr("http://127.0.0.1:8080/t/abc", size=5),
            Qr("", size=4),
            Image(str(logo)),
            Feed(0),
            Feed(3),
            Cut("full"),
            Cut("partial"),
            Cut("none"),
        ]
    )
    for blocks in cases:
        assert renderer.render(blocks) == escpos_reference(profile, "CP858", printer.width_dots, blocks)
    # the facts travel as JSON in a dispenser's validated-config cache and come back equal
    from ticket_printer.facts import PrinterFacts

    assert PrinterFacts.from_dict(json.loads(json.dumps(f.to_dict()))) == f


def test_code_page_in_lower_case_prints_as_in_upper_case():
    """``codepage: cp858`` passes validation; python-escpos looks code pages up by the exact name, so the
    renderer upper-cases it once (before, a lower-case name failed at the first ticket)."""
    data = ticket()
    lower = TicketPrinter(load_settings({"codepage": "cp858"})).render(data)[1]
    upper = TicketPrinter(load_settings({"codepage": "CP858"})).render(data)[1]
    assert lower == upper and "Bürgerbüro".encode("cp858") in lower


COUNTS = (0, 1, 2, 3, 5, 11, 21, 100)
AR_MINUTES = {0: "0 دقيقة", 1: "دقيقة واحدة", 2: "دقيقتين", 3: "3 دقائق", 5: "5 دقائق"}
# people ahead: Arabic 3-10 plural, 11-99 accusative singular, 100 genitive singular; Ukrainian one, few, many
AR_PEOPLE = lambda n: "أشخاص" if 3 <= n % 100 <= 10 else "شخصًا" if n % 100 >= 11 else "شخص"  # noqa: E731
UK_PEOPLE = {1: "людина", 2: "людини", 3: "людини", 5: "людей", 11: "людей", 21: "людина", 100: "людей"}
# every count's lines: (waiting time, people ahead, the city's shorter wait)
TICKET_COUNT_LINES = {
    "ar": lambda n: (
        f"مدة الانتظار: حوالي {AR_MINUTES.get(n, f'{n} دقيقة')}",
        ({1: "قبلك شخص واحد", 2: "قبلك شخصان"}.get(n) or f"قبلك {n} {AR_PEOPLE(n)}")
        if n
        else "دورك هو التالي",
        f"انتظار أقصر: Süd: حوالي {AR_MINUTES.get(n, f'{n} دقيقة')}",
    ),
    "ru": lambda n: (
        f"Время ожидания: ок. {n} мин",
        f"Перед вами {n} {'человека' if n in (2, 3) else 'человек'}" if n else "Перед вами никого нет",
        f"Меньше ждать: Süd: ок. {n} мин",
    ),
    "uk": lambda n: (
        f"Час очікування: бл. {n} хв",
        f"Перед вами {n} {UK_PEOPLE[n]}" if n else "Перед вами нікого немає",
        f"Менше чекати: Süd: бл. {n} хв",
    ),
    "de-LS": lambda n: (
        f"Sie warten ungefähr {n} Minute{'' if n == 1 else 'n'}.",
        ("Vor Ihnen wartet 1 Mensch." if n == 1 else f"Vor Ihnen warten {n} Menschen.")
        if n
        else "Sie sind als Nächstes dran.",
        f"Kürzer warten: Süd. Dort warten Sie ungefähr {n} Minute{'' if n == 1 else 'n'}.",
    ),
    "de": lambda n: (
        f"Wartezeit: ca. {n} Min.",
        f"Vor Ihnen: {n}" if n else "Sie sind als Nächstes dran",
        f"Kürzer warten: Süd: ca. {n} Min.",
    ),
    "en": lambda n: (f"Waiting time: approx. {n} min", f"Ahead of you: {n}" if n else "You are next", None),
    "tr": lambda n: (
        f"Bekleme süresi: yaklaşık {n} dk.",
        f"Önünüzde: {n}" if n else "Sıradaki sizsiniz",
        None,
    ),
}


@pytest.mark.parametrize("lang", ["de", "en", "tr", "ar", "uk", "ru", "de-LS"])
def test_counts_on_the_ticket_agree_with_their_number(lang):
    """The waiting time, the people ahead and the city's shorter wait for n = 0 ... 100, as the ticket's lines
    (printer text or the words of a raster image): every noun in the form its count needs (Arabic: 1 and 2
    by the noun alone, 3-10 plural, 11 and more singular). Printer text is in the ESC/POS bytes as such."""
    from ticket_printer.layout import Raster, Text
    from waitroom import i18n

    printer = TicketPrinter(load_settings({"profile": "TM-T20II"}))
    for n in COUNTS:
        data = ticket(lang=lang, ahead=n, eta_min=n, alternative={"name": "Süd", "eta_min": n})
        blocks, raw, replaced = printer.render(data)
        assert replaced == ()
        texts = [" ".join(b.lines) for b in blocks if isinstance(b, Text | Raster)]
        wait, ahead, shorter = TICKET_COUNT_LINES[lang](n)
        if not n:  # a wait under a minute is said so, not "ca. 0 Min." (here and for the city's advice)
            wait = i18n.t("ticket.wait_short", lang)
            shorter = shorter and i18n.t("city.alternative_short", lang, office="Süd")
            assert not any("0 Min" in x or " 0 " in x for x in texts), texts
        for want in (wait, ahead, shorter):
            if want is not None:
                assert want in texts, (lang, n, want, texts)
        for b in blocks:
            if isinstance(b, Text):
                for line in b.lines:
                    assert line.encode("cp858") in raw, line
        # German below the citizen's language (English below German): the same count, the German form
        german = (f"Wartezeit: ca. {n} Min.", f"Waiting time: approx. {n} min")
        german = german if n else (i18n.t("ticket.wait_short"),)
        assert set(german) & set(texts), (german, texts)


def test_a_logo_that_is_no_image_is_a_config_error_and_one_that_breaks_later_costs_no_ticket(
    tmp_path, caplog
):
    """A logo Pillow cannot read (an SVG, as city logos often are) passed the start, and then every ticket
    failed to render: each was cancelled at the controller and the citizen got a beep. Now the start says so,
    naming the key; a logo replaced by something unreadable after the start is left off the tickets (one
    error line), which still print, on paper and in the preview."""
    from PIL import Image as PILImage

    svg = tmp_path / "wappen.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"printer\.logo: .*wappen\.svg is no image Pillow can read"):
        load_settings({"logo": str(svg)})

    logo = tmp_path / "logo.png"
    PILImage.new("L", (200, 60), 0).save(logo)
    out = tmp_path / "out.bin"
    printer = TicketPrinter(load_settings({"backend": "file", "file": {"path": str(out)}, "logo": str(logo)}))
    preview = TicketPrinter(load_settings({"logo": str(logo)}), preview_folder=tmp_path / "png")
    logo.write_bytes(svg.read_bytes())  # replaced after the start
    with caplog.at_level(logging.ERROR, logger="ticket_printer.escpos_out"):
        printer.print_ticket(ticket(number="A001"))
        printer.print_ticket(ticket(number="A002"))
        png = preview.print_ticket(ticket(number="A003")).path
    data = out.read_bytes()
    assert b"A001" in data and b"A002" in data and data.count(GS + b"V\x01") == 2
    assert GS + b"v0" not in data  # no raster image: the logo is left off
    assert png is not None and png.exists()
    # said once (not per ticket); the printers' own info lines are there too when the root logger is at INFO
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"printer.logo {logo} cannot be read (cannot identify image file '{logo}'): tickets are printed "
        "without it"
    ]


def test_a_relative_logo_is_taken_beside_the_configuration_file_wherever_the_node_runs(tmp_path, monkeypatch):
    """``logo: wappen.png`` was looked for in the node's working directory (its data directory under
    systemd), not beside office.yaml: the dispenser did not start ("file wappen.png does not exist")."""
    from PIL import Image as PILImage

    from edge.dispenser.options import printer_settings
    from waitroom import config, nodeconfig

    etc = tmp_path / "etc"
    etc.mkdir()
    PILImage.new("L", (200, 60), 0).save(etc / "wappen.png")
    text = config.EXAMPLE_CONFIG.read_text(encoding="utf-8") + "\nprinter: {logo: wappen.png}\n"
    (etc / "office.yaml").write_text(text, encoding="utf-8")
    elsewhere = tmp_path / "var"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("WAITROOM_DATA_DIR", str(elsewhere))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))  # the validating process
    cfg = config.load(etc / "office.yaml")
    assert printer_settings(cfg).logo == str(etc / "wappen.png")
    cached = nodeconfig.load_for_node(str(etc / "office.yaml"), "disp-1", "dispenser")  # the node's way
    assert cached is not None and printer_settings(cached).logo == str(etc / "wappen.png")
