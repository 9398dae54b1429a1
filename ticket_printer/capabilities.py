"""python-escpos' printer database and what printing needs of the ``printer:`` settings, without pydantic.

The schema of the ``printer:`` section is ``ticket_printer.settings`` (pydantic, validated in the process
that checks the configuration); a dispenser started from its validated-config cache needs only these.
"""

from __future__ import annotations

import logging
import os
import sys
from functools import cache
from types import ModuleType

from waitroom.paths import data_dir

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "TM-T20II"
DEFAULT_CODEPAGE = "CP858"


class PrinterSettingsMethods:
    """``PrinterSettings``: what the paper width and the font make of the profile (methods only)."""

    @property
    def width_dots(self) -> int:
        return profile_width(self.profile)  # type: ignore[attr-defined]

    def columns(self) -> int:
        """Characters per line in font A (12 dots wide)."""
        return self.width_dots // 12


def escpos_capabilities() -> ModuleType:
    """python-escpos' printer database (``escpos.capabilities``), parsed once per installed version.

    On import python-escpos parses its 96 KB capabilities.json with PyYAML and pickles the result into a
    new temporary folder, every time: each start pays the parse (about 1.5 MB more memory in a dispenser,
    issue 17) and leaves the pickle behind in /tmp. Pointed at ``<data dir>/cache`` (the service's own
    folder, like its event log), it keeps one pickle and reads that; it parses again when the JSON is newer.
    (It still creates an empty temporary folder: ``mkdtemp()`` is the default argument of its look-up.)
    Call this before anything imports ``escpos``; ESCPOS_CAPABILITIES_PICKLE_DIR set outside wins. (It is set
    only while python-escpos is imported: processes started later look at their own data directory.)"""
    key = "ESCPOS_CAPABILITIES_PICKLE_DIR"
    set_here = False
    if "escpos.capabilities" not in sys.modules and key not in os.environ:
        folder = data_dir() / "cache"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.debug("no capabilities cache in %s: %s", folder, exc)
        if os.access(folder, os.W_OK):
            os.environ[key], set_here = str(folder.resolve()), True
    try:
        from escpos import capabilities
    finally:
        if set_here:
            del os.environ[key]
    return capabilities


@cache
def profiles() -> tuple[str, ...]:
    return tuple(sorted(escpos_capabilities().CAPABILITIES["profiles"]))


@cache
def profile_codepages(profile: str) -> frozenset[str]:
    profile_data = escpos_capabilities().get_profile(profile)
    return frozenset(str(c).upper() for c in profile_data.codePages.values() if c != "Unknown")


@cache
def profile_width(profile: str) -> int:
    media = escpos_capabilities().get_profile(profile).profile_data.get("media", {})
    px = media.get("width", {}).get("pixels")
    return px if isinstance(px, int) else 576
