"""ModelTable values positions in bulk: requirements, brackets, liquidation prices."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

import monitor.models._table as table_module
from monitor.models import ModelTable
from monitor.schema import Instrument, RateCurve, SizeScaledMargin, Tier, TieredMargin

pytestmark = pytest.mark.unit

NAN = np.nan

# Binance BTCUSDT-like brackets: floor, cap, mmr, max leverage (cum derived).
BRACKETS = (
    (0, 50_000, 0.004, 125),
    (50_000, 250_000, 0.005, 100),
    (250_000, 1_000_000, 0.01, 50),
    (1_000_000, 5_000_000, 0.025, 20),
    (5_000_000, 20_000_000, 0.05, 10),
)


def tiered(
    symbol: str = "BTCUSDT",
    rows: tuple[tuple[float, float, float, float], ...] = BRACKETS,
    contract_size: float = 1.0,
) -> Instrument:
    tiers = tuple(Tier(floor=f, cap=c, mmr=m, max_leverage=lev) for f, c, m, lev in rows)
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDT",
        base="BTC",
        contract_size=contract_size,
        margin=TieredMargin(tiers=tiers),
    )


def scaled(symbol: str = "BTC_USDC", contract_size: float = 1.0) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDC",
        base="BTC",
        contract_size=contract_size,
        margin=SizeScaledMargin(
            im=RateCurve(base=0.02, slope=5e-5), mm=RateCurve(base=0.01, slope=5e-5)
        ),
    )


def f64(*values: float) -> NDArray[np.float64]:
    return np.array(values, dtype=np.float64)


def ix(*values: int) -> NDArray[np.intp]:
    return np.array(values, dtype=np.intp)


@pytest.fixture
def table() -> ModelTable:
    return ModelTable.from_instruments([tiered(), scaled(), tiered("ETHUSDT", contract_size=0.1)])


# --------------------------------------------------------------------------- requirements


def test_zero_quantity_needs_no_margin_with_or_without_leverage(table: ModelTable) -> None:
    initial, maintenance = table.requirements(
        ix(0, 1, 2, 0), f64(0, 0, -0.0, 0), f64(30_000, 30_000, 2_000, 30_000), f64(NAN, 10, 5, 3)
    )
    assert initial.tolist() == [0, 0, 0, 0]
    assert maintenance.tolist() == [0, 0, 0, 0]


def test_tiered_maintenance_is_notional_times_rate_minus_cum(table: ModelTable) -> None:
    # 10 BTC at 30,000 = 300,000 USDT: third bracket, 1 %, cum 1,300.
    _, maintenance = table.requirements(ix(0), f64(10), f64(30_000), f64(NAN))
    assert maintenance[0] == pytest.approx(300_000 * 0.01 - 1_300, rel=1e-12)


def test_long_and_short_of_the_same_size_need_the_same_margin(table: ModelTable) -> None:
    initial, maintenance = table.requirements(
        ix(0, 0, 1, 1), f64(7, -7, 3, -3), f64(30_000, 30_000, 30_000, 30_000), f64(NAN, NAN, 4, 4)
    )
    np.testing.assert_array_equal(initial[::2], initial[1::2])
    np.testing.assert_array_equal(maintenance[::2], maintenance[1::2])


def test_without_leverage_initial_margin_uses_the_bracket_rate(table: ModelTable) -> None:
    initial, _ = table.requirements(ix(0), f64(10), f64(30_000), f64(NAN))
    assert initial[0] == pytest.approx(300_000 / 50, rel=1e-12)


def test_a_lower_leverage_raises_initial_margin_to_notional_over_leverage(
    table: ModelTable,
) -> None:
    initial, _ = table.requirements(ix(0), f64(10), f64(30_000), f64(4))
    assert initial[0] == pytest.approx(300_000 / 4, rel=1e-12)


def test_a_leverage_above_the_bracket_cap_is_held_to_the_bracket_rate(table: ModelTable) -> None:
    # 300,000 USDT is in the 50x bracket: asking for 125x still needs 1/50.
    initial, _ = table.requirements(ix(0), f64(10), f64(30_000), f64(125))
    assert initial[0] == pytest.approx(300_000 / 50, rel=1e-12)


def test_contract_size_scales_the_notional(table: ModelTable) -> None:
    # 1,000 contracts of 0.1 ETH at 2,000 = 200,000 USDT: second bracket (0.5 %, cum 50).
    assert table.notional(ix(2), f64(-1_000), f64(2_000))[0] == pytest.approx(200_000)
    _, maintenance = table.requirements(ix(2), f64(-1_000), f64(2_000), f64(NAN))
    assert maintenance[0] == pytest.approx(200_000 * 0.005 - 50, rel=1e-12)


def test_size_scaled_rates_grow_with_size_in_base_units(table: ModelTable) -> None:
    initial, maintenance = table.requirements(ix(1), f64(-40), f64(50_000), f64(NAN))
    notional = 40 * 50_000
    assert initial[0] == pytest.approx(notional * (0.02 + 40 * 5e-5), rel=1e-12)
    assert maintenance[0] == pytest.approx(notional * (0.01 + 40 * 5e-5), rel=1e-12)


def test_mixed_instruments_in_one_call_match_one_call_each(table: ModelTable) -> None:
    instrument = ix(0, 1, 2, 1, 0, 2)
    qty = f64(3, -12, 500, 0.5, -90, -4_000)
    mark = f64(31_000, 30_500, 2_100, 29_000, 30_000, 1_900)
    leverage = f64(NAN, 20, 3, NAN, 10, NAN)
    initial, maintenance = table.requirements(instrument, qty, mark, leverage)
    for k in range(instrument.size):
        one = slice(k, k + 1)
        im, mm = table.requirements(instrument[one], qty[one], mark[one], leverage[one])
        assert (initial[k], maintenance[k]) == (im[0], mm[0])


def test_requirements_from_notional_agrees_with_requirements_for_linear_contracts(
    table: ModelTable,
) -> None:
    instrument = ix(0, 1, 2)
    qty, mark, leverage = f64(3, -12, 500), f64(31_000, 30_500, 2_100), f64(NAN, 20, 3)
    size = np.abs(qty) * table.contract_size[instrument]
    expected = table.requirements(instrument, qty, mark, leverage)
    got = table.requirements_from_notional(instrument, size * mark, size, leverage)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_batches_longer_than_a_chunk_are_valued_like_short_ones(
    table: ModelTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(7)
    n = 1_000
    instrument = rng.integers(0, 3, n).astype(np.intp)
    qty = rng.normal(0, 50, n)
    mark = rng.uniform(1_000, 60_000, n)
    leverage = np.where(rng.random(n) < 0.5, NAN, 10.0)
    whole = table.requirements(instrument, qty, mark, leverage)
    monkeypatch.setattr(table_module, "_CHUNK", 64)
    chunked = table.requirements(instrument, qty, mark, leverage)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_position_arrays_of_different_lengths_are_refused(table: ModelTable) -> None:
    with pytest.raises(ValueError, match="1-D of one length"):
        table.requirements(ix(0, 0), f64(1), f64(1, 2), f64(NAN, NAN))


# --------------------------------------------------------------------------- brackets


def reference_bracket(floors: list[float], notional: float) -> int:
    """Brackets cover (floor, cap]: count the floors above the first strictly below."""
    return sum(1 for floor in floors[1:] if notional > floor)


def probe_notionals(floors: list[float]) -> NDArray[np.float64]:
    around = [np.nextafter(f, d) for f in floors[1:] for d in (-np.inf, np.inf)]
    return f64(0, 1e-300, 1, *floors, *around, 1e15, np.inf)


def test_bracket_lookup_agrees_with_comparing_every_floor_at_the_edges() -> None:
    rows = (*BRACKETS, (20_000_000, 21_000_000, 0.06, 8), (21_000_000, 40_000_000, 0.1, 5))
    table = ModelTable.from_instruments([tiered(rows=rows), tiered("B", rows=BRACKETS[:2])])
    assert table.layout.lookup is not None
    for row, spec in enumerate((rows, BRACKETS[:2])):
        floors = [r[0] for r in spec]
        notional = probe_notionals(floors)
        got = table.bracket(np.full(notional.size, row, dtype=np.intp), notional)
        assert got.tolist() == [reference_bracket(floors, x) for x in notional]


def test_brackets_too_close_for_the_lookup_fall_back_to_comparing() -> None:
    rows = ((0, 1_000, 0.01, 50), (1_000, 1_000.0001, 0.02, 25), (1_000.0001, 5_000, 0.03, 20))
    table = ModelTable.from_instruments([tiered(rows=rows)])
    assert table.layout.lookup is None
    floors = [r[0] for r in rows]
    notional = probe_notionals(floors)
    got = table.bracket(np.zeros(notional.size, dtype=np.intp), notional)
    assert got.tolist() == [reference_bracket(floors, x) for x in notional]


def test_a_notional_beyond_the_last_cap_stays_in_the_last_bracket(table: ModelTable) -> None:
    assert table.bracket(ix(0), f64(1e12)).tolist() == [len(BRACKETS) - 1]


def test_size_scaled_instruments_have_one_bracket(table: ModelTable) -> None:
    assert table.bracket(ix(1, 1), f64(0, 1e12)).tolist() == [0, 0]


# --------------------------------------------------------------------------- prices


def equity_and_maintenance_at(
    table: ModelTable, instrument: int, qty: float, mark: float, equity: float, price: float
) -> tuple[float, float]:
    _, mm = table.requirements(ix(instrument), f64(qty), f64(price), f64(NAN))
    size = qty * table.contract_size[instrument]
    return equity + size * (price - mark), float(mm[0])


def test_liquidation_price_of_a_healthy_long_is_below_mark_and_solves_the_equation(
    table: ModelTable,
) -> None:
    price = table.liquidation_prices(ix(0), f64(10), f64(30_000), f64(40_000), f64(0))[0]
    assert price < 30_000
    equity, maintenance = equity_and_maintenance_at(table, 0, 10, 30_000, 40_000, price)
    assert equity == pytest.approx(maintenance, rel=1e-9)


def test_liquidation_price_of_a_healthy_short_is_above_mark_and_solves_the_equation(
    table: ModelTable,
) -> None:
    price = table.liquidation_prices(ix(1), f64(-10), f64(30_000), f64(40_000), f64(500))[0]
    assert price > 30_000
    equity, maintenance = equity_and_maintenance_at(table, 1, -10, 30_000, 40_000, price)
    assert equity == pytest.approx(maintenance + 500, rel=1e-9)


def test_liquidation_price_re_solves_when_the_bracket_moves() -> None:
    """A 40 BTC short at 30,000 (1.2 M USDT, 2.5 % bracket) with 150,000 USDT equity is
    liquidated near 33,300, where 40 BTC are worth 1.33 M: same bracket. With 5 M USDT
    the 2.5 % bracket puts it near 151,600 (6.06 M notional, in the 5 % bracket); solved
    again there it is 150,983 (6.04 M, still 5 %)."""
    table = ModelTable.from_instruments([tiered()])
    price = table.liquidation_prices(
        ix(0, 0), f64(-40, -40), f64(30_000, 30_000), f64(150_000, 5_000_000), f64(0, 0)
    )
    brackets = table.bracket(ix(0, 0), 40 * price)
    assert brackets.tolist() == [3, 4]
    assert price[1] == pytest.approx((5_000_000 + 1_200_000 + 141_300) / 42, rel=1e-12)
    for k, equity in enumerate((150_000, 5_000_000)):
        at, maintenance = equity_and_maintenance_at(table, 0, -40, 30_000, equity, price[k])
        assert at == pytest.approx(maintenance, rel=1e-9)


def test_there_is_no_liquidation_price_without_a_position_or_a_positive_solution(
    table: ModelTable,
) -> None:
    price = table.liquidation_prices(
        ix(0, 0, 0),
        f64(0, 1, -1),
        f64(30_000, 30_000, 30_000),
        # a 1 BTC long with 50,000 equity never falls to MM; a short with equity
        # -40,000 is below MM at every positive price.
        f64(1_000, 50_000, -40_000),
        f64(0, 0, 0),
    )
    assert np.isnan(price).all()


def test_bankruptcy_price_is_where_equity_reaches_zero(table: ModelTable) -> None:
    price = table.liquidation_prices(
        ix(2, 2, 2),
        f64(1_000, -1_000, 0),
        f64(2_000, 2_000, 2_000),
        f64(20_000, 20_000, 20_000),
        f64(123, 123, 123),
        target_maintenance=False,
    )
    # 1,000 contracts of 0.1 ETH = 100 ETH: equity 20,000 covers a 200 USDT move.
    assert price[:2].tolist() == pytest.approx([1_800, 2_200], rel=1e-12)
    assert np.isnan(price[2])


def test_the_liquidation_price_lies_between_mark_and_the_bankruptcy_price(
    table: ModelTable,
) -> None:
    args = (ix(0, 1), f64(5, -5), f64(30_000, 30_000), f64(20_000, 20_000), f64(0, 0))
    liquidation = table.liquidation_prices(*args)
    bankruptcy = table.liquidation_prices(*args, target_maintenance=False)
    assert bankruptcy[0] < liquidation[0] < 30_000
    assert 30_000 < liquidation[1] < bankruptcy[1]
