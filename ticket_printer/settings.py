"""The ``printer:`` section of the office configuration, validated when the dispenser starts.

Example (80 mm Epson on the network)::

    printer:
      backend: network          # usb | serial | network | file | preview
      profile: TM-T20II         # python-escpos printer profile (576 dots); POS-5890 for 58 mm / 384 dots
      network: {host: 192.168.10.40, port: 9100}
      logo: logo.png            # optional, relative to the configuration file

Errors name the key (``printer.profile: unknown printer profile 'TM-T2'``) and are raised as ConfigError.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ticket_printer.capabilities import (  # noqa: F401 (re-exported: the printer database's look-ups)
    DEFAULT_CODEPAGE,
    DEFAULT_PROFILE,
    escpos_capabilities,
    profile_codepages,
    profile_width,
    profiles,
)
from ticket_printer.facts import PrinterSettingsMethods
from waitroom.errors import ConfigError

log = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _usb_id(v: Any) -> int:
    if isinstance(v, str):
        try:
            v = int(v, 16)
        except ValueError:
            raise ValueError(f"{v!r} is not a hexadecimal USB id such as 0x04b8") from None
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 0xFFFF:
        raise ValueError("a USB id is a number 0x0000..0xffff")
    return v


class UsbSettings(_Strict):
    vendor_id: int = Field(description="USB vendor id (hex string or number)", examples=["0x04b8"])
    product_id: int = Field(description="USB product id", examples=["0x0e15"])
    in_ep: int = Field(0x82, description="USB input end point (status answers)")
    out_ep: int = Field(0x01, description="USB output end point")
    timeout_ms: int = Field(2000, ge=100, le=30000, description="USB write timeout")

    @field_validator("vendor_id", "product_id", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> int:
        return _usb_id(v)


class SerialSettings(_Strict):
    device: str = Field(description="serial device", examples=["/dev/ttyUSB0", "/dev/serial0"])
    baudrate: int = Field(19200, description="baud rate set on the printer (DIP switches)")
    rtscts: bool = Field(False, description="hardware flow control (RTS/CTS)")
    timeout_s: float = Field(2.0, gt=0, le=30, description="write timeout")


class NetworkSettings(_Strict):
    host: str = Field(min_length=1, description="printer host name or IP address")
    port: int = Field(9100, ge=1, le=65535, description="raw printing port")
    timeout_s: float = Field(3.0, gt=0, le=30, description="connect/send timeout")


class FileSettings(_Strict):
    path: str = Field(
        description="file or device to append the raw bytes to (e.g. /dev/usb/lp0), or an "
        "existing folder: one .bin file per ticket"
    )


class PreviewSettings(_Strict):
    folder: str = Field(
        "tickets",
        description="folder for the PNG previews (relative: in the data directory, "
        "$WAITROOM_DATA_DIR or ./var)",
    )
    keep: int = Field(20, ge=1, le=1000, description="how many of the newest PNGs are kept")


class PrinterSettings(PrinterSettingsMethods, _Strict):
    backend: Literal["usb", "serial", "network", "file", "preview"] = Field(
        "preview", description="where tickets go; preview renders PNGs only (demo)"
    )
    profile: str = Field(
        DEFAULT_PROFILE,
        description="python-escpos printer profile: paper width, code pages, QR and cutter support",
        examples=["TM-T20II", "POS-5890"],
    )
    codepage: str = Field(
        DEFAULT_CODEPAGE, description="code page selected once per ticket; CP858 holds ä ö ü Ä Ö Ü ß and €"
    )
    usb: UsbSettings | None = Field(None, description="a USB printer (backend usb; needs waitroom[usb])")
    serial: SerialSettings | None = Field(
        None, description="a printer on a serial port (backend serial; needs waitroom[serial])"
    )
    network: NetworkSettings | None = Field(None, description="a network printer (backend network)")
    file: FileSettings | None = Field(None, description="raw bytes into a file or device (backend file)")
    preview: PreviewSettings = Field(
        default_factory=PreviewSettings, description="PNG previews instead of printing (backend preview)"
    )
    logo: str | None = Field(
        None,
        description="optional logo image printed at the top (PNG, JPEG or BMP, scaled to fit); a relative "
        "path is relative to the configuration file",
    )
    qr_size: int = Field(
        6,
        ge=2,
        le=16,
        description="QR module size in dots (smaller for a code that would be wider than the paper)",
    )
    cut: Literal["full", "partial", "none"] = Field("partial", description="paper cut after each ticket")
    status_query: bool = Field(True, description="ask the printer for paper/cover status (DLE EOT)")
    status_interval_s: float = Field(10.0, ge=1, le=600, description="seconds between status queries")
    status_timeout_s: float = Field(0.5, gt=0, le=5, description="how long to wait for a status answer")

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        known = profiles()
        if v not in known:
            close = [p for p in known if v.lower()[:4] in p.lower()][:6]
            raise ValueError(
                f"unknown printer profile {v!r}"
                + (f"; similar: {', '.join(close)}" if close else "; see python-escpos capabilities")
            )
        return v

    @model_validator(mode="after")
    def _cross(self) -> PrinterSettings:
        pages = profile_codepages(self.profile)
        if self.codepage.upper() not in pages:
            raise ValueError(
                f"codepage: {self.codepage!r} is not a code page of profile {self.profile} "
                f"(it has {', '.join(sorted(pages)) or 'none'})"
            )
        if self.backend != "preview" and getattr(self, self.backend) is None:
            raise ValueError(f"{self.backend}: section required when printer.backend is {self.backend}")
        return self


def load_settings(
    raw: dict[str, Any] | None, source: str = "<config>", *, base_dir: str | Path | None = None
) -> PrinterSettings:
    """Validate the ``printer:`` dict; raise ConfigError with every problem as ``printer.<key>: message``."""
    try:
        settings = PrinterSettings.model_validate(raw or {})
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling)"
            if not loc and ":" in msg:  # cross-field errors carry their key in front
                loc, msg = msg.split(":", 1)
                msg = msg.strip()
            errors.append(f"printer.{loc}: {msg}" if loc else f"printer: {msg}")
        raise ConfigError(source, errors) from None
    if settings.logo and base_dir is not None and not Path(settings.logo).is_absolute():
        settings = settings.model_copy(update={"logo": str(Path(base_dir) / settings.logo)})
    if settings.logo and not Path(settings.logo).is_file():
        raise ConfigError(source, [f"printer.logo: file {settings.logo} does not exist"])
    if settings.logo:
        from PIL import Image as PILImage

        try:
            with PILImage.open(settings.logo) as img:
                img.verify()
        except Exception as exc:  # an SVG, a PDF, a damaged PNG: every ticket would fail to render
            raise ConfigError(
                source, [f"printer.logo: {settings.logo} is no image Pillow can read (PNG, JPEG, BMP): {exc}"]
            ) from None
    return settings
