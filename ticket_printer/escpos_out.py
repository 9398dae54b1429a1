"""Render layout blocks to ESC/POS bytes with python-escpos (``sink_class()``: a printer that collects them).

The code page is selected once, explicitly, right after ``ESC @`` (python-escpos' automatic choice would
switch code pages in the middle of a line for ``€``). Where a profile lists one code page under several
``ESC t`` numbers (the POS-5890 data has CP858 at 19 and 53), the number of Epson's standard table is used:
Epson-compatible 58 mm printers print umlauts and € as "?" under 53. The ticket number uses ``GS !``
character scaling, text outside the code page is a raster image (``GS v 0``) drawn by
ticket_printer/raster.py, the QR code the printer's own ``GS ( k`` command when the profile supports it
(else a raster image), and the ticket ends with ``GS V`` (cut) unless ``printer.cut`` is ``none``; a printer
without cutter ignores it.
"""

from __future__ import annotations

import logging
from functools import cache

from ticket_printer.capabilities import escpos_capabilities
from ticket_printer.layout import Block, Cut, Feed, Image, Qr, Raster, Text

log = logging.getLogger(__name__)

INIT = b"\x1b@"
GS_V = {"partial": b"\x1dV\x01", "full": b"\x1dV\x00"}
REFERENCE_PROFILE = "TM-T20II"  # Epson's standard ESC t table


@cache
def sink_class() -> type:
    """``Sink``: the bytes of one ticket, a python-escpos printer whose one abstract method, ``_raw``,
    collects them. What ``escpos.printer.Dummy`` does, without importing ``escpos.printer``, which loads every
    printer class (CUPS, LP, serial, USB, Win32) and their libraries into the dispenser (issue 17). Made on
    first use: python-escpos loads its printer database when it is imported, and ``escpos_capabilities`` must
    point it at the cache first (importing this module touches no folder)."""
    escpos_capabilities()
    from escpos.escpos import Escpos

    class Sink(Escpos):  # type: ignore[misc]
        def __init__(self, profile: str):
            super().__init__(profile=profile)
            self._chunks: list[bytes] = []

        def _raw(self, msg: bytes) -> None:
            self._chunks.append(msg)

        @property
        def output(self) -> bytes:
            return b"".join(self._chunks)

    return Sink


@cache
def codepage_slot(profile: str, codepage: str) -> int:
    """The ``ESC t`` number of ``codepage`` on ``profile``; Epson's number when the page is listed twice."""
    get_profile = escpos_capabilities().get_profile

    def slots(name: str) -> list[int]:
        return sorted(
            int(k) for k, v in get_profile(name).codePages.items() if str(v).upper() == codepage.upper()
        )

    mine = slots(profile)
    if not mine:
        raise ValueError(f"code page {codepage} is not in profile {profile}")
    epson = [n for n in slots(REFERENCE_PROFILE) if n in mine]
    return epson[0] if epson else mine[0]


@cache
def _logo(path: str, width_dots: int) -> object:
    from PIL import Image as PILImage

    img = PILImage.open(path).convert("L")
    if img.width > width_dots:
        img = img.resize((width_dots, round(img.height * width_dots / img.width)))
    return img


class EscposRenderer:
    def __init__(self, profile: str, codepage: str, width_dots: int):
        self.profile = profile
        self.codepage = codepage
        self.width_dots = width_dots
        probe = sink_class()(profile)
        self.native_qr = probe.profile.supports("qrCode")
        self.can_cut = probe.profile.supports("paperFullCut") or probe.profile.supports("paperPartCut")
        self.slot = codepage_slot(profile, codepage)

    def render(self, blocks: list[Block]) -> bytes:
        p = sink_class()(self.profile)
        p._raw(INIT)
        p.magic.encoder.codepages[self.codepage.upper()] = self.slot
        p.charcode(self.codepage)  # emits ESC t n now and fixes the code page for the whole ticket
        for b in blocks:
            if isinstance(b, Text):
                # GS ! always (also 1x1): ESC ! 0 alone does not reset a GS ! size on every model.
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
                if self.native_qr:
                    p.qr(b.content, size=b.size, native=True)
                    p.ln()
                else:
                    p.qr(b.content, size=max(1, b.size // 2) * 2, native=False, center=True)
            elif isinstance(b, Image):
                p.set(align="center")
                p.image(_logo(b.path, self.width_dots), center=True)
            elif isinstance(b, Feed):
                p.ln(b.lines)
            elif isinstance(b, Cut):
                p.set(custom_size=True, width=1, height=1, align="left", bold=False)
                if b.mode == "none":
                    p.ln(4)  # feed the ticket past the tear-off edge
                elif self.can_cut:
                    p.cut(mode="PART" if b.mode == "partial" else "FULL")
                else:  # the profile data lists no cutter; models with an auto-cutter still take GS V
                    p.print_and_feed(6)
                    p._raw(GS_V[b.mode])
        return bytes(p.output)
