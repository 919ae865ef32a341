"""The exceptions liqmon raises on purpose. Each message says what was wrong and what to do."""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "LiqmonError", "UnknownInstrument"]


class LiqmonError(Exception):
    """Base of every error liqmon raises deliberately; the CLI prints it as one line."""

    exit_code = 1


class ConfigError(LiqmonError):
    """A setting is missing or has the wrong type or value."""

    exit_code = 2


class InputError(LiqmonError):
    """User-supplied data (a file, a message) does not match the expected shape."""

    exit_code = 2


class UnknownInstrument(InputError):
    """A message names an instrument the monitor was not configured with."""
