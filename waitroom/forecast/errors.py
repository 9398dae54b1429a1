"""Errors of the forecast: a bad input log or model file gets one clear message."""

from __future__ import annotations

from waitroom.errors import WaitroomError


class ForecastError(WaitroomError):
    """Base of the forecast's errors."""


class LogFormatError(ForecastError, ValueError):
    """A log to learn from or to evaluate on cannot be read; the message names the file, line and column."""


class ModelFileError(ForecastError, ValueError):
    """A model file is unreadable, of another format version, or made for other features."""
