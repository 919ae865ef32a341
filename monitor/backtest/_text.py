"""The backtest figures as a readable table (``liqmon backtest`` without ``--json``)."""

from __future__ import annotations

from monitor.backtest._run import BacktestReport, Coverage

__all__ = ["format_report"]

_HEADER = (
    f"{'portfolio':<20} {'days':>6} {'exceed':>6} {'expect':>7} {'kupiec p':>9} "
    f"{'ind p':>7} {'cc p':>7} {'zone':<6} {'scale':>6} {'ES ratio':>8}"
)


def _row(c: Coverage) -> str:
    scale = "-" if c.recalibration_scale is None else f"{c.recalibration_scale:.3f}"
    ratio = "-"
    if c.es_backtest is not None and c.es_backtest.ratio is not None:
        ratio = f"{c.es_backtest.ratio:.3f}"
    return (
        f"{c.name:<20} {c.observations:>6} {c.exceedances:>6} {c.expected_exceedances:>7.1f} "
        f"{c.kupiec.p_value:>9.4f} {c.christoffersen.p_ind:>7.4f} {c.christoffersen.p_cc:>7.4f} "
        f"{c.traffic_light:<6} {scale:>6} {ratio:>8}"
    )


def format_report(report: BacktestReport) -> str:
    """Header line, one row per portfolio and one for all pooled, then the EWMA vols."""
    lines = [
        f"model {report.model}, coverage {report.confidence:.2%}, MPOR {report.mpor_days}d, "
        f"days {report.first_day} .. {report.last_day}, amounts in {report.settle_asset}",
        "",
        _HEADER,
        *(_row(c) for c in report.portfolios),
        _row(report.overall),
        "",
        "EWMA volatility (annualised, last day): "
        + ", ".join(f"{s} {v:.1%}" for s, v in report.overall.ewma_vol_last.items()),
        "scale: the factor on the model's rates that would have met the coverage; "
        "p < 0.05 rejects the model",
    ]
    return "\n".join(lines) + "\n"
