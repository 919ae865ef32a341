"""Margin specs are validated when the table is compiled, with one-line errors."""

from __future__ import annotations

import math

import pytest

from monitor.errors import ConfigError, LiqmonError
from monitor.models import KIND_SIZE_SCALED, KIND_TIERED, ModelTable
from monitor.schema import Instrument, RateCurve, SizeScaledMargin, Tier, TieredMargin

pytestmark = pytest.mark.unit


def instrument(*tiers: Tier, symbol: str = "BTCUSDT", contract_size: float = 1.0) -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDT",
        base="BTC",
        contract_size=contract_size,
        margin=TieredMargin(tiers=tiers),
    )


def scaled(im: RateCurve, mm: RateCurve, symbol: str = "BTC_USDC") -> Instrument:
    return Instrument(
        symbol=symbol,
        kind="linear",
        quote="USDC",
        base="BTC",
        margin=SizeScaledMargin(im=im, mm=mm),
    )


def compile_error(*instruments: Instrument) -> str:
    with pytest.raises(ConfigError) as caught:
        ModelTable.from_instruments(instruments)
    message = str(caught.value)
    assert "\n" not in message
    return message


GOOD = (
    Tier(floor=0, cap=50_000, mmr=0.004, max_leverage=125),
    Tier(floor=50_000, cap=250_000, mmr=0.005, max_leverage=100),
    Tier(floor=250_000, cap=1_000_000, mmr=0.01, imr=0.02),
)


def test_valid_brackets_compile_with_derived_cum_and_imr_from_leverage() -> None:
    table = ModelTable.from_instruments([instrument(*GOOD)])
    assert table.layout.cum[0].tolist() == pytest.approx([0.0, 50.0, 1_300.0])
    assert table.layout.imr[0].tolist() == pytest.approx([1 / 125, 1 / 100, 0.02])
    assert table.kind.tolist() == [KIND_TIERED]
    assert table.symbols == ("BTCUSDT",)


def test_a_given_cum_that_matches_the_derived_one_is_kept() -> None:
    tiers = (GOOD[0], Tier(floor=50_000, cap=250_000, mmr=0.005, max_leverage=100, cum=50.0))
    table = ModelTable.from_instruments([instrument(*tiers)])
    assert table.layout.cum[0, 1] == 50.0


def test_config_errors_are_liqmon_errors_the_cli_prints_as_one_line() -> None:
    assert issubclass(ConfigError, LiqmonError)


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        ((), "instrument BTCUSDT: tiered margin has no tiers"),
        (
            (Tier(floor=10, cap=50_000, mmr=0.004, imr=0.008),),
            "instrument BTCUSDT: tier 1: the first tier must start at floor 0",
        ),
        (
            (GOOD[0], Tier(floor=60_000, cap=250_000, mmr=0.005, imr=0.01)),
            "instrument BTCUSDT: tier 2: floor 60000 does not equal tier 1's cap 50000",
        ),
        (
            (GOOD[0], Tier(floor=50_000, cap=50_000, mmr=0.005, imr=0.01)),
            "instrument BTCUSDT: tier 2: cap 50000 must be above floor 50000",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=0.0, imr=0.01),),
            "instrument BTCUSDT: tier 1: mmr 0.0 must be in (0, 1]",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=1.5, imr=0.01),),
            "instrument BTCUSDT: tier 1: mmr 1.5 must be in (0, 1]",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=math.nan, imr=0.01),),
            "instrument BTCUSDT: tier 1: mmr nan must be in (0, 1]",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=0.004, imr=1.2),),
            "instrument BTCUSDT: tier 1: imr 1.2 must be in (0, 1]",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=0.004),),
            "instrument BTCUSDT: tier 1: give imr or max_leverage",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=0.004, max_leverage=0.5),),
            "instrument BTCUSDT: tier 1: max_leverage 0.5 must be >= 1",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=0.004, imr=0.01, max_leverage=20),),
            "instrument BTCUSDT: tier 1: imr 0.01 disagrees with max_leverage 20",
        ),
        (
            (Tier(floor=0, cap=50_000, mmr=0.02, max_leverage=125),),
            "instrument BTCUSDT: tier 1: imr 0.008 is below mmr 0.02",
        ),
        (
            (GOOD[0], Tier(floor=50_000, cap=250_000, mmr=0.003, imr=0.01)),
            "instrument BTCUSDT: tier 2: mmr 0.003 is below the previous tier's 0.004",
        ),
        (
            (GOOD[0], Tier(floor=50_000, cap=250_000, mmr=0.005, imr=0.01, cum=60.0)),
            "instrument BTCUSDT: tier 2: cum 60.0 would make maintenance margin jump",
        ),
    ],
)
def test_invalid_brackets_are_rejected_naming_instrument_and_tier(
    tiers: tuple[Tier, ...], expected: str
) -> None:
    assert compile_error(instrument(*tiers)).startswith(expected)


