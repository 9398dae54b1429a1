"""``TicketPrinter``: layout -> ESC/POS bytes -> backend, plus the printer's status for the node's health.

printer = TicketPrinter(load_settings(cfg.printer))
result = printer.print_ticket(TicketData(...))     # raises PrinterError when the ticket is not out
printer.query_status()                             # 'ok', 'paper_low', 'paper_out', 'cover_open', ...
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ticket_printer.backends import PROBLEMS, Backend, PrintJob, open_backend
from ticket_printer.escpos_out import EscposRenderer
from ticket_printer.layout import Block, LayoutBuilder, Notice, TicketData
from waitroom.contract import FaultCode
from waitroom.errors import PrinterError

if TYPE_CHECKING:  # the schema (pydantic); a dispenser gets the validated settings as light records
    from ticket_printer.settings import PrinterSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrintResult:
    number: str
    size: int  # bytes handed to the backend
    path: Path | None  # preview PNG or file written, if any
    replaced: tuple[str, ...]  # characters the code page could not hold (printed as substitutes)


class TicketPrinter:
    def __init__(
        self,
        settings: PrinterSettings,
        *,
        backend: Backend | None = None,
        preview_folder: str | Path | None = None,
    ):
        self.settings = settings
        self.width_dots = settings.width_dots
        self.backend = backend or open_backend(settings, preview_folder=preview_folder)
        self.renderer = EscposRenderer(settings.profile, settings.codepage, self.width_dots)
        self._lock = threading.Lock()
        self.status = "unknown"  # last known printer status
        self.status_at = 0.0
        self.last_error = ""
        self.last_fault = ""  # the stable code of last_error (waitroom.contract.FaultCode)
        self._monitor: threading.Thread | None = None
        self._stop = threading.Event()
        log.info(
            "ticket printer: %s, profile %s (%d dots), code page %s",
            self.backend.describe(),
            settings.profile,
            self.width_dots,
            settings.codepage,
        )

    def builder(self) -> LayoutBuilder:
        s = self.settings
        return LayoutBuilder(
            width_dots=self.width_dots,
            profile=s.profile,
            codepage=s.codepage,
            qr_size=s.qr_size,
            cut=s.cut,
            logo=s.logo,
        )

    # -- printing
    def render(self, data: TicketData | Notice) -> tuple[list[Block], bytes, tuple[str, ...]]:
        b = self.builder()
        blocks = b.ticket(data) if isinstance(data, TicketData) else b.notice(data)
        return blocks, self.renderer.render(blocks), tuple(b.replaced)

    def print_ticket(self, data: TicketData | Notice) -> PrintResult:
        """Render and hand the ticket to the backend; raise PrinterError when it did not go out."""
        try:
            blocks, raw, replaced = self.render(data)
        except Exception as exc:  # a ticket that cannot be rendered did not go out either (it is cancelled)
            log.exception("ticket %s could not be rendered", getattr(data, "number", "notice"))
            self.last_error = f"ticket could not be rendered: {type(exc).__name__}: {exc}"
            self.last_fault = FaultCode.TICKET_UNRENDERABLE
            raise PrinterError(self.last_error, fault=FaultCode.TICKET_UNRENDERABLE) from exc
        number = data.number if isinstance(data, TicketData) else "NOTICE"
        job = PrintJob(number, raw, blocks, self.width_dots)
        with self._lock:
            try:
                path = self.backend.send(job)
            except PrinterError as exc:
                self.last_error = str(exc)
                self.last_fault = exc.fault or FaultCode.PRINTER_FAILED
                self.status = "offline" if self.status in ("ok", "unknown", "paper_low") else self.status
                self.status_at = time.time()
                raise
            except Exception as exc:  # a backend bug must not look like a printed ticket
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.last_fault = FaultCode.PRINTER_FAILED
                log.exception("printer backend %s failed", self.backend.describe())
                raise PrinterError(
                    f"printer backend failed: {self.last_error}", fault=FaultCode.PRINTER_FAILED
                ) from exc
            if self.status == "offline":  # it took the bytes, so it is reachable again
                self.status = "ok"
            self.last_error = ""
            self.last_fault = ""
        return PrintResult(number, len(raw), path, replaced)

    # -- status
    def query_status(self) -> str:
        """Ask the printer now (when enabled; else the last known status).

        Without status queries only a print can tell that a printer is back: an ``offline`` learnt from a
        failed ticket turns ``unknown`` after ``status_interval_s``, so the next press tries again instead
        of every press being refused until the node restarts.
        """
        if not self.settings.status_query and self.backend.name not in ("preview", "file"):
            with self._lock:
                waited = time.time() - self.status_at
                if self.status == "offline" and waited >= self.settings.status_interval_s:
                    log.info("printer: trying again after %s", self.last_error or "a failed ticket")
                    self.status, self.status_at = "unknown", time.time()
            return self.status
        with self._lock:
            try:
                status = self.backend.status(self.settings.status_timeout_s)
            except Exception:
                log.exception("printer status query failed")
                status = "unknown"
        if status != self.status:
            log.log(
                logging.WARNING if status in PROBLEMS or status == "paper_low" else logging.INFO,
                "printer status: %s -> %s",
                self.status,
                status,
            )
        self.status, self.status_at = status, time.time()
        return status

    @property
    def can_print(self) -> bool:
        """False while the printer reports a problem that makes a ticket impossible."""
        return self.status not in PROBLEMS

    def start_monitor(self, on_change: Callable[[str], None]) -> None:
        """Query the status every ``status_interval_s`` in the background; ``on_change`` on a change."""

        def loop() -> None:
            last = None
            while True:
                status = self.query_status()
                if status != last:
                    last = status
                    try:
                        on_change(status)
                    except Exception:
                        log.exception("printer status callback failed")
                if self._stop.wait(self.settings.status_interval_s):
                    return

        self._stop.clear()
        self._monitor = threading.Thread(target=loop, name="printer-status", daemon=True)
        self._monitor.start()

    def close(self) -> None:
        self._stop.set()
        if self._monitor:
            self._monitor.join(timeout=2)
        self.backend.close()
