"""Errors raised by the Kafka I/O layer."""

from __future__ import annotations

__all__ = ["BrokerError", "StreamsError"]


class StreamsError(Exception):
    """Base of every error the streams package raises deliberately."""

    exit_code = 1


class BrokerError(StreamsError):
    """The local broker could not be started, stopped or reached."""
