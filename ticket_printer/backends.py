"""Printer backends: where the ESC/POS bytes go, and how the printer's status is asked.

``usb`` (pyusb through python-escpos), ``serial`` (pyserial), ``network`` (raw TCP port 9100), ``file`` (raw
bytes appended to a file or device, or one file per ticket in a folder) and ``preview`` (a PNG per ticket).
Every backend raises ``PrinterError`` with a message that says what to do; missing optional libraries name
the package to install.

Status (ESC/POS real-time status, ``DLE EOT n``): n=1 printer (bit 3 offline), n=2 offline cause (bit 2 cover
open, bit 5 paper end, bit 6 error), n=4 roll paper sensor (bits 2-3 near end, bits 5-6 paper end). A printer
that does not answer gives ``unknown``, one that cannot be reached ``offline``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ticket_printer.layout import Block
from waitroom.contract import FaultCode
from waitroom.errors import PrinterError
from waitroom.paths import in_data_dir

if TYPE_CHECKING:  # the schema (pydantic); a dispenser gets the validated settings as light records
    from ticket_printer.settings import (
        FileSettings,
        NetworkSettings,
        PrinterSettings,
        SerialSettings,
        UsbSettings,
    )

log = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
STATUSES = ("ok", "paper_low", "paper_out", "cover_open", "offline", "error", "unknown")
PROBLEMS = ("paper_out", "cover_open", "offline", "error")  # a ticket cannot be printed


@dataclass(frozen=True)
class PrintJob:
    number: str  # ticket number or "notice" (used in file names only)
    data: bytes  # ESC/POS bytes
    blocks: list[Block]  # the layout (the preview renders it)
    width_dots: int


def valid_status_byte(b: int) -> bool:
    """Real-time status bytes have bits 1 and 4 set and bits 0 and 7 clear."""
    return b & 0x93 == 0x12


def decode_status(answers: dict[int, int | None]) -> str:
    """Map DLE EOT answers {n: byte or None} to one of STATUSES (the most severe one)."""
    printer = answers.get(1)
    if printer is None or not valid_status_byte(printer):
        return "unknown"
    cause, paper = answers.get(2), answers.get(4)
    if cause is not None and valid_status_byte(cause):
        if cause & 0x04:
            return "cover_open"
        if cause & 0x20:
            return "paper_out"
        if cause & 0x40:
            return "error"
    paper_ok = paper is not None and valid_status_byte(paper)
    if paper_ok and paper & 0x60:
        return "paper_out"
    if printer & 0x08:
        return "offline"
    if paper_ok and paper & 0x0C:
        return "paper_low"
    return "ok"


class Backend:
    """Base: ``send(job)`` hands the ticket over, ``status()`` asks the printer (or says ``unknown``)."""

    name = "backend"

    def send(self, job: PrintJob) -> Path | None:
        raise NotImplementedError

    def status(self, timeout: float) -> str:
        return "unknown"

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name


class _StreamBackend(Backend):
    """A backend with a byte stream that can also be read (status answers)."""

    def _query(self, write: Any, read: Any, timeout: float) -> str:
        answers: dict[int, int | None] = {}
        for n in (1, 2, 4):
            write(DLE_EOT + bytes([n]))
            answers[n] = read(timeout)
            if answers[n] is None:
                break
        return decode_status(answers)


class NetworkBackend(_StreamBackend):
    """Raw TCP (port 9100). One short connection per ticket and per status query: no stale sockets."""

    name = "network"

    def __init__(self, s: NetworkSettings):
        self.s = s

    def describe(self) -> str:
        return f"network {self.s.host}:{self.s.port}"

    def _connect(self) -> socket.socket:
        try:
            sock = socket.create_connection((self.s.host, self.s.port), timeout=self.s.timeout_s)
        except OSError as exc:
            raise PrinterError(
                f"printer {self.s.host}:{self.s.port} not reachable: {exc}; check the cable, "
                "the printer's IP address and printer.network in the configuration",
                fault=FaultCode.PRINTER_UNREACHABLE,
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def send(self, job: PrintJob) -> None:
        sock = self._connect()
        try:
            sock.sendall(job.data)
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise PrinterError(
                f"sending to printer {self.s.host}:{self.s.port} failed: {exc}",
                fault=FaultCode.PRINTER_SEND_FAILED,
            ) from None
        finally:
            sock.close()

    def status(self, timeout: float) -> str:
        try:
            sock = self._connect()
        except PrinterError:
            return "offline"
        try:

            def read(t: float) -> int | None:
                sock.settimeout(t)
                try:
                    data = sock.recv(1)
                except (TimeoutError, OSError):
                    return None
                return data[0] if data else None

            return self._query(sock.sendall, read, timeout)
        except OSError:
            return "offline"
        finally:
            sock.close()


class SerialBackend(_StreamBackend):
    """RS-232 / USB-serial printers through pyserial; the port stays open and is reopened after an error."""

    name = "serial"

    def __init__(self, s: SerialSettings):
        try:
            import serial  # noqa: F401
        except ImportError:
            raise PrinterError(
                "printer.backend serial needs pyserial: pip install 'waitroom[serial]' "
                "(or apt-get install python3-serial)"
            ) from None
        self.s = s
        self._port: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"serial {self.s.device} @ {self.s.baudrate}"

    def _open(self) -> Any:
        import serial

        if self._port is None:
            try:
                self._port = serial.Serial(
                    self.s.device,
                    self.s.baudrate,
                    rtscts=self.s.rtscts,
                    write_timeout=self.s.timeout_s,
                    timeout=0.5,
                )
            except (serial.SerialException, OSError) as exc:
                raise PrinterError(
                    f"cannot open serial printer {self.s.device}: {exc}", fault=FaultCode.PRINTER_UNREACHABLE
                ) from None
        return self._port

    def _drop(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:
                log.debug("closing %s", self.s.device, exc_info=True)
        self._port = None

    def send(self, job: PrintJob) -> None:
        import serial

        with self._lock:
            port = self._open()
            try:
                port.write(job.data)
                port.flush()
            except (serial.SerialException, OSError) as exc:
                self._drop()
                raise PrinterError(
                    f"writing to serial printer {self.s.device} failed: {exc}",
                    fault=FaultCode.PRINTER_SEND_FAILED,
                ) from None

    def status(self, timeout: float) -> str:
        import serial

        with self._lock:
            try:
                port = self._open()
                port.reset_input_buffer()
            except (PrinterError, serial.SerialException, OSError):
                self._drop()
                return "offline"

            def read(t: float) -> int | None:
                port.timeout = t
                data = port.read(1)
                return data[0] if data else None

            try:
                return self._query(port.write, read, timeout)
            except (serial.SerialException, OSError):
                self._drop()
                return "offline"

    def close(self) -> None:
        with self._lock:
            self._drop()


class UsbBackend(_StreamBackend):
    """USB printers through python-escpos' Usb class (needs pyusb and access to the device: udev rule)."""

    name = "usb"

    def __init__(self, s: UsbSettings, profile: str):
        try:
            import usb.core  # noqa: F401
        except ImportError:
            raise PrinterError(
                "printer.backend usb needs pyusb: pip install 'waitroom[usb]' "
                "(and apt-get install libusb-1.0-0)"
            ) from None
        self.s = s
        self.profile = profile
        self._dev: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"usb {self.s.vendor_id:04x}:{self.s.product_id:04x}"

    def _open(self) -> Any:
        if self._dev is None:
            from escpos.printer import Usb

            try:
                dev = Usb(
                    self.s.vendor_id,
                    self.s.product_id,
                    timeout=self.s.timeout_ms,
                    in_ep=self.s.in_ep,
                    out_ep=self.s.out_ep,
                    profile=self.profile,
                )
                dev.open()
            except Exception as exc:
                raise PrinterError(
                    f"USB printer {self.describe()} not found or not accessible: {exc}; check "
                    "the cable and the udev rule (firmware_config/)",
                    fault=FaultCode.PRINTER_UNREACHABLE,
                ) from None
            self._dev = dev
        return self._dev

    def send(self, job: PrintJob) -> None:
        with self._lock:
            dev = self._open()
            try:
                dev._raw(job.data)
            except Exception as exc:
                self._dev = None
                raise PrinterError(
                    f"writing to USB printer {self.describe()} failed: {exc}",
                    fault=FaultCode.PRINTER_SEND_FAILED,
                ) from None

    def status(self, timeout: float) -> str:
        with self._lock:
            try:
                dev = self._open()
            except PrinterError:
                return "offline"

            def read(t: float) -> int | None:
                try:
                    data = dev._read()
                except Exception:
                    return None
                return data[0] if data else None

            try:
                return self._query(dev._raw, read, timeout)
            except Exception:
                self._dev = None
                return "offline"


