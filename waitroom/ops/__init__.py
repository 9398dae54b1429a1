"""The office's operations, grouped by area; ``waitroom.controller.Office`` joins them behind ``handle``.

Each public ``op_<group>_<name>`` method is the operation ``<group>.<name>`` of the MQTT contract
(docs/mqtt-contract.md): it validates its arguments, refuses with ``OpError`` (a stable error code) or emits
events through ``_emit`` and returns the reply's result.
"""

from waitroom.ops.appointments import AppointmentOps
from waitroom.ops.assistance import AssistOps
from waitroom.ops.base import OpError, OpsBase
from waitroom.ops.counters import CounterOps
from waitroom.ops.intake import IntakeOps
from waitroom.ops.remote import RemoteOps
from waitroom.ops.tickets import TicketOps

__all__ = [
    "AppointmentOps",
    "AssistOps",
    "CounterOps",
    "IntakeOps",
    "OpError",
    "OpsBase",
    "RemoteOps",
    "TicketOps",
]
