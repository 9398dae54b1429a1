"""Drawing the call display with pygame.

Everything that depends on the office state (the list of calls, the waiting times, the header) is drawn
straight into the frame once per change of ``Screen.version``, the newest call in both its states into two
surfaces of the panel's size. A frame then only blits one of those (blinking), the clock (re-rendered when
the minute changes), the ticker (one pre-rendered strip, moved) and the offline sign; the rest stays in the
frame from the frame before, so there is no full-screen layer besides it (8 MB at 1080p), and the state is
drawn again when the offline sign goes away. ``Renderer.draw`` reports whether the frame differs from the
previous one, so the node flips the screen only when it does.

Rendered texts are kept for the next change (the list moves down a row, the names stay) up to
``TEXT_CACHE_BYTES``, the least recently used dropped first: a large number in the panel takes about 1 MB, and
a cache by count alone held 160 MB after 150 calls (issue 17).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pygame

from displays.board import CallView, Screen, WaitView
from displays.layout import Rect, layout
from waitroom import hyphen, i18n
from waitroom.errors import HardwareError

if TYPE_CHECKING:  # the schema (pydantic); a display node runs on a light record of it (displays.look)
    from displays.settings import DisplaySettings

log = logging.getLogger(__name__)

LINE = 1.17  # DejaVu line height per point size
MIN_TEXT = 0.03  # no label smaller than 3 % of the screen's short side (its height on a landscape TV)
ELLIPSIS = "…"
TEXT_CACHE_BYTES = 4 * 2**20  # rendered texts kept: what a state change draws, the rows that move down


def _whole(s: str) -> str:
    """``s`` as one unit that a label does not break (no-break spaces)."""
    return s.replace(" ", "\u00a0")


def needs_shaping(s: str) -> bool:
    """Right-to-left scripts (Arabic): drawn through Pillow + libraqm, which shapes and orders the letters."""
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in s)


@cache
def _pil_font(path: str, pt: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(path, pt, layout_engine=ImageFont.Layout.RAQM)


def _bytes(surf: pygame.Surface) -> int:
    return surf.get_width() * surf.get_height() * surf.get_bytesize()


@dataclass(frozen=True)
class CallDrawn:
    """One call as drawn: in the large panel or as a row of the list (for the tests and the node)."""

    ticket: str
    counter: str
    place: str  # "panel" or "row"
    pending: bool  # a row highlighted: its announcement is still to come
    rect: Rect


@dataclass(frozen=True)
class Drawn:
    """One label as drawn (kept for the layout tests and the benchmark)."""

    text: str
    lines: tuple[str, ...]
    pt: int
    rect: Rect  # the box it was given
    box: Rect  # the ink box it used, inside ``rect``
    ellipsis: bool


class Renderer:
    def __init__(
        self,
        settings: DisplaySettings,
        *,
        tz: ZoneInfo | None = None,
        office_name: str = "",
        frame: pygame.Surface | None = None,
    ):
        """``frame``: a surface of the screen's size to compose into (the window's own surface, which saves
        a full-screen buffer: 8 MB at 1080p); by default the renderer keeps a surface of its own."""
        self.s = settings
        self.size = settings.size
        self.portrait = settings.portrait
        self.theme = settings.colours
        self.tz = tz
        self.lang = settings.languages[0]
        self.lang2 = settings.languages[1] if len(settings.languages) > 1 else None
        self.office_name = office_name
        ticker = " +++ ".join(
            t for t in dict.fromkeys(settings.ticker_text(lang) for lang in settings.languages) if t
        )
        self.ticker = ticker
        self.rects = layout(self.size, portrait=self.portrait, ticker=bool(ticker), waits=settings.show_waits)
        self._font_files = {False: settings.fonts.path("regular"), True: settings.fonts.path("bold")}
        for bold, path in self._font_files.items():
            if not Path(path).exists():
                key = "bold" if bold else "regular"
                raise HardwareError(
                    f"display.fonts.{key}: font file {path} not found "
                    "(apt-get install fonts-dejavu-core, or give a .ttf path)"
                )
        if not pygame.font.get_init():
            pygame.font.init()
        self._fonts: dict[tuple[bool, int], pygame.font.Font] = {}
        self._texts: dict[tuple[str, bool, int, tuple[int, int, int]], pygame.Surface] = {}  # oldest use 1st
        self._text_bytes = 0
        self._fits: dict[tuple[str, bool, int, int], int] = {}
        self.frame = (
            frame if frame is not None and frame.get_size() == self.size else pygame.Surface(self.size)
        )
        self._hero: dict[bool, pygame.Surface] = {}
        self._static_version: int | None = None  # the state version drawn in the frame
        self._clock: tuple[str, pygame.Surface] | None = None
        self._ticker_strip: pygame.Surface | None = None
        self._offline: pygame.Surface | None = None
        self._last_key: Any = None
        self.static_builds = 0  # counts how often the state was drawn (tests, benchmark)
        self.min_pt = max(6, math.ceil(min(self.size) * MIN_TEXT))
        self.drawn: list[Drawn] = []  # the labels of the state and the hero as last drawn
        self.calls_drawn: tuple[CallDrawn, ...] = ()  # the calls in the frame (replaced whole per change)
        self._recording = True

    # ------------------------------------------------------------------------------ text helpers
    def font(self, bold: bool, size: int) -> pygame.font.Font:
        key = (bold, max(6, size))
        f = self._fonts.get(key)
        if f is None:
            f = self._fonts[key] = pygame.font.Font(str(self._font_files[bold]), key[1])
        return f

    def text(self, s: str, bold: bool, size: int, color: tuple[int, int, int]) -> pygame.Surface:
        key = (s, bold, size, tuple(color))
        surf = self._texts.pop(key, None)
        if surf is None:
            if needs_shaping(s):
                surf = self._shaped(s, bold, size, color)
            else:
                surf = self.font(bold, size).render(s, True, color)
            self._text_bytes += _bytes(surf)
            while self._texts and self._text_bytes > TEXT_CACHE_BYTES:
                self._text_bytes -= _bytes(self._texts.pop(next(iter(self._texts))))
        self._texts[key] = surf  # (again) the most recently used
        return surf

    def _shaped(self, s: str, bold: bool, size: int, color: tuple[int, int, int]) -> pygame.Surface:
        from PIL import Image, ImageDraw

        f = _pil_font(str(self._font_files[bold]), max(6, size))
        width = max(1, math.ceil(f.getlength(s, direction="rtl")))
        height = self.font(bold, size).get_linesize()
        img = Image.new("RGBA", (width, height), (*color, 0))
        ImageDraw.Draw(img).text(
            (0, self.font(bold, size).get_ascent()),
            s,
            font=f,
            fill=(*color, 255),
            anchor="ls",
            direction="rtl",
        )
        return pygame.image.frombytes(img.tobytes(), img.size, "RGBA")

    def width(self, s: str, bold: bool, size: int) -> int:
        if needs_shaping(s):
            return math.ceil(
                _pil_font(str(self._font_files[bold]), max(6, size)).getlength(s, direction="rtl")
            )
        return self.font(bold, size).size(s)[0]

    def fit(self, s: str, bold: bool, max_w: int, max_h: int) -> int:
        """The largest point size at which ``s`` fits into max_w x max_h."""
        key = (s, bold, max_w, max_h)
        size = self._fits.get(key)
        if size is None:
            size = max(6, int(max_h / LINE))
            width = self.width(s, bold, size)
            while width > max_w and size > 6:
                size = max(6, min(size - 1, int(size * max_w / width)))
                width = self.width(s, bold, size)
            self._fits[key] = size
        return size

    def put(
        self,
        target: pygame.Surface,
        s: str,
        rect: Rect,
        color: tuple[int, int, int],
        *,
        bold: bool = False,
        align: str = "left",
        size: int | None = None,
    ) -> int:
        """Draw ``s`` fitted into ``rect`` (vertically centred); returns the point size used."""
        x, y, w, h = rect
        if not s or w <= 0 or h <= 0:
            return 0
        pt = min(size or 10_000, self.fit(s, bold, w, h))
        surf = self.text(s, bold, pt, color)
        dx = {"left": 0, "center": (w - surf.get_width()) // 2, "right": w - surf.get_width()}[align]
        target.blit(surf, (x + dx, y + (h - surf.get_height()) // 2))
        return pt

    def label(
        self,
        target: pygame.Surface,
        s: str,
        rect: Rect,
        color: tuple[int, int, int],
        *,
        bold: bool = False,
        align: str = "left",
        size: int | None = None,
        shrink: float = 0.8,
        lines: int = 2,
        origin: tuple[int, int] = (0, 0),
    ) -> int:
        """Draw ``s`` into ``rect`` without ever going below the minimum size or outside the box.

        One line at the size the box's height gives (``size`` caps it), shrunk to at most ``shrink`` of it to
        fit the width; else wrapped to two lines at the largest size that fits; else, at the minimum
        readable size, as many lines as fit, a word longer than the line (a German compound:
        "Staatsangehörigkeitsangelegenheiten") broken with a hyphen, and only what still does not fit cut
        with an ellipsis. Lines break at spaces only: a service's letter is joined to its name with an en
        space (U+2002), which holds like a no-break space. Returns the point size."""
        _x, _y, w, h = rect
        if not s or w <= 0 or h <= 0:
            return 0
        floor = max(6, min(self.min_pt, int(h / LINE)))  # a box lower than the minimum is a layout limit
        base = max(floor, min(size or 10_000, int(h / LINE)))  # ``size`` caps, but never below the minimum
        one = min(base, self.fit(s, bold, w, h))
        if one >= max(floor, round(base * shrink)):
            return self._blit_lines(target, s, (s,), one, rect, color, bold, align, False, origin)
        if lines >= 2:
            pt = min(base, int(h / (2 * LINE)))
            while pt >= floor:
                wrapped = self._wrap(s, bold, pt, w)
                if len(wrapped) <= 2 and all(self.width(line, bold, pt) <= w for line in wrapped):
                    return self._blit_lines(
                        target, s, tuple(wrapped), pt, rect, color, bold, align, False, origin
                    )
                pt -= 1
        pt = floor
        room = max(1, min(lines, int(h / (pt * LINE))))
        wrapped = self._wrap(s, bold, pt, w, break_words=room > 1)
        shown = wrapped[:room]
        cut = len(wrapped) > room or any(self.width(line, bold, pt) > w for line in shown)
        if cut:
            last = shown[-1] if len(wrapped) <= room else shown[-1] + " " + wrapped[room]
            while last and self.width(last + ELLIPSIS, bold, pt) > w:
                last = last[:-1]
            shown[-1] = last.rstrip(" ,;·-–") + ELLIPSIS
        return self._blit_lines(target, s, tuple(shown), pt, rect, color, bold, align, cut, origin)

    def _wrap(self, s: str, bold: bool, pt: int, w: int, *, break_words: bool = False) -> list[str]:
        """``s`` in lines of at most ``w`` pixels, broken at spaces (a no-break space holds); a word wider
        than a line stays whole, or with ``break_words`` is broken between syllables (waitroom.hyphen)."""
        return hyphen.wrap(
            s, lambda line: self.width(line, bold, pt) <= w, break_words=break_words, rtl=needs_shaping
        )

    def _blit_lines(
        self,
        target: pygame.Surface,
        s: str,
        lines: tuple[str, ...],
        pt: int,
        rect: Rect,
        color: tuple[int, int, int],
        bold: bool,
        align: str,
        cut: bool,
        origin: tuple[int, int],
    ) -> int:
        x, y, w, h = rect
        surfs = [self.text(line, bold, pt, color) for line in lines]
        step = min(h // len(surfs), round(pt * LINE)) if len(surfs) > 1 else 0
        total = step * (len(surfs) - 1) + surfs[-1].get_height()
        top = y + max(0, (h - total) // 2)
        if needs_shaping(s) and align == "left":
            align = "right"  # a right-to-left text starts on the right
        left, right = x + w, x
        for i, surf in enumerate(surfs):
            sw = min(surf.get_width(), w)
            dx = {"left": 0, "center": (w - sw) // 2, "right": w - sw}[align]
            area = pygame.Rect(0, 0, sw, min(surf.get_height(), y + h - (top + i * step)))
            target.blit(surf, (x + dx, top + i * step), area)
            left, right = min(left, x + dx), max(right, x + dx + sw)
        ox, oy = origin
        box = (left + ox, top + oy, right - left, min(total, h))
        if self._recording:
            self.drawn.append(Drawn(s, lines, pt, (x + ox, y + oy, w, h), box, cut))
        return pt

    def two_lang(self, key: str, **values: Any) -> tuple[str, str]:
        first = i18n.t(key, self.lang, **values)
        second = i18n.t(key, self.lang2, **values) if self.lang2 else ""
        return first, ("" if second == first else second)

    def name(self, names: dict[str, str], lang: str | None) -> str:
        if lang is None:
            return ""
        return names.get(lang) or names.get("de") or ""

    # ------------------------------------------------------------------------------ the state
    def _build_static(self, screen: Screen) -> None:
        """Draw the state into the frame, and the newest call's two versions."""
        t = self.theme
        self.drawn = []
        surf = self.frame
        surf.fill(t.background)
        self._draw_header(surf, screen)
        rows = self._draw_recent(surf, screen.calls[1:], screen.pending)
        if "waits" in self.rects:
            self._draw_waits(surf, screen.waits)
        newest = screen.calls[0] if screen.calls else None
        self._hero = {on: self._draw_hero(newest, on) for on in (True, False)}
        panel = (
            (CallDrawn(newest.ticket, newest.counter, "panel", False, self.rects["hero"]),) if newest else ()
        )
        self.calls_drawn = (*panel, *rows)
        self._recording = True
        self._static_version = screen.version
        self.static_builds += 1

    def _draw_header(self, surf: pygame.Surface, screen: Screen) -> None:
        t = self.theme
        x, y, w, h = self.rects["header"]
        pygame.draw.rect(surf, t.accent, (x, y, w, h))
        pad = round(h * 0.15)
        self.label(
            surf,
            screen.office or self.office_name,
            (x + pad, y + pad // 2, round(w * 0.62), h - pad),
            t.accent_text,
            bold=True,
            size=round((h - 2 * pad) / LINE),
        )

    def _draw_hero(self, call: CallView | None, highlight: bool) -> pygame.Surface:
        t = self.theme
        hx, hy, w, h = self.rects["hero"]
        origin = (hx, hy)
        self._recording = highlight  # both versions have the same labels: record them once
        surf = self._hero.get(highlight)  # drawn over: no new surfaces of this size for every call
        if surf is None or surf.get_size() != (w, h):
            surf = pygame.Surface((w, h))
        bg, fg, num, muted = (
            (t.highlight, t.highlight_text, t.highlight_text, t.highlight_text)
            if highlight and call
            else (t.panel, t.text, t.accent, t.muted)
        )
        surf.fill(bg)
        pad = round(min(w, h) * 0.05)
        iw = w - 2 * pad

        def box(top: float, height: float) -> Rect:
            return (pad, round(h * top), iw, round(h * height))

        if call is None:
            de, en = self.two_lang("display.no_calls")
            pt = self.label(surf, de, box(0.22, 0.26), fg, bold=True, align="center", origin=origin)
            # the second language never larger than the first
            self.label(surf, en, box(0.52, 0.2), muted, align="center", size=pt, origin=origin)
            return surf
        own = call.lang if call.lang and call.lang not in (self.lang, self.lang2) else None
        first = self.name(call.name, self.lang)
        second = self.name(call.name, self.lang2)
        show_second = bool(second and second != first)
        extra = 0.11 * show_second + 0.15 * bool(own)  # room for the second name and the citizen's language
        label = self.two_lang("display.recall" if call.recall else "display.now_calling")
        self.label(
            surf, "  ·  ".join(x for x in label if x), box(0.02, 0.09), muted, align="center", origin=origin
        )
        number_h = 0.42 - extra * 0.45
        self.put(surf, call.ticket, box(0.12, number_h), num, bold=True, align="center")
        top = 0.12 + number_h + 0.01
        go = self.two_lang("display.please_go")
        self.label(
            surf, "  ·  ".join(x for x in go if x), box(top, 0.08), muted, align="center", origin=origin
        )
        top += 0.09
        name_h = 0.97 - top - extra
        pt = self.label(surf, first, box(top, name_h), fg, bold=True, align="center", origin=origin)
        top += name_h + 0.005
        if show_second:
            self.label(surf, second, box(top, 0.105), muted, align="center", size=pt, origin=origin)
            top += 0.11
        if own:  # the call in the citizen's own language, when the screen does not show it anyway
            text = f"{i18n.t('display.please_go', own)} {self.name(call.name, own)}"
            self.label(surf, text, box(top, 0.145), fg, align="center", size=pt, origin=origin)
        return surf

    def _draw_recent(
        self, surf: pygame.Surface, calls: tuple[CallView, ...], pending: frozenset[Any] = frozenset()
    ) -> list[CallDrawn]:
        """The list: ``recent_calls`` rows, or more when more calls must stay on the screen (waiting for their
        announcement, or just announced): then the rows are lower, down to the height that still shows the
        number at the minimum size (3 % of the screen; about 12 rows at 1080p), and then in more columns, so
        every call stays readable from a distance; a row waiting for its announcement is highlighted."""
        t = self.theme
        x, y, w, h = self.rects["recent"]
        pygame.draw.rect(surf, t.panel, (x, y, w, h))
        n = max(1, self.s.recent_calls)
        pad = round(min(w, h) * 0.03)
        line = math.ceil(self.min_pt * LINE) + 1  # one line of the smallest readable text
        title_h = max(round(h / (n + 1.6) * 0.9), 2 * line + pad // 2)
        de, en = self.two_lang("display.recent")
        if en:
            pt = self.label(
                surf, de, (x + pad, y + 2, w - 2 * pad, title_h - line - 3), t.text, bold=True, lines=1
            )
            self.label(
                surf, en, (x + pad, y + title_h - line - 1, w - 2 * pad, line), t.muted, size=pt, lines=1
            )
        else:
            self.label(surf, de, (x + pad, y, w - 2 * pad, title_h), t.text, bold=True, lines=1)
        avail = h - title_h - pad
        count = max(n, len(calls))
        per_column = max(1, avail // math.ceil(line / 0.8 + 2))  # rows whose number is still readable
        columns = -(-count // per_column)
        rows = -(-count // columns)
        row_h, cw = avail // rows, w // columns
        num_w = 0.36 if columns == 1 else 0.44  # a narrow column: the number keeps its minimum size
        out: list[CallDrawn] = []
        for i, c in enumerate(calls):
            col, r = divmod(i, rows)
            cx, ry = x + col * cw, y + title_h + r * row_h
            lit = c.key in pending
            if lit:
                pygame.draw.rect(surf, t.highlight, (cx + pad // 2, ry, cw - pad, row_h - 2))
            elif r % 2 == 0:
                pygame.draw.rect(surf, t.background, (cx + pad // 2, ry, cw - pad, row_h - 2))
            number, text, muted = (t.highlight_text,) * 3 if lit else (t.accent, t.text, t.muted)
            self.put(
                surf,
                c.ticket,
                (cx + pad, ry + round(row_h * 0.1), round(cw * num_w), round(row_h * 0.8)),
                number,
                bold=True,
            )
            nx, nw = cx + round(cw * (num_w + 0.04)), cw - round(cw * (num_w + 0.04)) - pad
            first, second = self.name(c.name, self.lang), self.name(c.name, self.lang2)
            second_h = max(line, round(row_h * 0.42))
            if second and second != first and row_h - second_h - 2 >= line:
                pt = self.label(surf, first, (nx, ry + 1, nw, row_h - second_h - 2), text, bold=True, lines=1)
                self.label(
                    surf, second, (nx, ry + row_h - second_h - 1, nw, second_h), muted, size=pt, lines=1
                )
            else:
                self.label(
                    surf, first, (nx, ry + round(row_h * 0.04), nw, round(row_h * 0.92)), text, bold=True
                )
            out.append(CallDrawn(c.ticket, c.counter, "row", lit, (cx, ry, cw, row_h)))
        return out

    def _draw_waits(self, surf: pygame.Surface, waits: tuple[WaitView, ...]) -> None:
        t = self.theme
        x, y, w, h = self.rects["waits"]
        pygame.draw.rect(surf, t.panel, (x, y, w, h))
        pad = round(min(w, h) * 0.05)
        title_h = round(h * (0.13 if self.portrait else 0.2))
        de, en = self.two_lang("display.waits")
        self.label(
            surf,
            "  ·  ".join(s for s in (de, en) if s),
            (x + pad, y + pad // 2, w - 2 * pad, title_h),
            t.muted,
            bold=True,
            lines=1,
        )
        if not waits:
            return
        per_row = 3 if w / max(1, h) < 4 else 5  # 720p and narrower screens: fewer, wider columns
        cols = min(2, len(waits)) if self.portrait else min(per_row, len(waits))
        rows = -(-len(waits) // cols)
        cw = (w - pad) // cols
        ch = (h - title_h - pad) // rows
        inner = cw - pad  # the gap between two columns is ``pad``: texts never touch
        # one size per line type from the box heights (not from the longest text): a long name wraps or ends
        # with an ellipsis, it never shrinks the other services' names
        line = math.ceil(self.min_pt * LINE)  # one line of the smallest readable text
        base = max(self.min_pt, round(ch * 0.34 / LINE))
        for i, wv in enumerate(waits):
            cx, cy = x + pad + (i % cols) * cw, y + title_h + pad // 2 + (i // cols) * ch
            first = self.name(wv.name, self.lang)
            name = f"{wv.prefix}\u2002{first}" if wv.prefix else first  # the letter stays with the name
            second = self.name(wv.name, self.lang2) if self.lang2 else ""
            if not wv.intake_open:
                info = i18n.t("display.intake_closed", self.lang)
            else:  # "3 wartend · ca. 12 Min.": each part whole on its line (no "ca." / "12 Min.")
                info = _whole(i18n.tn("display.waiting_count", wv.waiting, self.lang, count=wv.waiting))
                if wv.eta_min is not None and wv.waiting:
                    minutes = i18n.wait_minutes(wv.eta_min, self.lang)
                    info += "  ·  " + _whole(minutes)
            # the waiting information comes first: it gets two lines when it needs them, and then the
            # second-language name gives up its line (the name keeps at least one)
            info_lines = 1 if self.width(info, True, self.min_pt) <= inner else 2
            info_h = min(max(info_lines * line, round(ch * 0.36)), ch - line - 4)
            info_lines = max(1, min(info_lines, info_h // line))
            show_second = bool(second and second != first) and ch - info_h - 2 * line >= line
            second_h = max(line, round(ch * 0.23)) if show_second else 0
            name_h = ch - info_h - second_h - 4
            pt = self.label(surf, name, (cx, cy, inner, name_h), t.text, bold=True, shrink=0.85, size=base)
            if show_second:
                self.label(
                    surf, second, (cx, cy + name_h, inner, second_h), t.muted, size=pt, shrink=1.0, lines=1
                )
            self.label(
                surf,
                info,
                (cx, cy + ch - info_h, inner, info_h),
                t.accent,
                bold=True,
                size=base,
                shrink=0.85,
                lines=info_lines,
            )

    # ------------------------------------------------------------------------------ dynamic parts
    def _clock_surface(self, now: float) -> tuple[str, pygame.Surface]:
        local = dt.datetime.fromtimestamp(now, self.tz)
        key = local.strftime("%H:%M %d.%m.%Y")
        if self._clock is None or self._clock[0] != key:
            _x, _y, w, h = self.rects["header"]
            surf = self._clock[1] if self._clock is not None else pygame.Surface((round(w * 0.34), h))
            surf.fill(self.theme.accent)
            pad = round(h * 0.1)
            sw = surf.get_width()
            self.put(
                surf,
                local.strftime("%H:%M"),
                (0, pad, sw - pad, round(h * 0.55)),
                self.theme.accent_text,
                bold=True,
                align="right",
            )
            self.put(
                surf,
                local.strftime("%d.%m.%Y"),
                (0, round(h * 0.64), sw - pad, round(h * 0.3)),
                self.theme.accent_text,
                align="right",
            )
            self._clock = (key, surf)
        return self._clock

    def _ticker_offset(self, mono: float) -> int:
        if not self.ticker or self._ticker_strip is None:
            return 0
        _, _, w, _ = self.rects["ticker"]
        sw = self._ticker_strip.get_width()
        if self.s.ticker_speed == 0 or sw <= w:
            return 0
        return int(mono * self.s.ticker_speed) % (sw + w // 3)

    def _draw_ticker(self, offset: int) -> None:
        x, y, w, h = self.rects["ticker"]
        if self._ticker_strip is None:
            pt = self.fit("Ägy", False, 10_000, round(h * 0.75))
            self._ticker_strip = self.text(self.ticker, False, pt, self.theme.text)
        strip = self._ticker_strip
        self.frame.fill(self.theme.panel, (x, y, w, h))
        ty = y + (h - strip.get_height()) // 2
        if strip.get_width() <= w or self.s.ticker_speed == 0:
            self.frame.blit(strip, (x + max(0, (w - strip.get_width()) // 2), ty))
            return
        gap = w // 3
        self.frame.set_clip((x, y, w, h))
        self.frame.blit(strip, (x - offset, ty))
        self.frame.blit(strip, (x - offset + strip.get_width() + gap, ty))
        self.frame.set_clip(None)

    def _draw_offline(self, screen: Screen) -> None:
        x, y, w, h = self.rects["offline"]
        if self._offline is None:
            surf = pygame.Surface((w, h))
            surf.fill(self.theme.offline)
            de, en = self.two_lang("display.offline")
            pad = round(h * 0.1)
            pt = self.label(
                surf,
                de,
                (pad, pad, w - 2 * pad, round(h * 0.5)),
                self.theme.offline_text,
                bold=True,
                align="center",
                lines=1,
            )
            self.label(
                surf,
                en,
                (pad, round(h * 0.62), w - 2 * pad, round(h * 0.3)),
                self.theme.offline_text,
                align="center",
                size=pt,
                lines=1,
            )
            self._offline = surf
        self.frame.blit(self._offline, (x, y))

    # ------------------------------------------------------------------------------ frame
    @property
    def shows_offline(self) -> bool:
        """Whether the last drawn frame carries the offline sign."""
        return bool(self._last_key and self._last_key[-1])

    def animating(self, blinking: bool) -> bool:
        """Whether frames must come at ``fps`` (blinking call, moving ticker) rather than once a second."""
        return blinking or self._ticker_offset(1.0) != self._ticker_offset(0.0)

    def draw(self, screen: Screen, *, highlight: bool, now: float, mono: float) -> bool:
        """Compose the frame into ``self.frame``; returns True when it differs from the previous one."""
        clock_key, clock = self._clock_surface(now)
        offset = self._ticker_offset(mono)
        key = (screen.version, highlight, clock_key, offset, screen.offline)
        if key == self._last_key:
            return False
        sign_gone = bool(self._last_key and self._last_key[-1]) and not screen.offline
        if screen.version != self._static_version or sign_gone:  # (the sign covered part of the state)
            self._build_static(screen)
        hx, hy, _, _ = self.rects["hero"]
        self.frame.blit(self._hero[highlight], (hx, hy))
        x, y, w, _ = self.rects["header"]
        self.frame.blit(clock, (x + w - clock.get_width(), y))
        if self.ticker:
            self._draw_ticker(offset)
        if screen.offline:
            self._draw_offline(screen)
        self._last_key = key
        return True
