"""Prometheus metrics of the running monitor.

Names follow Prometheus conventions: ``liqmon_`` prefix, base units in the name
(``_seconds``), counters end in ``_total``. Every instance owns its own
``CollectorRegistry`` so tests can run several monitors in one process.
"""

from __future__ import annotations

import platform
from collections.abc import Collection, Iterable
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from monitor import __version__

__all__ = ["Metrics"]

# `_created` series double the exposition and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Cycle work is sub-millisecond to a few hundred ms; latency budget is tens of ms.
_CYCLE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """All metrics of one monitor instance, registered in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records_consumed = Counter(
            "liqmon_records_consumed_total",
            "Kafka records consumed, by topic.",
            ["topic"],
            registry=r,
        )
        self.ledger_events_applied = Counter(
            "liqmon_ledger_events_applied_total",
            "Ledger events applied to the book, by type.",
            ["type"],
            registry=r,
        )
        self.ledger_events_ignored = Counter(
            "liqmon_ledger_events_ignored_total",
            "Ledger events applied as no-ops, by reason (duplicate id, margin adjustment that "
            "does not fit the position).",
            ["reason"],
            registry=r,
        )
        self.volatility = Gauge(
            "liqmon_volatility",
            "Annualised EWMA volatility of each underlying's accepted marks (event-time bars).",
            ["underlying"],
            registry=r,
        )
        self.margin_scale = Gauge(
            "liqmon_margin_scale",
            "Dynamic margin: the factor on the configured rates of each underlying's instruments.",
            ["underlying"],
            registry=r,
        )
        self.margin_parameter_changes = Counter(
            "liqmon_margin_parameter_changes_total",
            "Changes of dynamic margin's effective rate scale, by underlying.",
            ["underlying"],
            registry=r,
        )
        self.ticks_applied = Counter(
            "liqmon_ticks_applied_total",
            "Price ticks applied to the engine after conflation.",
            registry=r,
        )
        self.units_revalued = Counter(
            "liqmon_units_revalued_total",
            "Margin units revalued and judged because a mark moved: with price bands only "
            "those whose marks left their band, else every holder of a moved instrument.",
            registry=r,
        )
        self.ticks_conflated = Counter(
            "liqmon_ticks_conflated_total",
            "Price ticks superseded by a newer tick of the same instrument in one cycle.",
            registry=r,
        )
        self.events_published = Counter(
            "liqmon_events_published_total",
            "Margin events published, by type.",
            ["type"],
            registry=r,
        )
        self.dlq_records = Counter(
            "liqmon_dlq_records_total",
            "Input records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        self.prices_held = Counter(
            "liqmon_price_holds_total",
            "Price ticks held back by a guard (stale or out of band), by reason.",
            ["reason"],
            registry=r,
        )
        self.held_prices = Gauge(
            "liqmon_held_prices",
            "Instruments whose newest tick is currently held by a guard.",
            registry=r,
        )
        self.cycle_duration = Histogram(
            "liqmon_cycle_duration_seconds",
            "Wall time of one processing cycle.",
            buckets=_CYCLE_BUCKETS,
            registry=r,
        )
        self.tick_to_event_latency = Histogram(
            "liqmon_tick_to_event_latency_seconds",
            "From a tick's event time to the acknowledged publication of its events.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.accounts = Gauge(
            "liqmon_accounts",
            "Accounts by the state of their worst margin unit.",
            ["state"],
            registry=r,
        )
        self.open_positions = Gauge(
            "liqmon_open_positions",
            "Open positions in the book, by instrument kind (linear, inverse, option).",
            ["kind"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "liqmon_consumer_lag_records",
            "Records between the consumer position and the log end.",
            ["topic", "partition"],
            registry=r,
        )
        self.price_age = Gauge(
            "liqmon_price_age_seconds",
            "Age of the accepted price per instrument against this host's clock.",
            ["symbol"],
            registry=r,
        )
        self.price_feed_age = Gauge(
            "liqmon_price_feed_age_seconds",
            "Seconds since the newest tick event time seen on any instrument, against this "
            "host's clock: grows while the price feed is stopped.",
            registry=r,
        )
        self.price_holds_expired = Counter(
            "liqmon_price_holds_expired_total",
            "Held price ticks that went stale without being confirmed, so were never used.",
            registry=r,
        )
        self.dlq_repeats_skipped = Counter(
            "liqmon_dlq_repeats_skipped_total",
            "Bad price records re-read after a restart that an earlier run already "
            "dead-lettered, so were not dead-lettered again.",
            registry=r,
        )
        self.changelog_records_dropped = Counter(
            "liqmon_changelog_records_dropped_total",
            "liqmon-state records that could not be decoded at restore and were ignored.",
            registry=r,
        )
        self.replay_records_rejected = Counter(
            "liqmon_replay_records_rejected_total",
            "Ledger records a state rebuild could not apply, by reason (an instrument removed "
            "from the instruments file, for example); their positions are not judged.",
            ["reason"],
            registry=r,
        )
        self.snapshots_written = Counter(
            "liqmon_snapshots_written_total",
            "Snapshots of a ledger partition's book written to liqmon-state.",
            registry=r,
        )
        self.snapshot_timestamp = Gauge(
            "liqmon_snapshot_timestamp_seconds",
            "Book time (Unix seconds) of the newest snapshot this instance wrote of each "
            "ledger partition it owns: a restart replays that partition's ledger from there.",
            ["partition"],
            registry=r,
        )
        self.snapshot_partitions_missing = Gauge(
            "liqmon_snapshot_partitions_missing",
            "Ledger partitions this instance owns of which the changelog holds no complete "
            "snapshot yet: a restart replays their whole ledger. Each gets its first within "
            "about service.snapshot_interval_s of its assignment; 0 while snapshots are off.",
            registry=r,
        )
        self.snapshot_duration = Gauge(
            "liqmon_snapshot_duration_seconds",
            "Work on the event loop for the last snapshot: its copy of the book and its "
            "chunks, summed over the cycles it was written in.",
            registry=r,
        )
        self.bad_debt = Gauge(
            "liqmon_bad_debt",
            "What bankrupt accounts owe beyond their collateral (valuation asset), by the "
            "underlying of their positions (share of maintenance margin).",
            ["underlying"],
            registry=r,
        )
        self.bad_debt_total = Gauge(
            "liqmon_bad_debt_overall",
            "What bankrupt accounts owe beyond their collateral, in the valuation asset.",
            registry=r,
        )
        self.liquidation_exposure = Gauge(
            "liqmon_liquidation_exposure",
            "Notional of positions of accounts in liquidation, weighted by how far each has "
            "gone towards bankruptcy, (MM - equity) / MM, by underlying (valuation asset).",
            ["underlying"],
            registry=r,
        )
        self.open_interest = Gauge(
            "liqmon_open_interest",
            "Long open interest of this instance's accounts per instrument (base units).",
            ["symbol"],
            registry=r,
        )
        self.insurance_fund = Gauge(
            "liqmon_insurance_fund",
            "The configured insurance fund (service.insurance_fund), in the valuation asset.",
            registry=r,
        )
        self.stress_bad_debt = Gauge(
            "liqmon_stress_bad_debt",
            "Bad debt of the whole book under each stress scenario of the last solvency "
            "report (valuation asset; docs/solvency.md).",
            ["scenario"],
            registry=r,
        )
        self.stress_bankrupt_accounts = Gauge(
            "liqmon_stress_bankrupt_accounts",
            "Accounts that would go bankrupt under each stress scenario (last report).",
            ["scenario"],
            registry=r,
        )
        self.stress_cover2 = Gauge(
            "liqmon_stress_cover2",
            "Bad debt of the two largest account groups in the worst scenario (last report).",
            registry=r,
        )
        self.adl_shortfall = Gauge(
            "liqmon_adl_shortfall",
            "Bad debt beyond the insurance fund in the worst scenario, by the contract and "
            "side whose holders would be auto-deleveraged (last report; 0 once covered).",
            ["symbol", "side"],
            registry=r,
        )
        self.solvency_reports = Counter(
            "liqmon_solvency_reports_total",
            "Solvency reports published.",
            registry=r,
        )
        self.solvency_duration = Gauge(
            "liqmon_solvency_duration_seconds",
            "Wall time of the last book-wide stress (in a worker thread, off the event loop).",
            registry=r,
        )
        self.processing_errors = Counter(
            "liqmon_processing_errors_total",
            "Ledger records whose processing failed unexpectedly; each is dead-lettered "
            "(reason processing_error) and the monitor goes on.",
            registry=r,
        )
        self.sweeps = Counter(
            "liqmon_sweeps_total",
            "Periodic full recomputations compared with incremental state.",
            registry=r,
        )
        self.sweep_mismatches = Counter(
            "liqmon_sweep_mismatches_total",
            "Differences found by the periodic full recomputation (should stay zero).",
            registry=r,
        )
        self.ready = Gauge(
            "liqmon_ready",
            "1 when caught up on prices with partitions assigned, else 0.",
            registry=r,
        )

        self.build_info = Gauge(
            "liqmon_build_info",
            "Always 1; labels name the running liqmon, its Kafka client and Python.",
            ["version", "kafka_client", "kafka_client_version", "python_version"],
            registry=r,
        )
        self.build_info.labels(
            __version__, "aiokafka", _installed_version("aiokafka"), platform.python_version()
        ).set(1)
        # process_cpu_seconds_total, process_resident_memory_bytes, open fds, start time.
        ProcessCollector(registry=r)

    def initialise(
        self,
        *,
        topics: Iterable[str],
        ledger_types: Iterable[str],
        ignore_reasons: Iterable[str],
        event_types: Iterable[str],
        dlq_reasons: Iterable[str],
        hold_reasons: Iterable[str],
        states: Iterable[str],
    ) -> None:
        """Create every labelled series at 0 for its known label values, so ``rate()`` and
        ``increase()`` see the first increment and dashboards show 0 rather than nothing."""
        for topic in topics:
            self.records_consumed.labels(topic)
        for name in ledger_types:
            self.ledger_events_applied.labels(name)
        for reason in ignore_reasons:
            self.ledger_events_ignored.labels(reason)
        for name in event_types:
            self.events_published.labels(name)
        for reason in dlq_reasons:
            self.dlq_records.labels(reason)
            self.replay_records_rejected.labels(reason)
        for reason in hold_reasons:
            self.prices_held.labels(reason)
        for state in states:
            self.accounts.labels(state).set(0)

    def exposition(self, names: Collection[str] = ()) -> bytes:
        """The text exposition format served on ``/metrics``: every series, or only those
        whose sample name is in ``names`` (``/metrics?name[]=...``, as prometheus_client's
        own servers do). Only the metrics named are collected then, which costs the event
        loop a fraction of a full scrape."""
        if names:
            return generate_latest(self.registry.restricted_registry(names))
        return generate_latest(self.registry)


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"
