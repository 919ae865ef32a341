"""Write numbered records straight to chosen partitions (for consumer tests)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from streams.settings import KafkaSettings, client_kwargs


async def produce_per_partition(
    kafka: KafkaSettings, topic: str, per_partition: dict[int, int], key: bytes
) -> None:
    """Write ``count`` records ``p<partition>-<i>`` to each given partition, in order."""
    producer = AIOKafkaProducer(**client_kwargs(kafka))
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for i in range(count):
                value = f"p{partition}-{i}".encode()
                await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
