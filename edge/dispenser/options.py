"""A dispenser's settings: ``nodes[].options`` (pydantic), its pins and its service buttons."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from waitroom.config import Config, Node
from waitroom.config import data_dir as config_data_dir
from waitroom.errors import ConfigError
from waitroom.i18n import LANGUAGES, normalize

log = logging.getLogger(__name__)

MAX_BUTTONS = 6
# Default pin map (BCM numbers), the same as firmware_config/pinmaps/dispenser.yaml. button<i> is the i-th
# service of the node's ``services``; optional parts can be switched off with "none" in ``nodes[].pins``.
DEFAULT_PINS: dict[str, int] = {
    "button1": 5,
    "button2": 6,
    "button3": 13,
    "button4": 19,
    "button5": 26,
    "button6": 21,
    "led1": 12,
    "led2": 16,
    "led3": 20,
    "led4": 25,
    "led5": 24,
    "led6": 23,
    "priority": 17,
    "priority_led": 27,
    "lang": 22,
    "lang_led": 9,
    "status_led": 4,
    "buzzer": 18,
}
PIN_NAMES = frozenset(DEFAULT_PINS)
OFF = ("", "none", "off", "-")


class DispenserOptions(BaseModel):
    """``nodes[].options`` of a dispenser."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_timeout_s: float = Field(1.0, gt=0, le=10, description="wait for the controller per attempt")
    request_retries: int = Field(1, ge=0, le=5, description="repeats (same request id) before going offline")
    lease_size: int = Field(10, ge=1, le=200, description="numbers leased per service for offline issuing")
    lease_low: int = Field(3, ge=0, le=200, description="lease a new block when fewer numbers remain")
    press_interval_s: float = Field(3.0, ge=0, le=60, description="same button again within this: ignored")
    burst: int = Field(4, ge=1, le=50, description="tickets in a row before the per-minute limit applies")
    per_minute: float = Field(10.0, gt=0, le=600, description="sustained tickets per minute (all buttons)")
    priority_window_s: float = Field(10.0, gt=0, le=120, description="priority button arms the next ticket")
    lang_window_s: float = Field(30.0, gt=0, le=600, description="language choice holds this long")
    languages: tuple[str, ...] = Field(
        ("de", "en"),
        min_length=1,
        max_length=len(LANGUAGES),
        description="languages the language button steps through, the first is the default "
        f"(codes: {', '.join(LANGUAGES)})",
        examples=[["de", "en", "tr", "ar", "uk", "ru", "de-LS"]],
    )
    debounce_ms: float = Field(30.0, ge=0, le=500, description="contact bounce filter")
    stuck_s: float = Field(10.0, ge=1, le=600, description="a button held this long counts as stuck")
    print_retries: int = Field(1, ge=0, le=5, description="print attempts after a failure before cancelling")
    scanner: str | None = Field(None, description="booking-code scanner: evdev device path, or '-' for stdin")
    scanner_layout: Literal["de", "us"] = Field("de", description="keyboard layout the scanner types in")
    hardware: str | None = Field(
        None, description="pin map revision (firmware_config/pinmaps/dispenser.yaml)"
    )
    data_dir: str | None = Field(
        None, description="folder of the offline-number store (default: $WAITROOM_DATA_DIR or ./var)"
    )

    @field_validator("languages")
    @classmethod
    def _languages(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        codes = []
        for code in v:
            canonical = normalize(code)
            if canonical is None:
                raise ValueError(f"unknown language {code!r}; known: {', '.join(LANGUAGES)}")
            codes.append(canonical)
        if len(set(codes)) != len(codes):
            raise ValueError(f"languages {list(v)} name a language twice")
        return tuple(codes)


def node_index(cfg: Config, node: Node) -> int:
    return next((i for i, n in enumerate(cfg.nodes) if n.id == node.id), 0)


def load_options(cfg: Config, node: Node) -> DispenserOptions:
    try:
        return DispenserOptions.model_validate(node.options)
    except ValidationError as exc:
        p = f"nodes[{node_index(cfg, node)}].options"
        errors = [
            f"{p}.{'.'.join(map(str, e['loc']))}: "
            + ("unknown option" if e["type"] == "extra_forbidden" else e["msg"])
            for e in exc.errors()
        ]
        raise ConfigError("dispenser", errors) from None


def button_services(cfg: Config, node: Node) -> list[str]:
    """The services on the node's buttons, in order (default: every walk-in service)."""
    return list(node.services) if node.services else [s.id for s in cfg.services if s.walk_in]


def _base_pins(cfg: Config, node: Node) -> dict[str, int | str]:
    """The pin map revision (firmware_config/pinmaps/dispenser.yaml) or DEFAULT_PINS, plus node.pins."""
    p = f"nodes[{node_index(cfg, node)}]"
    try:
        from firmware_config.pins import resolve
    except ImportError:  # a node image without the firmware_config package
        return {**DEFAULT_PINS, **node.pins}
    try:
        return resolve(node)
    except KeyError as exc:
        raise ConfigError("dispenser", [f"{p}.options.hardware: unknown revision {exc}"]) from None


def resolve_pins(cfg: Config, node: Node) -> dict[str, int | str | None]:
    """Pins by name (None = not fitted); raises ConfigError naming the bad key."""
    p = f"nodes[{node_index(cfg, node)}].pins"
    errors = []
    pins: dict[str, int | str | None] = {}
    for key, value in _base_pins(cfg, node).items():
        if key not in PIN_NAMES:
            errors.append(f"{p}.{key}: unknown pin name (known: {', '.join(sorted(PIN_NAMES))})")
            continue
        pins[key] = None if isinstance(value, str) and value.lower() in OFF else value
    services = button_services(cfg, node)
    if len(services) > MAX_BUTTONS:
        errors.append(f"nodes[{node_index(cfg, node)}].services: at most {MAX_BUTTONS} service buttons")
    for i, sid in enumerate(services[:MAX_BUTTONS], start=1):
        if pins.get(f"button{i}") is None:
            errors.append(f"{p}.button{i}: service {sid} needs a button pin")
    if errors:
        raise ConfigError("dispenser", errors)
    return pins


def data_dir(options: DispenserOptions) -> Path:
    return config_data_dir(options.data_dir)
