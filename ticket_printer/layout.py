"""The ticket layout: what a ticket says, as a list of blocks that both renderers (ESC/POS and PNG) draw.

Line wrapping and the code-page clean-up happen here, once, so the PNG preview shows exactly the lines the
printer prints. A text with letters the printer's code page cannot hold (Arabic, Cyrillic, Turkish ğ ş ı,
Polish ł ź, ...) becomes a ``Raster`` block: drawn from a font that has the glyphs, shaped and in its
direction (ticket_printer/raster.py), sent as an image. Punctuation the code page lacks is transliterated
(``„`` -> ``"``); a character no font here can draw is replaced visibly by ``?`` and logged; nothing is
dropped silently. The ticket number is always printer text in the large printer font.
"""

from __future__ import annotations

import datetime as dt
import logging
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from ticket_printer import raster
from ticket_printer.facts import facts
from waitroom import hyphen
from waitroom.i18n import normalize, t, tn

log = logging.getLogger(__name__)

Align = Literal["left", "center", "right"]
Font = Literal["a", "b"]
FONT_DOTS = {"a": (12, 24), "b": (9, 17)}  # character cell width, height in dots (Epson fonts A and B)

# Visible replacements for common characters outside the Western code pages.
REPLACEMENTS = {
    "„": '"',
    "“": '"',
    "”": '"',
    "‚": "'",
    "‘": "'",
    "’": "'",
    "–": "-",
    "—": "-",
    "…": "...",
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "Đ": "D",
    "ø": "o",
    "Ø": "O",
    "œ": "oe",
    "Œ": "OE",
    "ẞ": "SS",
    "\u00a0": " ",
    "\u202f": " ",
    "•": "*",
}
UNKNOWN = "?"


# --------------------------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class Text:
    lines: tuple[str, ...]
    width: int = 1  # character width multiplier 1..8
    height: int = 1  # character height multiplier 1..8
    bold: bool = False
    align: Align = "center"
    font: Font = "a"
    invert: bool = False


@dataclass(frozen=True)
class Raster:
    """Text printed as an image (shaped, in its writing direction), wrapped to the paper width."""

    lines: tuple[str, ...]
    px: int  # font size in dots
    bold: bool = False
    align: Align = "center"
    rtl: bool = False
    invert: bool = False
    width_dots: int = 576

    def image(self) -> object:
        """The 1-bit bitmap both the printer and the preview get."""
        return raster.render_lines(
            self.lines, self.px, self.bold, self.align, self.width_dots, self.rtl, self.invert
        )


@dataclass(frozen=True)
class Qr:
    content: str
    size: int = 6  # module size in dots


