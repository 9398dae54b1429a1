"""Intake (Annahmeschluss): stopped and reopened by staff, or automatically by the forecast."""

from __future__ import annotations

import logging
from typing import Any

from waitroom.contract import Role
from waitroom.ops.base import OpsBase
from waitroom.predict import intake_decision

log = logging.getLogger("waitroom.controller")


class IntakeOps(OpsBase):
    def intake_open(self, sid: str) -> tuple[bool, str]:
        i = self.state.intake.get(sid)
        if i is not None:
            return i.open, i.reason
        return True, ""

    def _auto_intake(self, now: float, fresh_forecast: bool = True) -> None:
        """Annahmeschluss: stop or reopen walk-in intake when the predicted completion crosses closing."""
        if not self.cfg.steering.intake_stop.enabled:
            return
        # the tick is off the command path: decide on a forecast of the current state (the service keeps
        # the last one at most a fraction of a second behind, and passes fresh_forecast=False)
        stale = self._forecast_seq != self.state.seq
        fc = self.refresh_forecast() if stale and fresh_forecast else self.forecast()
        for svc in self.cfg.services:
            change = (
                intake_decision(self.cfg, fc, svc.id, now, self.state.intake.get(svc.id))
                if svc.walk_in
                else None
            )
            if change is not None:
                log.info("intake for %s automatically %s", svc.id, "reopened" if change[0] else "stopped")
                self._emit("intake_set", service=svc.id, open=change[0], reason=change[1], manual=False)

    def op_intake_set(
        self, node_id: str, role: Role, service: Any, open: Any = None, reason: Any = "", auto: Any = False
    ) -> dict[str, Any]:
        sid = self._service(service)
        text = self._reason(reason, 120)
        if self._bool(auto, "auto"):
            self._emit("intake_set", service=sid, auto=True)
        else:
            self._emit(
                "intake_set",
                service=sid,
                open=self._bool(open, "open"),
                reason=text,
                manual=True,
            )
        is_open, why = self.intake_open(sid)
        return {"intake": {"service": sid, "open": is_open, "reason": why}}
