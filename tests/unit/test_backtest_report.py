"""The HTML report opens in headless Chromium with every plot drawn, offline."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.cli import main

pytestmark = pytest.mark.unit

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed; deploy/setup-system.sh installs it")
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


class PlotCensus(HTMLParser):
    """Per <figure id>, the <svg> elements it holds; per exceedance group, its markers."""

    def __init__(self) -> None:
        super().__init__()
        self.figure: str | None = None
        self.svgs: dict[str, int] = {}
        self.paths: dict[str, int] = {}
        self.markers: dict[str, int] = {}
        self._group: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ident = dict(attrs).get("id") or ""
        if tag == "figure":
            self.figure = ident
        elif self.figure and tag in ("svg", "path"):
            target = self.svgs if tag == "svg" else self.paths
            target[self.figure] = target.get(self.figure, 0) + 1
        if tag == "g":
            if self._group is not None:
                self._depth += 1
            elif ident.startswith("exceedances-"):
                self._group, self._depth = ident, 1
                self.markers[ident] = 0
        elif tag == "use" and self._group is not None:
            self.markers[self._group] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self.figure = None
        elif tag == "g" and self._group is not None:
            self._depth -= 1
            if self._depth == 0:
                self._group = None


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    folder = tmp_path_factory.mktemp("report")
    page = folder / "report.html"
    out = folder / "figures.json"
    with out.open("w") as handle, pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", handle)
        assert main(["backtest", "--model", "var_fhs", "--json", "--report", str(page)]) == 0
    return page, json.loads(out.read_text())


def test_report_dom_has_every_plot_with_one_marker_per_exceedance(
    tmp_path: Path, report: tuple[Path, dict[str, object]]
) -> None:
    page, figures = report
    dom = chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    census = PlotCensus()
    census.feed(dom)
    portfolios = figures["portfolios"]
    assert isinstance(portfolios, list)
    expected = {"plot-volatility"}
    for p in range(len(portfolios)):
        expected |= {f"plot-margin-{p}", f"plot-histogram-{p}"}
    assert set(census.svgs) == expected
    assert all(count == 1 for count in census.svgs.values())
    assert all(census.paths[figure] > 20 for figure in expected)  # axes, lines, bars drawn
    for p, portfolio in enumerate(portfolios):
        assert census.markers[f"exceedances-{p}"] == portfolio["exceedances"]
    assert 'id="figures"' in dom
    assert "long_spx" in dom


def test_report_renders_to_pixels_with_plot_colours(
    tmp_path: Path, report: tuple[Path, dict[str, object]]
) -> None:
    page, _ = report
    shot = tmp_path / "shot.png"
    chromium(tmp_path, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (1600, 1200)

    def near(rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(rgb)).sum(axis=2) < 40).sum())

    assert near((0x4A, 0x78, 0xB5)) > 2_000  # the loss line and histogram bars
    assert near((0xD6, 0x27, 0x28)) > 20  # exceedance markers
    assert near((0xD9, 0xF2, 0xD9)) + near((0xFF, 0xF3, 0xC4)) + near((0xF8, 0xD0, 0xD0)) > 100
