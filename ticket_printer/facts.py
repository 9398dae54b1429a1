"""What printing a ticket needs of python-escpos' printer database, for one profile and code page.

python-escpos is the reference for printer profiles: which ``ESC t`` number a code page has on a model, which
characters the page holds, whether the model draws QR codes itself and has a cutter, how wide its paper is.
Importing its printer class, though, parses the whole database (with PyYAML) and imports python-barcode,
qrcode and Pillow's font engine, about 6 MB a dispenser would carry all day for a ticket that needs none of
them (issue 17). So the facts of the configured profile are read from python-escpos once, in the process that
validates the configuration (``waitroom.nodeconfig``, the dispenser's ``prepare``), and travel in the
validated-config cache; a dispenser registers them at start (``register``) and ``facts`` answers from there.
Without a registration (tests, the web app's preview, a node without a writable cache) ``facts`` reads them
from python-escpos in-process, as before.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

REFERENCE_PROFILE = "TM-T20II"  # Epson's standard ESC t table
DEFAULT_WIDTH_DOTS = 576  # 80 mm paper at 203 dpi, where a profile does not say


class PrinterSettingsMethods:
    """``PrinterSettings``: what the paper width and the font make of the profile (methods only)."""

    @property
    def width_dots(self) -> int:
        profile: str = self.profile  # type: ignore[attr-defined]
        known = registered_width(profile)  # a dispenser's facts from its validated-config cache
        if known is not None:
            return known
        from ticket_printer.capabilities import profile_width

        return profile_width(profile)

    def columns(self) -> int:
        """Characters per line in font A (12 dots wide)."""
        return self.width_dots // 12


@dataclass(frozen=True)
class PrinterFacts:
    profile: str
    codepage: str
    slot: int  # the ESC t number of the code page on this profile
    chars: str | None  # python-escpos' characters 128-255 of the code page; None: it does not know the page
    native_qr: bool  # the printer draws QR codes itself (GS ( k)
    full_cut: bool
    part_cut: bool
    fonts: tuple[str, ...]  # the profile's font numbers ("0", "1", ...)
    media_px: int | str | None  # media.width.pixels as the profile has it (None: not given)
    _map: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.chars is not None:
            self._map.update((ch, i + 128) for i, ch in enumerate(self.chars))

    @cached_property
    def width_dots(self) -> int:
        return self.media_px if isinstance(self.media_px, int) else DEFAULT_WIDTH_DOTS

    @property
    def can_cut(self) -> bool:
        return self.full_cut or self.part_cut

    def can_encode(self, ch: str) -> bool:
        """What python-escpos' ``Encoder.can_encode`` answers for this code page."""
        if self.chars is None:
            return False
        return ord(ch) < 128 or ch in self._map

    def encode(self, text: str, default: str = "?") -> bytes:
        """The bytes python-escpos' ``Encoder.encode`` makes of ``text`` (``default`` where the page lacks
        a character)."""
        if self.chars is None:
            raise LookupError(f"python-escpos knows no characters of code page {self.codepage}")
        m, d = self._map, ord(default)
        return bytes(o if (o := ord(ch)) < 128 else m.get(ch, d) for ch in text)

    def font_number(self, font: str | int) -> int:
        """python-escpos' ``get_font``: "a" is font 0, "b" font 1; a font the profile lacks is an error."""
        n = {"a": 0, "b": 1}.get(font, font)  # type: ignore[call-overload]
        if str(n) not in self.fonts:
            raise ValueError(f'"{font}" is not a valid font in profile {self.profile}')
        return int(n)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_map")
        d["fonts"] = list(self.fonts)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PrinterFacts:
        return cls(**{**d, "fonts": tuple(d["fonts"])})


def from_escpos(profile: str, codepage: str) -> PrinterFacts:
    """Read the facts from python-escpos' printer database (loads it; see the module's docstring)."""
    from escpos.magicencode import Encoder

    from ticket_printer.capabilities import escpos_capabilities

    get_profile = escpos_capabilities().get_profile
    p = get_profile(profile)

    def slots(name: str) -> list[int]:
        return sorted(
            int(k) for k, v in get_profile(name).codePages.items() if str(v).upper() == codepage.upper()
        )

    mine = slots(profile)
    if not mine:
        raise ValueError(f"code page {codepage} is not in profile {profile}")
    # Where a profile lists one page under several ESC t numbers (the POS-5890 data has CP858 at 19 and 53),
    # Epson's number: Epson-compatible 58 mm printers print umlauts and € as "?" under 53.
    epson = [n for n in slots(REFERENCE_PROFILE) if n in mine]
    try:
        chars: str | None = "".join(Encoder._get_codepage_char_list(codepage.upper()))
    except LookupError:
        chars = None
    try:
        media_px = p.profile_data["media"]["width"]["pixels"]
    except KeyError:
        media_px = None
    return PrinterFacts(
        profile=profile,
        codepage=codepage.upper(),
        slot=epson[0] if epson else mine[0],
        chars=chars,
        native_qr=bool(p.supports("qrCode")),
        full_cut=bool(p.supports("paperFullCut")),
        part_cut=bool(p.supports("paperPartCut")),
        fonts=tuple(sorted(str(k) for k in p.fonts)),
        media_px=media_px,
    )


_lock = threading.Lock()
_known: dict[tuple[str, str], PrinterFacts] = {}


def register(f: PrinterFacts) -> None:
    """Facts read elsewhere (the validated-config cache): ``facts`` answers from them."""
    with _lock:
        _known[(f.profile, f.codepage.upper())] = f


def facts(profile: str, codepage: str) -> PrinterFacts:
    key = (profile, codepage.upper())
    with _lock:
        found = _known.get(key)
    if found is None:
        found = from_escpos(profile, codepage)
        register(found)
    return found


def registered_width(profile: str) -> int | None:
    """The paper width of a registered profile (any code page), None when none is registered."""
    with _lock:
        for (p, _), f in _known.items():
            if p == profile:
                return f.width_dots
    return None
