"""The behaviour of the office configuration's objects, without pydantic.

The schema is defined once, in ``waitroom.config`` (pydantic). Its models take their methods from the mixins
here, and so do the light records a node builds from its validated-config cache (``waitroom.nodeconfig``):
a node process then has the same attribute names and the same methods without importing pydantic (issue 17).
A mixin holds methods only, never fields, not even annotations (pydantic would take them as fields): the
fields come from the schema.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from waitroom.contract import Role
from waitroom.i18n import LANGUAGES

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class TextsMethods:
    """``Texts``: a user-facing text in German and other languages."""

    def get(self, lang: str) -> str:
        """The text in ``lang`` (an i18n code such as "de-LS"), else German."""
        value = getattr(self, lang.replace("-", "_"), None) if lang in LANGUAGES and lang != "de" else None
        return value or self.de

    def as_dict(self) -> dict[str, str]:
        """{code: text} for the languages given, e.g. {"de": ..., "tr": ...} (JSON, MQTT, templates)."""
        return {code: text for code in LANGUAGES if (text := getattr(self, code.replace("-", "_"), None))}


class OfficeMethods:
    """``OfficeInfo``: the office's day and opening hours in its time zone."""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def today(self, now: float) -> str:
        return self._day(now)[2]

    def opening(self, now: float) -> tuple[float, float] | None:
        """(open, close) epoch seconds of the day containing ``now``, or None when closed that day."""
        return self._day(now)[3]

    def _day(self, now: float) -> tuple[float, float, str, tuple[float, float] | None]:
        """(start, end, ISO date, opening) of the local day containing ``now``; the last one is kept, so the
        command path asks the time zone database once a day, not on every command (DST-safe: the day's
        bounds are its local midnights)."""
        key = (self.timezone, id(self.hours))  # a model_copy with other hours or zone has its own days
        cached = self.__dict__.get("_day_cache")
        if cached is not None and cached[0] == key and cached[1][0] <= now < cached[1][1]:
            return cached[1]
        local = dt.datetime.fromtimestamp(now, self.tz)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        following = start + dt.timedelta(days=1)  # aware arithmetic is wall time: the next local midnight
        day = (start.timestamp(), following.timestamp(), local.date().isoformat(), self._opening(local))
        self.__dict__["_day_cache"] = (key, day)
        return day

    def _opening(self, local: dt.datetime) -> tuple[float, float] | None:
        span = self.hours.get(WEEKDAYS[local.weekday()])
        if not span:
            return None

        def at(hhmm: str) -> float:
            h, m = map(int, hhmm.split(":"))
            t = local.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()
            return t + 59.999 if hhmm == "23:59" else t  # "23:59" closes at midnight

        return at(span[0]), at(span[1])


class NodeMethods:
    """``Node``: a device of the office."""

    def accounts(self) -> list[str]:
        """The node's MQTT user names: its id, and for a web node with several workers one more each."""
        return [self.id] + [f"{self.id}.{k}" for k in range(2, self.workers + 1)]


@dataclass(frozen=True)
class _Index:
    key: tuple[int, int, int]
    services: dict[str, Any]
    counters: dict[str, Any]
    nodes: dict[str, Any]
    roles: dict[str, Role]


class ConfigLookups:
    """``Config``: look-ups by id (indexed once: the controller asks on every command)."""

    @property
    def _index(self) -> _Index:
        key = (id(self.services), id(self.counters), id(self.nodes))
        idx = self.__dict__.get("_lookup")
        if idx is None or idx.key != key:  # first use, or a model_copy with other lists
            idx = _Index(
                key=key,
                services={s.id: s for s in self.services},
                counters={c.id: c for c in self.counters},
                nodes={n.id: n for n in self.nodes},
                roles={n.id: Role(n.role) for n in self.nodes},
            )
            self.__dict__["_lookup"] = idx
        return idx

    def service(self, sid: str) -> Any:
        return self._index.services[sid]

    def counter(self, cid: str) -> Any:
        return self._index.counters[cid]

    def node(self, nid: str) -> Any:
        return self._index.nodes[nid]

    @property
    def service_ids(self) -> frozenset[str]:
        return self._index.services.keys()  # type: ignore[return-value]

    @property
    def counter_ids(self) -> frozenset[str]:
        return self._index.counters.keys()  # type: ignore[return-value]

    def role_of(self, node_id: str) -> Role | None:
        if node_id == "controller":
            return Role.CONTROLLER
        return self._index.roles.get(node_id)


def prepared(cfg: Any, key: str) -> Any:
    """What the validating process prepared for this node under ``key`` (``waitroom.nodeconfig``: validated
    node settings, resolved pins), or None: then the node validates it itself, as with a ``Config``."""
    return (getattr(cfg, "prepared", None) or {}).get(key)
