"""The ticket dispenser node: service buttons, ticket printing, appointment check-in, offline numbers.

What the citizen sees (documented behaviour; docs/dispenser.md repeats it for staff):

- A press on a service button prints a ticket. The button's LED is lit while the service takes walk-ins.
- **Intake stopped** (Annahmeschluss): the button's LED is dark; a press prints nothing, the LED flashes three
  times and the buzzer beeps twice. The reason is in the state snapshot (displays and web show it) and in this
  node's health (``last_refusal``).
- **Rate limit**: the same button again within ``press_interval_s`` (default 3 s), or more tickets than the
  bucket allows (``burst`` in a row, then ``per_minute``), print nothing: the LED flickers fast for a moment,
  no beep. A stuck button prints nothing at all (tickets are given on release) and shows up in the health as
  ``buttons_stuck``. So a child hammering a button, or a jammed one, cannot empty the paper roll.
- **Printer fault** (paper out, cover open, offline): the status LED blinks fast, a press beeps three times
  and prints nothing. A printer without status queries (``status_query: false``) is tried again by the
  first press ``status_interval_s`` after the failed ticket (nothing else can tell that it is back).
  When a ticket was already issued and printing then fails (after ``print_retries``), the
  ticket is cancelled at the controller (reason ``print_failed``), so it never waits in the queue without a
  holder; if the controller cannot be reached for that, the cancel is stored and sent later. An appointment
  check-in is *not* cancelled: the citizen did arrive, and scanning the code again reprints the same ticket.
- **Controller not answering** (``request_timeout_s``), or answering "not now" (``clock_behind`` before its
  time sync, ``rate_limited``): the ticket comes from a block of numbers leased in
  advance (``lease_size`` per service) and says "Wartezeit wird ermittelt"; the status LED blinks slowly.
  Each offline number is written to the node's SQLite file *before* it is printed, so no number is given
  twice, also across a restart; the tickets are reported (``ticket.report_offline``, idempotent) when the
  controller answers again; a report answered "not now" (or ``internal``) stays unreported and is sent again.
  Without numbers left (or before the first lease of the day) the press beeps three
  times. Leasing takes the next numbers of the day, so with the default ``lease_size: 10`` a day's walk-in
  numbers start after the first ten reserved ones.
- **Data directory unusable** (read-only, or full): the dispenser starts anyway and issues online tickets; an
  offline press beeps three times (reason ``store``, text "Keine Verbindung ..."), as no number may be printed
  before it is on disk. One error log line per new problem (not per press) and the health field
  ``offline_store`` (``ok`` or the error; status ``degraded``) say why. A disk that filled up while running
  is used again at the next press once there is space; a store that could not be opened at start, after a
  restart of the node.
- A command that timed out may still have reached the controller; when it is back, the dispenser repeats it
  with the same request id (the controller answers repeats from its log) and cancels that ticket, so no
  ticket without a holder stays in the queue.
- **Priority button**: arms the next ticket (within ``priority_window_s``) as a priority ticket; its LED
  blinks while armed. **Language button**: the next ticket's texts in English first (LED on); back to German
  after the ticket or ``lang_window_s``.
- **Appointment check-in**: a USB QR scanner / keyboard (``scanner``: an evdev device, or ``-`` for stdin)
  sends the booking code; the ticket shows the appointment time. Unknown or expired codes print a short
  notice saying so; without the controller, a notice asks the citizen to take a walk-in ticket.

The package: ``options`` (settings, pins), ``ratelimit``, ``store`` (offline numbers), ``scanner`` (booking
codes) and ``node`` (the ``Dispenser`` itself). The names below are the public API (``create`` is the node
factory of ``waitroom/cli.py:NODE_ROLES``).
"""

from __future__ import annotations

from edge.dispenser.node import Dispenser, Outcome, create
from edge.dispenser.options import (
    DEFAULT_PINS,
    MAX_BUTTONS,
    PIN_NAMES,
    button_services,
    data_dir,
    load_options,
    resolve_pins,
)
from edge.dispenser.options import __getattr__ as __getattr__  # DispenserOptions, when asked for (pydantic)
from edge.dispenser.ratelimit import RateLimiter
from edge.dispenser.scanner import CODE_RE, EVENT, CodeReader, key_char, parse_code
from edge.dispenser.store import OfflineStore, OfflineTicket

__all__ = [
    "CODE_RE",
    "DEFAULT_PINS",
    "EVENT",
    "MAX_BUTTONS",
    "PIN_NAMES",
    "CodeReader",
    "Dispenser",
    "DispenserOptions",
    "OfflineStore",
    "OfflineTicket",
    "Outcome",
    "RateLimiter",
    "button_services",
    "create",
    "data_dir",
    "key_char",
    "load_options",
    "parse_code",
    "resolve_pins",
]
