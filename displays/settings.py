"""Settings of the call display and its announcements: the office's ``display:`` section.

A display node's ``options`` override the office-wide section key by key (e.g. one portrait TV), and the
node's ``zone`` limits the display to the calls of the counters of that zone. Unknown keys are errors, and
every error names its key (``display.blink_s: ...``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from displays.look import (
    ASSETS,
    CONTRAST,
    FONT_DIRS,
    GONG_WAV,
    PALETTE_FIELDS,
    DisplayMethods,
    FontsMethods,
    Rgb,
)
from waitroom import i18n
from waitroom.config import Config, Node
from waitroom.errors import ConfigError

__all__ = ["ASSETS", "FONT_DIRS", "GONG_WAV", "DisplaySettings", "Fonts", "Theme", "for_node", "parse"]

log = logging.getLogger(__name__)


class Theme(BaseModel):
    """Colours of the screen (RGB 0-255), as ``colors`` overrides them; the themes are in ``displays.look``.
    The default is high contrast: white and yellow on black."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    background: Rgb = Field(CONTRAST["background"], description="screen background")
    text: Rgb = Field(CONTRAST["text"], description="normal text")
    muted: Rgb = Field(CONTRAST["muted"], description="English second line, labels")
    accent: Rgb = Field(CONTRAST["accent"], description="ticket numbers, the header bar")
    accent_text: Rgb = Field(CONTRAST["accent_text"], description="text on the accent colour")
    highlight: Rgb = Field(CONTRAST["highlight"], description="background of the newest call while it blinks")
    highlight_text: Rgb = Field(
        CONTRAST["highlight_text"], description="text of the newest call while it blinks"
    )
    panel: Rgb = Field(CONTRAST["panel"], description="background of the lists")
    offline: Rgb = Field(CONTRAST["offline"], description="background of the offline banner")
    offline_text: Rgb = Field(CONTRAST["offline_text"], description="text of the offline banner")

    @field_validator("*")
    @classmethod
    def _rgb(cls, v: Rgb) -> Rgb:
        if any(not 0 <= c <= 255 for c in v):
            raise ValueError(f"colour components must be 0..255, got {list(v)}")
        return v


