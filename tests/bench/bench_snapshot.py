"""Benchmark snapshot recovery at venue scale (run by ``make bench``; JSON lines).

Book: ``bench_engine``'s 1,000,000 accounts / 3,000,000 positions, split into 6 ledger
partitions. Figures, each with a same-run baseline:

* ``snapshot_write``: export every partition to chunks and encode them (what the
  monitor writes, one partition per cycle), against one full revaluation.
* ``snapshot_restore``: decode every chunk, load them into an empty book and revalue
  everyone (what a restart does before it replays the ledger after the snapshot),
  against the bulk load of the same arrays with ``load_cross_accounts`` (the floor: no
  decoding, no ids). Target (issue 12): restart to ready <= 30 s at this size.
* ``replay_equivalent``: how long replaying the ledger that built the book would take
  at the measured replay rate (55-69k records/s, docs/operations.md), for comparison.
* ``snapshot_copy_step``: the longest step of one partition's copy taken in steps, as
  the monitor takes it while the cycles go on (``PartitionImage.in_steps``), against
  the same copy taken at once (what stalled a cycle before), with ``liqmon run``'s
  allocator setting (large blocks are fresh pages: ``monitor.allocator``).
* ``memory``: resident memory of a fresh process that restores one engine from those
  snapshots and revalues it (a restarted monitor, with the allocator setting of
  ``liqmon run``, ``monitor.allocator``), against 1 GiB; its baseline is the same
  process without that setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from bench_engine import ACCOUNTS, PER_ACCOUNT, build, instruments

from monitor.allocator import return_large_blocks
from monitor.book import (
    Book,
    PartitionImage,
    export_partition,
    load_cross_accounts,
    load_snapshots,
)
from monitor.engine import Engine
from monitor.schema import PriceTick, SnapshotChunk

PARTITIONS = 6
REPLAY_RECORDS_PER_S = 69_000  # the best measured (docs/operations.md)


def emit(**figure: Any) -> None:
    print(json.dumps(figure), flush=True)


def main() -> int:
    rng = np.random.default_rng(7)
    engine, base = build(rng)
    book = engine.book
    print(f"# built {engine.account_count} accounts", file=sys.stderr)
    encode = msgspec.json.Encoder().encode
    decode = msgspec.json.Decoder(SnapshotChunk).decode

    t0 = time.perf_counter()
    blobs: list[bytes] = []
    for p in range(PARTITIONS):
        accounts = np.arange(p, book.accounts.size, PARTITIONS, dtype=np.intp)
        chunks = export_partition(
            book,
            accounts,
            topic="fills",
            partition=p,
            next_offset=1,
            ts=0,
            max_bytes=800 * 1024,
            encode=encode,
        )
        blobs.extend(encode(chunk) for chunk in chunks)
    write = time.perf_counter() - t0
    t0 = time.perf_counter()
    engine.full_recompute()
    full = time.perf_counter() - t0
    size = sum(len(b) for b in blobs)
    emit(
        bench="snapshot",
        figure="snapshot_write",
        accounts=ACCOUNTS,
        positions=engine.position_count,
        partitions=PARTITIONS,
        chunks=len(blobs),
        megabytes=round(size / 2**20, 1),
        seconds=round(write, 2),
        baseline="full_revaluation",
        baseline_seconds=round(full, 3),
        ratio=round(write / full, 1),
    )

    ticks = [
        PriceTick(symbol=s, mark_price=float(p), ts=0)
        for s, p in zip(book.symbols, base, strict=True)
    ]
    t0 = time.perf_counter()
    restored = Engine(instruments())
    restored.apply([], ticks, 0)
    load_snapshots(restored.book, [decode(b) for b in blobs])
    restored.full_recompute()
    restore = time.perf_counter() - t0
    assert restored.account_count == engine.account_count
    assert restored.position_count == engine.position_count

    pos = book.positions
    n = pos.size
    t0 = time.perf_counter()
    floor_engine = Engine(instruments())
    floor_engine.apply([], ticks, 0)
    load_cross_accounts(
        floor_engine.book,
        list(book.account_names),
        book.accounts.balance[: book.accounts.size].copy(),
        pos.account[:n].copy(),
        pos.instrument[:n].copy(),
        pos.qty[:n].copy(),
        pos.entry[:n].copy(),
        pos.leverage[:n].copy(),
    )
    floor_engine.full_recompute()
    floor = time.perf_counter() - t0
    emit(
        bench="snapshot",
        figure="snapshot_restore",
        accounts=ACCOUNTS,
        positions=engine.position_count,
        seconds=round(restore, 2),
        baseline="load_cross_accounts_bulk_load",
        baseline_seconds=round(floor, 2),
        ratio=round(restore / floor, 1),
        target="restart to ready <= 30 s",
        met=restore <= 30.0,
    )
    records = ACCOUNTS * (PER_ACCOUNT + 1)  # a deposit and a fill per position
    emit(
        bench="snapshot",
        figure="replay_equivalent",
        ledger_records=records,
        seconds=round(records / REPLAY_RECORDS_PER_S, 1),
        baseline="snapshot_restore",
        baseline_seconds=round(restore, 2),
        ratio=round(records / REPLAY_RECORDS_PER_S / restore, 1),
    )
    del restored, floor_engine
    _copy_step(book)
    del engine, book
    with tempfile.NamedTemporaryFile(suffix=".snapshot") as blob_file:
        blob_file.write(msgspec.msgpack.encode(blobs))
        blob_file.flush()
        monitor = _memory_of_restore(blob_file.name, allocator=True)
        plain = _memory_of_restore(blob_file.name, allocator=False)
    emit(
        bench="snapshot",
        figure="memory",
        what="RSS of a process holding one engine of 1M accounts / 3M positions, restored "
        "from snapshots and revalued (liqmon run's allocator settings: monitor.allocator)",
        bytes=monitor["rss"],
        gib=round(monitor["rss"] / 2**30, 2),
        peak_gib=round(monitor["peak"] / 2**30, 2),
        baseline="same_without_allocator_settings",
        baseline_gib=round(plain["rss"] / 2**30, 2),
        baseline_peak_gib=round(plain["peak"] / 2**30, 2),
        target="<= 1 GiB per monitor",
        met=monitor["rss"] <= 2**30,
    )
    return 0


def _copy_step(book: Book) -> None:
    return_large_blocks()
    accounts = np.arange(0, book.accounts.size, PARTITIONS, dtype=np.intp)
    at_once: list[float] = []
    longest: list[float] = []
    steps: list[float] = []
    for _ in range(3):
        t0 = time.perf_counter()
        PartitionImage(book, accounts, topic="fills", partition=0, next_offset=1, ts=0)
        at_once.append(time.perf_counter() - t0)
        copy = PartitionImage.in_steps(
            book, accounts, topic="fills", partition=0, next_offset=1, ts=0
        )
        steps = []
        image = None
        while image is None:
            t0 = time.perf_counter()
            image = next(copy)
            steps.append(time.perf_counter() - t0)
        longest.append(max(steps))
    emit(
        bench="snapshot",
        figure="snapshot_copy_step",
        accounts=int(accounts.shape[0]),
        what="longest step of one partition's copy taken in steps (the most a cycle "
        "waits for it), best of 3",
        ms=round(min(longest) * 1000, 2),
        worst_ms=round(max(longest) * 1000, 2),
        steps=len(steps),
        total_ms=round(sum(steps) * 1000, 1),
        baseline="copy_at_once",
        baseline_ms=round(min(at_once) * 1000, 1),
        ratio=round(min(longest) / min(at_once), 3),
    )


def _memory_of_restore(path: str, *, allocator: bool) -> dict[str, int]:
    """Run :func:`_restore_child` in a fresh interpreter; its VmRSS and VmHWM in bytes."""
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    args = [sys.executable, __file__, "--restore-child", path]
    if not allocator:
        args.append("--plain-allocator")
    done = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    figures: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _restore_child(path: str, allocator: bool) -> int:
    """What a restarted monitor holds: one engine restored from snapshots, revalued."""
    from monitor.allocator import release_free_memory, return_large_blocks

    if allocator:
        return_large_blocks()
    blobs = msgspec.msgpack.decode(Path(path).read_bytes(), type=list[bytes])
    decode = msgspec.json.Decoder(SnapshotChunk).decode
    rng = np.random.default_rng(7)
    base = rng.uniform(1.0, 50_000.0, len(instruments()))  # marks are not in snapshots
    engine = Engine(instruments())
    symbols = engine.book.symbols
    engine.apply(
        [],
        [
            PriceTick(symbol=s, mark_price=float(p), ts=0)
            for s, p in zip(symbols, base, strict=True)
        ],
        0,
    )
    load_snapshots(engine.book, [decode(b) for b in blobs])
    del blobs
    engine.full_recompute()
    if allocator:
        release_free_memory()  # as the monitor does after a restore
    lines = Path("/proc/self/status").read_text().splitlines()
    status = dict(line.split(":", 1) for line in lines)
    kib = {key: int(status[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}
    print(json.dumps({"rss": kib["VmRSS"], "peak": kib["VmHWM"], "accounts": engine.account_count}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--restore-child":
        sys.exit(_restore_child(sys.argv[2], allocator="--plain-allocator" not in sys.argv))
    sys.exit(main())
