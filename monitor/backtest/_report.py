"""The backtest as one self-contained HTML page: the figures, and plots drawn with
matplotlib as inline SVG (no script, no network: it opens offline in any browser).

Plots: per portfolio, margin at the start of each day against the loss realised over the
MPOR with exceedances marked, and the histogram of those losses; the EWMA volatility of
every underlying.
"""

from __future__ import annotations

import html
import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from monitor.backtest._run import BacktestRun, Coverage

__all__ = ["render_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.green { background: #d9f2d9; } .yellow { background: #fff3c4; } .red { background: #f8d0d0; }
figure { margin: 1em 0; } figcaption { font-size: 0.9em; color: #555; }
svg { max-width: 100%; height: auto; }
"""


def render_report(run: BacktestRun) -> str:
    """The HTML page of a backtest run. Draws on matplotlib ``Figure`` objects directly
    (no pyplot, so no global backend or figure registry is touched)."""
    import matplotlib

    # A fixed salt gives stable SVG element ids, so the same run gives the same page.
    with matplotlib.rc_context({"svg.hashsalt": "liqmon-backtest"}):
        return _page(run)


def _page(run: BacktestRun) -> str:
    report = run.report
    dates = np.array(run.dates, dtype="datetime64[D]")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>liqmon backtest: {html.escape(report.model)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Backtest of model <code>{html.escape(report.model)}</code></h1>",
        f"<p>Coverage target {report.confidence:.2%}, margin period of risk "
        f"{report.mpor_days} day(s), days {report.first_day} to {report.last_day}; "
        f"amounts in {html.escape(report.settle_asset)}. An exceedance is a day whose "
        "realised loss over the MPOR was greater than the margin at its start.</p>",
        _table(report.portfolios, report.overall),
        "<h2>Volatility</h2>",
        _figure("plot-volatility", _volatility_plot(dates, run), "EWMA volatility"),
    ]
    for p, name in enumerate(run.names):
        label = html.escape(name)
        parts.append(f"<h2>Portfolio {label}</h2>")
        svg = _margin_plot(dates, run.margin[p], run.loss[p], f"exceedances-{p}")
        parts.append(_figure(f"plot-margin-{p}", svg, f"{label}: margin vs realised loss"))
        svg = _histogram(run.loss[p], run.margin[p])
        parts.append(_figure(f"plot-histogram-{p}", svg, f"{label}: realised losses"))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _table(portfolios: tuple[Coverage, ...], overall: Coverage) -> str:
    head = (
        "<tr><th>portfolio</th><th>days</th><th>exceedances</th><th>expected</th>"
        "<th>Kupiec LR</th><th>Kupiec p</th><th>LR ind</th><th>p ind</th><th>LR cc</th>"
        "<th>p cc</th><th>zone</th><th>recalibration scale</th><th>ES ratio</th></tr>"
    )
    rows = []
    for c in (*portfolios, overall):
        scale = "-" if c.recalibration_scale is None else f"{c.recalibration_scale:.3f}"
        ratio = "-"
        if c.es_backtest is not None and c.es_backtest.ratio is not None:
            ratio = f"{c.es_backtest.ratio:.3f}"
        k, ch = c.kupiec, c.christoffersen
        rows.append(
            f"<tr><td>{html.escape(c.name)}</td><td>{c.observations}</td>"
            f"<td>{c.exceedances}</td><td>{c.expected_exceedances:.1f}</td>"
            f"<td>{k.lr:.3f}</td><td>{k.p_value:.4f}</td><td>{ch.lr_ind:.3f}</td>"
            f"<td>{ch.p_ind:.4f}</td><td>{ch.lr_cc:.3f}</td><td>{ch.p_cc:.4f}</td>"
            f'<td class="{c.traffic_light}">{c.traffic_light}</td><td>{scale}</td>'
            f"<td>{ratio}</td></tr>"
        )
    return f'<table id="figures">{head}{"".join(rows)}</table>'


def _figure(element_id: str, svg: str, caption: str) -> str:
    return f'<figure id="{element_id}">{svg}<figcaption>{caption}</figcaption></figure>'


def _axes(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _margin_plot(
    dates: NDArray[np.datetime64],
    margin: NDArray[np.float64],
    loss: NDArray[np.float64],
    marker_id: str,
) -> str:
    """Margin and realised loss over time; the exceedance markers are the SVG group
    ``marker_id``, one marker per exceedance."""
    from matplotlib.lines import Line2D

    fig, ax = _axes(10, 3.6)
    ax.plot(dates, loss, lw=0.6, color="#4a78b5", label="realised loss over the MPOR")
    ax.plot(dates, margin, lw=1.2, color="#222222", label="margin at the start of the day")
    hit = loss > margin
    markers = ax.scatter(dates[hit], loss[hit], s=14, color="#d62728", zorder=3)
    markers.set_gid(marker_id)
    ax.axhline(0.0, lw=0.5, color="#999999")
    ax.set_ylabel("amount")
    handles, labels = ax.get_legend_handles_labels()
    marker = Line2D([], [], ls="", marker="o", ms=4, color="#d62728")
    ax.legend([*handles, marker], [*labels, "exceedance"], loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return _svg(fig)


def _histogram(loss: NDArray[np.float64], margin: NDArray[np.float64]) -> str:
    fig, ax = _axes(10, 3)
    ax.hist(loss, bins=60, color="#4a78b5")
    ax.axvline(float(np.median(margin)), color="#222222", lw=1.2, label="median margin")
    ax.set_xlabel("realised loss over the MPOR (gains negative)")
    ax.set_ylabel("days")
    ax.legend(fontsize=8)
    return _svg(fig)


def _volatility_plot(dates: NDArray[np.datetime64], run: BacktestRun) -> str:
    fig, ax = _axes(10, 3)
    for j, symbol in enumerate(run.symbols):
        ax.plot(dates, run.volatility[:, j] * 100, lw=0.9, label=symbol)
    ax.set_ylabel("annualised EWMA volatility, %")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return _svg(fig)