def qr_module_size(modules: int, size: int, border: int, width_dots: int) -> int:
    """The module size for a QR code of ``modules`` modules a side with ``border`` modules around it:
    ``size``, or smaller when that is wider than the paper (a long URL, a large ``qr_size`` on 58 mm paper);
    0 when not even one dot per module fits."""
    return max(0, min(size, width_dots // (modules + 2 * border)))


@dataclass(frozen=True)
class Image:
    path: str


@dataclass(frozen=True)
class Feed:
    lines: int = 1


@dataclass(frozen=True)
class Cut:
    mode: Literal["full", "partial", "none"] = "partial"


Block = Text | Raster | Qr | Image | Feed | Cut


# ------------------------------------------------------------------------------------------ ticket data
@dataclass(frozen=True)
class TicketData:
    """Everything printed on one ticket (no personal data: the number and the status page id only)."""

    office_name: str
    number: str
    service: dict[str, str]  # {"de": ..., "en": ...}
    issued_at: float
    timezone: str = "Europe/Berlin"
    ahead: int | None = None
    eta_min: int | None = None
    offline: bool = False  # issued from a leased block: waiting time unknown
    url: str | None = None  # live status page
    appointment: float | None = None  # slot time (epoch) for appointment holders
    priority: bool = False
    lang: str = "de"
    alternative: dict[str, Any] | None = None  # the city's advice: {"name": office, "eta_min": minutes}


@dataclass(frozen=True)
class Notice:
    """A short slip for the citizen when no ticket can be given (e.g. an unknown booking code)."""

    office_name: str
    key: str  # i18n key of the message
    issued_at: float
    timezone: str = "Europe/Berlin"
    lang: str = "de"
    values: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- code pages
@cache
def _can_encode(profile: str, codepage: str, char: str) -> bool:
    if char == "\n":
        return True
    try:
        return facts(profile, codepage).can_encode(char)
    except Exception:  # unknown code page in the profile data
        return False


def is_rtl_text(text: str) -> bool:
    """Whether the first strongly directed character is right to left (Arabic, Hebrew)."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False


def needs_raster(text: str, profile: str, codepage: str) -> bool:
    """True when ``text`` has a letter the code page cannot hold but the raster font can draw."""
    return any(
        unicodedata.category(ch)[0] in "LM"
        and not _can_encode(profile, codepage, ch)
        and raster.has_glyph(ch)
        for ch in text
    )


def sanitize(text: str, profile: str, codepage: str) -> tuple[str, list[str]]:
    """Return (text the code page can print, characters that had to be replaced)."""
    out: list[str] = []
    replaced: list[str] = []
    for ch in text:
        if _can_encode(profile, codepage, ch):
            out.append(ch)
            continue
        replaced.append(ch)
        sub = REPLACEMENTS.get(ch)
        if sub is None:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            sub = (
                base
                if base and base != ch and all(_can_encode(profile, codepage, c) for c in base)
                else UNKNOWN
            )
        out.append(sub)
    return "".join(out), replaced


# -------------------------------------------------------------------------------------------- builder
class LayoutBuilder:
    """Builds blocks for one paper width and code page; wraps lines to the columns of each font and size."""

    def __init__(
        self,
        *,
        width_dots: int,
        profile: str,
        codepage: str,
        qr_size: int = 6,
        cut: Literal["full", "partial", "none"] = "partial",
        logo: str | None = None,
    ):
        self.width_dots = width_dots
        self.profile = profile
        self.codepage = codepage
        self.qr_size = qr_size
        self.cut = cut
        self.logo = logo
        self.replaced: list[str] = []

    def columns(self, font: Font = "a", width: int = 1) -> int:
        return max(1, self.width_dots // (FONT_DOTS[font][0] * width))

    def text(
        self,
        text: str,
        *,
        width: int = 1,
        height: int = 1,
        bold: bool = False,
        align: Align = "center",
        font: Font = "a",
        invert: bool = False,
    ) -> Text | Raster:
        if needs_raster(text, self.profile, self.codepage):
            return self.raster_text(
                text, height=max(width, height), bold=bold, align=align, font=font, invert=invert
            )
        clean, replaced = sanitize(text, self.profile, self.codepage)
        self.replaced += replaced
        cols = self.columns(font, width)
        lines: list[str] = []
        for para in clean.split("\n"):
            lines += hyphen.wrap(para, lambda line, cols=cols: len(line) <= cols)  # a long word: hyphenated
        return Text(tuple(lines), width, height, bold, align, font, invert)

    def raster_text(
        self,
        text: str,
        *,
        height: int = 1,
        bold: bool = False,
        align: Align = "center",
        font: Font = "a",
        invert: bool = False,
    ) -> Raster:
        missing = [ch for ch in text if not raster.has_glyph(ch, bold)]
        if missing:
            self.replaced += missing
            text = "".join(UNKNOWN if ch in missing else ch for ch in text)
        px = round(raster.PX[font] * (1 + (height - 1) * 0.6))
        rtl = is_rtl_text(text)
        lines = raster.wrap(text, bold, px, self.width_dots, rtl)
        return Raster(tuple(lines), px, bold, align, rtl, invert, self.width_dots)

    def rule(self) -> Text:
        return Text(("-" * self.columns("a"),), align="left")

    def bilingual(
        self, key: str, lang: str, *, bold: bool = False, plural_n: int | None = None, **values: object
    ) -> list[Block]:
        """The text in the citizen's language, then German (English on a German ticket) smaller (font B).
        ``plural_n``: ``key`` is a plural message whose noun agrees with this count (i18n.tn)."""
        other = "en" if lang == "de" else "de"

        def text(code: str) -> str:
            return t(key, code, **values) if plural_n is None else tn(key, plural_n, code, **values)

        first = self.text(text(lang), bold=bold)
        second_text = text(other)
        if second_text == first.lines[0] and len(first.lines) == 1:
            return [first]
        return [first, self.text(second_text, font="b")]

    def _finish(self, blocks: list[Block]) -> list[Block]:
        if self.replaced:
            log.warning(
                "ticket text: replaced %d character(s) the code page %s cannot print: %s",
                len(self.replaced),
                self.codepage,
                " ".join(sorted(set(self.replaced))),
            )
        blocks.append(Cut(self.cut))
        return blocks

    def _header(self, office_name: str) -> list[Block]:
        blocks: list[Block] = []
        if self.logo:
            blocks.append(Image(self.logo))
        blocks.append(self.text(office_name, bold=True, height=2))
        blocks.append(self.rule())
        return blocks

    def ticket(self, d: TicketData) -> list[Block]:
        self.replaced = []
        tz = ZoneInfo(d.timezone)
        issued = dt.datetime.fromtimestamp(d.issued_at, tz)
        lang = normalize(d.lang) or "de"
        other = "en" if lang == "de" else "de"
        blocks = self._header(d.office_name)
        blocks += self.bilingual("ticket.your_number", lang)
        # The number as large as the paper allows: 4-5 characters fill about half the width.
        size = max(2, min(6, self.width_dots // (12 * max(len(d.number), 4) * 2)))
        blocks.append(self.text(d.number, width=size, height=size, bold=True))
        if d.priority:
            blocks.append(
                self.text(
                    f" {t('ticket.priority', lang)} / {t('ticket.priority', other)} ", bold=True, invert=True
                )
            )
        blocks.append(Feed(1))
        # the service in the citizen's language large, then German (English on a German ticket)
        german = d.service.get("de") or next(iter(d.service.values()), "")
        first = d.service.get(lang) or (d.service.get("de") if lang == "de-LS" else None) or german
        blocks.append(self.text(first, bold=True, height=2))
        second = d.service.get(other) or (german if other == "de" else "")
        if second and second != first:
            blocks.append(self.text(second))
        blocks.append(self.rule())
        if d.appointment is not None:
            slot = dt.datetime.fromtimestamp(d.appointment, tz).strftime("%H:%M")
            blocks += self.bilingual("ticket.appointment", lang, bold=True, time=slot)
        elif d.offline or d.eta_min is None:
            blocks += self.bilingual("ticket.wait_unknown", lang, bold=True)
        else:
            if d.ahead is not None:
                blocks += (
                    self.bilingual("ticket.ahead", lang, plural_n=d.ahead, count=d.ahead)
                    if d.ahead > 0
                    else self.bilingual("ticket.ahead_none", lang)
                )
            if d.eta_min <= 0:  # not "ca. 0 Min." for the first in line at a free counter
                blocks += self.bilingual("ticket.wait_short", lang, bold=True)
            else:
                blocks += self.bilingual(
                    "ticket.wait", lang, bold=True, plural_n=d.eta_min, minutes=d.eta_min
                )
            if d.alternative:  # cross-office steering (waitroom/city/advice.py)
                minutes, office = d.alternative["eta_min"], d.alternative["name"]
                if minutes <= 0:
                    blocks += self.bilingual("city.alternative_short", lang, office=office)
                else:
                    blocks += self.bilingual(
                        "city.alternative", lang, plural_n=minutes, office=office, minutes=minutes
                    )
        blocks.append(Feed(1))
        blocks += self.bilingual("ticket.note", lang, bold=True)
        if d.url:
            blocks.append(Feed(1))
            blocks += self.bilingual("ticket.status_qr", lang)
            blocks.append(Qr(d.url, self.qr_size))
        blocks.append(
            self.text(
                t("ticket.issued", lang, date=issued.strftime("%d.%m.%Y"), time=issued.strftime("%H:%M")),
                font="b",
            )
        )
        return self._finish(blocks)

    def notice(self, n: Notice) -> list[Block]:
        self.replaced = []
        issued = dt.datetime.fromtimestamp(n.issued_at, ZoneInfo(n.timezone))
        blocks = self._header(n.office_name)
        lang = normalize(n.lang) or "de"
        blocks += self.bilingual("ticket.notice", lang, bold=True)
        blocks.append(Feed(1))
        blocks += self.bilingual(n.key, lang, **n.values)
        blocks.append(
            self.text(
                t("ticket.issued", lang, date=issued.strftime("%d.%m.%Y"), time=issued.strftime("%H:%M")),
                font="b",
            )
        )
        return self._finish(blocks)
