-- name: rpt.performance
-- version: 9
-- description: headline numbers per run: return, CAGR, max drawdown, Sharpe, trades, win rate, fees, exposure, risk block rate
-- Sharpe: mean over sample standard deviation of per-bar returns (the first bar against the
-- initial cash), annualised with the bars of a year: a 365-day year of bars, or what the
-- run's trading calendar holds in a year (runs.bars_per_year), no risk-free rate. CAGR over
-- the span from the first bar's open to the last bar's close. Max drawdown as rpt.drawdown defines it (peak from
-- the initial cash), computed here in the same pass. Exposure: share of bars with a position.
-- A trade is an entry order closed (in part) by an exit order: the FIFO round trips between
-- the fills of the same two orders are one trade, their P&L summed (an order filled in parts
-- under a participation cap makes several fills; an order of one fill, one round trip each).
with runs as (
    select
        run_id,
        initial_cash,
        timeframe_ms,
        coalesce(bars_per_year, 365.0 * 86400000 / timeframe_ms) as bars_per_year
    from main.runs
),
curve as (
    select run_id, ts, equity, in_market from acct.equity_curve
),
returns as (
    select
        c.run_id,
        c.ts,
        c.equity,
        c.in_market,
        c.equity / coalesce(
            lag(c.equity) over (partition by c.run_id order by c.ts), r.initial_cash
        ) - 1 as ret,
        (c.equity / greatest(
            r.initial_cash,
            max(c.equity) over (
                partition by c.run_id order by c.ts
                rows between unbounded preceding and current row
            )
        ) - 1) * 100 as drawdown_pct
    from curve as c
    join runs as r on c.run_id = r.run_id
),
stats as (
    select
        run_id,
        count(*) as bars,
        min(ts) as first_ts,
        max(ts) as last_ts,
        arg_max(equity, ts) as final_equity,
        avg(ret order by ts) as mean_ret,  -- ordered: the same bits on every run
        stddev_samp(ret order by ts) as sd_ret,
        avg(case when in_market then 1.0 else 0.0 end) as exposure,
        min(drawdown_pct) as max_drawdown_pct
    from returns
    group by run_id
),
fill_orders as (
    select run_id, fill_seq, order_seq from main.fills
),
order_pairs as (
    select
        t.run_id,
        e.order_seq as entry_order_seq,
        x.order_seq as exit_order_seq,
        sum(t.pnl order by t.exit_fill_seq, t.entry_fill_seq) as pnl
    from rpt.round_trips as t
    join fill_orders as e on t.run_id = e.run_id and t.entry_fill_seq = e.fill_seq
    join fill_orders as x on t.run_id = x.run_id and t.exit_fill_seq = x.fill_seq
    group by t.run_id, e.order_seq, x.order_seq
),
trips as (
    select run_id, count(*) as trades, count(*) filter (where pnl > 0) as wins
    from order_pairs
    group by run_id
),
fees as (
    select run_id, sum(fee order by fill_seq) as fees_quote, count(*) as fills
    from main.fills
    group by run_id
),
orders as (
    select
        run_id,
        count(*) as orders,
        count(*) filter (where status = 'BLOCKED') as blocked_orders
    from main.orders
    group by run_id
),
final as (
    select
        s.run_id,
        s.bars,
        s.first_ts,
        s.last_ts,
        r.initial_cash,
        s.final_equity,
        (s.final_equity / r.initial_cash - 1) * 100 as total_return_pct,
        (
            power(
                s.final_equity / r.initial_cash,
                365.0 * 86400000
                    / (epoch_ms(s.last_ts) - epoch_ms(s.first_ts) + r.timeframe_ms)
            ) - 1
        ) * 100 as cagr_pct,
        s.max_drawdown_pct,
        case
            when s.sd_ret > 0
                then s.mean_ret / s.sd_ret * sqrt(r.bars_per_year)
        end as sharpe,
        coalesce(t.trades, 0) as trades,
        case when t.trades > 0 then t.wins / t.trades * 100 end as win_rate_pct,
        coalesce(f.fees_quote, 0.0) as fees_quote,
        coalesce(f.fills, 0) as fills,
        s.exposure * 100 as exposure_pct,
        coalesce(o.orders, 0) as orders,
        coalesce(o.blocked_orders, 0) as blocked_orders,
        case when o.orders > 0 then o.blocked_orders / o.orders * 100 end as block_rate_pct
    from stats as s
    join runs as r on s.run_id = r.run_id
    left join trips as t on s.run_id = t.run_id
    left join fees as f on s.run_id = f.run_id
    left join orders as o on s.run_id = o.run_id
)
select * from final
