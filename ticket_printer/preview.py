"""Render layout blocks as a PNG that looks like the printed ticket (demo page, web), and keep the last N.

The image is as wide as the printer's paper in dots (576 for 80 mm, 384 for 58 mm); characters use the
Epson cell sizes (font A 12x24, font B 9x17 dots) with DejaVu Sans Mono, so lines wrap exactly as on paper.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from functools import cache
from pathlib import Path

import qrcode
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from ticket_printer.escpos_out import logo_image
from ticket_printer.layout import FONT_DOTS, Block, Cut, Feed, Image, Qr, Raster, Text, qr_module_size

log = logging.getLogger(__name__)

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/local/share/fonts")
MARGIN = 8
NAME_RE = re.compile(r"^ticket-\d{8}-\d{6}-\d{6}-[A-Z0-9-]{1,16}\.png$")


@cache
def _font(bold: bool, px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for d in FONT_DIRS:
        path = Path(d) / name
        if path.is_file():
            return ImageFont.truetype(str(path), px)
    log.warning("font %s not found (apt-get install fonts-dejavu-core); using Pillow's default font", name)
    return ImageFont.load_default(px)


def _text_image(b: Text, width: int) -> PILImage.Image:
    cw, ch = FONT_DOTS[b.font]
    # DejaVu Sans Mono advances 0.602 em; choose the em size that fills the printer's character cell.
    # Equal scaling is drawn at full size (sharp); unequal scaling (double height) stretches the cell.
    scale = b.width if b.width == b.height else 1
    font = _font(b.bold, max(6, round(cw * scale / 0.602)))
    line_h = ch * b.height
    ink, paper = (255, 0) if b.invert else (0, 255)
    img = PILImage.new("L", (width, line_h * len(b.lines)), 255)
    for i, line in enumerate(b.lines):
        if not line:
            continue
        cell = PILImage.new("L", (max(1, round(font.getlength(line))), ch * scale), paper)
        ImageDraw.Draw(cell).text((0, (ch - 4) * scale), line, font=font, fill=ink, anchor="ls")
        if scale == 1 and (b.width > 1 or b.height > 1):
            cell = cell.resize((max(1, cell.width * b.width), line_h), PILImage.Resampling.NEAREST)
        x = {"left": 0, "center": (width - cell.width) // 2, "right": width - cell.width}[b.align]
        img.paste(cell, (max(0, x), i * line_h))
    return img


def render_png(blocks: list[Block], width_dots: int) -> PILImage.Image:
    """The ticket as a grey-scale image ``width_dots`` wide plus a small margin."""
    parts: list[PILImage.Image] = []
    for b in blocks:
        if isinstance(b, Text):
            parts.append(_text_image(b, width_dots))
        elif isinstance(b, Raster):
            parts.append(b.image().convert("L"))  # the very bitmap the printer gets
        elif isinstance(b, Qr):
            q = qrcode.QRCode(box_size=b.size, border=2, error_correction=qrcode.constants.ERROR_CORRECT_L)
            q.add_data(b.content)
            q.make(fit=True)
            q.box_size = qr_module_size(q.modules_count, b.size, q.border, width_dots)
            if q.box_size < 1:
                continue
            img = q.make_image(fill_color="black", back_color="white").get_image().convert("L")
            row = PILImage.new("L", (width_dots, img.height), 255)
            row.paste(img, ((width_dots - img.width) // 2, 0))
            parts.append(row)
        elif isinstance(b, Image):
            logo = logo_image(b.path, width_dots)
            if logo is None:  # printed without it, as on paper
                continue
            row = PILImage.new("L", (width_dots, logo.height), 255)
            row.paste(logo, ((width_dots - logo.width) // 2, 0))
            parts.append(row)
        elif isinstance(b, Feed):
            parts.append(PILImage.new("L", (width_dots, FONT_DOTS["a"][1] * b.lines), 255))
        elif isinstance(b, Cut):
            row = PILImage.new("L", (width_dots, 24), 255)
            if b.mode != "none":
                draw = ImageDraw.Draw(row)
                for x in range(0, width_dots, 16):
                    draw.line((x, 12, x + 8, 12), fill=128)
            parts.append(row)
    height = sum(p.height for p in parts) + 2 * MARGIN
    out = PILImage.new("L", (width_dots + 2 * MARGIN, height), 255)
    y = MARGIN
    for p in parts:
        out.paste(p, (MARGIN, y))
        y += p.height
    return out


def file_name(number: str, when: float | None = None) -> str:
    """``ticket-20261124-093012-123456-A012.png``: sortable by time, the ticket number only."""
    when = time.time() if when is None else when
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when)) + f"-{int(when % 1 * 1e6):06d}"
    safe = re.sub(r"[^A-Z0-9-]", "-", number.upper())[:16] or "X"
    return f"ticket-{stamp}-{safe}.png"


def save_png(image: PILImage.Image, folder: str | Path, number: str, keep: int) -> Path:
    """Write atomically (the web page never sees half a file), then keep only the newest ``keep`` PNGs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name(number)
    fd, tmp = tempfile.mkstemp(prefix=".ticket-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format="PNG", optimize=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for old in latest(folder, 10**6)[keep:]:
        try:
            old.unlink()
        except OSError as exc:
            log.warning("could not remove old preview %s: %s", old, exc)
    return target


def latest(folder: str | Path, n: int = 10) -> list[Path]:
    """The newest ``n`` ticket PNGs in ``folder``, newest first (empty when the folder does not exist)."""
    folder = Path(folder)
    if n <= 0 or not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if NAME_RE.match(p.name) and p.is_file()]
    # The name starts with the issuing time (to the microsecond); it sorts even where mtimes are coarse.
    files.sort(key=lambda p: p.name, reverse=True)
    return files[:n]
