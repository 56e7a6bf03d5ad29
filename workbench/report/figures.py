"""Report figures (plotly). Long series arrive downsampled from ``data.py``; figures of long
runs say so in their titles. Times are shown in UTC."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from workbench.report.data import RunReport

HEIGHT = 420
DAY_MS = 86_400_000


def _t(values: Sequence[int]) -> list[datetime]:
    return [datetime.fromtimestamp(v / 1000, tz=UTC) for v in values]


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _empty(title: str) -> Any:
    fig = _go().Figure()
    fig.update_layout(title=title, height=200,
                      annotations=[{"text": "nothing to show", "showarrow": False}])
    return fig


def equity_figure(r: RunReport) -> Any:
    """Equity (top) and drawdown from the running peak (bottom)."""
    from plotly.subplots import make_subplots

    if not r.curve.get("ts"):
        return _empty("Equity")
    per = r.curve.get("bars_per_point", [1])[0]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)
    _add_equity_and_drawdown(fig, r)
    note = f" (1 point per {per} bars; worst drawdown kept)" if per > 1 else ""
    fig.update_layout(title=f"Equity and drawdown{note}", height=HEIGHT + 80,
                      showlegend=False, margin={"t": 50})
    return fig


def _add_equity_and_drawdown(fig: Any, r: RunReport, **equity_style: Any) -> None:
    """Equity in subplot row 1 and drawdown from the running peak in row 2, axes titled."""
    go = _go()
    x = _t(r.curve["ts"])
    fig.add_trace(go.Scatter(x=x, y=r.curve["equity"], name="equity", mode="lines",
                             **equity_style), 1, 1)
    fig.add_trace(go.Scatter(x=x, y=r.curve["drawdown_pct"], name="drawdown %", mode="lines",
                             fill="tozeroy", line={"color": "#c0392b"}), 2, 1)
    fig.update_yaxes(title_text=r.run.get("quote") or "equity", row=1, col=1)
    fig.update_yaxes(title_text="drawdown %", row=2, col=1)


def _add_trades(fig: Any, r: RunReport, symbol: str | None, **where: int) -> None:
    """Buy and sell markers and a dotted line for each round trip of ``symbol`` on ``fig``
    (``where``: the subplot's ``row`` and ``col``, when ``fig`` has subplots)."""
    go = _go()
    fills = r.fills.get(symbol or "", {})
    for side, color, marker in (("BUY", "#27ae60", "triangle-up"),
                                ("SELL", "#c0392b", "triangle-down")):
        idx = [i for i, s in enumerate(fills.get("side", [])) if s == side]
        if idx:
            fig.add_trace(go.Scattergl(
                x=_t([fills["ts"][i] for i in idx]), y=[fills["price"][i] for i in idx],
                mode="markers", name=side.lower(),
                marker={"symbol": marker, "size": 9, "color": color}), **where)
    xs: list[Any] = []
    ys: list[Any] = []
    for t in r.trips:
        if t["symbol"] == symbol:
            xs += [*_t([t["entry_ts"], t["exit_ts"]]), None]
            ys += [t["entry_price"], t["exit_price"], None]
    if xs:
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", name="round trips",
                                   line={"color": "#7f8c8d", "width": 1, "dash": "dot"}),
                      **where)


def candles_figure(r: RunReport, symbol: str | None = None) -> Any:
    """Price candles with buys, sells and each round trip from entry to exit."""
    symbol = symbol or (r.symbols[0] if r.symbols else None)
    c = r.candles.get(symbol or "", {})
    if not c.get("ts"):
        return _empty(f"{symbol}: no bars")
    go = _go()
    fig = go.Figure(go.Candlestick(x=_t(c["ts"]), open=c["open"], high=c["high"], low=c["low"],
                                   close=c["close"], name=symbol))
    _add_trades(fig, r, symbol)
    if len(c["ts"]) > 1:
        minutes = (c["ts"][1] - c["ts"][0]) // 60_000
        width = (f"{minutes // 60}-hour" if minutes >= 60 and minutes % 60 == 0
                 else f"{minutes}-minute")
    else:
        width = r.run.get("timeframe", "")
    capped = (f" (lines for the first {len(r.trips)} of {r.trips_total} round trips)"
              if r.trips_total > len(r.trips) else "")
    fig.update_layout(title=f"{symbol}: {width} candles (stored bars), fills and round trips"
                            f"{capped}", height=HEIGHT + 80, xaxis_rangeslider_visible=False)
    return fig


def _daily_returns(r: RunReport) -> tuple[list[str], list[float]]:
    days, equity = r.daily.get("day", []), r.daily.get("equity", [])
    if not equity:
        return [], []
    prev = [r.initial_cash, *equity[:-1]]
    return days, [(e / p - 1) * 100 for p, e in zip(prev, equity, strict=True)]


