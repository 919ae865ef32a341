"""The stress steps aside while the gate is closed and finishes, unchanged, once it opens."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from monitor.book import load_cross_accounts
from monitor.engine import Engine
from monitor.schema import Instrument, PriceTick, SolvencyReport, Tier, TieredMargin
from monitor.solvency import CycleGate, Stresser, book_state

pytestmark = pytest.mark.unit


def book(accounts: int = 20_000) -> Engine:
    tiers = (Tier(floor=0, cap=1e15, mmr=0.01, imr=0.02),)
    specs = [
        Instrument(symbol=s, kind="linear", quote="USDT", base=b, margin=TieredMargin(tiers=tiers))
        for s, b in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))
    ]
    engine = Engine(specs)
    engine.apply([], [PriceTick(symbol="BTCUSDT", mark_price=1e5, ts=1),
                      PriceTick(symbol="ETHUSDT", mark_price=4e3, ts=1)], 1)  # fmt: skip
    rng = np.random.default_rng(7)
    account = np.repeat(np.arange(accounts), 2)
    instrument = np.tile(np.arange(2), accounts)
    mark = np.array([1e5, 4e3])[instrument]
    qty = rng.choice([-1.0, 1.0], account.size) * rng.lognormal(0, 1, account.size) / mark * 1e3
    balances = rng.lognormal(np.log(300.0), 1.0, (accounts, 1))
    names = [f"a{k}" for k in range(accounts)]
    load_cross_accounts(engine.book, names, balances, account, instrument, qty, mark * 1.02)
    engine.full_recompute()
    return engine


def wait_for(condition: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_a_stress_waits_at_a_closed_gate_and_then_gives_the_same_report() -> None:
    state = book_state(book())
    stresser = Stresser(["BTC", "ETH"])
    expected = stresser.report(state, 1e6, 0)
    gate = CycleGate()
    gate.close()  # a cycle computes
    found: list[SolvencyReport] = []
    worker = threading.Thread(
        target=lambda: found.append(stresser.report(state, 1e6, 0, gate=gate))
    )
    worker.start()
    wait_for(lambda: gate.pauses > 0, "the stress to step aside")
    assert worker.is_alive()  # it waits while the gate is closed...
    assert not found
    gate.open()  # ...and finishes once the cycle is done
    worker.join(timeout=60)
    assert found == [expected]


def test_a_gate_left_closed_is_opened_by_the_waiting_worker() -> None:
    gate = CycleGate(max_wait_s=0.05)
    gate.close()
    gate.wait()  # nobody opens it: the wait gives up and opens it
    assert gate.flag[0] == 0
    gate.step_aside()  # open: returns at once
    assert gate.pauses == 1


def test_closings_nest_and_the_gate_opens_when_the_outermost_ends() -> None:
    gate = CycleGate()
    with gate.cycle():  # a cycle, awaiting its commit...
        with gate.cycle():  # ...while the price records polled meanwhile are decoded
            assert gate.flag[0] == 1
        assert gate.flag[0] == 1  # still the cycle's
        assert not gate._open.is_set()
    assert gate.flag[0] == 0
    assert gate._open.is_set()
    gate.open()  # one opening too many does not close it again, nor count below zero
    with gate.cycle():
        assert gate.flag[0] == 1
    assert gate.flag[0] == 0


def test_a_gate_left_closed_twice_is_opened_by_the_waiting_worker() -> None:
    gate = CycleGate(max_wait_s=0.05)
    gate.close()
    gate.close()
    gate.wait()
    assert gate.flag[0] == 0
    with gate.cycle():  # and the next cycle closes and opens it as usual
        assert gate.flag[0] == 1
    assert gate.flag[0] == 0
