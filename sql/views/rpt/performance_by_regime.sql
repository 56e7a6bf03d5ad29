-- name: rpt.performance_by_regime
-- version: 7
-- description: each run's performance split by the regime of its bars (rpt.bar_regimes): bars, return, time in market, trades and their P&L
-- One row per run, symbol and regime (trend x volatility, `warmup` included) that has bars.
-- A bar's return is the account's equity return over that bar (the first bar against the
-- initial cash, as rpt.performance has it); log_return sums ln(1 + return) over the regime's
-- bars, so the log returns of a symbol's rows add up to the run's, and return_pct is
-- exp(log_return) - 1 in percent: what the run made in those bars alone. in_market_pct is the
-- share of the regime's bars that ended with a position. A trade is an entry order closed (in
-- part) by an exit order, as in rpt.performance, counted in the regime of its entry (the bar
-- of the entry order's first fill, on the trade's symbol); pnl is its net P&L in the quote
-- currency. A run of several symbols has each symbol's own partition of the account's bars:
-- add rows up within one symbol, not across symbols. The labels use the whole run (see
-- rpt.bar_regimes): for analysis, not for trading. Both reads of rpt.bar_regimes name the view
-- itself, so a run filter reaches its scan of main.run_bars (a shared CTE would be
-- materialised for every run in the warehouse).
with runs as (
    select run_id, initial_cash from main.runs
),
curve as (
    select
        c.run_id,
        c.ts,
        c.in_market,
        c.equity / coalesce(
            lag(c.equity) over (partition by c.run_id order by c.ts), r.initial_cash
        ) as growth
    from acct.equity_curve as c
    join runs as r on c.run_id = r.run_id
),
bar_rows as (
    select
        g.run_id,
        g.symbol,
        g.trend,
        g.volatility,
        count(*) as bars,
        sum(ln(c.growth) order by g.ts) as log_return,
        avg(case when c.in_market then 1.0 else 0.0 end) as in_market
    from rpt.bar_regimes as g
    join curve as c on g.run_id = c.run_id and g.ts = c.ts
    group by g.run_id, g.symbol, g.trend, g.volatility
),
fills as (
    select run_id, fill_seq, order_seq from main.fills
),
order_bars as (
    select run_id, order_seq, min(bar_ts) as bar_ts
    from main.fills
    group by run_id, order_seq
),
order_pairs as (
    select
        t.run_id,
        t.symbol,
        e.order_seq as entry_order_seq,
        x.order_seq as exit_order_seq,
        sum(t.pnl order by t.exit_fill_seq, t.entry_fill_seq) as pnl
    from rpt.round_trips as t
    join fills as e on t.run_id = e.run_id and t.entry_fill_seq = e.fill_seq
    join fills as x on t.run_id = x.run_id and t.exit_fill_seq = x.fill_seq
    group by t.run_id, t.symbol, e.order_seq, x.order_seq
),
trades as (
    select
        p.run_id,
        p.symbol,
        g.trend,
        g.volatility,
        count(*) as trades,
        count(*) filter (where p.pnl > 0) as wins,
        sum(p.pnl order by p.entry_order_seq, p.exit_order_seq) as pnl
    from order_pairs as p
    join order_bars as b on p.run_id = b.run_id and p.entry_order_seq = b.order_seq
    join rpt.bar_regimes as g on p.run_id = g.run_id and p.symbol = g.symbol and b.bar_ts = g.ts
    group by p.run_id, p.symbol, g.trend, g.volatility
),
final as (
    select
        r.run_id,
        r.symbol,
        r.trend,
        r.volatility,
        r.bars,
        r.bars / sum(r.bars) over (partition by r.run_id, r.symbol) * 100 as bars_pct,
        r.log_return,
        (exp(r.log_return) - 1) * 100 as return_pct,
        r.in_market * 100 as in_market_pct,
        coalesce(t.trades, 0) as trades,
        case when t.trades > 0 then t.wins / t.trades * 100 end as win_rate_pct,
        coalesce(t.pnl, 0.0) as pnl
    from bar_rows as r
    left join trades as t
        on r.run_id = t.run_id and r.symbol = t.symbol
        and r.trend = t.trend and r.volatility = t.volatility
)
select * from final
