"""Value change of one contract of each instrument in each scenario, priced once.

Price the instrument, not the position (DESIGN.md): the matrix instruments x scenarios
is computed here once per group and revaluation; accounts then take a sparse product.
Per contract, in the valuation asset (settle-asset amounts times ``settle_value``):

* linear future: ``contract_size x P x m``;
* inverse future (``contract_size`` quote units): ``contract_size x (1/P - 1/(P(1+m)))``
  in the coin, the change of ``qty x contract_size x (1/entry - 1/mark)``;
* option, full revaluation: Black-76 (zero rate, :mod:`monitor.models._black76`) at the
  shocked underlying ``S(1+m)`` and shocked volatility (the risk matrix's vol case, or a
  Monte Carlo path's own vol move), minus Black-76 at the current
  underlying and volatility (the mark); a coin-quoted option's value is the Black-76
  value divided by the underlying (Deribit's convention), at each price;
* option, Greeks approximation (``pm_greeks``): the quote value moves by
  ``delta dS + 1/2 gamma dS^2 + vega dIV`` (Greeks at the mark, ``dS = S m``); a coin-quoted
  option's approximate value is then converted at the shocked underlying.

``P`` is a future's own mark, ``S`` an option's underlying price; every instrument of a
group moves by the same fraction ``m``. Settle-asset amounts are converted at today's
value of the settle asset (a coin-margined account valued in its coin is exact).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from monitor.models import INVERSE, LINEAR, OPTION, black76
from monitor.scenarios._grid import ScenarioSet, shocked_vols
from monitor.schema import PortfolioMarginParams

__all__ = ["InstrumentTerms", "contingency_units", "value_changes"]

Array = NDArray[np.float64]


class InstrumentTerms(NamedTuple):
    """What pricing one contract of each instrument of a group needs (row = instrument)."""

    kind: NDArray[np.int8]  # LINEAR, INVERSE or OPTION (monitor.models)
    contract_size: Array
    price: Array  # a future's own mark; an option's underlying price
    strike: Array  # options only (NaN otherwise)
    years: Array  # options: time to expiry in years, >= 0
    expiry_ms: Array  # options: expiry, which with the strike keys option contingencies
    vol: Array  # options: the mark's implied volatility
    is_call: NDArray[np.bool_]
    coin_quoted: NDArray[np.bool_]
    settle_value: Array  # value of one unit of the settle asset in the valuation asset

    def take(self, ix: NDArray[np.intp]) -> InstrumentTerms:
        """The terms of instruments ``ix`` only (rows in that order)."""
        return InstrumentTerms(
            kind=self.kind[ix],
            contract_size=self.contract_size[ix],
            price=self.price[ix],
            strike=self.strike[ix],
            years=self.years[ix],
            expiry_ms=self.expiry_ms[ix],
            vol=self.vol[ix],
            is_call=self.is_call[ix],
            coin_quoted=self.coin_quoted[ix],
            settle_value=self.settle_value[ix],
        )


def _option_value(
    price: Array, strike: Array, years: Array, vol: Array, is_call: NDArray[np.bool_]
) -> Array:
    value: Array = black76(price, strike, years, vol, is_call).value
    return value


def value_changes(
    terms: InstrumentTerms,
    scenarios: ScenarioSet,
    params: PortfolioMarginParams,
    greeks: bool = False,
) -> Array:
    """Instruments x scenarios: each contract's value change in the valuation asset.

    ``greeks`` selects the delta-gamma-vega approximation for options (``pm_greeks``);
    futures are exact either way.
    """
    n, moves = terms.kind.shape[0], scenarios.price_move
    change = np.zeros((n, moves.size))
    price = terms.price[:, None]
    linear = terms.kind == LINEAR
    change[linear] = price[linear] * moves
    inverse = terms.kind == INVERSE
    change[inverse] = (1.0 / price[inverse]) * (moves / (1.0 + moves))
    option = np.flatnonzero(terms.kind == OPTION)
    if option.size:
        change[option] = _option_changes(terms, option, scenarios, params, greeks)
    result: Array = change * (terms.contract_size * terms.settle_value)[:, None]
    return result


def _option_changes(
    terms: InstrumentTerms,
    option: NDArray[np.intp],
    scenarios: ScenarioSet,
    params: PortfolioMarginParams,
    greeks: bool,
) -> Array:
    """Value change per base unit of options ``option`` in their settle asset."""
    s = terms.price[option][:, None]
    k = terms.strike[option][:, None]
    t = terms.years[option][:, None]
    vol = terms.vol[option]
    call = terms.is_call[option][:, None]
    coin = terms.coin_quoted[option][:, None]
    shocked_price = s * (1.0 + scenarios.price_move)
    if scenarios.vol_move is None:
        shocked_vol = shocked_vols(vol, terms.years[option], scenarios.vol_case, params)
    else:
        shocked_vol = vol[:, None] * np.exp(scenarios.vol_move)
    base = black76(s, k, t, vol[:, None], call)
    if greeks:
        ds = shocked_price - s
        dvol = shocked_vol - vol[:, None]
        # vega is per volatility point (0.01): x 100 per unit of volatility.
        moved = base.value + base.delta * ds + 0.5 * base.gamma * ds * ds + base.vega * 100.0 * dvol
    else:
        moved = _option_value(shocked_price, k, t, shocked_vol, call)
    result: Array = np.where(coin, moved / shocked_price - base.value / s, moved - base.value)
    return result


def contingency_units(terms: InstrumentTerms, params: PortfolioMarginParams) -> tuple[Array, Array]:
    """(futures exposure, short-option charge) per contract, in the valuation asset.

    Futures exposure is the contract's delta times the price, in its settle asset
    (``contract_size x P`` linear, ``contract_size / P`` coins inverse), so
    ``futures_contingency x |sum qty x exposure|`` is the fraction of the net futures
    delta's value. The short-option charge is ``option_contingency`` coin per base unit
    for coin-quoted options, ``option_contingency x S`` for linear ones (0 for futures).
    """
    size_value = terms.contract_size * terms.settle_value
    exposure = np.where(
        terms.kind == LINEAR,
        terms.price,
        np.where(terms.kind == INVERSE, 1.0 / terms.price, 0.0),
    )
    option_unit = np.where(terms.kind == OPTION, np.where(terms.coin_quoted, 1.0, terms.price), 0.0)
    return (
        exposure * size_value,
        params.option_contingency * option_unit * size_value,
    )
