"""The ``liqmon-state`` changelog: unit states, checkpoints, price references,
volatility, cycle inputs and snapshot chunks.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from monitor.schema._common import AccountState

__all__ = [
    "CycleInput",
    "CyclePhase",
    "LedgerCheckpoint",
    "PriceReference",
    "PricesScreened",
    "SnapshotChunk",
    "StateRecord",
    "UnitStates",
    "VolatilityState",
]


class UnitStates(msgspec.Struct, tag="account_state", tag_field="type", frozen=True, kw_only=True):
    """The margin states of one account's units (topic ``liqmon-state``, key ``account:<id>``).

    ``units`` maps ``""`` (the cross unit) or an isolated position's symbol to its
    state; units not named are healthy. ``transitions`` gives each unit's transition
    count so far (the ``sequence`` of its last event; units not named have had none).
    Written with the events of the cycle in which the account changed state, so a
    restarted monitor resumes from it and numbers its next transitions on.
    """

    account: str
    units: dict[str, AccountState]
    ts: int
    transitions: dict[str, int] = {}


class LedgerCheckpoint(
    msgspec.Struct, tag="checkpoint", tag_field="type", frozen=True, kw_only=True
):
    """How far into one ledger partition the published states reach.

    Key ``checkpoint:<topic>:<partition>``. ``next_offset`` is the first ledger
    record not yet reflected in the states and events published so far.
    """

    topic: str
    partition: int
    next_offset: int


class PriceReference(
    msgspec.Struct, tag="price_reference", tag_field="type", frozen=True, kw_only=True
):
    """The price guard's last accepted tick of one symbol (key ``price:<symbol>``).

    A restarted monitor screens the price table against these, so a price held as out
    of band before the restart is not accepted as a first price after it.
    """

    symbol: str
    mark_price: float
    ts: int


class PricesScreened(
    msgspec.Struct, tag="prices_screened", tag_field="type", frozen=True, kw_only=True
):
    """How far one ``prices`` partition has been screened (key
    ``prices-screened:<topic>:<partition>``): bad records below ``next_offset`` are in
    the DLQ already, so a restart re-reading the table does not dead-letter them again."""

    topic: str
    partition: int
    next_offset: int


class VolatilityState(
    msgspec.Struct, tag="volatility", tag_field="type", frozen=True, kw_only=True
):
    """One underlying's EWMA volatility estimator and dynamic-margin scale (topic
    ``liqmon-state``, key ``volatility:<underlying>``), so a restart resumes both.

    The estimator fields are those of ``monitor.risk.EwmaState``, with null for "not yet"
    (JSON has no NaN): ``close`` before any mark, ``prev_close`` before a bar closed,
    ``variance`` during the warm-up. ``scale`` is the
    effective rate scale, ``stressed_scale`` the highest raw scale seen, ``evaluated_ts``
    the event time of the last bar close it was evaluated at (the max-change-per-hour
    clock), ``pending_scale`` and ``pending_ts`` an increase waiting for its lead time
    (``announced_ts`` when decided).
    """

    underlying: str
    bar: int = -1
    close: float | None = None
    prev_close: float | None = None
    returns: int = 0
    mean: float = 0.0
    m2: float = 0.0
    variance: float | None = None
    scale: float = 1.0
    stressed_scale: float = 0.0
    evaluated_ts: int = -1
    pending_scale: float | None = None
    pending_ts: int = 0
    announced_ts: int = 0


CyclePhase = Literal["prices", "rebuild", "revoke", "assign", "cycle"]


class CycleInput(msgspec.Struct, tag="cycle", tag_field="type", frozen=True, kw_only=True):
    """Where one monitor cycle's input began and ended (topic ``liqmon-state``, key
    ``cycle:<run>``), written in the cycle's transaction (or, for a cycle that writes
    nothing else, held for the next one that writes, at most 1 s) so ``liqmon replay`` can
    form exactly the cycles the live service formed (docs/replay.md).

    ``run`` names one process's run and ``seq`` numbers its cycles from 0 (compaction keeps
    a run's last record; a gap in ``seq`` says boundaries were compacted away). ``phase``:
    ``prices`` (catching up on the price table before any ledger), ``rebuild`` (ledger
    partitions assigned, the book rebuilt from the ledger up to ``ledger``; ``owned`` the
    partitions assigned), ``revoke`` (partitions taken away between cycles; ``owned`` those
    left), ``assign`` (the same partitions given back: no rebuild), ``cycle`` (one poll's
    batches). ``prices`` and ``ledger`` give
    ``(partition, next offset)`` of each partition the cycle read, in the batch's order.
    ``now_ms`` is the service's clock for the cycle. ``stress_taken``: a finished solvency
    report's ADL quantiles were taken up (they show on later events); ``stress_started``:
    a solvency stress copied the book at the end of this cycle.
    """

    run: str
    seq: int
    phase: CyclePhase
    now_ms: int
    prices: tuple[tuple[int, int], ...] = ()
    ledger: tuple[tuple[int, int], ...] = ()
    owned: tuple[int, ...] = ()
    stress_taken: bool = False
    stress_started: bool = False


class SnapshotChunk(msgspec.Struct, tag="snapshot", tag_field="type", frozen=True, kw_only=True):
    """One chunk of a snapshot of the book of one ``fills`` partition (topic
    ``liqmon-state``, key ``snapshot:<topic>:<partition>:<slot>:<chunk>``, slot 0 or 1;
    ``snapshot:<topic>:<partition>:<chunk>`` from before slots).

    A snapshot is the accounts of the partition after every ledger record before
    ``next_offset``; it is ``chunks`` records long, each under Kafka's record limit, all
    with the same ``next_offset``, written over several cycles into the slot that does
    not hold the newest complete one; the cycle that writes its last chunk writes null
    values for the other slot's keys. Recovery loads the newest complete snapshot and
    replays the ledger from ``next_offset`` on. Numeric columns are little-endian arrays (base64
    in JSON), so a million accounts decode without a Python object per number: per
    account ``accounts`` (names), ``modes`` (int8: 0 cross, 1 isolated) and ``balances``
    (float64, ``len(assets)`` per account, in the order of ``assets``); per position row
    ``row_account`` (int32 index into ``accounts``), ``row_symbol`` (int32 index into
    ``symbols``), ``qty``, ``entry``, ``leverage`` (NaN when never chosen),
    ``isolated_margin`` (float64), ``row_flags`` (int8: 1 open, 2 open in its isolated
    unit, 4 has an isolated unit), ``row_rank`` (int32: place in its unit's position
    list, -1 when flat) and ``row_unit_order`` (int64: rank of its isolated unit's
    creation, -1 when none), so a restored book lists positions and units in the same
    order and emits the same events; and the ledger ids applied to these accounts within
    the idempotency window, oldest first: ``seen_digests`` (16 bytes each: the BLAKE2b-128
    digest of ``kind + "\\0" + id``), ``seen_stamps`` (int64: the ledger clock when
    applied) and ``seen_owners`` (int32 index into ``accounts``). Snapshots written
    before the digests carry ``seen`` (kind, id, stamp, index into ``accounts``) instead;
    both are read.

    An account whose rows and ids do not fit one chunk spans consecutive chunks of its
    snapshot: each chunk after the account's first has ``continues`` true and names it
    again as its first account (``accounts[0]``, with the same mode and balances); it
    holds the account's next position rows, in order, then its next ledger ids, in
    order. Otherwise a name appears in one chunk of one snapshot only.
    """

    topic: str
    partition: int
    next_offset: int
    chunk: int
    chunks: int
    continues: bool = False
    ts: int
    ledger_clock: int
    assets: tuple[str, ...]
    symbols: tuple[str, ...]
    accounts: list[str]
    modes: bytes
    balances: bytes
    row_account: bytes
    row_symbol: bytes
    qty: bytes
    entry: bytes
    #: Realised PnL per row, written by earlier versions and ignored on load: it
    #: goes to the wallet, and nothing the monitor judges read it per position.
    realised: bytes = b""
    leverage: bytes
    isolated_margin: bytes
    row_flags: bytes
    row_rank: bytes
    row_unit_order: bytes
    seen_digests: bytes = b""
    seen_stamps: bytes = b""
    seen_owners: bytes = b""
    seen: list[tuple[str, str, int, int]] = []


StateRecord = (
    UnitStates
    | LedgerCheckpoint
    | PriceReference
    | PricesScreened
    | SnapshotChunk
    | VolatilityState
    | CycleInput
)
