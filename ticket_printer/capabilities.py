"""python-escpos' printer database and what printing needs of the ``printer:`` settings, without pydantic.

The schema of the ``printer:`` section is ``ticket_printer.settings`` (pydantic, validated in the process
that checks the configuration); a dispenser started from its validated-config cache needs only these.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shutil
import sys
import tempfile
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

from waitroom.paths import data_dir

log = logging.getLogger(__name__)

DEFAULT_PROFILE = "TM-T20II"
DEFAULT_CODEPAGE = "CP858"


def escpos_capabilities() -> ModuleType:
    """python-escpos' printer database (``escpos.capabilities``), parsed once per installed version.

    On import python-escpos parses its 96 KB capabilities.json with PyYAML and pickles the result into a
    new temporary folder, every time: each start pays the parse (about 1.5 MB more memory in a dispenser,
    issue 17) and leaves the pickle behind in /tmp. Pointed at ``<data dir>/cache`` (the service's own
    folder, like its event log), it keeps one pickle and reads that; it parses again when the JSON is newer.
    (It still creates an empty temporary folder: ``mkdtemp()`` is the default argument of its look-up.)
    Call this before anything imports ``escpos``; ESCPOS_CAPABILITIES_PICKLE_DIR set outside wins. (It is set
    only while python-escpos is imported: processes started later look at their own data directory.)
    python-escpos writes its pickle in place while it parses, so a process starting meanwhile would read half
    a file: a missing or outdated pickle is written in a private folder and moved into the cache whole, once
    the import worked. When the cache fails (a full disk while writing, a damaged pickle, which is deleted),
    python-escpos parses into its own temporary folder, as without the cache."""
    key = "ESCPOS_CAPABILITIES_PICKLE_DIR"
    folder = data_dir() / "cache"
    if "escpos.capabilities" in sys.modules or key in os.environ:
        from escpos import capabilities

        return capabilities
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.debug("no capabilities cache in %s: %s", folder, exc)
    if os.access(folder, os.W_OK):
        try:
            return _import_capabilities(folder)
        except Exception as exc:  # a full disk (OSError), a damaged pickle (any unpickling error)
            log.warning(
                "python-escpos' capabilities cache in %s failed (%s); parsed again in a temporary folder",
                folder,
                exc,
            )
            with contextlib.suppress(OSError):  # a damaged pickle would fail every start
                (folder / f"{platform.python_version()}.capabilities.pickle").unlink()
    from escpos import capabilities  # python-escpos' own default: a new temporary folder

    return capabilities


def _import_capabilities(folder: Path) -> ModuleType:
    """Import ``escpos.capabilities`` with its pickle in ``folder``; a missing or outdated pickle is written
    in a private folder and moved into ``folder`` whole, and only when the import worked (a disk that
    filled up while it was written leaves a truncated file, which must not become the next start's cache)."""
    key = "ESCPOS_CAPABILITIES_PICKLE_DIR"
    private = None if _pickle_current(folder) else Path(tempfile.mkdtemp(dir=folder, prefix=".escpos-"))
    os.environ[key] = str((private or folder).resolve())
    try:
        from escpos import capabilities

        if private is not None:
            with contextlib.suppress(OSError):
                for made in private.glob("*.capabilities.pickle"):
                    os.replace(made, folder / made.name)
    finally:
        del os.environ[key]
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)
    return capabilities


def _pickle_current(folder: Path) -> bool:
    """Whether ``folder`` holds python-escpos' pickle of this Python, newer than its capabilities.json (what
    python-escpos itself checks before it reads it)."""
    spec = find_spec("escpos")
    origin = Path(spec.origin) if spec and spec.origin else None
    try:
        pickled = (folder / f"{platform.python_version()}.capabilities.pickle").stat().st_mtime
        source = origin.with_name("capabilities.json").stat().st_mtime if origin else 0
    except OSError:
        return False
    return pickled >= source


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
