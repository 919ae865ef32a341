"""Hedging lowers portfolio margin (hypothesis, on the scenario engine).

* A future offset by its opposite (a synthetic short: long put, short call of one strike
  and expiry) has no scenario loss: its margin is the futures contingency only.
* The risk-matrix loss and MM of two books together never exceed the sum of the parts.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import LINEAR, OPTION
from monitor.scenarios import GroupPositions, InstrumentTerms, group_margin, price_group
from monitor.schema import PortfolioMarginParams

PARAMS = PortfolioMarginParams()


def group(price: float, strikes: list[float], vols: list[float], years: float) -> InstrumentTerms:
    """A linear future at ``price`` and a call and a put per strike, linear options."""
    n = 1 + 2 * len(strikes)
    kind = np.array([LINEAR] + [OPTION] * (n - 1), dtype=np.int8)
    strike = np.array([np.nan] + [k for k in strikes for _ in (0, 1)])
    vol = np.array([np.nan] + [v for v in vols for _ in (0, 1)])
    return InstrumentTerms(
        kind=kind,
        contract_size=np.ones(n),
        price=np.full(n, price),
        strike=strike,
        years=np.full(n, years),
        expiry_ms=np.where(kind == OPTION, 1.0, np.nan),
        vol=vol,
        is_call=np.array([False] + [c for _ in strikes for c in (True, False)]),
        coin_quoted=np.zeros(n, dtype=np.bool_),
        settle_value=np.ones(n),
    )


def one_book(quantities: dict[int, float]) -> GroupPositions:
    cols = sorted(quantities)
    return GroupPositions(
        np.zeros(len(cols), dtype=np.intp),
        np.array(cols, dtype=np.intp),
        np.array([quantities[c] for c in cols]),
        1,
    )


prices = st.floats(100.0, 100_000.0)
vols = st.floats(0.05, 3.0)
years = st.floats(0.001, 2.0)


@settings(max_examples=200, deadline=None)
@given(price=prices, moneyness=st.floats(0.5, 2.0), vol=vols, t=years, qty=st.floats(0.1, 50.0))
def test_future_offset_by_synthetic_short_needs_only_the_futures_contingency(
    price: float, moneyness: float, vol: float, t: float, qty: float
) -> None:
    terms = group(price, [price * moneyness], [vol], t)
    priced = price_group(terms, PARAMS)
    # long future, short call, long put: F + P - C = K whatever the price and volatility.
    figures = group_margin(priced, one_book({0: qty, 1: -qty, 2: qty}))
    contingency = PARAMS.futures_contingency * qty * price
    assert figures.loss[0] <= 1e-9 * qty * price
    assert figures.option_contingency[0] == 0.0
    assert np.isclose(figures.maintenance[0], contingency, rtol=1e-9, atol=1e-9 * qty * price)


books = st.dictionaries(st.integers(0, 6), st.floats(-20.0, 20.0).filter(lambda q: q != 0.0))


@settings(max_examples=300, deadline=None)
@given(
    price=prices,
    spread=st.lists(st.floats(0.6, 1.6), min_size=3, max_size=3),
    vol=st.lists(vols, min_size=3, max_size=3),
    t=years,
    book=books,
    hedge=books,
)
def test_adding_a_hedge_never_raises_loss_or_mm_above_the_sum_of_the_parts(
    price: float,
    spread: list[float],
    vol: list[float],
    t: float,
    book: dict[int, float],
    hedge: dict[int, float],
) -> None:
    priced = price_group(group(price, [price * m for m in spread], vol, t), PARAMS)
    together = dict(book)
    for col, qty in hedge.items():
        together[col] = together.get(col, 0.0) + qty
    parts = [group_margin(priced, one_book(b)) for b in (book, hedge) if b]
    whole = group_margin(priced, one_book(together)) if together else None
    if whole is None:
        return
    scale = 1e-9 * price * (1.0 + sum(abs(q) for q in [*book.values(), *hedge.values()]))
    assert whole.loss[0] <= sum(p.loss[0] for p in parts) + scale
    assert whole.maintenance[0] <= sum(p.maintenance[0] for p in parts) + scale
