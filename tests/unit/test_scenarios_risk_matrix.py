"""The scenario engine's risk matrix against the plain-loop reference in pm_reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.models import INVERSE, LINEAR, OPTION
from monitor.scenarios import (
    GroupPositions,
    InstrumentTerms,
    group_margin,
    price_group,
    risk_matrix_scenarios,
)
from monitor.schema import PortfolioMarginParams
from tests.unit import pm_reference as ref

KINDS = {"linear": LINEAR, "inverse": INVERSE, "option": OPTION}


def random_group(rng: np.random.Generator, n: int) -> list[ref.RefInstrument]:
    """A future of each kind and ``n`` options on one underlying, some coin-quoted."""
    s = float(rng.uniform(1_000, 60_000))
    out = [
        ref.RefInstrument("linear", float(rng.choice([1.0, 0.01])), s * rng.uniform(0.98, 1.02)),
        ref.RefInstrument("inverse", 10.0, s * rng.uniform(0.98, 1.02), settle_value=s),
    ]
    expiries = rng.uniform(0.0, 1.5, size=4)
    expiries[0] = 0.0  # one expired expiry: intrinsic value only
    for _ in range(n):
        coin = bool(rng.random() < 0.5)
        ix = int(rng.integers(4))
        out.append(
            ref.RefInstrument(
                "option",
                1.0,
                s,
                strike=float(s * np.exp(rng.normal(0.0, 0.3))),
                years=float(expiries[ix]),
                expiry=float(ix),
                vol=float(rng.uniform(0.05, 2.0)),
                call=bool(rng.random() < 0.5),
                coin=coin,
                settle_value=s if coin else 1.0,
            )
        )
    return out


def terms_of(instruments: list[ref.RefInstrument]) -> InstrumentTerms:
    def column(name: str) -> np.ndarray:
        return np.array([getattr(i, name) for i in instruments], dtype=np.float64)

    option = np.array([i.kind == "option" for i in instruments])
    return InstrumentTerms(
        kind=np.array([KINDS[i.kind] for i in instruments], dtype=np.int8),
        contract_size=column("contract_size"),
        price=column("price"),
        strike=np.where(option, column("strike"), np.nan),
        years=column("years"),
        expiry_ms=np.where(option, column("expiry"), np.nan),
        vol=np.where(option, column("vol"), np.nan),
        is_call=np.array([i.call for i in instruments]),
        coin_quoted=np.array([i.coin for i in instruments]),
        settle_value=column("settle_value"),
    )


def random_books(
    rng: np.random.Generator, instruments: int, accounts: int
) -> list[dict[int, float]]:
    books = []
    for _ in range(accounts):
        held = rng.choice(instruments, size=int(rng.integers(1, 8)), replace=False)
        books.append({int(i): float(rng.normal(0.0, 5.0)) for i in held})
    return books


def coordinates(books: list[dict[int, float]]) -> GroupPositions:
    row, col, qty = [], [], []
    for r, book in enumerate(books):
        for c, q in book.items():
            row.append(r)
            col.append(c)
            qty.append(q)
    return GroupPositions(
        np.array(row, dtype=np.intp), np.array(col, dtype=np.intp), np.array(qty), len(books)
    )


def close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-3 * scale)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("model", ["pm_risk_matrix", "pm_greeks"])
def test_risk_matrix_agrees_with_plain_loop_reference(seed: int, model: str) -> None:
    rng = np.random.default_rng(seed)
    instruments = random_group(rng, 30)
    books = random_books(rng, len(instruments), 25)
    params = PortfolioMarginParams(model=model)  # type: ignore[arg-type]
    ref_params = ref.RefParams(greeks=model == "pm_greeks")
    if model == "pm_greeks":
        for inst in instruments:  # Greeks need time value: no expired options here
            inst.years = max(inst.years, 0.01)
    got = group_margin(price_group(terms_of(instruments), params), coordinates(books))
    for r, book in enumerate(books):
        want = ref.margin(instruments, book, ref_params)
        pnl = want["pnl"]
        assert isinstance(pnl, list)
        scale = max(abs(x) for x in pnl) + 1.0
        for s, value in enumerate(pnl):
            assert close(got.pnl[r, s], value, scale), (r, s, got.pnl[r, s], value)
        for name, column in (
            ("loss", got.loss),
            ("futures", got.futures_contingency),
            ("options", got.option_contingency),
            ("mm", got.maintenance),
            ("im", got.initial),
        ):
            value = want[name]
            assert isinstance(value, float)
            assert close(float(column[r]), value, scale), (name, r, column[r], value)


def test_default_grid_is_27_regular_and_6_extreme_scenarios() -> None:
    scenarios = risk_matrix_scenarios(PortfolioMarginParams())
    assert scenarios.size == 33
    assert scenarios.price_move[:27:3].tolist() == pytest.approx(
        [-0.16, -0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16]
    )
    assert scenarios.price_move[12] == 0.0
    assert scenarios.price_move[27:].tolist() == [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0]
    assert scenarios.weight.tolist() == [1.0] * 27 + [0.2] * 6
    assert scenarios.vol_case[27:].tolist() == [0] * 6
