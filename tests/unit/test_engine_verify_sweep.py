"""The consistency sweep in slices: the same findings as the sweep at once, and a clean
result when the book moves on between slices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from monitor.book import HOLDER_BLOCK, NO_ROW, load_cross_accounts
from monitor.engine import Engine, EngineConfig, _kernels
from monitor.schema import Fill, Instrument, PriceTick, Tier, TieredMargin, Transfer

pytestmark = pytest.mark.unit

SYMBOLS = ("AUSDT", "BUSDT", "CUSDT")
TIERS = TieredMargin(
    tiers=(
        Tier(floor=0, cap=5_000, mmr=0.01, imr=0.02),
        Tier(floor=5_000, cap=1e12, mmr=0.02, imr=0.04),
    )
)


def book(accounts: int = 400, config: EngineConfig | None = None) -> Engine:
    engine = Engine(
        [
            Instrument(symbol=s, kind="linear", quote="USDT", base=s[0], margin=TIERS)
            for s in SYMBOLS
        ],
        config,
    )
    engine.apply([], [PriceTick(symbol=s, mark_price=100.0, ts=0) for s in SYMBOLS], 0)
    rng = np.random.default_rng(5)
    account = np.repeat(np.arange(accounts), 2)
    instrument = np.tile(np.array([0, 2]), accounts)
    instrument[1::4] = 1
    qty = rng.uniform(1, 80, account.size) * rng.choice([-1.0, 1.0], account.size)
    load_cross_accounts(
        engine.book,
        [f"a{i}" for i in range(accounts)],
        rng.uniform(100, 3_000, (accounts, 1)),
        account,
        instrument.astype(np.intp),
        qty,
        rng.uniform(90, 110, account.size),
    )
    engine.full_recompute()
    return engine


def run(engine: Engine, units_per_step: int) -> tuple[list[str], int]:
    sweep = engine.verify_sweep(units_per_step=units_per_step, limit=100)
    steps = 1
    while not sweep.step():
        steps += 1
    return sweep.problems, steps


def broken_book() -> Engine:
    """Drifted cached figures: without price bands, which keep them current (with them,
    the sweep revalues a unit before checking it, see the tests below)."""
    engine = book(config=EngineConfig(price_bands=False))
    units = engine.book.units
    units.upnl[7] += 5.0
    units.state[300] = 3
    engine.book.positions.figures[11, 1] *= 2.0
    engine.book.units.head[390] = -1
    pos = engine.book.positions
    pos.unit_next[pos.unit_next[units.head[20]]] = units.head[21]  # 20's list runs into 21's
    return engine


def test_the_compiled_sweep_finds_what_the_numpy_sweep_finds() -> None:
    engine = broken_book()
    compiled = engine.verify(limit=100)
    _kernels.ENABLED = False
    try:
        numpy_path = engine.verify(limit=100)
    finally:
        _kernels.ENABLED = _kernels.HAVE_NUMBA
    assert sorted(compiled) == sorted(numpy_path)
    assert any("unit 20 " in line and "is on the list of" in line for line in compiled)


@pytest.mark.parametrize("fused", [True, False])
def test_a_sliced_sweep_finds_what_the_whole_sweep_finds(fused: bool) -> None:
    engine = broken_book()
    _kernels.ENABLED = fused and _kernels.HAVE_NUMBA
    try:
        whole = engine.verify(limit=100)
        sliced, steps = run(engine, units_per_step=37)
    finally:
        _kernels.ENABLED = _kernels.HAVE_NUMBA
    assert steps == -(-engine.account_count // 37)
    assert sorted(sliced) == sorted(whole)
    assert any("unit 7 " in line and "upnl cached" in line for line in whole)
    assert any("unit 300 " in line and "state bankrupt" in line for line in whole)
    assert any("position row 11 " in line and "initial cached" in line for line in whole)
    assert any("unit row lists" in line and "unit 390 " in line for line in whole)


def test_a_sweep_stays_clean_while_cycles_run_between_its_slices() -> None:
    engine = book()
    sweep = engine.verify_sweep(units_per_step=50)
    ts = 1
    while not sweep.step():
        ts += 1
        mark = 100.0 * (1.0 + 0.05 * np.sin(ts))
        fills = [
            Fill(fill_id=f"f{ts}", account=f"a{ts * 7 % 400}", symbol="BUSDT", side="buy",
                 qty=3.0, price=mark, ts=ts),
            Transfer(transfer_id=f"t{ts}", account=f"new{ts}", asset="USDT", amount=50.0, ts=ts),
        ]  # fmt: skip
        engine.apply(fills, [PriceTick(symbol="AUSDT", mark_price=mark, ts=ts)], ts)
    assert sweep.problems == []
    assert ts > 5


def test_with_price_bands_a_band_too_wide_shows_as_a_missed_transition() -> None:
    """The sweep revalues each unit first, so what it checks of a banded book is that
    every state is the one its current figures give: a band that let a unit skip a tick
    it should not have shows up, as does drifted collateral."""
    engine = book()
    assert engine.banded
    assert engine.verify() == []
    table, pos = engine.book.units, engine.book.positions
    healthy = [u for u in range(table.size) if table.state[u] == 0 and table.head[u] != NO_ROW]
    unit = healthy[0]
    row = int(table.head[unit])
    while row != NO_ROW:  # the unit will never be judged on a tick again
        pos.band_low[row], pos.band_high[row] = 0.0, np.inf
        row = int(pos.unit_next[row])
    table.collateral[healthy[1]] += 1.0
    crash = [PriceTick(symbol=s, mark_price=1.0, ts=1) for s in SYMBOLS]  # everyone bankrupt
    engine.apply([], crash, 1)
    problems = engine.verify(limit=1_000)
    assert any(f"unit {unit} " in line and "state healthy" in line for line in problems)
    assert any(f"unit {healthy[1]} " in line and "collateral cached" in line for line in problems)
    assert sum(f"unit {unit} " in line for line in problems) == 1  # the others were judged


def test_the_holder_lists_are_checked_in_equal_shares_of_rows_across_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A book of few instruments has long holder lists: a step checks its share of listed
    rows, an instrument's list spread over steps, and every slot once."""
    from monitor.engine import _verify

    engine = book()
    checked: list[tuple[int, int, int]] = []
    real = _verify._holder_problem

    def spy(book: object, ix: int, first: int, stop: int) -> str:
        checked.append((ix, first, stop))
        return real(book, ix, first, stop)  # type: ignore[arg-type]

    monkeypatch.setattr(_verify, "_holder_problem", spy)
    counts = engine.book.positions.holders.count.copy()
    sweep = engine.verify_sweep(units_per_step=37)
    per_step = []
    while True:
        before = len(checked)
        done = sweep.step()
        per_step.append(sum(stop - first for _, first, stop in checked[before:]))
        if done:
            break
    share = -(-int(counts.sum()) // sweep.steps)
    assert max(per_step) <= share
    assert sum(per_step) == int(counts.sum())
    assert len(per_step) == sweep.steps > len(SYMBOLS)
    for ix, count in enumerate(counts.tolist()):
        slots = sorted((first, stop) for i, first, stop in checked if i == ix)
        assert len(slots) > 1  # spread over steps
        assert slots[0][0] == 0
        assert slots[-1][1] == count
        assert all(a[1] == b[0] for a, b in itertools.pairwise(slots))  # no gap, no overlap
    assert sweep.problems == []


@pytest.mark.parametrize("slot", [0, 150, -1])
def test_a_sliced_sweep_finds_a_misplaced_holder_and_a_hidden_band_once(slot: int) -> None:
    engine = book()
    pos = engine.book.positions
    listed = pos.holders_of(1)
    row = int(listed[slot])
    pos.holder_slot[row] += 1  # knows the wrong slot
    whole = engine.verify(limit=100)
    sliced, _ = run(engine, units_per_step=37)
    assert sorted(sliced) == sorted(whole)
    assert sum("holders of BUSDT" in line and "misplaced" in line for line in sliced) == 1
    pos.holder_slot[row] -= 1
    engine.apply([], [PriceTick(symbol="BUSDT", mark_price=100.5, ts=1)], 1)  # bands set
    assert engine.verify() == []
    assert np.isfinite(pos.band_low[row])
    block = (int(pos.holders.start[1]) + slot % listed.size) // HOLDER_BLOCK
    pos.holders.block_low[block] = pos.band_low[row] + 1.0  # the summary hides the row
    sliced, _ = run(engine, units_per_step=37)
    assert sum("holders of BUSDT" in line and "hides" in line for line in sliced) == 1
