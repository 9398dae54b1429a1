"""The schema of a dispenser's ``nodes[].options`` (pydantic), validated by ``edge.dispenser.options``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from waitroom.i18n import LANGUAGES, normalize


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
    print_retries: int = Field(
        1,
        ge=0,
        le=5,
        description="print attempts after a failure before cancelling (not after a ticket broke off while "
        "printing: it may be on paper, it is kept and not printed twice)",
    )
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
