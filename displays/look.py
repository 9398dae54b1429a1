"""The call display's settings as the display uses them, without pydantic.

The ``display:`` section is validated by the schema in ``displays.settings`` (pydantic). Its models take their
methods from the mixins here, and so do the light records a display node reads from its validated-config
cache (``waitroom.nodeconfig``): the running display has the same attribute names and methods without
importing pydantic. A mixin holds methods only, never fields (pydantic would take annotations as fields).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from waitroom import i18n
from waitroom.paths import in_data_dir

FONT_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/TTF"),
    Path("/usr/share/fonts/dejavu"),
)
ASSETS = Path(__file__).with_name("assets")
GONG_WAV = ASSETS / "gong.wav"

Rgb = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    """The colours the screen is drawn with (RGB 0-255): a theme with the office's ``colors`` over it."""

    background: Rgb
    text: Rgb
    muted: Rgb
    accent: Rgb
    accent_text: Rgb
    highlight: Rgb
    highlight_text: Rgb
    panel: Rgb
    offline: Rgb
    offline_text: Rgb


PALETTE_FIELDS = tuple(f.name for f in fields(Palette))
# The themes; the default is high contrast: white and yellow on black.
CONTRAST: dict[str, Rgb] = {
    "background": (0, 0, 0),
    "text": (255, 255, 255),
    "muted": (190, 190, 190),
    "accent": (255, 214, 0),
    "accent_text": (0, 0, 0),
    "highlight": (255, 214, 0),
    "highlight_text": (0, 0, 0),
    "panel": (28, 28, 28),
    "offline": (200, 0, 0),
    "offline_text": (255, 255, 255),
}
THEMES: dict[str, dict[str, Rgb]] = {
    "contrast": CONTRAST,
    "dark": CONTRAST
    | {
        "background": (16, 24, 40),
        "panel": (30, 42, 64),
        "accent": (120, 200, 255),
        "highlight": (120, 200, 255),
        "muted": (170, 185, 205),
    },
    "light": CONTRAST
    | {
        "background": (255, 255, 255),
        "text": (0, 0, 0),
        "muted": (70, 70, 70),
        "accent": (0, 70, 140),
        "accent_text": (255, 255, 255),
        "highlight": (0, 70, 140),
        "highlight_text": (255, 255, 255),
        "panel": (232, 236, 240),
    },
}


class FontsMethods:
    """``Fonts``: the font files (pygame's match_font picks condensed faces, so the display names files)."""

    def path(self, which: Literal["regular", "bold"]) -> Path:
        """The font file; a bare name is looked up in the DejaVu folders."""
        value = getattr(self, which)
        p = Path(value)
        if p.is_absolute() or p.parent != Path("."):
            return p
        for d in FONT_DIRS:
            if (d / value).exists():
                return d / value
        return p


class DisplayMethods:
    """``DisplaySettings``: what the screen and the announcements derive from the settings."""

    def voice(self, lang: str) -> str:
        """The espeak-ng voice that speaks ``lang``."""
        voices: dict[str, str] = self.voices  # type: ignore[attr-defined]
        return voices.get(lang) or i18n.ESPEAK_VOICES.get(lang, "de")

    @property
    def portrait(self) -> bool:
        orientation = self.orientation  # type: ignore[attr-defined]
        if orientation == "auto":
            return self.size[1] > self.size[0]
        return orientation == "portrait"

    @property
    def size(self) -> tuple[int, int]:
        """The size of the picture as drawn (before rotation)."""
        w, h = self.resolution  # type: ignore[attr-defined]
        return (h, w) if self.rotate in (90, 270) else (w, h)  # type: ignore[attr-defined]

    @property
    def colours(self) -> Palette:
        """The theme with the single colours of ``colors`` over it."""
        colors: dict[str, Any] = self.colors  # type: ignore[attr-defined]
        return Palette(**(THEMES[self.theme] | {k: tuple(v) for k, v in colors.items()}))  # type: ignore[attr-defined]

    def ticker_text(self, lang: str) -> str:
        ticker = self.ticker  # type: ignore[attr-defined]
        if ticker is None:
            return ""
        if isinstance(ticker, str):
            return ticker
        return ticker.get(lang) or ticker.get("de") or ""

    def spoken_languages(self, ticket_lang: str | None) -> tuple[str, ...]:
        """The languages of one announcement: the first screen language, the ticket's, the second_language."""
        langs = [self.languages[0]]  # type: ignore[attr-defined]
        if self.speak_ticket_language and ticket_lang:  # type: ignore[attr-defined]
            langs.append(ticket_lang)
        if self.second_language:  # type: ignore[attr-defined]
            langs.append(self.second_language)  # type: ignore[attr-defined]
        # Leichte Sprache is German: the call is not repeated for it
        return tuple(dict.fromkeys("de" if x == "de-LS" and "de" in langs else x for x in langs))

    def screenshot_interval(self, headless: bool) -> float:
        every = self.screenshot_every_s  # type: ignore[attr-defined]
        if every is None:
            return 5.0 if headless else 0.0
        return every

    def screenshot_path(self) -> Path:
        return in_data_dir(self.screenshot_dir)  # type: ignore[attr-defined]
