"""An independent risk-matrix reference: plain loops, its own Black-76, nothing from monitor.

Written from the published descriptions (Deribit "Portfolio Margin", CME SPAN) and the
formulas in docs/portfolio-margin.md, to check monitor.scenarios against something that
shares no code with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black76(f: float, k: float, t: float, s: float, call: bool) -> float:
    if s * math.sqrt(t) <= 0.0:
        return max(f - k, 0.0) if call else max(k - f, 0.0)
    total = s * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * total * total) / total
    d2 = d1 - total
    if call:
        return f * norm_cdf(d1) - k * norm_cdf(d2)
    return k * norm_cdf(-d2) - f * norm_cdf(-d1)


def greeks(f: float, k: float, t: float, s: float, call: bool) -> tuple[float, float, float]:
    """(delta, gamma, vega per unit of volatility)."""
    total = s * math.sqrt(t)
    d1 = (math.log(f / k) + 0.5 * total * total) / total
    density = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    delta = norm_cdf(d1) - (0.0 if call else 1.0)
    return delta, density / (f * total), f * density * math.sqrt(t)


@dataclass
class RefInstrument:
    kind: str  # "linear", "inverse", "option"
    contract_size: float
    price: float  # own mark (futures) or underlying price (options)
    strike: float = 0.0
    years: float = 0.0
    expiry: float = 0.0
    vol: float = 0.0
    call: bool = True
    coin: bool = False
    settle_value: float = 1.0


@dataclass
class RefParams:
    price_range: float = 0.16
    price_steps: int = 9
    vol_up: float = 0.45
    vol_down: float = 0.30
    power_short: float = 0.30
    power_long: float = 0.13
    min_iv: float = 0.01
    extreme: list[float] = field(default_factory=lambda: [-0.66, -0.33, 0.5, 1.0, 2.0, 3.0])
    extreme_fraction: float = 0.2
    futures_contingency: float = 0.01
    option_contingency: float = 0.01
    im_factor: float = 1.25
    greeks: bool = False


def scenarios(p: RefParams) -> list[tuple[float, str, float]]:
    out = []
    for i in range(p.price_steps):
        move = -p.price_range + 2.0 * p.price_range * i / (p.price_steps - 1)
        if i == p.price_steps // 2:
            move = 0.0
        for case in ("up", "same", "down"):
            out.append((move, case, 1.0))
    for move in p.extreme:
        out.append((move, "up", p.extreme_fraction))
    return out


def shocked_vol(inst: RefInstrument, case: str, p: RefParams) -> float:
    if case == "same":
        return inst.vol
    days = max(inst.years * 365.0, 1.0)
    power = p.power_short if days <= 30.0 else p.power_long
    term = (30.0 / days) ** power
    if case == "up":
        return max(inst.vol * (1.0 + p.vol_up * term), p.min_iv)
    return max(inst.vol * (1.0 - p.vol_down * term), p.min_iv)


def value_change(inst: RefInstrument, move: float, case: str, p: RefParams) -> float:
    """One contract's value change in the valuation asset."""
    price = inst.price
    new = price * (1.0 + move)
    if inst.kind == "linear":
        change = new - price
    elif inst.kind == "inverse":
        change = 1.0 / price - 1.0 / new
    else:
        before = black76(price, inst.strike, inst.years, inst.vol, inst.call)
        vol = shocked_vol(inst, case, p)
        if p.greeks:
            delta, gamma, vega = greeks(price, inst.strike, inst.years, inst.vol, inst.call)
            ds = new - price
            after = before + delta * ds + 0.5 * gamma * ds * ds + vega * (vol - inst.vol)
        else:
            after = black76(new, inst.strike, inst.years, vol, inst.call)
        change = after / new - before / price if inst.coin else after - before
    return change * inst.contract_size * inst.settle_value


def margin(
    instruments: list[RefInstrument], positions: dict[int, float], p: RefParams
) -> dict[str, object]:
    """Risk matrix, loss, contingencies, MM and IM of one account in one group."""
    matrix = []
    for move, case, weight in scenarios(p):
        pnl = 0.0
        for i, qty in positions.items():
            pnl += qty * value_change(instruments[i], move, case, p)
        matrix.append((pnl, weight))
    worst_value = min(pnl * weight for pnl, weight in matrix)
    loss = max(0.0, -worst_value)
    net_futures = 0.0
    per_strike: dict[tuple[float, float], float] = {}
    for i, qty in positions.items():
        inst = instruments[i]
        value = inst.contract_size * inst.settle_value
        if inst.kind == "linear":
            net_futures += qty * value * inst.price
        elif inst.kind == "inverse":
            net_futures += qty * value / inst.price
        else:
            unit = 1.0 if inst.coin else inst.price
            key = (inst.expiry, inst.strike)
            per_strike[key] = per_strike.get(key, 0.0) + qty * value * unit
    futures = p.futures_contingency * abs(net_futures)
    options = sum((p.option_contingency * max(0.0, -net) for net in per_strike.values()), 0.0)
    mm = loss + futures + options
    return {
        "pnl": [pnl for pnl, _ in matrix],
        "loss": loss,
        "futures": futures,
        "options": options,
        "mm": mm,
        "im": mm * p.im_factor,
    }
