"""Where a process keeps its files: the data directory and paths named in the office configuration.

Without pydantic (``waitroom.config`` re-exports these), so a node's runtime modules can use them without the
configuration schema (issue 17).
"""

from __future__ import annotations

import os
from pathlib import Path

EXAMPLE_CONFIG = Path(__file__).with_name("examples") / "office.yaml"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder of a process's data (event log, offline numbers, previews, screenshots, users):
    ``--data-dir`` if given, else $WAITROOM_DATA_DIR, else ./var."""
    return Path(override or os.environ.get("WAITROOM_DATA_DIR") or "var")


def in_data_dir(value: str | os.PathLike[str], override: str | os.PathLike[str] | None = None) -> Path:
    """A path from the configuration: absolute as it is, relative inside the data directory."""
    p = Path(value)
    return p if p.is_absolute() else data_dir(override) / p


def resolve_path(config_file: str | os.PathLike[str] | None, value: str) -> Path:
    """A path from the configuration, relative to the configuration file's folder."""
    p = Path(value)
    if p.is_absolute() or config_file is None:
        return p
    return Path(config_file).resolve().parent / p
