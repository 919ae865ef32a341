"""Compile the engine's kernels ahead of the first cycle that needs them.

numba compiles a kernel on its first call for the argument types of that call, or
loads the machine code from its disk cache (``__pycache__``, written at the first
compile). ``warm_up`` calls every kernel through the engine itself, on a two-account
book, so the types are exactly those of the real book and nothing is left to compile
when the first full revaluation or sweep runs. The service runs it in a thread at
start-up while the price table catches up, so it never delays readiness.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from monitor.book import load_cross_accounts
from monitor.book._image_kernels import warm_up as warm_up_image
from monitor.book._name_kernels import warm_up as warm_up_names
from monitor.engine._engine import Engine
from monitor.engine._portfolio_index import warm_up as warm_up_holder_index
from monitor.engine._tick_kernels import warm_up as warm_up_tick
from monitor.scenarios._fused import warm_up as warm_up_holder_figures
from monitor.schema import Instrument, PriceTick, Tier, TieredMargin

__all__ = ["warm_up"]


def warm_up(progress: Callable[[str, float], None] | None = None) -> float:
    """Compile (or load from the disk cache) every kernel; return the seconds it took.

    ``progress(step, seconds)`` is called after each step (``revaluation``, ``tick``,
    ``sweep``, ``events``, ``options and portfolio``) with the seconds since the start.
    """
    started = time.perf_counter()
    tiers = TieredMargin(
        tiers=(
            Tier(floor=0.0, cap=1_000.0, mmr=0.01, imr=0.02),
            Tier(floor=1_000.0, cap=1e12, mmr=0.02, imr=0.04),
        )
    )
    engine = Engine(
        [Instrument(symbol="WARMUSDT", kind="linear", quote="USDT", base="WARM", margin=tiers)]
    )
    engine.apply([], [PriceTick(symbol="WARMUSDT", mark_price=100.0, ts=0)], 0)
    load_cross_accounts(
        engine.book,
        ["warm-a", "warm-b"],
        np.array([[1_000.0], [5.0]]),
        np.array([0, 1], dtype=np.intp),
        np.array([0, 0], dtype=np.intp),
        np.array([2.0, -3.0]),
        np.array([100.0, 100.0]),
        np.array([np.nan, 10.0]),
    )
    warm_up_names()  # the account name index: a bulk add (snapshot restore), names by id
    warm_up_image()  # a snapshot's copy of a partition's accounts

    def step(name: str) -> None:
        if progress is not None:
            progress(name, time.perf_counter() - started)

    engine.full_recompute()
    step("revaluation")
    engine.apply([], [PriceTick(symbol="WARMUSDT", mark_price=101.0, ts=1)], 1)
    step("tick")
    engine.verify()
    step("sweep")
    engine.account_risk("warm-b")  # an event's figures: liquidation prices
    step("events")
    warm_up_tick()  # an option chain's tick: option rows and unit sums
    warm_up_holder_index()  # portfolio margin: the holders of a group
    warm_up_holder_figures()  # and their scenario figures
    step("options and portfolio")
    return time.perf_counter() - started
