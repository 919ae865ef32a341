"""ModelTable: every instrument's margin model compiled into arrays, valued in bulk."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from monitor.errors import ConfigError
from monitor.models import _liquidation
from monitor.models._brackets import CompiledBrackets, compile_brackets
from monitor.models._layout import (
    KIND_SIZE_SCALED,
    KIND_TIERED,
    Layout,
    bracket_flat_index,
    build_lookup,
)
from monitor.models._liquidation_kernel import HAVE_NUMBA, liquidation_prices_fused
from monitor.models._size_scaled import check_size_scaled
from monitor.models._valuation import margins_into
from monitor.schema import Instrument, OptionStandardMargin, SizeScaledMargin, TieredMargin

__all__ = ["ModelTable"]

# Positions valued per pass: a pass's temporaries stay in cache while the per-call
# overhead of numpy stays small (measured best at 2**17 with tests/bench/bench_models.py).
_CHUNK: Final = 1 << 17


class ModelTable:
    """Compiled margin models for a fixed, ordered list of instruments (row = instrument_ix).

    Build it once with :meth:`from_instruments`; it is immutable afterwards. All
    amounts are in each instrument's settle asset.
    """

    __slots__ = ("_layout", "symbols")

    symbols: tuple[str, ...]
    _layout: Layout

    def __init__(self, symbols: tuple[str, ...], layout: Layout) -> None:
        self.symbols = symbols
        self._layout = layout

    @classmethod
    def from_instruments(cls, instruments: Sequence[Instrument]) -> ModelTable:
        """Validate and compile ``instruments``; row ``i`` of the table is ``instruments[i]``.

        Raises ConfigError (one line, naming the instrument and tier) for an invalid spec.
        """
        seen: set[str] = set()
        compiled: list[CompiledBrackets] = []
        slopes: list[tuple[float, float]] = []
        kinds: list[int] = []
        for instrument in instruments:
            symbol = instrument.symbol
            if symbol in seen:
                raise ConfigError(f"instrument {symbol} is listed twice; list each once")
            seen.add(symbol)
            size = instrument.contract_size
            if not (math.isfinite(size) and size > 0):
                raise ConfigError(f"instrument {symbol}: contract_size {size!r} must be > 0")
            spec = instrument.margin
            if isinstance(spec, TieredMargin):
                compiled.append(compile_brackets(symbol, spec))
                slopes.append((0.0, 0.0))
                kinds.append(KIND_TIERED)
            elif isinstance(spec, SizeScaledMargin):
                check_size_scaled(symbol, spec)
                compiled.append(
                    CompiledBrackets((0.0,), (math.inf,), (spec.mm.base,), (spec.im.base,), (0.0,))
                )
                slopes.append((spec.mm.slope, spec.im.slope))
                kinds.append(KIND_SIZE_SCALED)
            elif isinstance(spec, OptionStandardMargin):
                # Options are margined per instrument from their price (ContractTable);
                # here they are one bracket at zero rates, so linear valuation adds nothing.
                compiled.append(CompiledBrackets((0.0,), (math.inf,), (0.0,), (0.0,), (0.0,)))
                slopes.append((0.0, 0.0))
                kinds.append(KIND_TIERED)
            else:  # a new spec kind in the schema needs compiling here
                raise ConfigError(f"instrument {symbol}: unsupported margin model {spec!r}")
        layout = _pad(instruments, compiled, slopes, kinds)
        return cls(tuple(i.symbol for i in instruments), layout)

    # ------------------------------------------------------------------ per instrument

    @property
    def contract_size(self) -> NDArray[np.float64]:
        """Base units per contract, per instrument (read-only)."""
        return self._layout.contract_size

    @property
    def kind(self) -> NDArray[np.int8]:
        """Model kind per instrument: ``KIND_TIERED`` or ``KIND_SIZE_SCALED`` (read-only)."""
        return self._layout.kind

    @property
    def layout(self) -> Layout:
        """The compiled arrays (read-only views), for callers that vectorise further."""
        return self._layout

    def __len__(self) -> int:
        return len(self.symbols)

    def scaled(self, factors: NDArray[np.float64]) -> ModelTable:
        """A table whose every rate is this one's times ``factors[i]`` for instrument ``i``:
        tiered ``mmr``, ``imr`` and maintenance amount ``cum`` (so ``MM`` scales exactly,
        ``IM`` up to the leverage floor ``1 / leverage``), size-scaled bases and slopes.
        Brackets (notional floors) are unchanged. Used by dynamic margin
        (``monitor.dynamic``); ``factors`` of 1 give equal rates."""
        f = np.asarray(factors, dtype=np.float64)
        if f.shape != (len(self.symbols),) or not np.all(np.isfinite(f) & (f > 0)):
            raise ValueError("rate factors must be one positive finite number per instrument")
        layout = self._layout
        column = f[:, None]
        scaled = layout._replace(
            mmr=layout.mmr * column,
            imr=layout.imr * column,
            cum=layout.cum * column,
            mm_slope=layout.mm_slope * f,
            im_slope=layout.im_slope * f,
        )
        for array in (scaled.mmr, scaled.imr, scaled.cum, scaled.mm_slope, scaled.im_slope):
            array.flags.writeable = False
        return ModelTable(self.symbols, scaled)

    # ------------------------------------------------------------------ per position

    def notional(
        self,
        instrument_ix: NDArray[np.integer[Any]],
        qty: NDArray[np.float64],
        mark: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Position notional at mark, ``|qty| * contract_size * mark``, in the settle asset."""
        return np.abs(qty) * self._layout.contract_size.take(instrument_ix) * mark

    def bracket(
        self, instrument_ix: NDArray[np.integer[Any]], notional: NDArray[np.float64]
    ) -> NDArray[np.intp]:
        """The 0-based bracket each notional falls in (0 for size-scaled instruments)."""
        notional = np.ascontiguousarray(notional, dtype=np.float64)
        flat = bracket_flat_index(self._layout, instrument_ix, notional)
        flat -= instrument_ix * self._layout.max_tiers
        return flat

    def requirements(
        self,
        instrument_ix: NDArray[np.integer[Any]],
        qty: NDArray[np.float64],
        mark: NDArray[np.float64],
        leverage: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(initial_margin, maintenance_margin) per position, in the settle asset.

        ``qty`` is signed, in contracts; ``leverage`` is the account's chosen leverage
        on the instrument (> 0), NaN when not set. Tiered: ``MM = N * mmr - cum`` and
        ``IM = N * max(imr, 1 / leverage)`` in the bracket of the notional ``N``;
        size-scaled: rates ``base + slope * |size|`` on the whole notional. Zero qty
        gives zeros. Vectorised over positions of any mix of instruments and kinds,
        in cache-sized chunks.
        """
        n = _check_lengths(instrument_ix, qty, mark, leverage)
        layout = self._layout
        initial = np.empty(n)
        maintenance = np.empty(n)
        for start in range(0, n, _CHUNK):
            part = slice(start, start + _CHUNK)
            ix = instrument_ix[part]
            size = np.abs(qty[part])
            if not layout.unit_contracts:
                size *= layout.contract_size.take(ix)
            notional = size * mark[part]
            margins_into(
                layout, ix, notional, size, leverage[part], initial[part], maintenance[part]
            )
        return initial, maintenance

    def requirements_from_notional(
        self,
        instrument_ix: NDArray[np.integer[Any]],
        notional: NDArray[np.float64],
        size: NDArray[np.float64],
        leverage: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(initial_margin, maintenance_margin) from each position's notional (settle
        asset, the bracket key) and size (base units, for size-scaled rates).

        The settle-asset-neutral form of :meth:`requirements`: it makes no assumption
        about how notional was computed (e.g. Deribit's inverse futures margin in BTC,
        where the notional is the size in BTC).
        """
        n = _check_lengths(instrument_ix, notional, size, leverage)
        initial = np.empty(n)
        maintenance = np.empty(n)
        for start in range(0, n, _CHUNK):
            part = slice(start, start + _CHUNK)
            margins_into(
                self._layout,
                instrument_ix[part],
                np.ascontiguousarray(np.abs(notional[part]), dtype=np.float64),
                np.abs(size[part]).astype(np.float64),
                leverage[part],
                initial[part],
                maintenance[part],
            )
        return initial, maintenance

    def liquidation_prices(
        self,
        instrument_ix: NDArray[np.integer[Any]],
        qty: NDArray[np.float64],
        mark: NDArray[np.float64],
        equity: NDArray[np.float64],
        other_maintenance: NDArray[np.float64],
        target_maintenance: bool = True,
        exposure: NDArray[np.float64] | None = None,
    ) -> NDArray[np.float64]:
        """Per position, the mark price of its instrument that brings its margin unit to
        maintenance margin (``target_maintenance=True``: the liquidation price) or to
        zero equity (``False``: the bankruptcy price), every other price held still.

        ``equity`` is the unit's equity at current marks (a cross account's equity, or
        an isolated position's margin plus its unrealised PnL); ``other_maintenance``
        is the maintenance margin of the rest of the unit (0 for isolated). The
        bracket is re-solved at the solved price until stable, as Binance documents.
        NaN where no positive price does it (e.g. a long whose equity covers any fall
        in price, a short already below maintenance at every price, or qty 0).

        ``exposure`` (settle asset per unit of price) is how much the unit's equity,
        minus the other maintenance margin when ``target_maintenance``, moves with the
        mark: the base size ``qty * contract_size`` (the default) plus whatever else in
        the unit the same price values (collateral priced by the instrument's own mark).
        """
        n = _check_lengths(instrument_ix, qty, mark, equity, other_maintenance)
        if exposure is not None:
            _check_lengths(instrument_ix, exposure)
        layout = self._layout
        price = np.empty(n)
        for start in range(0, n, _CHUNK):
            part = slice(start, start + _CHUNK)
            ix = instrument_ix[part]
            signed_size = qty[part] * layout.contract_size.take(ix)
            slope = None if exposure is None else exposure[part]
            if target_maintenance:
                solve = liquidation_prices_fused if HAVE_NUMBA else _liquidation.liquidation_prices
                price[part] = solve(
                    layout,
                    ix,
                    signed_size,
                    mark[part],
                    equity[part],
                    other_maintenance[part],
                    slope,
                )
            else:
                price[part] = _liquidation.bankruptcy_prices(
                    signed_size, mark[part], equity[part], slope
                )
        return price


def _check_lengths(*arrays: NDArray[np.generic]) -> int:
    n = arrays[0].shape[0]
    for array in arrays:
        if array.ndim != 1 or array.shape[0] != n:
            raise ValueError(
                f"position arrays must be 1-D of one length, got shapes {[a.shape for a in arrays]}"
            )
    return int(n)


def _pad(
    instruments: Sequence[Instrument],
    compiled: list[CompiledBrackets],
    slopes: list[tuple[float, float]],
    kinds: list[int],
) -> Layout:
    n = len(compiled)
    width = max((len(c.floors) for c in compiled), default=1)
    floors = np.full((n, width), np.inf)
    caps = np.full((n, width), np.inf)
    mmr = np.empty((n, width))
    imr = np.empty((n, width))
    cum = np.empty((n, width))
    for row, brackets in enumerate(compiled):
        used = len(brackets.floors)
        floors[row, :used] = brackets.floors
        caps[row, :used] = brackets.caps
        for target, values in ((mmr, brackets.mmr), (imr, brackets.imr), (cum, brackets.cum)):
            target[row, :used] = values
            target[row, used:] = values[-1]
    slope = np.array(slopes, dtype=np.float64).reshape(n, 2)
    n_tiers = np.array([len(c.floors) for c in compiled], dtype=np.intp)
    layout = Layout(
        contract_size=np.array([i.contract_size for i in instruments], dtype=np.float64),
        kind=np.array(kinds, dtype=np.int8),
        n_tiers=n_tiers,
        floors=floors,
        caps=caps,
        mmr=mmr,
        imr=imr,
        cum=cum,
        mm_slope=np.ascontiguousarray(slope[:, 0]),
        im_slope=np.ascontiguousarray(slope[:, 1]),
        floor_columns=np.ascontiguousarray(floors.T),
        has_slopes=bool(slope.any()),
        unit_contracts=all(i.contract_size == 1.0 for i in instruments),
        lookup=build_lookup(floors, n_tiers),
    )
    for array in (*layout, *(layout.lookup or ())):
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return layout
