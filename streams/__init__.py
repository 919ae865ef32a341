"""Kafka I/O for liqmon. Knows nothing of margin: topics, codecs, consumers, producer, broker."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streams.errors import BrokerError, StreamsError

if TYPE_CHECKING:
    from streams._lean import LeanRecord, lean_records_installed
    from streams.broker import KAFKA_VERSION, BrokerOutcome, BrokerReport, LocalBroker
    from streams.codec import (
        INVALID,
        MISSING_VALUE,
        TOO_LARGE,
        UNDECODABLE,
        DecodedBatch,
        JsonCodec,
        Rejection,
    )
    from streams.dlq import DEFAULT_DLQ_TOPIC, DlqOrigin, dlq_origin, dlq_records, to_dlq
    from streams.lag import IsolationLevel, partition_lag
    from streams.ledger_consumer import (
        CommitRejectedError,
        HistoryGap,
        LedgerConsumer,
        RebalanceCallback,
        read_history,
    )
    from streams.producer import ProduceError, Producer, ProducerFencedError
    from streams.records import (
        Headers,
        InboundRecord,
        OutboundRecord,
        TopicPartition,
        next_offsets,
    )
    from streams.settings import KafkaSettings, TopicSettings, client_kwargs
    from streams.settled import SETTLE_TIMEOUT_S, settled_ends
    from streams.table_consumer import TableConsumer, topic_partitions
    from streams.topics import (
        TopicProblem,
        TopicSpec,
        TopicsReport,
        check_topics,
        create_topics,
        delete_topics,
        ensure_topics,
        topic_specs,
    )

__all__ = [
    "DEFAULT_DLQ_TOPIC",
    "INVALID",
    "KAFKA_VERSION",
    "MISSING_VALUE",
    "SETTLE_TIMEOUT_S",
    "TOO_LARGE",
    "UNDECODABLE",
    "BrokerError",
    "BrokerOutcome",
    "BrokerReport",
    "CommitRejectedError",
    "DecodedBatch",
    "DlqOrigin",
    "Headers",
    "HistoryGap",
    "InboundRecord",
    "IsolationLevel",
    "JsonCodec",
    "KafkaSettings",
    "LeanRecord",
    "LedgerConsumer",
    "LocalBroker",
    "OutboundRecord",
    "ProduceError",
    "Producer",
    "ProducerFencedError",
    "RebalanceCallback",
    "Rejection",
    "StreamsError",
    "TableConsumer",
    "TopicPartition",
    "TopicProblem",
    "TopicSettings",
    "TopicSpec",
    "TopicsReport",
    "check_topics",
    "client_kwargs",
    "create_topics",
    "delete_topics",
    "dlq_origin",
    "dlq_records",
    "ensure_topics",
    "lean_records_installed",
    "next_offsets",
    "partition_lag",
    "read_history",
    "settled_ends",
    "to_dlq",
    "topic_partitions",
    "topic_specs",
]

# Loading aiokafka takes about 0.1 s, so these names are imported on first use: a
# CLI command that only needs ``streams.errors`` does not pay for the Kafka client.
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
            "INVALID",
            "MISSING_VALUE",
            "TOO_LARGE",
            "UNDECODABLE",
            "DecodedBatch",
            "JsonCodec",
            "Rejection",
        ],
        "streams.codec",
    ),
    **dict.fromkeys(
        ["DEFAULT_DLQ_TOPIC", "DlqOrigin", "dlq_origin", "dlq_records", "to_dlq"], "streams.dlq"
    ),
    **dict.fromkeys(["IsolationLevel", "partition_lag"], "streams.lag"),
    **dict.fromkeys(["LeanRecord", "lean_records_installed"], "streams._lean"),
    **dict.fromkeys(
        [
            "CommitRejectedError",
            "HistoryGap",
            "LedgerConsumer",
            "RebalanceCallback",
            "read_history",
        ],
        "streams.ledger_consumer",
    ),
    **dict.fromkeys(["ProduceError", "Producer", "ProducerFencedError"], "streams.producer"),
    **dict.fromkeys(
        ["Headers", "InboundRecord", "OutboundRecord", "TopicPartition", "next_offsets"],
        "streams.records",
    ),
    **dict.fromkeys(["SETTLE_TIMEOUT_S", "settled_ends"], "streams.settled"),
    **dict.fromkeys(["TableConsumer", "topic_partitions"], "streams.table_consumer"),
    **dict.fromkeys(
        ["KAFKA_VERSION", "BrokerReport", "LocalBroker", "BrokerOutcome"], "streams.broker"
    ),
    **dict.fromkeys(["KafkaSettings", "TopicSettings", "client_kwargs"], "streams.settings"),
    **dict.fromkeys(
        [
            "TopicProblem",
            "TopicSpec",
            "TopicsReport",
            "check_topics",
            "create_topics",
            "delete_topics",
            "ensure_topics",
            "topic_specs",
        ],
        "streams.topics",
    ),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streams' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