class FileBackend(Backend):
    """Raw bytes appended to a file or device, or ``<folder>/ticket-...bin`` when the path is a folder."""

    name = "file"

    def __init__(self, s: FileSettings):
        self.path = Path(s.path)

    def describe(self) -> str:
        return f"file {self.path}"

    def send(self, job: PrintJob) -> Path:
        from ticket_printer.preview import file_name

        target = (
            self.path / file_name(job.number).replace(".png", ".bin") if self.path.is_dir() else self.path
        )
        try:
            f = open(target, "ab")  # noqa: SIM115 - closed below, also after a write that broke off
        except OSError as exc:
            raise PrinterError(
                f"cannot write printer data to {target}: {exc.strerror}",
                fault=FaultCode.PRINTER_OUTPUT_UNWRITABLE,
            ) from None
        try:
            f.write(job.data)
            f.flush()
        except OSError as exc:
            device = not stat.S_ISREG(os.fstat(f.fileno()).st_mode)
            with contextlib.suppress(OSError):
                f.close()
            if device:  # a printer's device (/dev/usb/lp0): the start of the ticket may be on paper
                raise PrinterError(
                    f"writing to printer device {target} broke off: {exc.strerror}",
                    fault=FaultCode.PRINTER_SEND_FAILED,
                ) from None
            raise PrinterError(
                f"cannot write printer data to {target}: {exc.strerror}",
                fault=FaultCode.PRINTER_OUTPUT_UNWRITABLE,
            ) from None
        f.close()
        return target

    def status(self, timeout: float) -> str:
        if self.path.is_dir():
            return "ok" if os.access(self.path, os.W_OK) else "offline"
        if self.path.exists():
            return "ok" if os.access(self.path, os.W_OK) else "offline"
        return "ok" if os.access(self.path.parent, os.W_OK) else "offline"


