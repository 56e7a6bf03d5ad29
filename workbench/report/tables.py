"""Report tables as small HTML objects (no pandas): they render in notebooks and in exported
HTML. Numbers are rounded for display (two decimals from 1 up, four significant digits below 1);
hovering a rounded cell shows the exact stored value, and the SQL views keep every digit.
``exact=True`` (the free SQL box) shows floats as stored. Long tables are paged: the first page
shows, each further page is one click away (``<details>``, no script: it works in JupyterLab and
in the exported HTML alike)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workbench.model import ms_to_iso
from workbench.report.data import RunReport

PAGE_ROWS = 50
SHORT_RUN_DAYS = 90  # CAGR of a shorter run is an extrapolation: shown as n/a
DAY_MS = 86_400_000


def round_for_display(value: float) -> str:
    """Two decimals for |value| >= 1 (thousands separated), four significant digits below."""
    # e.g. 42,123.46 | -3.14 | 0.1235 | 0.00001235 | 1e-15
    if not math.isfinite(value) or abs(value) >= 1e16:
        return repr(value)
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    if abs(value) < 1e-8:  # below the quantity unit (adr/0001): scientific
        return f"{value:.4g}"
    decimals = 3 - math.floor(math.log10(abs(value)))
    shown = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if shown in ("0", "-0") else shown


def _text(value: Any, *, ts: bool = False, exact: bool = False) -> tuple[str, str | None]:
    """(shown, exact) for a cell."""
    if value is None:
        return "", None
    if ts and isinstance(value, int):
        return ms_to_iso(value), None
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z"), None
    if isinstance(value, float):
        if exact:
            return repr(value), None
        return round_for_display(value), repr(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str), None
    return str(value), None


@dataclass
class Table:
    """A titled table; ``note`` says what is left out or where the rest lives. ``page_rows``
    pages a long table (the first page shown, the rest behind "rows 51-100" and so on);
    ``exact`` shows floats unrounded."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    note: str = ""
    time_columns: frozenset[str] = frozenset()
    page_rows: int | None = None
    exact: bool = False

    def _cells(self, row: Sequence[Any]) -> list[tuple[str, str | None]]:
        return [_text(value, ts=name in self.time_columns, exact=self.exact)
                for name, value in zip(self.columns, row, strict=True)]

    def _tbody(self, rows: Sequence[Sequence[Any]]) -> str:
        body = []
        for row in rows:
            cells = []
            for shown, exact in self._cells(row):
                title = f' title="{html.escape(exact)}"' if exact and exact != shown else ""
                cells.append(f"<td{title}>{html.escape(shown)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        return f"<tbody>{''.join(body)}</tbody>"

    @property
    def pages(self) -> list[tuple[int, int]]:
        """(first, last) row numbers, 1-based, of each page."""
        n = len(self.rows)
        size = self.page_rows or max(n, 1)
        return [(i + 1, min(i + size, n)) for i in range(0, n, size)]

    def _repr_html_(self) -> str:
        cols = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        head = f"<thead><tr>{cols}</tr></thead>"
        pages = self.pages
        first = pages[0] if pages else (0, 0)
        parts = [f"<table>{head}{self._tbody(self.rows[:first[1]])}</table>"]
        if len(pages) > 1:
            parts.insert(0, f'<p class="wb-pages">showing rows {first[0]}-{first[1]} of '
                            f"{len(self.rows)}; open the pages below for the rest</p>")
            for lo, hi in pages[1:]:
                parts.append(f'<details class="wb-page"><summary>rows {lo}-{hi} of '
                             f"{len(self.rows)}</summary><table>{head}"
                             f"{self._tbody(self.rows[lo - 1:hi])}</table></details>")
        note = f'<p class="wb-note">{html.escape(self.note)}</p>' if self.note else ""
        return (f'<div class="wb-table"><h4>{html.escape(self.title)}</h4>'
                f"{''.join(parts)}{note}</div>")

    def __repr__(self) -> str:
        lines = [self.title, " | ".join(self.columns)]
        shown = self.rows[:self.pages[0][1]] if self.pages else []
        lines += [" | ".join(text for text, _ in self._cells(row)) for row in shown]
        if len(self.rows) > len(shown):
            lines.append(f"showing rows 1-{len(shown)} of {len(self.rows)}")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


HEADLINE = [
    ("bars", "bars"), ("initial_cash", "initial cash"), ("final_equity", "final equity"),
    ("total_return_pct", "total return %"), ("cagr_pct", "CAGR %"),
    ("max_drawdown_pct", "max drawdown %"), ("sharpe", "Sharpe"), ("trades", "trades"),
    ("win_rate_pct", "win rate %"), ("fees_quote", "fees"), ("exposure_pct", "exposure %"),
    ("orders", "orders"), ("blocked_orders", "blocked by risk"),
    ("block_rate_pct", "block rate %"),
]


def headline_table(r: RunReport) -> Table:
    """The run's row of rpt.performance."""
    quote = r.run.get("quote") or "quote"
    if not r.headline:
        return Table(f"Run {r.run_id}", ["status", "error"],
                     [[r.run.get("status"), r.run.get("error")]],
                     note="no performance row: the run did not complete")
    h = r.headline
    rows: list[list[Any]] = [
        ["period", f"{_text(h.get('first_ts'))[0]} .. {_text(h.get('last_ts'))[0]}"]]
    days = run_days(r)
    short = days is not None and days < SHORT_RUN_DAYS
    for key, label in HEADLINE:
        value = h.get(key)
        if key == "cagr_pct" and short:
            value = f"n/a (run of {days:.4g} days; CAGR needs {SHORT_RUN_DAYS}+)"
        rows.append([label + (f" ({quote})" if key in ("initial_cash", "final_equity",
                                                       "fees_quote") else ""), value])
    return Table(f"Headline: {r.run.get('name')} ({r.run_id})", ["metric", "value"], rows,
                 note="from rpt.performance; rounded for display (hover a number for its "
                      "exact value)")


def run_days(r: RunReport) -> float | None:
    """The length of the run's data in days: first bar to last bar, plus one bar."""
    first, last = r.headline.get("first_ts"), r.headline.get("last_ts")
    if first is None or last is None:
        return None
    bar_ms = int(r.run.get("timeframe_ms") or 60_000)
    span_ms = (_ms(last) - _ms(first)) + bar_ms
    return span_ms / DAY_MS


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def trades_table(r: RunReport) -> Table:
    cols = ["symbol", "side", "qty", "entry_ts", "entry_price", "exit_ts", "exit_price", "fees",
            "pnl", "return_pct"]
    rows = [[t[c] for c in cols] for t in r.trips]
    note = (f"first {len(rows)} of {r.trips_total} round trips; all of them are in "
            f"rpt.round_trips" if r.trips_total > len(rows) else "from rpt.round_trips")
    if not r.trips_total:
        note = "no round trip closed in this run"
    return Table("Trades (FIFO round trips)", cols, rows, note,
                 frozenset({"entry_ts", "exit_ts"}), page_rows=PAGE_ROWS)


def fees_table(r: RunReport) -> Table:
    rows = [[f["symbol"], f["fees_quote"], f["fills"], f["traded_notional_quote"]]
            for f in r.fees]
    exposure = r.headline.get("exposure_pct")
    return Table("Fees and exposure", ["symbol", "fees", "fills", "traded notional"], rows,
                 note=f"exposure (share of bars with a position): {_text(exposure)[0]} %; "
                      f"fees in {r.run.get('quote') or 'the quote currency'}")


COST_ROWS = (("gross_pnl", "gross P&L (had trading been free)"), ("fees", "fees"),
             ("spread", "half spread"), ("slippage", "slippage"),
             ("impact", "market impact"), ("funding", "funding and borrow"),
             ("total_costs", "total costs"), ("net_pnl", "net P&L"),
             ("cost_per_fill", "costs per fill"))


def costs_table(r: RunReport) -> Table:
    """The run's P&L split into gross and each cost (``rpt.cost_breakdown``)."""
    c = r.costs
    total = c.get("total_costs")
    shares = ("fees", "spread", "slippage", "impact", "funding", "total_costs")
    rows = [[label, c.get(key), (100.0 * c[key] / total if total and key in shares
                                 and c.get(key) is not None else None)]
            for key, label in COST_ROWS] if c else []
    quote = r.run.get("quote") or "the quote currency"
    return Table("Costs: what each assumption took", ["", quote, "% of costs"], rows,
                 note=(f"{c.get('fills', 0)} fills. Spread, slippage and impact were paid in "
                       "fill prices, fees in cash (costs settings in the manifest's config)"
                       if c else "no cost breakdown for this run"))


REGIME_COLUMNS = (("symbol", "symbol"), ("trend", "trend"), ("volatility", "volatility"),
                  ("bars", "bars"), ("bars_pct", "% of bars"), ("return_pct", "return %"),
                  ("in_market_pct", "in market %"), ("trades", "trades entered"),
                  ("win_rate_pct", "win rate %"), ("pnl", "trade P&L"))


def regime_table(r: RunReport) -> Table:
    """The run's bars, return, time in market and trades per market regime
    (``rpt.performance_by_regime``)."""
    rows = [[g[key] for key, _ in REGIME_COLUMNS] for g in r.regimes]
    quote = r.run.get("quote") or "the quote currency"
    note = ("trend: the slope of the 60-bar SMA (up/down beyond 0.5 bps a bar); volatility: "
            "terciles of the 60-bar realised volatility over this run's bars, so the labels "
            "see the whole run (analysis, not a signal). Return: what the run made in those "
            f"bars alone; trades by the regime of their entry, P&L in {quote} "
            "(rpt.performance_by_regime)" if rows else
            "no regime breakdown for this run (its warehouse has no rpt.performance_by_regime)")
    return Table("Performance by regime", [label for _, label in REGIME_COLUMNS], rows, note)


def qc_table(r: RunReport) -> Table:
    rows = [[q["rule"], q["severity"], q["action"], q["findings"]] for q in r.qc]
    first = "; ".join(f"{f['detail']}" for f in r.qc_first[:3])
    note = f"gap policy: {r.run.get('gap_policy')}."
    note += f" First findings: {first}" if first else " No findings on the bars this run read."
    return Table("Data quality (QC of the bars the run read)",
                 ["rule", "severity", "action", "findings"], rows, note)


def risk_table(r: RunReport) -> Table:
    rows = [[b["rule"], b["reason_code"], b["blocks"], b["share_of_orders_pct"], b["first_ts"],
             b["last_ts"]] for b in r.risk]
    stops = len(r.risk_stops)
    note = "no order was blocked by risk" if not rows else "from rpt.risk_blocks"
    if stops:
        note += f"; daily-loss stops: {stops} (risk_events without an order)"
    return Table("Risk blocks", ["rule", "reason code", "blocks", "share of orders %",
                                 "first", "last"], rows, note,
                 frozenset({"first", "last"}))


def manifest_table(r: RunReport) -> Table:
    run = r.run
    cfg = run.get("config_json") or {}
    strategy = cfg.get("strategy", {})
    rows: list[list[Any]] = [
        ["run id", r.run_id], ["mode", run.get("mode")], ["status", run.get("status")],
        ["strategy", f"{strategy.get('class')} {json.dumps(strategy.get('params', {}))}"],
        ["symbols / timeframe", f"{', '.join(r.symbols)} / {run.get('timeframe')}"
                                + "".join(f" ({s} resampled from stored {tf} bars)"
                                          for s, tf in sorted(r.resampled_from.items()))],
        ["config hash", run.get("config_hash")], ["data hash", run.get("data_hash")],
        ["git SHA", run.get("git_sha")], ["gap policy", run.get("gap_policy")],
        ["execution", _execution(cfg.get("execution"))],
        ["started", run.get("started_at")], ["ended", run.get("ended_at")],
        ["view versions (run)", _versions(run.get("view_versions"))],
        ["view versions (this report)", _versions(r.views_now)],
        ["packages", _versions(run.get("versions"), plain=True)],
    ]
    return Table("Manifest", ["field", "value"], rows,
                 note="the run's own record is run_manifest.json in its run directory")


def _execution(value: Any) -> str:
    """The simulated venue's settings as the config records them (absent: the default)."""
    if not isinstance(value, dict):
        return "latency INSTANT, no participation cap"
    latency = value.get("latency", "INSTANT")
    if isinstance(latency, dict):
        latency = (f"submit {latency.get('submit_ms')} ms, fill {latency.get('fill_ms')} ms, "
                   f"cancel {latency.get('cancel_ms')} ms")
    pct = value.get("participation_pct")
    cap = (f"at most {pct}% of a bar's volume, the rest: {value.get('remainder', 'keep')}"
           if pct is not None else "no participation cap")
    return f"latency {latency}, {cap}"


def _versions(value: Any, plain: bool = False) -> str:
    if not isinstance(value, dict):
        return "" if value is None else str(value)
    if plain:
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items()) if k != "os")
    return ", ".join(f"{k} v{v.get('version')}" if isinstance(v, dict) else f"{k}: {v}"
                     for k, v in sorted(value.items()))


def compare_table(reports: Sequence[RunReport]) -> Table:
    """Parameters against headline metrics, one row per run."""
    keys = sorted({k for r in reports
                   for k in (r.run.get("config_json") or {}).get("strategy", {})
                   .get("params", {})})
    metrics = ["total_return_pct", "max_drawdown_pct", "sharpe", "trades", "win_rate_pct",
               "fees_quote", "block_rate_pct"]
    rows = []
    for r in reports:
        params = (r.run.get("config_json") or {}).get("strategy", {}).get("params", {})
        rows.append([r.run_id, r.run.get("name")] + [params.get(k) for k in keys]
                    + [r.headline.get(m) for m in metrics])
    return Table("Runs side by side", ["run", "name", *keys, *metrics], rows,
                 note="parameters (left) against rpt.performance (right)")

