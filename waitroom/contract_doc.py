"""Generate the reference tables of docs/mqtt-contract.md from waitroom.contract.

``python -m waitroom.contract_doc`` rewrites the part between the GENERATED markers; the test suite checks
that the committed document is up to date, so the documentation can never drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from waitroom import contract
from waitroom.contract import (
    ALARM_DESCRIPTIONS,
    ERROR_DESCRIPTIONS,
    FAULT_DESCRIPTIONS,
    FAULT_FIELDS,
    OPS,
    QOS,
    RETAIN,
    ROLE_OPS,
    Role,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "mqtt-contract.md"
BEGIN = (
    "<!-- GENERATED FROM waitroom/contract.py: do not edit below; run `python -m waitroom.contract_doc` -->"
)
END = "<!-- END GENERATED -->"


def _j(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def generate() -> str:
    t = contract.Topics("mitte")
    lines = [
        BEGIN,
        "",
        "### Topics, QoS and retain",
        "",
        "| topic (office `mitte`, node `disp-1`) | kind | QoS | retained | published by |",
        "|---|---|---|---|---|",
    ]
    rows = [
        (t.state(), "state", "controller"),
        (t.queue("pass"), "queue", "controller"),
        (t.counter("c1"), "counter", "controller"),
        (t.public(), "public", "controller"),
        (t.event("call"), "event", "controller"),
        (t.event("assist"), "event", "controller"),
        (t.event("intake"), "event", "controller"),
        (t.event("ticket"), "event", "controller"),
        (t.status("disp-1"), "status", "the node (its last will: offline)"),
        (t.health("disp-1"), "health", "the node"),
        (t.cmd("disp-1"), "cmd", "the node"),
        (t.reply("disp-1"), "reply", "controller"),
        (t.sim("disp-1"), "sim", "demo web page only"),
    ]
    for topic, kind, who in rows:
        lines.append(f"| `{topic}` | {kind} | {QOS[kind]} | {'yes' if RETAIN[kind] else 'no'} | {who} |")
    lines += [
        "",
        f"Payload limit: {contract.MAX_PAYLOAD_BYTES} bytes. Ids: `{contract.ID_RE.pattern}`. "
        f"Request ids: `{contract.REQUEST_ID_RE.pattern}`.",
        "",
        "Size bounds of what the controller publishes (none depends on the length of the queue): "
        f"`state` <= {contract.STATE_BOUND_BYTES} bytes for up to 20 services and 40 counters with ids of up "
        f"to 8 characters (at most {contract.SUMMARY_CALLS} calls, {contract.SUMMARY_ASSISTS} open "
        f"assistance requests, pause and intake reasons cut to 40 characters, and to 12 or left out when "
        "many long ones at once would pass the bound: `counter/<id>` has the whole reason); "
        "`queue/<service>` <= "
        f"{contract.QUEUE_BOUND_BYTES} bytes (the first {contract.QUEUE_PAGE} tickets in call order, the "
        f"last {contract.QUEUE_PARKED} parked, the last {contract.QUEUE_NO_SHOW} not appeared that may be "
        "called again); `counter/<id>` <= 1024 bytes; events and replies <= 1024 "
        f"bytes (an error message quoting a bad value is cut to {contract.REPLY_MESSAGE_BYTES} bytes), "
        "except the reply to `appointment.slots`, whose free slots of a day and days with free slots grow "
        "with the slot grid and the booking horizon.",
        "",
        "### Operations",
        "",
    ]
    for op in OPS.values():
        roles = ", ".join(sorted(r.value for r in op.roles))
        lines += [f"#### `{op.name}`", "", op.summary, "", f"- roles: {roles}"]
        if op.query:
            lines.append("- a query: changes nothing; its reply is not stored, a repeat is answered anew")
        for name, desc in op.args.items():
            req = "required" if name in op.required else "optional"
            lines.append(f"- `{name}` ({req}): {desc}")
        lines += [
            "",
            "```json",
            _j(contract.command(op.name, op.example_args, "r-42")),
            _j(contract.ok_reply("r-42", op.example_result)),
            "```",
            "",
        ]
    lines += ["### Operations per role", "", "| role | may send |", "|---|---|"]
    for role in Role:
        lines.append(f"| {role.value} | {', '.join(f'`{o}`' for o in ROLE_OPS[role]) or '(no commands)'} |")
    lines += ["", "### Error codes", "", "| code | meaning |", "|---|---|"]
    for code, desc in ERROR_DESCRIPTIONS.items():
        lines.append(f"| `{code.value}` | {desc} |")
    lines += ["", "### Alarm codes (`state.alerts`)", "", "| code | meaning |", "|---|---|"]
    for alarm, desc in ALARM_DESCRIPTIONS.items():
        lines.append(f"| `{alarm.value}` | {desc} |")
    fields = ", ".join(f"`{k}` -> `{v}`" for k, v in FAULT_FIELDS.items())
    lines += [
        "",
        "### Node fault codes (`node/<id>/health`)",
        "",
        f"A stable code next to a free-text detail (the detail field -> its code field): {fields}.",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    for fault, desc in FAULT_DESCRIPTIONS.items():
        lines.append(f"| `{fault.value}` | {desc} |")
    lines += [
        "",
        "### Broker ACL (generated by `waitroom broker acl`; `%u` = the node id)",
        "",
        "| role | access | topic |",
        "|---|---|---|",
    ]
    for role, access, topic in contract.acl_rules("mitte"):
        lines.append(f"| {role.value} | {access} | `{topic}` |")
    lines += ["", END]
    return "\n".join(lines)


def render(doc: str) -> str:
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + generate() + tail


def main() -> int:
    text = DOC.read_text(encoding="utf-8")
    new = render(text)
    if "--check" in sys.argv:
        return 0 if new == text else 1
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
