"""A dispenser's settings: ``nodes[].options`` (schema in ``edge.dispenser.schema``), its pins, its service
buttons and its printer settings.

Each is validated when the node starts; a node started from its validated-config cache
(``waitroom.nodeconfig``) finds them validated already in ``cfg.prepared`` and does not import pydantic.
``prepare`` is what the validating process runs for a dispenser.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waitroom.configbase import prepared
from waitroom.errors import ConfigError
from waitroom.paths import data_dir as config_data_dir

if TYPE_CHECKING:
    from edge.dispenser.schema import DispenserOptions
    from ticket_printer.settings import PrinterSettings
    from waitroom.config import Config, Node

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


def node_index(cfg: Config, node: Node) -> int:
    return next((i for i, n in enumerate(cfg.nodes) if n.id == node.id), 0)


def __getattr__(name: str) -> Any:
    if name == "DispenserOptions":  # the schema, imported when asked for (it loads pydantic)
        from edge.dispenser.schema import DispenserOptions

        return DispenserOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_options(cfg: Config, node: Node) -> DispenserOptions:
    done = prepared(cfg, "options")
    if done is not None:
        return done
    from pydantic import ValidationError

    from edge.dispenser.schema import DispenserOptions

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
    done = prepared(cfg, "pins")
    if done is not None:
        return dict(done)
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


def printer_settings(cfg: Config) -> PrinterSettings:
    """The office's ``printer:`` settings (``ticket_printer.settings``); raises ConfigError naming the key."""
    done = prepared(cfg, "printer")
    if done is not None:
        known = prepared(cfg, "printer_facts")
        if known is not None:  # python-escpos' facts of the profile, read where the file was validated
            from ticket_printer.facts import PrinterFacts, register

            register(PrinterFacts.from_dict(known))
        return done
    from ticket_printer.settings import load_settings

    return load_settings(cfg.printer, "printer")


def prepare(cfg: Config, node: Node) -> dict[str, Any]:
    """What a dispenser validates at start, for its validated-config cache (``waitroom.nodeconfig``)."""
    from ticket_printer.facts import facts

    done: dict[str, Any] = {}
    errors: list[str] = []
    for key, check in (("options", load_options), ("pins", resolve_pins), ("printer", printer_settings)):
        try:
            done[key] = check(cfg, node) if key != "printer" else check(cfg)
        except ConfigError as exc:  # every part's errors at once, not only the first part's
            errors += exc.errors
    if errors:
        raise ConfigError("dispenser", errors)
    printer = done["printer"]
    return {**done, "printer_facts": facts(printer.profile, printer.codepage).to_dict()}
