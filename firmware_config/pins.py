"""Pin maps per node role and hardware revision: loading, validation and the merge with the office config.

A pin map is ``firmware_config/pinmaps/<role>.yaml``::

    role: counter
    default: v1                # revision used when the node names none
    revisions:
      v1:
        description: ...
        buttons: {next: 17, recall: 27}
        leds: {status_green: 6}
        buzzers: {buzzer: 26}  # optional
        display: {seg_a: 4, ..., seg_g: 21, digit_1: 25, ...}  # optional 7-segment number display

or, for a role with one wiring, a flat mapping ``name: gpio`` (e.g. pinmaps/dispenser.yaml).

A node's effective pins are the role map's revision (``options: {hardware: <revision>}`` in the node's
entry of the office configuration, else the map's default) overridden by the node's own ``pins:``.
``check_nodes(cfg)`` is part of ``waitroom check-config``: unknown revisions, pin names the map does not
know, pins that are not GPIOs of the 40-pin header, and two names on one GPIO are errors, each named by its
configuration path.
A node switches an optional part off with ``none`` (e.g. ``pins: {buzzer: none}``).
A role without a map file (e.g. a display) takes its pins from the configuration alone.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from waitroom.errors import ConfigError


class Node(Protocol):
    """What the pin maps need of a node of the office configuration (``waitroom.config.Node``).

    A protocol, not an import: the configuration calls ``check_nodes`` and must not be imported back
    (no import circle between ``waitroom.config`` and ``firmware_config``)."""

    @property
    def role(self) -> str: ...
    @property
    def options(self) -> Mapping[str, Any]: ...
    @property
    def pins(self) -> Mapping[str, int | str]: ...


class Config(Protocol):
    """What the pin maps need of the office configuration (``waitroom.config.Config``)."""

    @property
    def nodes(self) -> Sequence[Node]: ...


log = logging.getLogger(__name__)

PINMAP_DIR = Path(__file__).parent / "pinmaps"
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
# The 40-pin header: physical pin -> BCM GPIO number (pins not listed are power or ground).
HEADER_TO_BCM = {
    3: 2,
    5: 3,
    7: 4,
    8: 14,
    10: 15,
    11: 17,
    12: 18,
    13: 27,
    15: 22,
    16: 23,
    18: 24,
    19: 10,
    21: 9,
    22: 25,
    23: 11,
    24: 8,
    26: 7,
    27: 0,
    28: 1,
    29: 5,
    31: 6,
    32: 12,
    33: 13,
    35: 19,
    36: 16,
    37: 26,
    38: 20,
    40: 21,
}
BCM_MAX = 27
DISABLED = "none"  # a node's pins value that switches an optional part off
FLAT_REVISION = "default"
_PIN_RE = re.compile(r"^(?:(?P<bcm>(?:GPIO|BCM)?)(?P<n>\d{1,2})|(?:BOARD|J8:)(?P<phys>\d{1,2}))$")


def bcm_number(pin: int | str) -> int:
    """The BCM GPIO number of a pin given as 17, "17", "GPIO17", "BCM17", "BOARD11" or "J8:11"."""
    if isinstance(pin, bool):
        raise ValueError(f"{pin!r} is not a pin")
    if isinstance(pin, int):
        n = pin
    else:
        m = _PIN_RE.match(pin.strip().upper())
        if not m:
            raise ValueError(f"{pin!r} is not a pin: use a BCM number (17), GPIO17, BOARD11 or J8:11")
        if m.group("phys") is not None:
            phys = int(m.group("phys"))
            if phys not in HEADER_TO_BCM:
                raise ValueError(f"header pin {phys} is not a GPIO (power or ground)")
            return HEADER_TO_BCM[phys]
        n = int(m.group("n"))
    if not 0 <= n <= BCM_MAX:
        raise ValueError(f"GPIO {n} is not on the 40-pin header (BCM 0-{BCM_MAX})")
    return n


SEGMENTS = ("seg_a", "seg_b", "seg_c", "seg_d", "seg_e", "seg_f", "seg_g")


class Revision(BaseModel):
    """One hardware revision of a role's wiring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="what this wiring is, for the people who build the boxes")
    buttons: dict[Name, int] = Field(default_factory=dict, description="button name -> BCM GPIO (to ground)")
    leds: dict[Name, int] = Field(default_factory=dict, description="LED name -> BCM GPIO")
    buzzers: dict[Name, int] = Field(default_factory=dict, description="buzzer name -> BCM GPIO")
    display: dict[Name, int] = Field(
        default_factory=dict,
        description="a multiplexed 7-segment display: seg_a..seg_g (seg_dp optional) -> BCM GPIO of the "
        "segments, digit_1, digit_2, ... (left to right) -> BCM GPIO of each character's transistor",
    )
    pins: dict[Name, int] = Field(default_factory=dict, description="other pins (flat pin maps) -> BCM GPIO")

    @model_validator(mode="after")
    def _pins_valid(self) -> Revision:
        seen: dict[int, str] = {}
        for name, pin in self.all_pins().items():
            n = bcm_number(pin)
            if n in seen:
                raise ValueError(f"{name} and {seen[n]} are both on GPIO {n}")
            seen[n] = name
        names = [*self.buttons, *self.leds, *self.buzzers, *self.display, *self.pins]
        if len(names) != len(set(names)):
            raise ValueError("a name is used for more than one pin")
        if self.display:
            digits = [n for n in self.display if re.fullmatch(r"digit_[1-9]", n)]
            problems = [f"{s} missing" for s in SEGMENTS if s not in self.display]
            problems += [f"{n} unknown" for n in self.display if n not in (*SEGMENTS, "seg_dp", *digits)]
            problems += [] if digits else ["no digit_1"]
            if problems:
                need = "seg_a..seg_g (seg_dp optional) and digit_1, digit_2, ..."
                raise ValueError(f"display needs {need}: {', '.join(problems)}")
        return self

    def all_pins(self) -> dict[str, int]:
        return {**self.pins, **self.buttons, **self.leds, **self.buzzers, **self.display}