class Fonts(FontsMethods, BaseModel):
    """Font files. pygame's match_font picks condensed faces, so the display uses explicit files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    regular: str = Field(
        "DejaVuSans.ttf",
        description="TrueType file for labels (a name is looked up in the system font folders)",
    )
    bold: str = Field("DejaVuSans-Bold.ttf", description="TrueType file for numbers and names")


class DisplaySettings(DisplayMethods, BaseModel):
    """The ``display:`` section of the office configuration (and a display node's ``options``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resolution: tuple[int, int] = Field(
        (1920, 1080),
        description="screen size [width, height] in pixels as "
        "the TV is mounted (a portrait TV: [1080, 1920])",
    )
    orientation: Literal["auto", "landscape", "portrait"] = Field(
        "auto", description="layout; auto picks portrait when the height is larger than the width"
    )
    rotate: Literal[0, 90, 180, 270] = Field(
        0, description="rotate the picture for a TV turned on its side whose HDMI output cannot be rotated"
    )
    fullscreen: bool = Field(True, description="full screen on the Pi (ignored without a real screen)")
    recent_calls: int = Field(6, ge=0, le=12, description="earlier calls listed below the newest one")
    blink_s: float = Field(
        10.0, ge=0, le=120, description="seconds the call in the large panel blinks (from its gong on)"
    )
    keep_called_s: float = Field(
        20.0,
        ge=0,
        le=600,
        description="a call stays on the screen at least this long after its announcement (on a quiet "
        "display: after it came), and always until its announcement, however many calls come meanwhile: the "
        "list then gets more, lower rows (in more columns when they would get too small to read) and "
        "highlights the calls still to be announced",
    )
    show_waits: bool = Field(True, description="show the waiting count and time per service")
    ticker: dict[str, str] | str | None = Field(
        None,
        description="information ticker at the bottom: a text or {de, en}",
        examples=[{"de": "Bitte Ausweis bereithalten", "en": "Please have your ID ready"}],
    )
    ticker_speed: int = Field(120, ge=0, le=600, description="ticker pixels per second; 0 = no scrolling")
    theme: Literal["contrast", "dark", "light"] = Field("contrast", description="colour theme")
    colors: dict[str, Rgb] = Field(
        default_factory=dict, description="override single theme colours, e.g. {accent: [0, 200, 0]}"
    )
    fonts: Fonts = Field(default_factory=Fonts, description="font files")
    fps: int = Field(
        20,
        ge=2,
        le=60,
        description="frames per second while something moves; otherwise the "
        "screen is redrawn once per second",
    )
    languages: tuple[str, ...] = Field(
        ("de", "en"),
        min_length=1,
        max_length=2,
        description="screen languages: the first large, the second below (codes: de, en, tr, ar, uk, ru, "
        "de-LS); the call itself is also shown in the ticket's language",
        examples=[["de", "en"], ["de", "tr"]],
    )
    volume: float = Field(0.8, ge=0, le=1, description="announcement volume 0..1")
    quiet: bool = Field(False, description="quiet mode: no gong and no speech (the screen still shows calls)")
    speech: bool = Field(True, description="speak the call after the gong (false: gong only)")
    second_language: str | None = Field(
        None, description="always speak the call again in this language too (e.g. en)", examples=["en"]
    )
    speak_ticket_language: bool = Field(
        True, description="after German, speak the call in the language the citizen chose for the ticket"
    )
    voices: dict[str, str] = Field(
        default_factory=dict,
        description="espeak-ng voice per language, overriding the default (the language code itself); one "
        "espeak-ng does not have is logged at the first call in its language, which then gets the default",
        examples=[{"de": "de+f3", "ar": "ar", "tr": "tr+m2"}],
    )
    gong_pause_s: float = Field(0.8, ge=0, le=5, description="silence between the gong's tail and the speech")
    call_gap_s: float = Field(1.5, ge=0, le=10, description="silence between two announced calls")
    phrase_pause_s: float = Field(0.4, ge=0, le=5, description="silence between the call's languages")
    speech_rate: int = Field(150, ge=80, le=260, description="words per minute of the speech")
    tts: Literal["auto", "pyttsx3", "espeak-ng"] = Field(
        "auto",
        description="speech synthesis: pyttsx3 (espeak-ng library) with a fall-back to the espeak-ng "
        "program, or one of the two",
    )
    announce_missed_s: float = Field(
        60.0,
        ge=0,
        le=600,
        description="after a lost connection (or a start), announce the calls missed meanwhile that are at "
        "most this old by the controller's clock and whose ticket is still served there, once, oldest first; "
        "0: never (older ones are only shown). The calls of this window a display heard are kept in "
        "`<data dir>/display-<node id>-heard.json`, so a restart does not announce them again",
    )
    stale_after_s: float = Field(
        0,
        ge=0,
        description="show the offline sign when no state arrived for this "
        "long (0: only on a lost connection or controller)",
    )
    screenshot_every_s: float | None = Field(
        None,
        ge=0,
        description="write the current frame as PNG this "
        "often; null: every 5 s when there is no real screen, else never",
    )
    screenshot_dir: str = Field(
        "display",
        description="folder of the screenshots; a relative path is inside "
        "the data directory ($WAITROOM_DATA_DIR, default ./var)",
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(_language(x) for x in v)
        if len(set(codes)) != len(codes):
            raise ValueError(f"languages {list(v)} name a language twice")
        return codes

    @field_validator("second_language")
    @classmethod
    def _second(cls, v: str | None) -> str | None:
        return None if v is None else _language(v)

    @field_validator("voices")
    @classmethod
    def _voices(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for lang, voice in v.items():
            if not isinstance(voice, str) or not re.fullmatch(r"[A-Za-z0-9_+.-]{1,40}", voice):
                raise ValueError(f"voice for {lang}: {voice!r} is not an espeak-ng voice name (e.g. de+f3)")
            out[_language(lang)] = voice
        return out

    @field_validator("resolution")
    @classmethod
    def _res(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not (320 <= v[0] <= 7680 and 240 <= v[1] <= 7680):
            raise ValueError(f"resolution {v[0]}x{v[1]} is out of range 320x240 .. 7680x7680")
        return v

    @field_validator("colors")
    @classmethod
    def _colors(cls, v: dict[str, Rgb]) -> dict[str, Rgb]:
        unknown = sorted(set(v) - set(PALETTE_FIELDS))
        if unknown:
            raise ValueError(f"unknown colour(s) {', '.join(unknown)}; known: {', '.join(PALETTE_FIELDS)}")
        Theme(**v)
        return v


def _language(code: str) -> str:
    canonical = i18n.normalize(code) if isinstance(code, str) else None
    if canonical is None:
        raise ValueError(f"unknown language {code!r}; known: {', '.join(i18n.LANGUAGES)}")
    return canonical


def _loc(loc: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def parse(
    data: dict[str, Any] | None, source: str = "display", where: Callable[[str], str] | None = None
) -> DisplaySettings:
    """Validate a ``display:`` mapping; raise ConfigError naming every bad key. ``where(key)``: the path of
    the section a top-level key came from (default ``source``)."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(source, [f"{source}: must be a mapping"])
    try:
        return DisplaySettings.model_validate(data or {})
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            msg = "unknown key (check the spelling)" if e["type"] == "extra_forbidden" else e["msg"]
            prefix = where(str(e["loc"][0])) if where is not None and e["loc"] else source
            errors.append(f"{prefix}{_loc(e['loc'])}: {msg}")
        raise ConfigError(source, errors) from None


def for_node(cfg: Config, node: Node | None = None) -> DisplaySettings:
    """One display node's settings: the office's ``display:`` section, overridden by the node's options. An
    error names the key where the file has it: ``nodes[1].options.volume`` or ``display.volume`` (not a
    ``display:`` key once per display node under another name)."""
    merged = dict(cfg.display)
    if node is None or not node.options:
        return parse(merged)
    merged.update(node.options)
    index = next((i for i, n in enumerate(cfg.nodes) if n.id == node.id), 0)
    options = node.options
    return parse(merged, where=lambda key: f"nodes[{index}].options" if key in options else "display")
