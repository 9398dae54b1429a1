"""Text the printer's code page cannot hold (Arabic, Cyrillic, Turkish ğ ş ı, ...) drawn as a 1-bit image.

Pillow draws with libraqm (HarfBuzz shaping + FriBiDi direction), so Arabic letters join in their contextual
forms and run right to left, digits and Latin letters inside keep their order. The font is DejaVu Sans
(fonts-dejavu-core: Latin, Cyrillic, Arabic, Greek, ...). The ESC/POS renderer sends the very bitmap this
module returns as a raster image (GS v 0), and the PNG preview pastes the same bitmap, so the preview shows
exactly what the paper shows. Pillow's font and drawing modules (with FreeType and HarfBuzz) are loaded on the
first text that needs them: a dispenser whose tickets fit the code page never loads them (issue 17).
"""

from __future__ import annotations

import logging
import unicodedata
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from waitroom import hyphen
from waitroom.errors import PrinterError

if TYPE_CHECKING:
    from PIL import Image as PILImage
    from PIL import ImageFont

log = logging.getLogger(__name__)

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
FONT_FILES = {False: "DejaVuSans.ttf", True: "DejaVuSans-Bold.ttf"}
# Pixel size per ESC/POS text size: font A cells are 24 dots high, font B 17.
PX = {"a": 21, "b": 15}
LINE = 1.2  # line height per pixel size


@cache
def font_path(bold: bool) -> Path:
    for d in FONT_DIRS:
        path = Path(d) / FONT_FILES[bold]
        if path.is_file():
            return path
    raise PrinterError(
        f"font {FONT_FILES[bold]} for text outside the printer's code page is missing "
        "(apt-get install fonts-dejavu-core)"
    )


@cache
def font(bold: bool, px: int) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont, features

    if not features.check("raqm"):
        raise PrinterError(
            "Pillow has no libraqm: Arabic would print unshaped (apt-get install libraqm0; reinstall pillow)"
        )
    return ImageFont.truetype(str(font_path(bold)), px, layout_engine=ImageFont.Layout.RAQM)


@cache
def has_glyph(ch: str, bold: bool = False) -> bool:
    """True when the raster font draws ``ch`` (not its 'missing glyph' box, compared as a bitmap)."""
    if ch.isspace() or unicodedata.category(ch).startswith(("Z", "C", "M")):
        return True
    f = _basic(bold)
    return bytes(f.getmask(ch)) != _notdef(bold)


@cache
def _basic(bold: bool) -> ImageFont.FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(bold)), 24, layout_engine=ImageFont.Layout.BASIC)


@cache
def _notdef(bold: bool) -> bytes:
    return bytes(_basic(bold).getmask("\U0010fffd"))  # a private-use code point no font has


def _direction(rtl: bool) -> str | None:
    return "rtl" if rtl else None


def width(text: str, bold: bool, px: int, rtl: bool = False) -> float:
    return font(bold, px).getlength(text, direction=_direction(rtl))


def wrap(text: str, bold: bool, px: int, max_width: int, rtl: bool = False) -> list[str]:
    """Greedy word wrap measured with the shaped text; a word longer than the line is broken between two
    syllables with a hyphen, a right-to-left one by characters."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            candidate = f"{line} {word}" if line else word
            if width(candidate, bold, px, rtl) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while width(line, bold, px, rtl) > max_width and len(line) > 1:
                if not rtl:  # between two syllables, with a hyphen (waitroom.hyphen)
                    head, line = hyphen.break_word(line, lambda s: width(s, bold, px, rtl) <= max_width)
                    lines.append(head)
                    continue
                cut = len(line) - 1
                while cut > 1 and width(line[:cut], bold, px, rtl) > max_width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    return lines


@cache
def render_lines(
    lines: tuple[str, ...], px: int, bold: bool, align: str, width_dots: int, rtl: bool, invert: bool = False
) -> PILImage.Image:
    """The lines as a 1-bit image ``width_dots`` wide (black = print), aligned like the ESC/POS text."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    f = font(bold, px)
    line_h = round(px * LINE)
    img = PILImage.new("L", (width_dots, max(1, line_h * len(lines))), 0 if invert else 255)
    draw = ImageDraw.Draw(img)
    ink = 255 if invert else 0
    if rtl and align == "left":
        align = "right"  # the start of a right-to-left line is on the right
    for i, line in enumerate(lines):
        if not line:
            continue
        w = f.getlength(line, direction=_direction(rtl))
        x = {"left": 0, "center": (width_dots - w) / 2, "right": width_dots - w}[align]
        draw.text(
            (max(0, x), i * line_h + round(px * 0.95)),
            line,
            font=f,
            fill=ink,
            anchor="ls",
            direction=_direction(rtl),
        )
    # hard threshold: thermal paper has no grey, and the preview must show the same dots
    return img.point(lambda v: 0 if v < 128 else 255, mode="1")