class PinMap(BaseModel):
    """The pin map of one node role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(description="node role this map is for")
    default: Name = Field(description="revision used when a node names none")
    revisions: dict[Name, Revision] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> PinMap:
        if self.default not in self.revisions:
            raise ValueError(
                f"default revision {self.default!r} is not in revisions ({', '.join(self.revisions)})"
            )
        return self

    def revision(self, name: str | None = None) -> Revision:
        key = name or self.default
        if key not in self.revisions:
            raise KeyError(key)
        return self.revisions[key]


def load_file(path: Path) -> PinMap:
    """Load and validate one pin map file; raise ConfigError listing the problems by path."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [f"(file): {exc}"]) from None
    if isinstance(data, dict) and "revisions" not in data and "role" not in data:
        data = {"role": path.stem, "default": FLAT_REVISION, "revisions": {FLAT_REVISION: {"pins": data}}}
    try:
        pinmap = PinMap.model_validate(data)
    except ValidationError as exc:
        errs = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(str(path), errs) from None
    if pinmap.role != path.stem:
        raise ConfigError(str(path), [f"role: {pinmap.role!r} does not match the file name {path.name}"])
    return pinmap


@functools.cache
def load_pinmap(role: str, directory: Path = PINMAP_DIR) -> PinMap | None:
    """The pin map of a role, or None when the role has no map file."""
    path = directory / f"{role}.yaml"
    return load_file(path) if path.exists() else None


def all_pinmaps(directory: Path = PINMAP_DIR) -> dict[str, PinMap]:
    return {p.stem: load_file(p) for p in sorted(directory.glob("*.yaml"))}


def resolve(node: Node, directory: Path = PINMAP_DIR) -> dict[str, int | str]:
    """The node's effective pins: its role map's revision, overridden by the node's own ``pins``."""
    pinmap = load_pinmap(node.role, directory)
    base: dict[str, int | str] = {}
    if pinmap is not None:
        base.update(pinmap.revision(node.options.get("hardware")).all_pins())
    base.update(node.pins)
    return base


def check_nodes(cfg: Config, directory: Path = PINMAP_DIR) -> list[str]:
    """Cross-check every node's pins with its role's pin map; errors named by configuration path."""
    errors: list[str] = []
    for i, node in enumerate(cfg.nodes):
        p = f"nodes[{i}]"
        try:
            pinmap = load_pinmap(node.role, directory)
        except ConfigError as exc:
            errors += [f"{p}: pin map of role {node.role}: {e}" for e in exc.errors]
            continue
        hardware: Any = node.options.get("hardware")
        if hardware is not None:
            if pinmap is None:
                errors.append(
                    f"{p}.options.hardware: role {node.role} has no pin map "
                    f"(firmware_config/pinmaps/{node.role}.yaml)"
                )
                continue
            if hardware not in pinmap.revisions:
                errors.append(
                    f"{p}.options.hardware: unknown revision {hardware!r} "
                    f"(known: {', '.join(pinmap.revisions)})"
                )
                continue
        known = pinmap.revision(hardware).all_pins() if pinmap else {}
        for name, pin in node.pins.items():
            if pinmap is not None and name not in known:
                errors.append(
                    f"{p}.pins.{name}: no such pin in the {node.role} pin map "
                    f"(known: {', '.join(sorted(known))})"
                )
            if pin == DISABLED:
                continue
            try:
                bcm_number(pin)
            except ValueError as exc:
                errors.append(f"{p}.pins.{name}: {exc} (or {DISABLED} to leave it out)")
        seen: dict[int, str] = {}
        for name, pin in {**known, **node.pins}.items():
            if pin == DISABLED:
                continue
            try:
                n = bcm_number(pin)
            except ValueError:
                continue
            if n in seen:
                errors.append(f"{p}.pins.{name}: GPIO {n} is already used by {seen[n]}")
            seen[n] = name
    return errors
