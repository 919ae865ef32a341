"""Stress scenarios: the defaults, the checks, the worst historical day, Cover-2 groups."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.schema import StressScenario
from monitor.solvency import Stresser, account_groups, default_scenarios, scenario_problem

pytestmark = pytest.mark.unit

PRICES = Path(__file__).resolve().parents[2] / "monitor" / "data" / "prices_daily.csv"


def test_defaults_shock_each_underlying_three_ways_then_all_together() -> None:
    found = default_scenarios(["BTC", "ETH"])
    assert [s.name for s in found] == [
        "BTC -30%",
        "BTC -50%",
        "BTC +50%",
        "ETH -30%",
        "ETH -50%",
        "ETH +50%",
        "all -50%",
    ]
    assert found[0].moves == {"BTC": -0.3}
    assert found[-1].default_move == -0.5
    assert all(s.vol == "up" for s in found)


def test_problems_name_the_scenario_and_field() -> None:
    twice = [StressScenario(name="a"), StressScenario(name="a")]
    assert scenario_problem(twice, ["BTC"]) == (
        "[1].name: 'a' is used twice; give each scenario its own name"
    )
    unknown = [StressScenario(name="a", moves={"DOGE": -0.1})]
    assert scenario_problem(unknown, ["BTC"]) == (
        "[0].moves.DOGE: no instrument has base 'DOGE' (underlyings: BTC)"
    )
    with pytest.raises(ConfigError, match=r"^solvency.scenarios\[0\].moves.DOGE"):
        Stresser(["BTC"], unknown)


def test_worst_day_is_the_lowest_mean_return_of_the_history() -> None:
    with PRICES.open(newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    best: tuple[float, str, dict[str, float]] | None = None
    for before, after in itertools.pairwise(body):
        moves = {
            name: float(after[k + 1]) / float(before[k + 1]) - 1.0
            for k, name in enumerate(header[1:])
        }
        mean = sum(moves.values()) / len(moves)
        if best is None or mean < best[0]:
            best = (mean, after[0], moves)
    assert best is not None
    stresser = Stresser(["IXIC", "SPX"], history_file=str(PRICES))
    day = stresser.scenarios[-1]
    assert day.name == f"worst day {best[1]}"
    assert day.moves == pytest.approx(best[2])
    assert day.vol == "up"


def test_a_history_naming_no_underlying_is_refused() -> None:
    with pytest.raises(ConfigError, match="no column named after an underlying"):
        Stresser(["BTC"], history_file=str(PRICES))


def test_groups_are_ids_up_to_the_separator() -> None:
    assert account_groups(["a/1", "b", "a/2"], "") is None
    found = account_groups(["a/1", "b", "a/2"], "/")
    assert found is not None
    group_of, names = found
    assert [names[g] for g in group_of.tolist()] == ["a", "b", "a"]
