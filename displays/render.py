"""Drawing the call display with pygame.

Everything that depends on the office state (the newest call in both its states, the list of calls, the
waiting times, the header) is drawn into a *static layer* once per change of ``Screen.version``. A frame then
only blits that layer, one of the two pre-drawn versions of the newest call (blinking), the clock (re-rendered
when the minute changes), the ticker (one pre-rendered strip, moved) and the offline sign. ``Renderer.draw``
reports whether the frame differs from the previous one, so the node flips the screen only when it does.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pygame

from displays.board import CallView, Screen, WaitView
from displays.layout import Rect, layout
from displays.settings import DisplaySettings
from waitroom import i18n
from waitroom.errors import HardwareError

log = logging.getLogger(__name__)

LINE = 1.17  # DejaVu line height per point size


class Renderer:
    def __init__(self, settings: DisplaySettings, *, tz: ZoneInfo | None = None, office_name: str = ""):
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
        self._texts: dict[tuple[str, bool, int, tuple[int, int, int]], pygame.Surface] = {}
        self._fits: dict[tuple[str, bool, int, int], int] = {}
        self.frame = pygame.Surface(self.size)
        self._static: pygame.Surface | None = None
        self._hero: dict[bool, pygame.Surface] = {}
        self._static_version = -1
        self._clock: tuple[str, pygame.Surface] | None = None
        self._ticker_strip: pygame.Surface | None = None
        self._offline: pygame.Surface | None = None
        self._last_key: Any = None
        self.static_builds = 0  # counts re-renders of the static layer (tests, benchmark)

    # ------------------------------------------------------------------------------ text helpers
    def font(self, bold: bool, size: int) -> pygame.font.Font:
        key = (bold, max(6, size))
        f = self._fonts.get(key)
        if f is None:
            f = self._fonts[key] = pygame.font.Font(str(self._font_files[bold]), key[1])
        return f

    def text(self, s: str, bold: bool, size: int, color: tuple[int, int, int]) -> pygame.Surface:
        key = (s, bold, size, tuple(color))
        surf = self._texts.get(key)
        if surf is None:
            if len(self._texts) > 600:
                self._texts.clear()
            surf = self._texts[key] = self.font(bold, size).render(s, True, color)
        return surf

    def fit(self, s: str, bold: bool, max_w: int, max_h: int) -> int:
        """The largest point size at which ``s`` fits into max_w x max_h."""
        key = (s, bold, max_w, max_h)
        size = self._fits.get(key)
        if size is None:
            size = max(6, int(max_h / LINE))
            width = self.font(bold, size).size(s)[0]
            while width > max_w and size > 6:
                size = max(6, min(size - 1, int(size * max_w / width)))
                width = self.font(bold, size).size(s)[0]
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

    def two_lang(self, key: str, **values: Any) -> tuple[str, str]:
        first = i18n.t(key, self.lang, **values)
        second = i18n.t(key, self.lang2, **values) if self.lang2 else ""
        return first, ("" if second == first else second)

    def name(self, names: dict[str, str], lang: str | None) -> str:
        if lang is None:
            return ""
        return names.get(lang) or names.get("de") or ""

    # ------------------------------------------------------------------------------ static layer
    def _build_static(self, screen: Screen) -> None:
        t = self.theme
        surf = pygame.Surface(self.size)
        surf.fill(t.background)
        self._draw_header(surf, screen)
        self._draw_recent(surf, screen.calls[1 : 1 + self.s.recent_calls])
        if "waits" in self.rects:
            self._draw_waits(surf, screen.waits)
        newest = screen.calls[0] if screen.calls else None
        self._hero = {on: self._draw_hero(newest, on) for on in (True, False)}
        self._static = surf
        self._static_version = screen.version
        self.static_builds += 1

    def _draw_header(self, surf: pygame.Surface, screen: Screen) -> None:
        t = self.theme
        x, y, w, h = self.rects["header"]
        pygame.draw.rect(surf, t.accent, (x, y, w, h))
        pad = round(h * 0.15)
        self.put(
            surf,
            screen.office or self.office_name,
            (x + pad, y + pad, round(w * 0.62), h - 2 * pad),
            t.accent_text,
            bold=True,
        )

    def _draw_hero(self, call: CallView | None, highlight: bool) -> pygame.Surface:
        t = self.theme
        _, _, w, h = self.rects["hero"]
        surf = pygame.Surface((w, h))
        bg, fg, num, muted = (
            (t.highlight, t.highlight_text, t.highlight_text, t.highlight_text)
            if highlight and call
            else (t.panel, t.text, t.accent, t.muted)
        )
        surf.fill(bg)
        pad = round(min(w, h) * 0.05)
        iw = w - 2 * pad
        if call is None:
            de, en = self.two_lang("display.no_calls")
            self.put(surf, de, (pad, round(h * 0.30), iw, round(h * 0.16)), fg, bold=True, align="center")
            self.put(surf, en, (pad, round(h * 0.50), iw, round(h * 0.11)), muted, align="center")
            return surf
        label = self.two_lang("display.recall" if call.recall else "display.now_calling")
        self.put(
            surf,
            "  ·  ".join(x for x in label if x),
            (pad, round(h * 0.03), iw, round(h * 0.10)),
            muted,
            align="center",
        )
        self.put(
            surf, call.ticket, (pad, round(h * 0.13), iw, round(h * 0.42)), num, bold=True, align="center"
        )
        go = self.two_lang("display.please_go")
        self.put(
            surf,
            "  ·  ".join(x for x in go if x),
            (pad, round(h * 0.56), iw, round(h * 0.08)),
            muted,
            align="center",
        )
        self.put(
            surf,
            self.name(call.name, self.lang),
            (pad, round(h * 0.65), iw, round(h * 0.20)),
            fg,
            bold=True,
            align="center",
        )
        second = self.name(call.name, self.lang2)
        if second and second != self.name(call.name, self.lang):
            self.put(surf, second, (pad, round(h * 0.86), iw, round(h * 0.11)), muted, align="center")
        return surf

    def _draw_recent(self, surf: pygame.Surface, calls: tuple[CallView, ...]) -> None:
        t = self.theme
        x, y, w, h = self.rects["recent"]
        pygame.draw.rect(surf, t.panel, (x, y, w, h))
        n = max(1, self.s.recent_calls)
        title_h = round(h / (n + 1.6) * 0.9)
        pad = round(min(w, h) * 0.03)
        de, en = self.two_lang("display.recent")
        self.put(
            surf,
            de,
            (x + pad, y + round(title_h * 0.05), w - 2 * pad, round(title_h * 0.55)),
            t.text,
            bold=True,
        )
        self.put(surf, en, (x + pad, y + round(title_h * 0.6), w - 2 * pad, round(title_h * 0.35)), t.muted)
        row_h = (h - title_h - pad) // n
        for i, c in enumerate(calls):
            ry = y + title_h + i * row_h
            if i % 2 == 0:
                pygame.draw.rect(surf, t.background, (x + pad // 2, ry, w - pad, row_h - 2))
            self.put(
                surf,
                c.ticket,
                (x + pad, ry + round(row_h * 0.1), round(w * 0.38), round(row_h * 0.8)),
                t.accent,
                bold=True,
            )
            nx, nw = x + round(w * 0.42), w - round(w * 0.42) - pad
            first, second = self.name(c.name, self.lang), self.name(c.name, self.lang2)
            if second and second != first:
                self.put(
                    surf, first, (nx, ry + round(row_h * 0.08), nw, round(row_h * 0.5)), t.text, bold=True
                )
                self.put(surf, second, (nx, ry + round(row_h * 0.58), nw, round(row_h * 0.34)), t.muted)
            else:
                self.put(
                    surf, first, (nx, ry + round(row_h * 0.15), nw, round(row_h * 0.7)), t.text, bold=True
                )

    def _draw_waits(self, surf: pygame.Surface, waits: tuple[WaitView, ...]) -> None:
        t = self.theme
        x, y, w, h = self.rects["waits"]
        pygame.draw.rect(surf, t.panel, (x, y, w, h))
        pad = round(min(w, h) * 0.05)
        title_h = round(h * (0.13 if self.portrait else 0.2))
        de, en = self.two_lang("display.waits")
        self.put(
            surf,
            "  ·  ".join(s for s in (de, en) if s),
            (x + pad, y + pad // 2, w - 2 * pad, title_h),
            t.muted,
            bold=True,
        )
        if not waits:
            return
        cols = len(waits) if not self.portrait else min(2, len(waits))
        rows = -(-len(waits) // cols)
        cw = (w - pad) // cols
        ch = (h - title_h - pad) // rows
        inner = cw - pad
        lines = []
        for wv in waits:
            first = self.name(wv.name, self.lang)
            if not wv.intake_open:
                info = i18n.t("display.intake_closed", self.lang)
            else:
                info = i18n.t("display.waiting_count", self.lang, count=wv.waiting)
                if wv.eta_min is not None and wv.waiting:
                    info += "  ·  " + i18n.t("wait.minutes", self.lang, minutes=wv.eta_min)
            lines.append(
                (f"{wv.prefix}  {first}" if wv.prefix else first, self.name(wv.name, self.lang2), info)
            )
        # one point size per line type, so the columns look alike
        sizes = [
            min(self.fit(line[k], k != 1, inner, round(ch * hh)) for line in lines if line[k])
            if any(line[k] for line in lines)
            else 0
            for k, hh in enumerate((0.34, 0.24, 0.34))
        ]
        sizes[1] = min(sizes[1], sizes[0])  # the second language never outgrows the first
        for i, (name, name2, info) in enumerate(lines):
            cx, cy = x + pad + (i % cols) * cw, y + title_h + pad // 2 + (i // cols) * ch
            self.put(surf, name, (cx, cy, inner, round(ch * 0.34)), t.text, bold=True, size=sizes[0])
            if self.lang2 and name2:
                self.put(
                    surf, name2, (cx, cy + round(ch * 0.34), inner, round(ch * 0.24)), t.muted, size=sizes[1]
                )
            self.put(
                surf,
                info,
                (cx, cy + round(ch * 0.60), inner, round(ch * 0.34)),
                t.accent,
                bold=True,
                size=sizes[2],
            )

    # ------------------------------------------------------------------------------ dynamic parts
    def _clock_surface(self, now: float) -> tuple[str, pygame.Surface]:
        local = dt.datetime.fromtimestamp(now, self.tz)
        key = local.strftime("%H:%M %d.%m.%Y")
        if self._clock is None or self._clock[0] != key:
            _x, _y, w, h = self.rects["header"]
            surf = pygame.Surface((round(w * 0.34), h))
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
            self.put(
                surf,
                de,
                (pad, pad, w - 2 * pad, round(h * 0.5)),
                self.theme.offline_text,
                bold=True,
                align="center",
            )
            self.put(
                surf,
                en,
                (pad, round(h * 0.62), w - 2 * pad, round(h * 0.3)),
                self.theme.offline_text,
                align="center",
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
        if self._static is None or screen.version != self._static_version:
            self._build_static(screen)
        assert self._static is not None
        self.frame.blit(self._static, (0, 0))
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
