"""Kafka I/O for liqmon. Knows nothing of margin: topics, codecs, consumers, producer, broker."""

from streams.errors import BrokerError, StreamsError

__all__ = ["BrokerError", "StreamsError"]
