"""Tick-to-event latency of the running monitor at a fixed offered rate, and its floor.

The feed: one chunk of ``rate / 100`` ticks every 10 ms into one long-running kcat,
every tick of a chunk stamped with the wall-clock ms at which the chunk was handed
over; the sentinel price switches level every 10 chunks (100 ms), so each switch
flips the 20 sentinels and makes 20 price-triggered events.

Per price-triggered event a bare consumer of ``margin-events`` takes
``record timestamp - trigger_ts`` (tick to publish: the record's create time is set by
the monitor's producer when it sends the event) and ``receive time - trigger_ts``
(tick to subscriber). Events triggered in the first ``warmup_s`` are not counted.

The floor, measured in the same run at the same rate: the same feed on a topic of
its own, read by a bare consumer that decodes every tick, with the monitor idle;
``receive time - ts`` per tick is what kcat, the broker and a fetch cost by themselves.
The monitor's own ``liqmon_tick_to_event_latency_seconds`` histogram (tick to
acknowledged publication) is reported beside, as the bucket bounds holding p50 and p99,
and so are the local broker's GC pauses in each counted window (``broker_gc_pauses``,
``baseline_broker_gc_pauses``: count, total and longest, from its GC log). A young
collection of the broker stops every fetch and commit; the slowest events of a run
mostly fall on one (docs/operations.md).
"""

from __future__ import annotations

import time
from typing import Any, Final

from _e2e_kafka import Collector, FeedReport, Latencies, end_offsets, paced_feed
from _e2e_market import SENTINEL_COUNT, TickTape
from _e2e_monitor import Activity, Scrape
from _e2e_rig import Rig, broker_pauses, progress
from _e2e_throughput import print_profile

CHUNKS_PER_S: Final = 100
FLIP_EVERY_CHUNKS: Final = 10
TARGET_P99_MS: Final = {100_000: 50.0, 25_000: 30.0}  # by offered ticks/s (issue 13)
DEFAULT_TARGET_P99_MS: Final = 50.0
_HISTOGRAM: Final = "liqmon_tick_to_event_latency_seconds"


def tape_for(rig: Rig, rate: int) -> TickTape:
    """The paced feed's chunks for ``rate`` ticks/s."""
    return TickTape(
        rig.market_prices, chunk_ticks=rate // CHUNKS_PER_S, flip_every=FLIP_EVERY_CHUNKS
    )


def histogram_quantiles(before: Scrape, after: Scrape, name: str) -> dict[str, Any]:
    """Observations between two scrapes: count, and upper bounds of the p50 and p99 buckets."""
    start, end = before.buckets(name), after.buckets(name)
    counts = {le: end[le] - start.get(le, 0.0) for le in end}
    total = counts.get(float("inf"), 0.0)
    out: dict[str, Any] = {"count": int(total)}
    for q, key in ((0.5, "p50_le_ms"), (0.99, "p99_le_ms")):
        bound = next((le for le, c in counts.items() if total and c >= q * total), None)
        out[key] = None if bound is None or bound == float("inf") else bound * 1000
    return out


async def _paced(
    rig: Rig, topic: str, collector: Collector, tape: TickTape, seconds: float, warmup_s: float
) -> tuple[FeedReport, Latencies]:
    """Offer the feed to ``topic`` while ``collector`` reads; what it saw after the warm-up."""
    await collector.start()
    began_ms = time.time_ns() / 1e6
    chunks = int(seconds * CHUNKS_PER_S)
    first = rig.take_chunks(chunks)
    feed = await paced_feed(
        rig.kafka, topic, tape, chunks_per_s=CHUNKS_PER_S, duration_s=seconds, first_chunk=first
    )
    read_up_to = topic
    if topic == rig.topics.prices:  # every tick processed, then every event read
        fed = sum((await end_offsets(rig.kafka, topic)).values())
        await rig.until_consumed(topic, fed, timeout_s=120)
        read_up_to = rig.topics.margin_events
    await collector.until_read(await end_offsets(rig.kafka, read_up_to), timeout_s=60)
    return feed, await collector.stop(since_ms=began_ms + warmup_s * 1000)


