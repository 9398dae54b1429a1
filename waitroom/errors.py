"""The project's exceptions: one root, a base per area, each mixed with the built-in it resembles."""

from __future__ import annotations

from typing import Any


class WaitroomError(Exception):
    """Root of every waitroom exception."""


class ConfigError(WaitroomError, ValueError):
    """The configuration file is invalid; ``errors`` lists every problem by path."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} configuration error(s):\n  " + "\n  ".join(errors))


class HardwareError(WaitroomError, RuntimeError):
    """A hardware adapter failed (pin, printer, screen, audio); ``fault``: its stable code for the node's
    health (waitroom.contract.FaultCode), "" when the raiser did not say."""

    def __init__(self, message: str, *, fault: str = ""):
        super().__init__(message)
        self.fault = fault


class PrinterError(HardwareError):
    """The ticket printer could not print."""


class RequestTimeout(WaitroomError, TimeoutError):
    """The controller did not reply to a command in time (after the retries)."""


class CommandFailed(WaitroomError, RuntimeError):
    """The controller answered a command with an error reply."""

    def __init__(self, code: str, message: str, data: dict[str, Any] | None = None):
        self.code = code
        self.message = message  # English, for the log
        self.data = (
            data or {}
        )  # the refusal's details as fields (the reply's error.data), for a node's own words
        super().__init__(f"{code}: {message}")
