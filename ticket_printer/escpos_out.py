"""Render layout blocks to ESC/POS bytes with python-escpos (its ``Dummy`` printer collects the bytes).

The code page is selected once, explicitly, right after ``ESC @`` (python-escpos' automatic choice would
switch code pages in the middle of a line for ``€``). The ticket number uses ``GS !`` character scaling, the
QR code the printer's own ``GS ( k`` command when the profile supports it (else a raster image), and the
ticket ends with ``GS V`` (cut) where the printer has a cutter.
"""

from __future__ import annotations

import logging
from functools import cache

from escpos.printer import Dummy

from ticket_printer.layout import Block, Cut, Feed, Image, Qr, Text

log = logging.getLogger(__name__)

INIT = b"\x1b@"


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
        probe = Dummy(profile=profile)
        self.native_qr = probe.profile.supports("qrCode")
        self.can_cut = probe.profile.supports("paperFullCut") or probe.profile.supports("paperPartCut")

    def render(self, blocks: list[Block]) -> bytes:
        p = Dummy(profile=self.profile)
        p._raw(INIT)
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
                if b.mode == "none" or not self.can_cut:
                    p.ln(4)  # feed the ticket past the tear-off edge
                else:
                    p.cut(mode="PART" if b.mode == "partial" else "FULL")
        return bytes(p.output)