async def latency(
    rig: Rig,
    rate: int,
    *,
    accounts: int,
    seconds: float,
    warmup_s: float,
    profile: str | None = None,
) -> list[dict[str, Any]]:
    """The floor, then the monitor, at ``rate``; the two latency figures. ``profile``:
    profile the monitor while it runs (printed to stderr; the figures are perturbed)."""
    tape = tape_for(rig, rate)
    target = TARGET_P99_MS.get(rate, DEFAULT_TARGET_P99_MS)
    progress(f"floor: {rate:,} ticks/s offered to {rig.floor_topic} for {seconds:.0f}s")
    floor_began = time.time() * 1000 + warmup_s * 1000
    floor_feed, floor = await _paced(
        rig,
        rig.floor_topic,
        Collector(rig.kafka, rig.floor_topic, events=False),
        tape,
        seconds,
        warmup_s,
    )
    floor_pauses = broker_pauses(rig.root, rig.kafka, floor_began, time.time() * 1000)
    floor_receive = Latencies.summary(floor.to_receive_ms)
    progress(f"floor: offered {floor_feed.rate:,.0f}/s, tick to receive {floor_receive}")

    progress(f"monitor: {rate:,} ticks/s offered to {rig.topics.prices} for {seconds:.0f}s")
    before = await rig.monitor.scrape()
    events = Collector(rig.kafka, rig.topics.margin_events, events=True)
    if profile is not None:
        rig.monitor.profile_start()
    began = time.time() * 1000 + warmup_s * 1000
    feed, measured = await _paced(rig, rig.topics.prices, events, tape, seconds, warmup_s)
    pauses = broker_pauses(rig.root, rig.kafka, began, time.time() * 1000)
    if profile is not None:
        print_profile(await rig.monitor.profile_stop(), profile)
    after = await rig.monitor.scrape()
    own = histogram_quantiles(before, after, _HISTOGRAM)
    activity = Activity.between(before, after, rig.topics.prices).figures(feed.seconds)
    publish = Latencies.summary(measured.to_publish_ms)
    receive = Latencies.summary(measured.to_receive_ms)
    progress(
        f"monitor: offered {feed.rate:,.0f}/s (worst chunk {feed.max_late_ms:.0f} ms late); "
        f"events by type {events.types} ({events.sentinel_events} of sentinels); "
        f"tick to publish {publish}; tick to subscriber {receive}; "
        f"the monitor's histogram {own}; {activity}; the broker's GC pauses {pauses}"
    )
    common = {
        "accounts": accounts,
        "sentinel_accounts": SENTINEL_COUNT,
        "offered_ticks_per_s_target": rate,
        "offered_ticks_per_s": round(feed.rate),
        "offered_worst_chunk_late_ms": round(feed.max_late_ms, 1),
        "run_seconds": seconds,
        "warmup_s": warmup_s,
        "target_p99_ms": target,
        "baseline": "floor: bare aiokafka consumer decoding every tick of the same paced feed "
        "(own topic, monitor idle), tick to receive",
        "baseline_offered_ticks_per_s": round(floor_feed.rate),
        "baseline_ticks": floor_receive.get("count", 0),
        "baseline_p50_ms": floor_receive.get("p50_ms"),
        "baseline_p99_ms": floor_receive.get("p99_ms"),
        # The local broker's GC pauses in each counted window (its gc.log): they hold up
        # every fetch and commit, the floor's too.
        "broker_gc_pauses": pauses,
        "baseline_broker_gc_pauses": floor_pauses,
    }
    figures = []
    for name, summary in (("tick_to_publish", publish), ("tick_to_subscriber", receive)):
        p99 = summary.get("p99_ms")
        figures.append(
            {
                "bench": f"e2e_latency_{name}",
                "events": summary.get("count", 0),
                "p50_ms": summary.get("p50_ms"),
                "p99_ms": p99,
                "p999_ms": summary.get("p999_ms"),
                "max_ms": summary.get("max_ms"),
                **common,
                "met": p99 is not None and p99 <= target,
                "monitor_histogram": own,
                **activity,
            }
        )
    return figures
