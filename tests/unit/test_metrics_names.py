"""``/metrics?name[]=...`` serves only the series named, as prometheus_client's servers do."""

from __future__ import annotations

import asyncio

import pytest

from monitor.http import HealthServer
from monitor.metrics import Metrics

pytestmark = pytest.mark.unit


def _series(exposition: bytes) -> set[str]:
    lines = exposition.decode().splitlines()
    return {line.split("{")[0].split(" ")[0] for line in lines if not line.startswith("#")}


def _metrics() -> Metrics:
    metrics = Metrics()
    metrics.records_consumed.labels("prices").inc(7)
    metrics.ready.set(1)
    return metrics


def test_named_series_alone_and_with_their_values() -> None:
    metrics = _metrics()
    every = _series(metrics.exposition())
    assert {"liqmon_records_consumed_total", "liqmon_ready", "process_cpu_seconds_total"} <= every
    names = ["liqmon_records_consumed_total", "liqmon_ready"]
    some = metrics.exposition(names)
    assert _series(some) == set(names)
    assert b'liqmon_records_consumed_total{topic="prices"} 7.0' in some
    assert _series(metrics.exposition(["no_such_series"])) == set()


async def _get(port: int, target: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    return response.split(b"\r\n\r\n", 1)[1]


async def test_the_server_passes_the_names_of_the_query_on() -> None:
    metrics = _metrics()
    server = HealthServer("127.0.0.1", 0, metrics.exposition, lambda: (True, ""))
    await server.start()
    try:
        body = await _get(
            server.port, "/metrics?name[]=liqmon_ready&name%5B%5D=liqmon_records_consumed_total"
        )
        assert _series(body) == {"liqmon_ready", "liqmon_records_consumed_total"}
        assert _series(await _get(server.port, "/metrics")) == _series(metrics.exposition())
        assert _series(await _get(server.port, "/metrics?other=1")) == _series(metrics.exposition())
    finally:
        await server.stop()
