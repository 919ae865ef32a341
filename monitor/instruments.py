"""Load the instruments liqmon monitors (and ``liqmon simulate`` trades) from a file.

Two formats, chosen by the file's suffix:

* JSON (``.json``): a list of instrument objects, or an object
  ``{"instruments": [...], "reference_prices": {...}}``.
* TOML (``.toml``): ``[[instruments]]`` tables (with ``[instruments.margin]`` and
  ``[[instruments.margin.tiers]]``), and an optional ``[reference_prices]`` table.

Each instrument object is exactly a :class:`monitor.schema.Instrument`. Keys that
start with ``_`` are comments and are ignored, at any depth; any other unknown key is
an error (:mod:`monitor.strict`), so a typo cannot silently fall back to a default.
``liqmon schema instruments`` publishes exactly this format. ``reference_prices`` (symbol -> price
in the quote asset) is optional and only used as the starting mark prices of
``liqmon simulate``.

Every problem is reported as one line naming the file and the path of the bad field,
e.g. ``instruments.json: $.instruments[2].margin.tiers[1].floor: must equal the cap
of the tier below (50000.0), got 60000.0``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from monitor.errors import InputError
from monitor.models import contract_problem
from monitor.schema import Instrument, SizeScaledMargin, Tier, TieredMargin
from monitor.strict import convert_strict

__all__ = ["InstrumentFile", "load_instrument_file", "load_instruments"]

# Relative tolerance when a tier gives both ``imr`` and ``max_leverage`` (Binance
# publishes 3x as 33.3 %) and when checking a published ``cum`` against the one
# derived from the brackets below.
_REL_TOL = 1e-2
_CUM_REL_TOL = 1e-6

# Builds the error for a field (relative to the instrument) and a problem.
_Fail = Callable[[str, str], InputError]


class InstrumentFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The content of an instruments file: the instruments, and optional start prices."""

    instruments: tuple[Instrument, ...]
    reference_prices: dict[str, float] = msgspec.field(default_factory=dict)


def load_instruments(path: str | Path) -> list[Instrument]:
    """Read and validate the instruments in ``path`` (JSON or TOML), in file order."""
    return list(load_instrument_file(path).instruments)


def load_instrument_file(path: str | Path, other_sections: tuple[str, ...] = ()) -> InstrumentFile:
    """Read and validate an instruments file, including its ``reference_prices``.

    ``other_sections`` names top-level keys of the object form that another reader owns
    (``liqmon backtest``'s ``portfolios``); any other unknown key is an error.
    """
    path = Path(path)
    raw, root = _read(path)
    if isinstance(raw, dict) and other_sections:
        raw = {key: value for key, value in raw.items() if key not in other_sections}
    items = raw.get("instruments") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise InputError(
            f"{path}: expected a list of instruments or an object with an "
            f"'instruments' list, got {type(items).__name__}"
        )
    document: InstrumentFile
    try:
        if isinstance(raw, dict):
            document = convert_strict(raw, InstrumentFile)
        else:
            listed: tuple[Instrument, ...] = convert_strict(raw, tuple[Instrument, ...])
            document = InstrumentFile(instruments=listed)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    instruments = document.instruments
    for i, instrument in enumerate(instruments):
        _validate(path, f"{root}[{i}]", instrument)
    if not instruments:
        raise InputError(f"{path}: no instruments defined; add at least one")
    seen: dict[str, int] = {}
    for i, instrument in enumerate(instruments):
        if instrument.symbol in seen:
            raise InputError(
                f"{path}: {root}[{i}].symbol: {instrument.symbol!r} is already defined "
                f"at {root}[{seen[instrument.symbol]}]"
            )
        seen[instrument.symbol] = i
    _check_reference_prices(path, document.reference_prices)
    return document


# --------------------------------------------------------------------------- reading


