"""A controller's refusal said as one German (or English) sentence on the staff pages.

The controller answers with a stable code, an English message for the log and, where the detail matters, the
details as fields (``error.data``: ``{"counter": "c2", "state": "paused"}``). The page never shows the English
message: it takes the first of these texts that exists and whose placeholders the reply's fields fill (not
the command's own arguments: a transfer names two counters, and only the controller knows which it meant):

1. ``web.err.<code>.<state>``: the situation the fields name (a paused counter, a request already taken);
2. ``web.err.<code>.detail``: the code with its details (which counter, which ticket);
3. ``web.err.<code>``: the code alone, a complete sentence without placeholders;
4. ``web.err.unknown_code``: a code this web app does not know yet (a newer controller), with the code.

Counter and service ids become their names in the page's language; a ticket number or booking code is shown
as the controller or the staff member wrote it, in capitals.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from waitroom import i18n
from waitroom.config import Config
from waitroom.i18n import N_

# the reply's fields a sentence may name
FIELDS = ("counter", "service", "ticket", "code", "request", "state")

# the texts with details and situations (keys built at run time; listed so that extraction keeps them)
KEYS = (
    N_("web.err.unknown_code"),
    N_("web.err.bad_json"),
    N_("web.err.unknown_op"),
    N_("web.err.unknown_node"),
    N_("web.err.nobody_waiting.detail"),
    N_("web.err.not_serving.detail"),
    N_("web.err.counter_closed.closed"),
    N_("web.err.counter_closed.paused"),
    N_("web.err.unknown_ticket.detail"),
    N_("web.err.unknown_ticket.no_show"),
    N_("web.err.unknown_counter.detail"),
    N_("web.err.unknown_service.detail"),
    N_("web.err.appointment_cancelled.detail"),
    N_("web.err.invalid_state.acknowledged"),
    N_("web.err.invalid_state.checked_in"),
    N_("web.err.invalid_state.called"),
    N_("web.err.invalid_state.served"),
    N_("web.err.invalid_state.no_show"),
    N_("web.err.invalid_state.cancelled"),
    N_("web.err.invalid_state.expired"),
    N_("web.err.invalid_state.serving"),
    N_("web.err.invalid_state.idle"),
)


def values(cfg: Config, lang: str, data: Mapping[str, Any] | None) -> dict[str, str]:
    """The placeholders' values from the reply's fields, counter and service ids as their names."""
    raw: dict[str, str] = {}
    for field in FIELDS:
        v = (data or {}).get(field)
        if isinstance(v, str) and v.strip():
            raw[field] = v.strip()
    out = dict(raw)
    if "counter" in raw and raw["counter"] in cfg.counter_ids:
        out["counter"] = cfg.counter(raw["counter"]).name.get(lang)
    if "service" in raw and raw["service"] in cfg.service_ids:
        out["service"] = cfg.service(raw["service"]).name.get(lang)
    for field in ("ticket", "code"):
        if field in out:
            out[field] = out[field].upper()
    return {k: v[:40] for k, v in out.items()}


def text(cfg: Config, lang: str, code: str, data: Mapping[str, Any] | None = None) -> str:
    """The sentence for a refusal ``code`` with the reply's fields ``data`` (the order: see the module)."""
    known = i18n.catalog("de")
    vals = values(cfg, lang, data)
    candidates = [f"web.err.{code}.detail", f"web.err.{code}"]
    if "state" in vals:
        candidates.insert(0, f"web.err.{code}.{vals['state']}")
    for key in candidates:
        if key in known and i18n.placeholders(known[key]) <= set(vals):
            return i18n.t(key, lang, **vals)
    return i18n.t("web.err.unknown_code", lang, code=code[:40])
