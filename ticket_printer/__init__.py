"""Ticket printing: layout, ESC/POS rendering (python-escpos), printer backends and the PNG preview."""

from ticket_printer.layout import Notice, TicketData
from ticket_printer.printer import PrintResult, TicketPrinter
from ticket_printer.settings import PrinterSettings, load_settings

__all__ = ["Notice", "PrintResult", "PrinterSettings", "TicketData", "TicketPrinter", "load_settings"]