def _read(path: Path) -> tuple[Any, str]:
    """Parse the file; return the document and the path prefix of its instrument list."""
    suffix = path.suffix.lower()
    if suffix not in (".json", ".toml"):
        raise InputError(f"{path}: unsupported instruments file type; use a .json or .toml file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read instruments file: {exc.strerror}") from None
    try:
        raw: Any = msgspec.json.decode(data) if suffix == ".json" else tomllib.loads(data.decode())
    except (msgspec.DecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from None
    return raw, ("$.instruments" if isinstance(raw, dict) else "$")


def _check_reference_prices(path: Path, prices: dict[str, float]) -> None:
    for symbol, price in prices.items():
        if not (math.isfinite(price) and price > 0):
            raise InputError(
                f"{path}: $.reference_prices.{symbol}: must be a positive price, got {price}"
            )


# --------------------------------------------------------------------------- validation


def _validate(path: Path, where: str, instrument: Instrument) -> None:
    def fail(field: str, problem: str) -> InputError:
        return InputError(f"{path}: {where}.{field}: {problem}")

    for name in ("symbol", "quote", "base"):
        if not getattr(instrument, name).strip():
            raise fail(name, "must not be empty")
    if not (math.isfinite(instrument.contract_size) and instrument.contract_size > 0):
        raise fail("contract_size", f"must be positive, got {instrument.contract_size}")
    problem = contract_problem(instrument)
    if problem is not None:
        raise fail(*problem)
    margin = instrument.margin
    if isinstance(margin, TieredMargin):
        _validate_tiers(margin.tiers, fail)
    elif isinstance(margin, SizeScaledMargin):
        for curve_name, curve in (("im", margin.im), ("mm", margin.mm)):
            if not (math.isfinite(curve.base) and 0 < curve.base <= 1):
                raise fail(f"margin.{curve_name}.base", f"must be in (0, 1], got {curve.base}")
            if not (math.isfinite(curve.slope) and curve.slope >= 0):
                raise fail(f"margin.{curve_name}.slope", f"must be >= 0, got {curve.slope}")
        if margin.im.base <= margin.mm.base or margin.im.slope < margin.mm.slope:
            raise fail(
                "margin.im",
                "the initial rate must exceed the maintenance rate at every size "
                "(im.base > mm.base and im.slope >= mm.slope)",
            )


def _validate_tiers(tiers: tuple[Tier, ...], fail: _Fail) -> None:
    """Brackets must start at 0, be contiguous, and have rising, consistent rates."""
    if not tiers:
        raise fail("margin.tiers", "needs at least one tier")
    cum = 0.0
    for j, tier in enumerate(tiers):
        at = f"margin.tiers[{j}]"
        expected_floor = 0.0 if j == 0 else tiers[j - 1].cap
        if tier.floor != expected_floor:
            what = (
                "the first tier must start at 0"
                if j == 0
                else "must equal the cap of the tier below"
            )
            raise fail(f"{at}.floor", f"{what} ({expected_floor}), got {tier.floor}")
        if not (math.isfinite(tier.cap) and tier.cap > tier.floor):
            raise fail(f"{at}.cap", f"must be greater than floor ({tier.floor}), got {tier.cap}")
        if not (math.isfinite(tier.mmr) and 0 < tier.mmr < 1):
            raise fail(f"{at}.mmr", f"must be in (0, 1), got {tier.mmr}")
        if j and tier.mmr < tiers[j - 1].mmr:
            raise fail(f"{at}.mmr", f"must not be below the tier below ({tiers[j - 1].mmr})")
        imr = _initial_rate(tier, at, fail)
        if imr <= tier.mmr:
            raise fail(f"{at}.imr", f"initial rate {imr} must exceed mmr {tier.mmr}")
        # Binance's maintenance amount keeps MM continuous at each floor:
        # cum_j = cum_{j-1} + floor_j * (mmr_j - mmr_{j-1}).
        if j:
            cum += tier.floor * (tier.mmr - tiers[j - 1].mmr)
        if tier.cum is not None and not math.isclose(
            tier.cum, cum, rel_tol=_CUM_REL_TOL, abs_tol=1e-6
        ):
            raise fail(
                f"{at}.cum",
                f"{tier.cum} does not match the brackets below (expected {cum:.6f}); "
                "fix it or leave it out to derive it",
            )


def _initial_rate(tier: Tier, at: str, fail: _Fail) -> float:
    if tier.imr is None and tier.max_leverage is None:
        raise fail(f"{at}.imr", "give imr or max_leverage")
    if tier.max_leverage is not None and not (
        math.isfinite(tier.max_leverage) and tier.max_leverage >= 1
    ):
        raise fail(f"{at}.max_leverage", f"must be >= 1, got {tier.max_leverage}")
    if tier.imr is not None and not (math.isfinite(tier.imr) and 0 < tier.imr <= 1):
        raise fail(f"{at}.imr", f"must be in (0, 1], got {tier.imr}")
    if tier.imr is not None and tier.max_leverage is not None:
        if not math.isclose(tier.imr, 1 / tier.max_leverage, rel_tol=_REL_TOL):
            raise fail(
                f"{at}.imr", f"{tier.imr} disagrees with max_leverage {tier.max_leverage}; give one"
            )
        return tier.imr
    if tier.imr is not None:
        return tier.imr
    assert tier.max_leverage is not None
    return 1 / tier.max_leverage
