"""The running monitor's /metrics, /healthz and /readyz, checked with Prometheus's promtool."""

from __future__ import annotations

import asyncio
import gc
import shutil

import pytest

from monitor.runtime import GC_THRESHOLDS
from monitor.service import Monitor
from tests.integration.liqmon_process import http_get
from tests.integration.monitor_harness import (
    INSTRUMENTS,
    MonitorHarness,
    btc,
    by_account,
    now_ms,
    open_book,
)

pytestmark = pytest.mark.kafka


def sample(exposition: bytes, prefix: str) -> float:
    """The value of the first line of ``exposition`` starting with ``prefix``."""
    for line in exposition.decode().splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {prefix!r} in /metrics")


async def test_metrics_pass_promtool_and_counters_move_during_a_run(
    harness: MonitorHarness,
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: `make test` installs Debian's prometheus package"
    h = harness
    t0 = now_ms()
    await h.prices(btc(100.0, t0))
    monitor = await h.start_monitor()
    port = monitor.http.port
    assert await http_get(port, "/healthz") == (200, b"ok\n")
    assert (await http_get(port, "/readyz"))[0] == 200
    _, before = await http_get(port, "/metrics")
    await open_book(h, t0)
    await h.prices(btc(95.0, t0 + 1))
    await h.wait_events(lambda ev: "a1" in by_account(ev), "a1 margin call")
    await h.until(lambda: monitor.readiness()[0], "the monitor to be ready")
    _, after = await http_get(port, "/metrics")
    fills = f'liqmon_records_consumed_total{{topic="{h.topics.fills}"}}'
    assert sample(after, fills) == 9
    assert sample(after, 'liqmon_ledger_events_applied_total{type="fill"}') == 3
    assert sample(after, 'liqmon_events_published_total{type="margin_call"}') == 2
    assert sample(after, "liqmon_ticks_applied_total") > sample(
        before, "liqmon_ticks_applied_total"
    )
    assert sample(after, "liqmon_cycle_duration_seconds_count") > 0
    # the units whose marks left their bands: at least the one a tick put in margin call
    assert sample(after, "liqmon_units_revalued_total") >= 1
    assert sample(after, "liqmon_tick_to_event_latency_seconds_count") == 1
    assert sample(after, "liqmon_ready") == 1
    tool = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(tool.communicate(after), 30)
    assert tool.returncode == 0, out.decode()
    assert out == b"", out.decode()


async def test_a_monitor_is_not_ready_before_it_has_read_the_prices(
    harness: MonitorHarness,
) -> None:
    idle = Monitor(harness.settings(), INSTRUMENTS)  # built, not started
    assert idle.readiness() == (False, "catching up on prices")


async def test_the_running_monitor_collects_rarely_and_restores_the_thresholds(
    harness: MonitorHarness,
) -> None:
    """While it runs, young collections wait for ``GC_THRESHOLDS`` allocations
    (``monitor.runtime``); the process's own thresholds come back after."""
    before = gc.get_threshold()
    assert before != GC_THRESHOLDS
    await harness.prices(btc(100.0, now_ms()))
    await harness.start_monitor()
    assert gc.get_threshold() == GC_THRESHOLDS
    await harness.stop_monitor()
    assert gc.get_threshold() == before
