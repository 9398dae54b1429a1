"""Operations of the assistance buttons at the self-service terminals and of the staff who answer them."""

from __future__ import annotations

from typing import Any

from waitroom.contract import ErrorCode, Role
from waitroom.ops.base import OpError, OpsBase


class AssistOps(OpsBase):
    def _terminal(self, node_id: str, role: Role, terminal: Any) -> str:
        if not isinstance(terminal, str) or self.cfg.role_of(terminal) is not Role.ASSIST:
            raise OpError(ErrorCode.UNKNOWN_NODE, f"{terminal!r} is not an assistance terminal")
        if role is Role.ASSIST and terminal != node_id:
            raise OpError(ErrorCode.FORBIDDEN, f"node {node_id} may only ask for help for itself")
        return terminal

    def _assist_info(self, aid: str) -> dict[str, Any]:
        a = self.state.assists[aid]
        return {
            "id": a.id,
            "terminal": a.terminal,
            "state": a.state,
            "level": a.level,
            "counter": a.counter,
            "requested_at": a.requested_at,
        }

    def op_assist_request(self, node_id: str, role: Role, terminal: Any) -> dict[str, Any]:
        term = self._terminal(node_id, role, terminal)
        existing = self.state.open_assist(term)
        if existing is not None:  # pressing again while pending changes nothing
            return {"assist": self._assist_info(existing.id)}
        aid = f"h{self.state.assist_count + 1}"
        self._emit("assist_requested", id=aid, terminal=term)
        return {"assist": self._assist_info(aid)}

    def op_assist_cancel(
        self, node_id: str, role: Role, terminal: Any, request: Any = None
    ) -> dict[str, Any]:
        term = self._terminal(node_id, role, terminal)
        a = self.state.open_assist(term)
        if a is None or (request is not None and a.id != request):
            raise OpError(ErrorCode.UNKNOWN_REQUEST, f"no open assistance request at {term}")
        self._emit("assist_cancelled", id=a.id, terminal=term)
        return {"assist": self._assist_info(a.id)}

    def _assist(self, request: Any) -> str:
        if (
            not isinstance(request, str)
            or request not in self.state.assists
            or self.state.assists[request].state not in ("pending", "acknowledged")
        ):
            raise OpError(
                ErrorCode.UNKNOWN_REQUEST,
                f"no open assistance request {request!r}",
                data={"request": request} if isinstance(request, str) else None,
            )
        return request

    def _staff_counter(self, node_id: str, role: Role, counter: Any) -> str | None:
        if role is Role.COUNTER:
            return self.cfg.node(node_id).counter
        if counter is None:
            return None
        return self._counter(node_id, role, counter)

    def op_assist_acknowledge(
        self, node_id: str, role: Role, request: Any, counter: Any = None
    ) -> dict[str, Any]:
        aid = self._assist(request)
        a = self.state.assists[aid]
        if a.state == "acknowledged":
            raise OpError(
                ErrorCode.INVALID_STATE,
                f"request {aid} is already acknowledged by {a.counter}",
                data={"request": aid, "state": "acknowledged", "counter": a.counter or ""},
            )
        self._emit(
            "assist_acknowledged",
            id=aid,
            terminal=a.terminal,
            counter=self._staff_counter(node_id, role, counter),
        )
        return {"assist": self._assist_info(aid)}

    def op_assist_resolve(
        self, node_id: str, role: Role, request: Any, counter: Any = None
    ) -> dict[str, Any]:
        aid = self._assist(request)
        a = self.state.assists[aid]
        self._emit(
            "assist_resolved",
            id=aid,
            terminal=a.terminal,
            counter=self._staff_counter(node_id, role, counter),
        )
        return {"assist": self._assist_info(aid)}
