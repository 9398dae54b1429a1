"""Ticket printing: layout, ESC/POS rendering (python-escpos), printer backends and the PNG preview."""

from typing import Any

from ticket_printer.layout import Notice, TicketData
from ticket_printer.printer import PrintResult, TicketPrinter

__all__ = ["Notice", "PrintResult", "PrinterSettings", "TicketData", "TicketPrinter", "load_settings"]


def __getattr__(name: str) -> Any:
    """The ``printer:`` schema (pydantic) only when asked for: a dispenser that starts from its
    validated-config cache prints without it (issue 17)."""
    if name in ("PrinterSettings", "load_settings"):
        from ticket_printer import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
