"""`liqmon stress --from-state` against a running `liqmon run` on the real broker: the
book rebuilt from liqmon-state, the ledger after its snapshots and the prices topic gives
the report the monitor itself publishes; a missing topic or an empty state is one line."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import msgspec
import pytest

from monitor.changelog import read_changelog
from monitor.instruments import load_instrument_file
from monitor.market import CrashSpec, MarketSpec
from monitor.schema import SolvencyReport
from monitor.simulate import SimulationTarget, run_simulation
from streams import TopicPartition, topic_partitions
from tests.integration.liqmon_process import LiqmonProcess
from tests.integration.monitor_harness import MonitorHarness, now_ms

pytestmark = pytest.mark.kafka

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "instruments.example.json"
_decode_report = msgspec.json.Decoder(SolvencyReport).decode


async def stress_cli(
    proc: LiqmonProcess, instruments: Path, *args: str
) -> tuple[int, bytes, bytes]:
    """``liqmon stress --from-state`` with the running monitor's settings (environment)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "stress",
        "--from-state",
        "--instruments",
        str(instruments),
        "--indent",
        "0",
        *args,
        env=proc.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def ledger_caught_up(h: MonitorHarness, timeout_s: float = 120.0) -> None:
    """Wait until liqmon-state's checkpoints say every ledger record was applied."""
    partitions = await topic_partitions(h.kafka, h.topics.fills)
    ends: dict[TopicPartition, int] = {}
    for record in await h.read_all(h.topics.fills):
        tp = TopicPartition(record.topic, record.partition)
        ends[tp] = max(ends.get(tp, 0), record.offset + 1)
    deadline = time.monotonic() + timeout_s
    while True:
        checkpoints = (await read_changelog(h.kafka, h.topics.state)).checkpoints
        if all(checkpoints.get(tp, 0) >= ends.get(tp, 0) for tp in partitions):
            return
        assert time.monotonic() < deadline, f"ledger not caught up: {checkpoints} < {ends}"
        await asyncio.sleep(0.2)


def figures(report: SolvencyReport) -> dict[str, object]:
    """What a report says of the book (not when it was made)."""
    return {
        "accounts": report.accounts,
        "units": report.units,
        "scenarios": [
            (s.scenario, s.bankrupt_accounts, sorted(s.bankrupt), [c.account for c in s.largest])
            for s in report.scenarios
        ],
        "worst": report.worst_scenario,
        "cover2_groups": report.cover2_groups,
        "adl": [
            (q.symbol, q.side, [c.account for c in q.candidates]) for q in report.adl_candidates
        ],
    }


async def settled_report(
    h: MonitorHarness, after_ms: int, timeout_s: float = 120.0
) -> SolvencyReport:
    """The monitor's report once two reports made after ``after_ms`` agree (no input left)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [_decode_report(r.value) for r in await h.read_all(h.topics.solvency) if r.value]
        recent = [r for r in found if r.ts > after_ms]
        if len(recent) >= 2 and figures(recent[-1]) == figures(recent[-2]):
            return recent[-1]
        assert time.monotonic() < deadline, "the monitor's reports did not settle"
        await asyncio.sleep(0.2)


def instruments_file(tmp_path: Path) -> Path:
    path = tmp_path / "instruments.json"
    path.write_bytes(EXAMPLE.read_bytes())
    return path


async def test_stress_from_state_gives_the_monitors_own_report(
    harness: MonitorHarness, tmp_path: Path
) -> None:
    h = harness
    loaded = load_instrument_file(EXAMPLE)
    instruments = list(loaded.instruments)
    start = [loaded.reference_prices[i.symbol] for i in instruments]
    proc = LiqmonProcess(
        h,
        instruments,
        env={"LIQMON_SOLVENCY__INTERVAL_S": "0.3", "LIQMON_SOLVENCY__REPORT_ACCOUNTS": "100000"},
        snapshot_interval_s=1,
    )
    try:
        await proc.start()
        # A crash after a while: accounts go bankrupt in the stream and in the stress.
        spec = MarketSpec(seed=15, accounts=300, step_s=len(instruments) / 1_000, crash=CrashSpec())
        target = SimulationTarget(h.topics.prices, h.topics.fills, rate=1_000, ticks=1_500)
        await run_simulation(h.kafka, instruments, start, spec, target)
        await ledger_caught_up(h)
        published = await settled_report(h, now_ms())
        assert "snapshot written" in proc.log_text()  # the state holds snapshots, then the ledger

        code, stdout, stderr = await stress_cli(proc, instruments_file(tmp_path))
        assert code == 0, stderr.decode()
        rebuilt = _decode_report(stdout)
    finally:
        await proc.close()
    assert figures(rebuilt) == figures(published)
    assert sum(s.bankrupt_accounts for s in published.scenarios) > 0
    for mine, theirs in zip(rebuilt.scenarios, published.scenarios, strict=True):
        assert mine.bad_debt == pytest.approx(theirs.bad_debt, rel=1e-9, abs=1e-6)
        assert mine.bad_debt_by_underlying == pytest.approx(
            theirs.bad_debt_by_underlying, rel=1e-9, abs=1e-6
        )
    assert rebuilt.cover2 == pytest.approx(published.cover2, rel=1e-9, abs=1e-6)


async def test_stress_from_state_of_an_empty_state_is_one_line(
    harness: MonitorHarness, tmp_path: Path
) -> None:
    proc = LiqmonProcess(harness)
    code, stdout, stderr = await stress_cli(proc, instruments_file(tmp_path))
    assert code == 2
    assert stdout == b""
    (line,) = stderr.decode().strip().splitlines()
    assert "holds no book yet" in line
    assert harness.topics.state in line


async def test_stress_from_state_of_a_missing_topic_is_one_line(
    harness: MonitorHarness, tmp_path: Path
) -> None:
    proc = LiqmonProcess(harness, env={"LIQMON_TOPICS__STATE": "no-such-state-topic"})
    code, stdout, stderr = await stress_cli(proc, instruments_file(tmp_path))
    assert code == 2
    assert stdout == b""
    (line,) = stderr.decode().strip().splitlines()
    assert "'no-such-state-topic' does not exist" in line
