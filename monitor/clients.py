"""The Kafka clients of one monitor instance, set up as the service needs them.

* **Fetch sizes.** Snapshot chunks in ``liqmon-state`` are up to 800 KiB and a price
  batch can be large: every consumer fetches ``service.max_partition_fetch_bytes`` per
  partition and at least Kafka's default 50 MiB per fetch (:func:`fetch_sizes`; recovery
  reads the changelog and the ledger with the same).
* **Membership.** The ledger consumer joins ``service.group_id`` with the session
  timeout, and statically (``group.instance.id``) when ``service.instance_id`` is set, so
  a restarted instance takes its partitions back at once.
* **Transactions.** With ``service.exactly_once`` the producer is transactional (id
  ``liqmon-<group>-<instance>``) with a short transaction timeout: a crashed instance's
  open transaction blocks ``read_committed`` readers until it times out, or until a
  restart with the same instance id fences it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from monitor.checkpoint import Checkpoint
from monitor.config import ServiceSettings, Settings
from streams import LedgerConsumer, Producer, TableConsumer, TopicPartition

__all__ = ["PRODUCER_BATCH_BYTES", "Clients", "connect", "fetch_sizes"]

_FETCH_MAX_BYTES = 50 * 1024 * 1024  # Kafka's default fetch.max.bytes
PRODUCER_BATCH_BYTES = 256 * 1024  # a producer batch per partition (aiokafka: 16 KiB)
_TRANSACTION_TIMEOUT_MS = 20_000

Rebalance = Callable[[frozenset[TopicPartition]], Awaitable[None]]


class Clients(NamedTuple):
    """One instance's producer, consumers and the checkpoint that commits through them."""

    producer: Producer
    table: TableConsumer
    ledger: LedgerConsumer
    checkpoint: Checkpoint
    transactional_id: str | None


def fetch_sizes(service: ServiceSettings) -> dict[str, Any]:
    """The fetch settings of every consumer the monitor opens."""
    return {
        "max_partition_fetch_bytes": service.max_partition_fetch_bytes,
        "fetch_max_bytes": max(_FETCH_MAX_BYTES, service.max_partition_fetch_bytes),
    }


def connect(settings: Settings, *, on_assigned: Rebalance, on_revoked: Rebalance) -> Clients:
    """The clients of one instance (not started): ``on_assigned`` and ``on_revoked`` are
    the ledger consumer's rebalance callbacks."""
    service = settings.service
    fetch = fetch_sizes(service)
    membership: dict[str, Any] = {"session_timeout_ms": service.session_timeout_ms}
    if service.instance_id:
        membership["group_instance_id"] = service.instance_id
    instance = service.instance_id or uuid.uuid4().hex[:12]
    transactional_id = f"liqmon-{service.group_id}-{instance}" if service.exactly_once else None
    producer = Producer(
        settings.kafka,
        transactional_id=transactional_id,
        linger_ms=0,
        # Room for a crash's events: a full batch waits for the sender to take it, so
        # aiokafka's 16 KiB (about twenty events) paid that wait thousands of times.
        max_batch_size=PRODUCER_BATCH_BYTES,
        **({"transaction_timeout_ms": _TRANSACTION_TIMEOUT_MS} if service.exactly_once else {}),
    )
    table = TableConsumer(settings.kafka, topic=settings.topics.prices, **fetch)
    ledger = LedgerConsumer(
        settings.kafka,
        topic=settings.topics.fills,
        group_id=service.group_id,
        on_assigned=on_assigned,
        on_revoked=on_revoked,
        **fetch,
        **membership,
    )
    checkpoint = Checkpoint(
        producer, ledger, settings.topics, service.group_id, exactly_once=service.exactly_once
    )
    return Clients(producer, table, ledger, checkpoint, transactional_id)
