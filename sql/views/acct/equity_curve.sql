-- name: acct.equity_curve
-- version: 1
-- description: cash + marked positions per run per bar time (after that bar's fills)
-- Positions and cash change on the bar a fill executed on (fills.bar_ts); each symbol is marked
-- at its last close at or before the bar time, so several symbols share one account row per ts.
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
unit_steps as (
    select run_id, symbol, ts, sum(d_units) as d_units
    from fills
    group by run_id, symbol, ts
),
cash_steps as (
    select run_id, ts, sum(d_cash) as d_cash
    from fills
    group by run_id, ts
),
grid as (
    select distinct run_id, ts from bars
),
grid_symbols as (
    select g.run_id, g.ts, s.symbol, b.close, u.d_units
    from grid as g
    join (select distinct run_id, symbol from bars) as s on g.run_id = s.run_id
    left join bars as b on g.run_id = b.run_id and s.symbol = b.symbol and g.ts = b.ts
    left join unit_steps as u on g.run_id = u.run_id and s.symbol = u.symbol and g.ts = u.ts
),
marked as (
    select
        run_id,
        ts,
        sum(coalesce(d_units, 0)) over per_symbol as units,
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
        r.initial_cash + sum(coalesce(c.d_cash, 0.0)) over per_run as cash,
        v.position_value,
        r.initial_cash + sum(coalesce(c.d_cash, 0.0)) over per_run + v.position_value as equity,
        v.in_market
    from valued as v
    join runs as r on v.run_id = r.run_id
    left join cash_steps as c on v.run_id = c.run_id and v.ts = c.ts
    window per_run as (
        partition by v.run_id order by v.ts
        rows between unbounded preceding and current row
    )
)
select * from final
