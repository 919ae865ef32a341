"""Dynamic margin: rate scales per underlying from the EWMA volatility of its marks.

Per underlying, at every bar close (event time ``t``, the start of the new bar):

* ``raw = clip(vol / reference_vol, floor, cap)``, ``vol`` the annualised EWMA volatility
  (RiskMetrics, ``monitor.risk.EwmaVolatility``);
* anti-procyclicality after EMIR (Commission Delegated Regulation (EU) No 153/2013,
  Art. 28(1)(b), stressed observations weighted at least 25 %, and 28(1)(c), a floor):
  ``stressed = max(stressed, raw)``, the highest scale seen, and
  ``target = (1 - w) x raw + w x stressed``, never below ``floor``;
* the effective scale moves towards ``target`` by at most ``max_change_per_hour`` times
  the event time since the last bar close, so no hour moves it by more;
* an increase waits ``lead_time_s`` of event time before it applies.

Each change of the effective scale is a :class:`~monitor.schema.MarginParameters`; the
caller applies it to the engine (``Engine.rescale``) and publishes it. Ticks are taken bar
by bar in event time, so the outcome does not depend on how they were batched. Pure: no
clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from monitor.dynamic._config import DynamicMarginParams, DynamicSettings
from monitor.errors import ConfigError
from monitor.risk import EwmaParams, EwmaVolatility
from monitor.schema import Instrument, MarginParameters, PriceTick, VolatilityState

__all__ = ["DynamicMargin"]

_HOUR_MS = 3_600_000


class _Scale:
    """One underlying's dynamic-margin state (see :class:`~monitor.schema.VolatilityState`)."""

    __slots__ = ("announced_ts", "evaluated_ts", "pending_scale", "pending_ts", "scale", "stressed")

    def __init__(self) -> None:
        self.scale = 1.0
        self.stressed = 0.0
        self.evaluated_ts = -1
        self.pending_scale: float | None = None
        self.pending_ts = 0
        self.announced_ts = 0


