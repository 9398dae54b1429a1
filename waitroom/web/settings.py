"""The ``web:`` section of the office configuration, validated like the rest of the file.

Every key is optional::

    web:
      secret_key: "..."          # or $WAITROOM_SECRET_KEY; required in production (no silent default)
      users_db: web-users.db     # staff/admin accounts; relative = inside the data directory
      session_hours: 10          # a login expires after this many hours
      public_rate_per_min: 120   # requests per minute and client address on the public pages and API
      stats_database: null       # the controller's event log, if not at controller.database in the data dir
      ticket_previews: tickets   # demo: folder of the dispenser's ticket PNG previews (in the data dir)
      display_screenshots: display  # demo: folder of the display screenshots (in the data dir)
      trusted_proxies: 0         # reverse proxies in front (nginx: 1); their X-Forwarded-For/-Proto count
      allowed_origins: []        # other origins allowed to POST (besides the app's own), e.g. a kiosk URL
      limits_db: web-limits.db   # rate-limit counters shared by the gunicorn workers (SQLite)
      login_failures_per_user: 5       # failed logins of one user name within login_lockout_min ...
      login_failures_per_address: 20   # ... or from one address, then 429 until the window ends
      login_lockout_min: 15
      checkin_failures_per_hour: 30    # wrong codes on the public check-in page per client network, then 429
      max_streams: 5000          # open live streams per worker (each is a greenlet, a few kB)
      whatif_max_days: 20        # a what-if comparison of more days is refused with 400
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from waitroom.config import Config
from waitroom.errors import ConfigError

SECRET_ENV = "WAITROOM_SECRET_KEY"


class WebSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    secret_key: str | None = Field(
        None, min_length=16, description=f"Flask secret key (sessions, CSRF); or ${SECRET_ENV}"
    )
    users_db: str = Field("web-users.db", description="SQLite file with the staff and admin accounts")
    session_hours: float = Field(10.0, gt=0, le=24 * 14, description="hours until a login expires")
    public_rate_per_min: int = Field(
        120, ge=1, le=100000, description="requests per minute and client on public pages and API"
    )
    stats_database: str | None = Field(
        None,
        description="controller event log for the statistics; default "
        "controller.database in the data directory",
    )
    ticket_previews: str = Field("tickets", description="demo: folder of ticket PNG previews")
    display_screenshots: str = Field("display", description="demo: folder of display screenshots")
    trusted_proxies: int = Field(
        0, ge=0, le=5, description="number of reverse proxies in front whose X-Forwarded-* headers count"
    )
    allowed_origins: list[str] = Field(
        default_factory=list, description="further origins (scheme://host[:port]) allowed to send POSTs"
    )
    limits_db: str = Field("web-limits.db", description="SQLite file of the rate-limit counters")
    login_failures_per_user: int = Field(5, ge=1, le=1000, description="failed logins per user name")
    login_failures_per_address: int = Field(20, ge=1, le=10000, description="failed logins per address")
    login_lockout_min: float = Field(15.0, gt=0, le=1440, description="window and lockout time in minutes")
    checkin_failures_per_hour: int = Field(
        30,
        ge=1,
        le=100000,
        description="unknown codes typed on the public check-in page per client network (an IPv4 address, "
        "an IPv6 /64) within an hour; then it answers 429 until the hour ends (the dispenser and the "
        "reception still check in)",
    )
    max_streams: int = Field(5000, ge=1, le=100000, description="open live streams per worker")
    whatif_max_days: int = Field(20, ge=1, le=365, description="most days one what-if comparison may run")


def web_settings(cfg: Config, source: str = "<config>") -> WebSettings:
    """Validate ``cfg.web``; raise ConfigError naming the key (``web.session_hours: ...``)."""
    try:
        return WebSettings.model_validate(cfg.web)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            key = ".".join(str(p) for p in e["loc"])
            msg = "unknown key (check the spelling)" if e["type"] == "extra_forbidden" else e["msg"]
            errors.append(f"web.{key}: {msg}")
        raise ConfigError(source, errors) from None


def in_data_dir(data_dir: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else data_dir / p


def secret_key(settings: WebSettings, *, demo: bool, generate: Any = None) -> str:
    """The secret from the configuration or $WAITROOM_SECRET_KEY; only the demo may generate one."""
    key = os.environ.get(SECRET_ENV) or settings.secret_key
    if key:
        if len(key) < 16:
            raise ConfigError(
                "<environment>", [f"{SECRET_ENV}: the secret key must have at least 16 characters"]
            )
        return key
    if demo:
        import secrets

        return (generate or secrets.token_hex)(32)
    raise ConfigError(
        "<config>",
        [
            f"web.secret_key: missing; set it in the configuration or in ${SECRET_ENV} "
            "(e.g. python3 -c 'import secrets; print(secrets.token_hex(32))')"
        ],
    )