class PreviewBackend(Backend):
    """Renders each ticket as a PNG in a folder and keeps the newest ``keep`` (demo and web)."""

    name = "preview"

    def __init__(self, folder: str | Path, keep: int):
        self.folder = Path(folder)
        self.keep = keep
        self.last: Path | None = None

    def describe(self) -> str:
        return f"preview {self.folder}"

    def send(self, job: PrintJob) -> Path:
        from ticket_printer.preview import render_png, save_png

        try:
            self.last = save_png(render_png(job.blocks, job.width_dots), self.folder, job.number, self.keep)
        except OSError as exc:
            raise PrinterError(
                f"cannot write the ticket preview to {self.folder}: {exc}",
                fault=FaultCode.PRINTER_OUTPUT_UNWRITABLE,
            ) from None
        return self.last

    def status(self, timeout: float) -> str:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return "offline"
        return "ok" if os.access(self.folder, os.W_OK) else "offline"


def open_backend(s: PrinterSettings, *, preview_folder: str | Path | None = None) -> Backend:
    """The backend named by ``printer.backend`` (``preview_folder`` overrides the preview folder)."""
    if s.backend == "network" and s.network:
        return NetworkBackend(s.network)
    if s.backend == "serial" and s.serial:
        return SerialBackend(s.serial)
    if s.backend == "usb" and s.usb:
        return UsbBackend(s.usb, s.profile)
    if s.backend == "file" and s.file:
        return FileBackend(s.file)
    return PreviewBackend(preview_folder or in_data_dir(s.preview.folder), s.preview.keep)
