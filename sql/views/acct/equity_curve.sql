-- name: acct.equity_curve
-- version: 1
-- description: cash + marked positions per run per bar time (after that bar's fills)
-- Positions and cash change on the bar a fill executed on (fills.bar_ts); each symbol is marked
-- at its last close at or before the bar time, so several symbols share one account row per ts.
-- Account cash is the initial cash plus every symbol's cumulative cash flow.
with runs as (
    select run_id, initial_cash from main.runs
),
bars as (
    select run_id, symbol, ts, close from main.run_bars
),
fills as (
    select
        run_id,
        symbol,
        bar_ts as ts,
        case when side = 'BUY' then 1 else -1 end
            * cast(round(qty * 100000000) as bigint) as d_units,
        case when side = 'BUY' then -(qty * price) - fee else qty * price - fee end as d_cash
    from main.fills
),
-- each symbol's units held and the cash its fills moved, after each bar time with a fill
steps as (
    select
        run_id,
        symbol,
        ts,
        sum(sum(d_units)) over per_symbol as units,
        sum(sum(d_cash)) over per_symbol as cash_flow
    from fills
    group by run_id, symbol, ts
    window per_symbol as (
        partition by run_id, symbol order by ts
        rows between unbounded preceding and current row
    )
),
grid as (
    select distinct run_id, ts from bars
),
grid_symbols as (
    select g.run_id, g.ts, s.symbol, b.close, f.units, f.cash_flow
    from grid as g
    join (select distinct run_id, symbol from bars) as s on g.run_id = s.run_id
    left join bars as b on g.run_id = b.run_id and s.symbol = b.symbol and g.ts = b.ts
    left join steps as f on g.run_id = f.run_id and s.symbol = f.symbol and g.ts = f.ts
),
-- carried forward to every bar time: the state after the last fill, the last close
marked as (
    select
        run_id,
        ts,
        coalesce(last_value(units ignore nulls) over per_symbol, 0) as units,
        coalesce(last_value(cash_flow ignore nulls) over per_symbol, 0.0) as cash_flow,
        last_value(close ignore nulls) over per_symbol as close
    from grid_symbols
    window per_symbol as (
        partition by run_id, symbol order by ts
        rows between unbounded preceding and current row
    )
),
valued as (
    select
        run_id,
        ts,
        sum(cash_flow) as cash_flow,
        coalesce(sum(units / 100000000 * close) filter (where units <> 0), 0.0)
            as position_value,
        bool_or(units <> 0) as in_market
    from marked
    group by run_id, ts
),
final as (
    select
        v.run_id,
        v.ts,
        r.initial_cash + v.cash_flow as cash,
        v.position_value,
        r.initial_cash + v.cash_flow + v.position_value as equity,
        v.in_market
    from valued as v
    join runs as r on v.run_id = r.run_id
)
select * from final
