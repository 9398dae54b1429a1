"""Render layout blocks to ESC/POS bytes: the commands of python-escpos' ``Escpos`` printer class, from its
constants and its image encoder, with the facts of the profile (``ticket_printer.facts``).

The code page is selected once, explicitly, right after ``ESC @`` (python-escpos' automatic choice would
switch code pages in the middle of a line for ``€``). The ticket number uses ``GS !`` character scaling, text
outside the code page is a raster image (``GS v 0``) drawn by ticket_printer/raster.py, the QR code the
printer's own ``GS ( k`` command when the profile supports it (else a raster image), and the ticket ends with
``GS V`` (cut) unless ``printer.cut`` is ``none``; a printer without cutter ignores it.

The bytes are python-escpos' own, byte for byte: tests/test_ticket_printer.py renders every kind of block on
several profiles with this renderer and with python-escpos' ``Escpos`` (``escpos_reference``) and compares.
Why not call ``Escpos`` here: importing it parses python-escpos' whole printer database and imports
python-barcode, qrcode and Pillow's font engine, about 6 MB more in every dispenser (issue 17). Pillow and
qrcode are imported here only for a ticket that has an image or a QR code the printer cannot draw itself.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from escpos.constants import (
    CODEPAGE_CHANGE,
    ESC,
    GS,
    PAPER_FULL_CUT,
    PAPER_PART_CUT,
    QR_ECLEVEL_L,
    QR_MODEL_2,
    SET_FONT,
    TXT_SIZE,
    TXT_STYLE,
)

from ticket_printer.facts import PrinterFacts, facts
from ticket_printer.layout import Block, Cut, Feed, Image, Qr, Raster, Text, qr_module_size

log = logging.getLogger(__name__)

INIT = b"\x1b@"
GS_V = {"partial": b"\x1dV\x01", "full": b"\x1dV\x00"}
FRAGMENT_HEIGHT = 960  # python-escpos splits taller images into parts of this height


def _lh(n: int) -> bytes:
    """A number as two bytes, low byte first (python-escpos' ``_int_low_high(n, 2)``)."""
    if not 0 <= n < 1 << 16:
        raise ValueError(f"{n} does not fit in two bytes")
    return bytes((n & 0xFF, n >> 8))


@cache
def _logo(path: str, width_dots: int) -> object:
    from PIL import Image as PILImage

    img = PILImage.open(path).convert("L")
    if img.width > width_dots:
        img = img.resize((width_dots, round(img.height * width_dots / img.width)))
    return img


_UNREADABLE_LOGOS: set[str] = set()


def logo_image(path: str, width_dots: int) -> Any:
    """The logo scaled to the paper, or None when it cannot be read (replaced by a file that is no image, or
    removed, after the node checked it at start): the ticket is printed without it, not refused and
    cancelled; one error line per file."""
    try:
        return _logo(path, width_dots)
    except Exception as exc:  # Pillow raises OSError, ValueError, DecompressionBombError, ...
        if path not in _UNREADABLE_LOGOS:
            _UNREADABLE_LOGOS.add(path)
            log.error("printer.logo %s cannot be read (%s): tickets are printed without it", path, exc)
        return None


class EscposRenderer:
    def __init__(
        self, profile: str, codepage: str, width_dots: int, *, printer_facts: PrinterFacts | None = None
    ):
        self.facts = printer_facts or facts(profile, codepage)
        self.profile = profile
        self.codepage = self.facts.codepage
        self.width_dots = width_dots
        self.native_qr = self.facts.native_qr
        self.can_cut = self.facts.can_cut
        self.slot = self.facts.slot

    # -- python-escpos' commands
    def _size(self, out: bytearray, width: int, height: int) -> None:  # set(custom_size=True, ...)
        if not (1 <= width <= 8 and 1 <= height <= 8):
            raise ValueError(f"text size {width}x{height}: width and height are 1 to 8")
        out += TXT_SIZE + bytes((TXT_STYLE["width"][width] + TXT_STYLE["height"][height],))

    def _style(
        self,
        out: bytearray,
        *,
        bold: bool | None = None,
        font: str | None = None,
        align: str | None = None,
        invert: bool | None = None,
    ) -> None:  # set(...): python-escpos sends bold, font, align, invert in this order
        if bold is not None:
            out += TXT_STYLE["bold"][bold]
        if font is not None:
            out += SET_FONT(bytes((self.facts.font_number(font),)))
        if align is not None:
            out += TXT_STYLE["align"][align]
        if invert is not None:
            out += TXT_STYLE["invert"][invert]

    def _text(self, out: bytearray, text: str) -> None:
        out += self.facts.encode(text)

    def _image(self, out: bytearray, img: object, center: bool = False) -> None:
        """``image(img, impl="bitImageRaster", center=...)``: GS v 0, high density, in parts of 960 dots."""
        from escpos.image import EscposImage

        im = EscposImage(img)
        try:
            max_width = int(self.facts.media_px)  # type: ignore[arg-type]
        except (TypeError, ValueError):  # the profile does not know its paper width: as python-escpos, print
            max_width = None
        if max_width is not None:
            if im.width > max_width:
                raise ValueError(f"image {im.width} dots wide, the paper {max_width}")
            if center:
                im.center(max_width)
        if im.height > FRAGMENT_HEIGHT:
            for part in im.split(FRAGMENT_HEIGHT):
                self._image(out, part)
            return
        out += GS + b"v0" + b"\x00" + _lh(im.width_bytes) + _lh(im.height) + im.to_raster_format()

    def _qr(self, out: bytearray, content: str, size: int, native: bool, center: bool = False) -> None:
        if not 1 <= size <= 16:
            raise ValueError("QR module size must be 1-16")
        if content == "":
            return
        if not native:
            import qrcode

            code = qrcode.QRCode(
                version=None, box_size=size, border=1, error_correction=qrcode.constants.ERROR_CORRECT_L
            )
            code.add_data(content)
            code.make(fit=True)
            try:  # the paper width as _image checks it (None: the profile does not say)
                paper: int | None = int(self.facts.media_px)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                paper = None
            if paper is not None:
                fitted = qr_module_size(code.modules_count, size, code.border, paper)
                if fitted < 1:
                    log.warning(
                        "QR code of %d modules does not fit %d dots: not printed", code.modules_count, paper
                    )
                    return
                code.box_size = fitted
            img = code.make_image()._img.convert("RGB")
            self._text(out, "\n")
            self._image(out, img, center=center)
            self._text(out, "\n\n")
            return

        def data(fn: int, payload: bytes, m: bytes = b"") -> bytes:  # GS ( k, code type 1 (QR)
            return GS + b"(k" + _lh(len(payload) + len(m) + 2) + b"1" + bytes((fn,)) + m + payload

        out += data(65, bytes((48 + QR_MODEL_2, 0)))  # model 2
        out += data(67, bytes((size,)))  # module size
        out += data(69, bytes((48 + QR_ECLEVEL_L,)))  # error correction L
        out += data(80, content.encode("utf-8"), b"0")  # store the data
        out += data(81, b"", b"0")  # print it

    def _cut(self, out: bytearray, mode: str) -> None:  # cut(mode): feed 6 lines, then the cut it has
        out += ESC + b"d" + bytes((6,))
        f = self.facts
        first, second = (
            (PAPER_PART_CUT, PAPER_FULL_CUT) if mode == "PART" else (PAPER_FULL_CUT, PAPER_PART_CUT)
        )
        has = {PAPER_PART_CUT: f.part_cut, PAPER_FULL_CUT: f.full_cut}
        if has[first]:
            out += first
        elif has[second]:
            out += second

    # -- a ticket
    def render(self, blocks: list[Block]) -> bytes:
        out = bytearray(INIT)
        out += CODEPAGE_CHANGE + bytes((self.slot,))  # fixes the code page for the whole ticket
        for b in blocks:
            if isinstance(b, Text):
                # GS ! always (also 1x1): ESC ! 0 alone does not reset a GS ! size on every model.
                self._size(out, b.width, b.height)
                self._style(out, bold=b.bold, font=b.font, align=b.align, invert=b.invert)
                for line in b.lines:
                    self._text(out, f"{line}\n")
                if b.invert:
                    self._style(out, invert=False)
            elif isinstance(b, Raster):
                self._size(out, 1, 1)
                self._style(out, bold=False, align="left")
                self._image(out, b.image(), center=False)
            elif isinstance(b, Qr):
                self._size(out, 1, 1)
                self._style(out, align="center")
                if self.native_qr:
                    self._qr(out, b.content, b.size, native=True)
                    self._text(out, "\n")
                else:
                    self._qr(out, b.content, max(1, b.size // 2) * 2, native=False, center=True)
            elif isinstance(b, Image):
                logo = logo_image(b.path, self.width_dots)
                if logo is not None:
                    self._style(out, align="center")
                    self._image(out, logo, center=True)
            elif isinstance(b, Feed):
                if b.lines < 0:
                    raise ValueError("a feed of fewer than 0 lines")
                self._text(out, "\n" * b.lines)
            elif isinstance(b, Cut):
                self._size(out, 1, 1)
                self._style(out, bold=False, align="left")
                if b.mode == "none":
                    self._text(out, "\n" * 4)  # feed the ticket past the tear-off edge
                elif self.can_cut:
                    self._cut(out, "PART" if b.mode == "partial" else "FULL")
                else:  # the profile data lists no cutter; models with an auto-cutter still take GS V
                    out += ESC + b"d" + bytes((6,))
                    out += GS_V[b.mode]
        return bytes(out)