class DynamicMargin:
    """Volatility of every underlying from its accepted marks, and the rate scale of the
    instruments that follow it.

    Underlyings measured: every future or perpetual symbol, every option underlying and
    every key of ``settings.margin``. ``scales()`` gives the effective scale of each
    instrument under dynamic margin (1 until its volatility says otherwise).
    """

    def __init__(self, instruments: Sequence[Instrument], settings: DynamicSettings) -> None:
        self.settings = settings
        names = {i.symbol for i in instruments if i.kind != "option"}
        names |= {i.underlying for i in instruments if i.underlying is not None}
        names |= set(settings.margin)
        self.underlyings = tuple(sorted(names))
        self.index = {name: k for k, name in enumerate(self.underlyings)}
        self.params = EwmaParams(
            lam=settings.ewma_lambda,
            warmup=settings.ewma_warmup,
            bar_ms=max(1, round(settings.bar_s * 1000)),
        )
        self.ewma = EwmaVolatility(self.underlyings, self.params)
        self.followers = _followers(instruments, settings.margin)
        self._scales = {name: _Scale() for name in settings.margin}
        self._changed: set[str] = set()
        self.moved = False  # a bar closed since the last states(): save them now

    # ------------------------------------------------------------------ reading

    def volatility(self) -> dict[str, float]:
        """Annualised EWMA volatility per underlying (NaN while warming up)."""
        vol = self.ewma.volatility_annualised()
        return {name: float(vol[k]) for k, name in enumerate(self.underlyings)}

    def scales(self) -> dict[str, float]:
        """The effective rate scale of every instrument under dynamic margin."""
        return {
            symbol: self._scales[name].scale
            for name, symbols in self.followers.items()
            for symbol in symbols
        }

    def range_scales(self) -> dict[str, float]:
        """The scale of each underlying's risk-matrix ``price_range`` (portfolio margin):
        the same as its rates'."""
        return self.underlying_scales()

    def underlying_scales(self) -> dict[str, float]:
        """The effective rate scale of every underlying under dynamic margin."""
        return {name: s.scale for name, s in self._scales.items()}

    def exported_scales(self) -> dict[str, float]:
        """The rate scale of every underlying measured, for the metric: 1 where no
        dynamic margin is configured (its instruments keep their configured rates)."""
        return {
            name: self._scales[name].scale if name in self._scales else 1.0
            for name in self.underlyings
        }

    def states(self, changed_only: bool = True) -> list[VolatilityState]:
        """Changelog records of the underlyings changed since the last call (or all)."""
        names = sorted(self._changed) if changed_only else list(self.underlyings)
        self._changed.clear()
        self.moved = False
        records = []
        for name in names:
            k = self.index[name]
            s = self._scales.get(name, _Scale())
            records.append(
                VolatilityState(
                    underlying=name,
                    bar=int(self.ewma.bar[k]),
                    close=_known(self.ewma.close[k]),
                    prev_close=_known(self.ewma.prev_close[k]),
                    returns=int(self.ewma.returns[k]),
                    mean=float(self.ewma.mean[k]),
                    m2=float(self.ewma.m2[k]),
                    variance=_known(self.ewma.variance[k]),
                    scale=s.scale,
                    stressed_scale=s.stressed,
                    evaluated_ts=s.evaluated_ts,
                    pending_scale=s.pending_scale,
                    pending_ts=s.pending_ts,
                    announced_ts=s.announced_ts,
                )
            )
        return records

    def restore(self, states: Iterable[VolatilityState]) -> None:
        """Resume from records an earlier run wrote (unknown underlyings are skipped)."""
        ewma = self.ewma
        for state in states:
            k = self.index.get(state.underlying)
            if k is None:
                continue
            ewma.bar[k] = state.bar
            ewma.close[k] = _or_nan(state.close)
            ewma.prev_close[k] = _or_nan(state.prev_close)
            ewma.returns[k], ewma.mean[k], ewma.m2[k] = state.returns, state.mean, state.m2
            ewma.variance[k] = _or_nan(state.variance)
            s = self._scales.get(state.underlying)
            if s is not None:
                s.scale, s.stressed, s.evaluated_ts = (
                    state.scale,
                    state.stressed_scale,
                    state.evaluated_ts,
                )
                s.pending_scale, s.pending_ts = state.pending_scale, state.pending_ts
                s.announced_ts = state.announced_ts

    # ------------------------------------------------------------------ updating

    def observe(
        self, ticks: Sequence[PriceTick], now_ms: int
    ) -> tuple[list[MarginParameters], dict[str, PriceTick]]:
        """Take a cycle's accepted ticks, bar by bar in event time; return the parameter
        changes and, per instrument whose scale changed, the tick that caused it."""
        rows = [
            (self.index[t.symbol], t.ts, t.mark_price, t)
            for t in ticks
            if t.symbol in self.index and t.mark_price is not None and t.mark_price > 0
        ]
        if not rows:
            return [], {}
        bar_ms = self.params.bar_ms
        ix = np.array([r[0] for r in rows], dtype=np.intp)
        ts = np.array([r[1] for r in rows], dtype=np.int64)
        mark = np.array([r[2] for r in rows], dtype=np.float64)
        bars = ts // bar_ms
        changes: list[MarginParameters] = []
        triggers: dict[str, PriceTick] = {}
        for bar in np.unique(bars).tolist():
            step = bars == bar
            before = self.ewma.returns.copy()
            self.ewma.observe(ix[step], ts[step], mark[step])
            closed = np.flatnonzero(self.ewma.returns != before)
            self.moved = self.moved or bool(closed.size)
            self._changed.update(self.underlyings[k] for k in closed.tolist())
            self._changed.update(self.underlyings[k] for k in np.unique(ix[step]).tolist())
            for k in closed.tolist():
                name = self.underlyings[k]
                change = self._evaluate(name, k, int(self.ewma.bar[k]) * bar_ms, now_ms)
                if change is None:
                    continue
                changes.append(change)
                tick = max(
                    (r[3] for r in rows if r[0] == k and r[1] // bar_ms <= bar),
                    key=lambda t: t.ts,
                )
                triggers.update(dict.fromkeys((*change.instruments, name), tick))
        return changes, triggers

    def _evaluate(self, name: str, k: int, t: int, now_ms: int) -> MarginParameters | None:
        rule = self.settings.margin.get(name)
        variance = float(self.ewma.variance[k])
        if rule is None or math.isnan(variance):
            return None
        s = self._scales[name]
        vol = math.sqrt(variance * self.params.annualisation)
        ratio = vol / rule.reference_vol
        raw = min(max(ratio, rule.floor), rule.cap)
        s.stressed = max(s.stressed, raw)
        w = rule.stressed_weight
        target = max(rule.floor, (1.0 - w) * raw + w * s.stressed)
        limited = []
        if ratio < rule.floor:
            limited.append("floor")
        elif ratio > rule.cap:
            limited.append("cap")
        if target > raw:
            limited.append("stressed_weight")
        elapsed = 0 if s.evaluated_ts < 0 else max(0, t - s.evaluated_ts)
        s.evaluated_ts = t
        step = rule.max_change_per_hour * elapsed / _HOUR_MS
        base = s.pending_scale if s.pending_scale is not None else s.scale
        if abs(target - base) <= step:
            new = target
        else:
            new = base + math.copysign(step, target - base)
            limited.append("max_change")
        previous, announced = s.scale, t
        if new > previous and rule.lead_time_s > 0:
            if s.pending_scale is None:
                s.pending_ts = t + round(rule.lead_time_s * 1000)
                s.announced_ts = t
            s.pending_scale = new
            if t < s.pending_ts:
                limited.append("lead_time")
                return None
            announced = s.announced_ts
            s.pending_scale = None
        else:
            s.pending_scale = None
        if abs(new - previous) <= 1e-12 * previous:  # rounding, not a change
            return None
        s.scale = new
        return MarginParameters(
            event_id=f"margin_parameters:{name}:{t}",
            underlying=name,
            instruments=self.followers[name],
            scale=new,
            previous_scale=previous,
            raw_scale=raw,
            stressed_scale=s.stressed,
            target_scale=target,
            volatility=vol,
            reference_vol=rule.reference_vol,
            limited_by=tuple(limited),
            announced_ts=announced,
            ts=t,
            detected_ts=now_ms,
        )


def _known(value: float) -> float | None:
    """None for NaN (not known yet): the changelog is JSON, which has no NaN."""
    return None if math.isnan(value) else float(value)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _followers(
    instruments: Sequence[Instrument], margin: dict[str, DynamicMarginParams]
) -> dict[str, tuple[str, ...]]:
    """Per dynamic-margin key, the instruments whose rates it scales (options excluded:
    their standard margin is priced from their own marks)."""
    known = {i.symbol: i for i in instruments}
    owner: dict[str, str] = {}
    followers: dict[str, tuple[str, ...]] = {}
    for name, rule in sorted(margin.items()):
        unknown = [s for s in rule.instruments if s not in known]
        if unknown:
            raise ConfigError(
                f"dynamic.margin.{name}.instruments names {', '.join(unknown)}, which the "
                "instruments file does not list"
            )
        symbols = sorted(
            i.symbol
            for i in instruments
            if i.kind != "option"
            and (i.symbol == name or i.underlying == name or i.symbol in rule.instruments)
        )
        if not symbols:
            raise ConfigError(
                f"dynamic.margin.{name} matches no future or perpetual: name an instrument, "
                "an option underlying with futures on it, or list its instruments"
            )
        for symbol in symbols:
            if symbol in owner:
                raise ConfigError(
                    f"instrument {symbol} follows both dynamic.margin.{owner[symbol]} and "
                    f"dynamic.margin.{name}; give it one"
                )
            owner[symbol] = name
        followers[name] = tuple(symbols)
    return followers
