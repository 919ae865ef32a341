"""What-if margin evaluation for risk desks: positions and prices in, risk figures out.

The request (:class:`monitor.schema.EvaluateRequest`) is loaded into a fresh
:class:`monitor.engine.Engine` through the same code the monitor runs: the prices
go in as ticks, the wallets and positions are loaded into the book
(``Book.load_position``), and ``Engine.full_recompute`` values them and sets their
states (no history, so no hysteresis). Each account comes back as an
:class:`monitor.schema.AccountRisk`.

Every problem is one :class:`monitor.errors.InputError` line naming the path of the
bad field, e.g. ``$.accounts[0].positions[1].qty: must be a non-zero finite number``.
"""

from __future__ import annotations

import math

import msgspec

from monitor.book import AssetTable
from monitor.engine import Engine, EngineConfig
from monitor.errors import ConfigError, InputError
from monitor.evaluate_options import option_ticks, option_time, unpriced_hint
from monitor.evaluate_portfolio import with_portfolio_guidance
from monitor.evaluate_var import var_es_figures
from monitor.schema import AccountRisk, EvaluateAccount, EvaluateRequest
from monitor.strict import convert_strict

__all__ = ["decode_request", "evaluate", "evaluate_json", "load_request"]

_encode = msgspec.json.Encoder().encode


def decode_request(data: bytes) -> EvaluateRequest:
    """Parse a request; a malformed, mistyped or misspelt one raises InputError with the
    field path. Keys starting with ``_`` are comments (:mod:`monitor.strict`)."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InputError(f"evaluate input is not valid JSON: {exc}") from None
    request: EvaluateRequest = convert_strict(raw, EvaluateRequest)
    return request


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _engine(request: EvaluateRequest) -> Engine:
    try:
        AssetTable(request.valuation_asset, request.collateral_assets)
    except ConfigError as exc:
        raise InputError(f"$.collateral_assets: {exc}") from None
    try:
        config = EngineConfig(
            valuation_asset=request.valuation_asset,
            collateral=request.collateral_assets,
            portfolio_margin=request.portfolio_margin,
        )
        engine = Engine(request.instruments, config)
    except ConfigError as exc:
        message = str(exc)
        if message.startswith("engine.portfolio_margin"):
            raise InputError(f"$.{message.removeprefix('engine.')}") from None
        raise InputError(f"$.instruments: {exc}") from None
    book = engine.book
    now_ms = option_time(request, book)
    for symbol, price in request.prices.items():
        where = f"$.prices.{symbol}"
        known = book.instrument_index.keys() | book.contracts.underlying_index.keys()
        if symbol not in known and symbol not in book.assets.price_symbols:
            raise InputError(f"{where}: unknown symbol {symbol!r}; price instruments or collateral")
        if not (_finite(price) and price > 0.0):
            raise InputError(f"{where}: price {price!r} must be a finite number > 0")
    ticks = option_ticks(request, book, now_ms)
    engine.apply([], ticks, now_ms=now_ms)
    return engine


def _check_account(engine: Engine, where: str, account: EvaluateAccount) -> None:
    book = engine.book
    if not account.account:
        raise InputError(f"{where}.account: must not be empty")
    for asset, amount in account.collateral.items():
        at = f"{where}.collateral.{asset}"
        asset_ix = book.assets.index.get(asset)
        if asset_ix is None:
            raise InputError(f"{at}: unknown asset {asset!r}; list it in collateral_assets")
        if not _finite(amount):
            raise InputError(f"{at}: amount {amount!r} must be a finite number")
        if amount and math.isnan(book.assets.price[asset_ix]):
            raise InputError(f"{at}: no price for {asset}; add its price symbol to prices")
    seen: set[str] = set()
    for j, position in enumerate(account.positions):
        at = f"{where}.positions[{j}]"
        ix = book.instrument_index.get(position.symbol)
        if ix is None:
            raise InputError(f"{at}.symbol: unknown symbol {position.symbol!r}")
        if position.symbol in seen:
            raise InputError(f"{at}.symbol: {position.symbol} is listed twice for this account")
        seen.add(position.symbol)
        if book.mark_ts[ix] < 0 or math.isnan(book.mark[ix]):
            raise InputError(f"{at}.symbol: {unpriced_hint(book, ix)}")
        if not (_finite(position.qty) and position.qty != 0.0):
            raise InputError(f"{at}.qty: {position.qty!r} must be a non-zero finite number")
        if not (_finite(position.entry_price) and position.entry_price > 0.0):
            raise InputError(f"{at}.entry_price: {position.entry_price!r} must be finite and > 0")
        if position.leverage is not None and not (
            _finite(position.leverage) and position.leverage >= 1.0
        ):
            raise InputError(f"{at}.leverage: {position.leverage!r} must be a finite number >= 1")
        if account.mode == "isolated":
            if position.margin is None:
                raise InputError(f"{at}.margin: required for an isolated account")
            if not (_finite(position.margin) and position.margin >= 0.0):
                raise InputError(f"{at}.margin: {position.margin!r} must be a finite number >= 0")
        elif position.margin is not None:
            raise InputError(f"{at}.margin: only isolated accounts allocate margin per position")


def evaluate(request: EvaluateRequest) -> list[AccountRisk]:
    """Each account's figures, states, and liquidation/bankruptcy prices at ``prices``."""
    engine = load_request(request)
    risks = [
        with_portfolio_guidance(engine, engine.account_risk(account.account))
        for account in request.accounts
    ]
    if request.var_es is None:
        return risks
    figures = var_es_figures(engine, request, request.var_es)
    return [
        msgspec.structs.replace(risk, var_es=found)
        for risk, found in zip(risks, figures, strict=True)
    ]


def load_request(request: EvaluateRequest) -> Engine:
    """A fresh engine holding the request's accounts, valued and judged at ``prices``."""
    engine = _engine(request)
    book = engine.book
    names: set[str] = set()
    for i, account in enumerate(request.accounts):
        where = f"$.accounts[{i}]"
        _check_account(engine, where, account)
        if account.account in names:
            raise InputError(f"{where}.account: {account.account!r} is listed twice")
        names.add(account.account)
        ix = book.account(account.account)
        book.set_margin_mode(ix, account.mode)
        for asset, amount in account.collateral.items():
            book.set_balance(ix, book.assets.index[asset], amount)
        for position in account.positions:
            book.load_position(
                ix,
                book.instrument_index[position.symbol],
                position.qty,
                position.entry_price,
                math.nan if position.leverage is None else position.leverage,
                position.margin,
            )
    engine.full_recompute()
    return engine


def evaluate_json(data: bytes) -> bytes:
    """``evaluate`` from JSON to JSON: an array with one object per account."""
    return _encode(evaluate(decode_request(data)))
