"""The office summary as screens show it: the dynamic ``state`` message joined with the static configuration.

The controller's retained ``state`` carries only what changes (counts, expected waits, counter states, calls),
so its size stays bounded; names, zones, spoken names and the services of each counter are in the office
configuration every node and the web app load anyway. ``with_static`` joins the two into the shape the
displays, counters and pages render. Pure and cheap (a few dicts per state message).
"""

from __future__ import annotations

from typing import Any


def with_static(summary: dict[str, Any], cfg: Any) -> dict[str, Any]:
    """A copy of ``summary`` with the ``name`` of the office, of each service and counter, and the
    counters' ``spoken``, ``zone`` and ``services`` from ``cfg`` (a ``waitroom.config.Config``)."""
    services = {s.id: s for s in cfg.services}
    counters = {c.id: c for c in cfg.counters}
    out = dict(summary)
    out["name"] = cfg.office.name
    out["services"] = [_service(s, services.get(s.get("id"))) for s in summary.get("services", [])]
    out["counters"] = [_counter(c, counters.get(c.get("id"))) for c in summary.get("counters", [])]
    return out


def _service(entry: dict[str, Any], svc: Any) -> dict[str, Any]:
    if svc is None:
        return entry
    return {**entry, "name": svc.name.as_dict()}


def _counter(entry: dict[str, Any], c: Any) -> dict[str, Any]:
    if c is None:
        return entry
    return {
        **entry,
        "name": c.name.as_dict(),
        "spoken": (c.spoken or c.name).as_dict(),
        "zone": c.zone,
        "services": list(c.services),
    }