def returns_figure(r: RunReport) -> Any:
    """Distributions of daily returns and of round-trip returns, in percent."""
    from plotly.subplots import make_subplots

    go = _go()
    _, daily = _daily_returns(r)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("daily returns %",
                                                        "round-trip returns %"))
    fig.add_trace(go.Histogram(x=daily, name="daily", nbinsx=40), 1, 1)
    fig.add_trace(go.Histogram(x=r.trade_returns, name="trades", nbinsx=40), 1, 2)
    fig.update_layout(title="Returns distribution", height=HEIGHT, showlegend=False)
    return fig


def heatmap_figure(r: RunReport) -> Any:
    """Monthly returns (runs of two months or more), else daily returns by week and weekday."""
    go = _go()
    days, rets = _daily_returns(r)
    if not days:
        return _empty("Returns heatmap")
    if len(days) >= 60:
        equity = dict(zip(days, r.daily["equity"], strict=True))
        months: dict[str, float] = {}
        for day in days:
            months[day[:7]] = equity[day]  # last equity of each month
        keys = sorted(months)
        prev = [r.initial_cash] + [months[k] for k in keys[:-1]]
        monthly = {k: (months[k] / p - 1) * 100 for k, p in zip(keys, prev, strict=True)}
        years = sorted({k[:4] for k in keys})
        z = [[monthly.get(f"{y}-{m:02d}") for m in range(1, 13)] for y in years]
        fig = go.Figure(go.Heatmap(z=z, x=[f"{m:02d}" for m in range(1, 13)], y=years,
                                   colorscale="RdYlGn", zmid=0, texttemplate="%{z:.2f}"))
        fig.update_layout(title="Monthly returns %", height=max(250, 80 * len(years) + 120))
        return fig
    weeks: list[str] = []
    grid: dict[tuple[str, int], float] = {}
    for day, ret in zip(days, rets, strict=True):
        d = datetime.fromisoformat(day)
        iso = d.isocalendar()
        week = f"{iso.year}-W{iso.week:02d}"
        if week not in weeks:
            weeks.append(week)
        grid[(week, d.weekday())] = ret
    z = [[grid.get((w, wd)) for wd in range(7)] for w in weeks]
    fig = go.Figure(go.Heatmap(z=z, x=["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
                               y=weeks, colorscale="RdYlGn", zmid=0, texttemplate="%{z:.2f}"))
    fig.update_layout(title="Daily returns % (a short run: by week and weekday)",
                      height=max(250, 40 * len(weeks) + 120), yaxis_autorange="reversed")
    return fig


def compare_equity_figure(reports: Sequence[RunReport]) -> Any:
    """Equity curves of several runs as return on their initial cash, in percent."""
    go = _go()
    fig = go.Figure()
    for r in reports:
        if not r.curve.get("ts"):
            continue
        fig.add_trace(go.Scatter(x=_t(r.curve["ts"]), y=r.curve_return_pct(), mode="lines",
                                 name=f"{r.run.get('name')} {r.run_id}"))
    fig.update_layout(title="Equity of each run, as return on its initial cash %",
                      height=HEIGHT, yaxis_title="%")
    return fig


def run_figure(r: RunReport, symbol: str | None = None) -> Any:
    """One run at a glance, as backtesting.py's ``bt.plot()``: equity (top), drawdown from the
    running peak (middle), and the price of ``symbol`` (default: the first) with its buys,
    sells and round trips (bottom), on one shared time axis."""
    from plotly.subplots import make_subplots

    name = f"{r.run.get('name') or 'run'} {r.run_id}"
    if not r.curve.get("ts"):
        return _empty(f"{name}: nothing to plot (run status {r.run.get('status')})")
    go = _go()
    symbol = symbol or (r.symbols[0] if r.symbols else None)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.4, 0.2, 0.4],
                        vertical_spacing=0.03)
    _add_equity_and_drawdown(fig, r, line={"color": "#2c3e50"})
    c = r.candles.get(symbol or "", {})
    if c.get("ts"):
        fig.add_trace(go.Candlestick(x=_t(c["ts"]), open=c["open"], high=c["high"],
                                     low=c["low"], close=c["close"], name=symbol,
                                     showlegend=False), 3, 1)
    _add_trades(fig, r, symbol, row=3, col=1)
    h = r.headline
    fmt = lambda v, spec: "n/a" if v is None else format(v, spec)  # noqa: E731
    numbers = (f"trades {h.get('trades', 0)}, return {fmt(h.get('total_return_pct'), '.2f')} %, "
               f"max drawdown {fmt(h.get('max_drawdown_pct'), '.2f')} %")
    fig.update_layout(title=f"{name}: {numbers}", height=HEIGHT + 300, margin={"t": 60},
                      legend={"orientation": "h", "y": -0.08},
                      xaxis3_rangeslider_visible=False)
    fig.update_yaxes(title_text=f"{symbol} {r.run.get('timeframe', '')}", row=3, col=1)
    return fig


def plot(run_id: str | None = None, *, warehouse: Any = None, symbol: str | None = None) -> Any:
    """``run_figure`` of a run (the latest completed one when ``run_id`` is None), read from
    the warehouse read-only; the figure shows itself as a notebook cell's last value."""
    from workbench.report.data import load_run

    return run_figure(load_run(run_id, warehouse=warehouse), symbol)
