"""Restart-to-ready of ``liqmon run`` after kill -9, against a graceful restart (``make bench``).

Prints one JSON line per figure to stdout, with a baseline measured in the same run;
progress goes to stderr. The book is the end-to-end benchmark's (``_e2e_rig``: accounts
from the ``liqmon simulate`` generator, produced with kcat, applied by a running
monitor). Then, ``--rounds`` times each, alternately:

* graceful: SIGTERM (the monitor finishes its cycle, commits and leaves the group), then
  a new ``liqmon run`` on the same topics and group, timed from its spawn until
  ``/readyz`` answers 200 (price table read, partitions assigned, book rebuilt);
* kill -9: SIGKILL, then the same. Without static membership the group waits for the
  dead member's session to expire before it reassigns its partitions.

Before the first restart every ledger partition has a snapshot (the monitors run with
``service.snapshot_interval_s`` of ``--snapshot-interval-s``, 30 s), so a restart loads
snapshots and replays only what came after them, as in production.

Figure ``restart_to_ready``: the median kill -9 restart, the baseline the median
graceful one, and their ratio. The target is <= 30 s for 1,000,000 accounts (``met``;
null for a smaller book, and when it is missed the monitors' logs are kept)
(``--accounts 1000000 --rounds 1``: about 15 minutes on the shared 2-core box, 11 of them
the first monitor rebuilding the 4.85M-record ledger by replay); the default is 20,000
accounts.
Where the monitor has ``service.instance_id`` (static group membership), the restarts
use one (unless ``LIQMON_SERVICE__INSTANCE_ID`` is set already); other ``LIQMON_*``
variables reach the monitor too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

from _e2e_rig import Rig, ensure_broker, progress

from monitor.config import ServiceSettings, load_settings
from streams.broker import find_project_root

READY_TIMEOUT_S = 600.0
TARGET_S = 30.0
_SNAPSHOT_TIMESTAMP = "liqmon_snapshot_timestamp_seconds"
TARGET_ACCOUNTS = 1_000_000  # the target is for this many accounts ("met" is null below)


def emit(figure: dict[str, Any]) -> None:
    print(json.dumps(figure), flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--accounts",
        type=int,
        default=20_000,
        help="accounts in the book (%(default)s; the issue's target is 1000000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="restarts of each kind (%(default)s)")
    parser.add_argument(
        "--snapshot-interval-s",
        type=float,
        default=30.0,
        help="service.snapshot_interval_s of the monitors; the restarts begin once every "
        "ledger partition has a snapshot (%(default)s; 0: no snapshots, replay everything)",
    )
    parser.add_argument("--seed", type=int, default=7, help="account generator seed")
    return parser.parse_args()


async def restart(rig: Rig, *, kill: bool) -> float:
    """Stop the monitor (SIGKILL or SIGTERM), start a new one; seconds from spawn to ready."""
    if kill:
        os.kill(rig.monitor.pid, signal.SIGKILL)
    code = await rig.monitor.stop()
    if not kill and code != 0:
        raise RuntimeError(f"the monitor exited with {code} on SIGTERM:\n{rig.monitor.log_tail()}")
    began = time.perf_counter()
    await rig.start_monitor(timeout_s=READY_TIMEOUT_S)
    return time.perf_counter() - began


async def every_partition_snapshotted(rig: Rig) -> None:
    """Wait until the running monitor has written a snapshot of every ledger partition
    (each has its ``liqmon_snapshot_timestamp_seconds``; counting snapshots written let
    the restarts begin while two partitions had taken every turn)."""
    began = time.perf_counter()
    partitions = rig.topics.fills_partitions

    async def written() -> bool:
        scrape = await rig.monitor.scrape(_SNAPSHOT_TIMESTAMP)
        return scrape.series(_SNAPSHOT_TIMESTAMP) >= partitions

    await rig.monitor.until_async(written, f"{partitions} snapshots", READY_TIMEOUT_S, 0.5)
    progress(f"every partition snapshotted {time.perf_counter() - began:.1f}s after ready")


async def run(args: argparse.Namespace) -> None:
    root = find_project_root(Path(__file__).parent)
    kafka = load_settings(environ=os.environ).kafka
    ensure_broker(root, kafka)
    if "instance_id" in ServiceSettings.__struct_fields__:
        # Static group membership where the monitor has it: the restarted process takes its
        # predecessor's place without waiting for the dead member's session to expire.
        os.environ.setdefault("LIQMON_SERVICE__INSTANCE_ID", f"bench-restart-{os.getpid()}")
    os.environ.setdefault("LIQMON_SERVICE__SNAPSHOT_INTERVAL_S", str(args.snapshot_interval_s))
    snapshots = float(os.environ["LIQMON_SERVICE__SNAPSHOT_INTERVAL_S"]) > 0
    rig = Rig(root, kafka)
    finished = False
    try:
        await rig.set_up(args.accounts, args.seed, None)
        if snapshots:
            await every_partition_snapshotted(rig)
        graceful: list[float] = []
        killed: list[float] = []
        for round_ in range(args.rounds):
            graceful.append(await restart(rig, kill=False))
            killed.append(await restart(rig, kill=True))
            progress(
                f"round {round_ + 1}: ready {graceful[-1]:.2f}s after SIGTERM, "
                f"{killed[-1]:.2f}s after kill -9"
            )
        value, baseline = statistics.median(killed), statistics.median(graceful)
        met = value <= TARGET_S if args.accounts >= TARGET_ACCOUNTS else None
        rig.keep_logs |= met is False  # the monitors' logs say where the time went
        emit(
            {
                "bench": "restart",
                "figure": "restart_to_ready",
                "accounts": args.accounts,
                "ledger_records": rig.ledger_records,
                "after": "kill -9",
                "seconds": round(value, 3),
                "baseline": "restart after a graceful SIGTERM, same book, same run",
                "baseline_seconds": round(baseline, 3),
                "ratio": round(value / baseline, 3),
                "target_seconds_at_1m_accounts": TARGET_S,
                "met": met,
                "rounds": args.rounds,
                "seconds_rounds": [round(s, 3) for s in killed],
                "baseline_seconds_rounds": [round(s, 3) for s in graceful],
                "static_membership": "LIQMON_SERVICE__INSTANCE_ID" in os.environ,
                "snapshot_interval_s": float(os.environ["LIQMON_SERVICE__SNAPSHOT_INTERVAL_S"]),
            }
        )
        finished = True
    finally:
        await rig.tear_down(keep_files=not finished)
    progress("done")


def main() -> None:
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