def test_imr_and_max_leverage_may_agree_loosely_as_exchanges_print_them() -> None:
    """Binance prints 3x as 33.3 %; the charged rate is imr."""
    tier = Tier(floor=0, cap=50_000, mmr=0.004, imr=0.333, max_leverage=3)
    table = ModelTable.from_instruments([instrument(tier)])
    assert table.layout.imr[0, 0] == 0.333


def test_a_symbol_listed_twice_is_rejected() -> None:
    message = compile_error(instrument(*GOOD), instrument(*GOOD))
    assert message == "instrument BTCUSDT is listed twice; list each once"


@pytest.mark.parametrize("size", [0.0, -1.0, math.inf, math.nan])
def test_contract_size_must_be_positive_and_finite(size: float) -> None:
    message = compile_error(instrument(*GOOD, contract_size=size))
    assert message.startswith("instrument BTCUSDT: contract_size")


def test_valid_size_scaled_curves_compile_as_one_bracket_with_slopes() -> None:
    table = ModelTable.from_instruments(
        [scaled(RateCurve(base=0.02, slope=5e-5), RateCurve(base=0.01, slope=5e-5))]
    )
    layout = table.layout
    assert table.kind.tolist() == [KIND_SIZE_SCALED]
    assert (layout.mmr[0, 0], layout.imr[0, 0], layout.cum[0, 0]) == (0.01, 0.02, 0.0)
    assert (layout.mm_slope[0], layout.im_slope[0]) == (5e-5, 5e-5)


@pytest.mark.parametrize(
    ("im", "mm", "expected"),
    [
        (RateCurve(base=0.0), RateCurve(base=0.01), "size-scaled im.base 0.0 must be in (0, 1]"),
        (RateCurve(base=0.02), RateCurve(base=2.0), "size-scaled mm.base 2.0 must be in (0, 1]"),
        (
            RateCurve(base=0.02, slope=-1e-5),
            RateCurve(base=0.01),
            "size-scaled im.slope -1e-05 must be a finite number >= 0",
        ),
        (
            RateCurve(base=0.02, slope=math.inf),
            RateCurve(base=0.01),
            "size-scaled im.slope inf must be a finite number >= 0",
        ),
        (
            RateCurve(base=0.01),
            RateCurve(base=0.02),
            "size-scaled im curve (0.01 + 0 x size) must be at or above the mm curve",
        ),
        (
            RateCurve(base=0.02, slope=1e-5),
            RateCurve(base=0.01, slope=2e-5),
            "size-scaled im curve (0.02 + 1e-05 x size) must be at or above the mm curve",
        ),
    ],
)
def test_invalid_size_scaled_curves_are_rejected_naming_the_instrument(
    im: RateCurve, mm: RateCurve, expected: str
) -> None:
    assert compile_error(scaled(im, mm)).startswith(f"instrument BTC_USDC: {expected}")


def test_an_empty_instrument_list_compiles_to_an_empty_table() -> None:
    table = ModelTable.from_instruments([])
    assert len(table) == 0
    assert table.contract_size.shape == (0,)


def test_compiled_arrays_are_read_only() -> None:
    table = ModelTable.from_instruments([instrument(*GOOD)])
    with pytest.raises(ValueError, match="read-only"):
        table.layout.mmr[0, 0] = 0.5
    with pytest.raises(ValueError, match="read-only"):
        table.contract_size[0] = 2.0
