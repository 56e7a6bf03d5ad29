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
positions as (
    select
        run_id, symbol, ts,
        sum(d_units) over (
            partition by run_id, symbol order by ts
            rows between unbounded preceding and current row
        ) as units
    from unit_steps
),
cash_steps as (
    select run_id, ts, sum(d_cash) as d_cash
    from fills
    group by run_id, ts
),
cash as (
    select
        run_id, ts,
        sum(d_cash) over (
            partition by run_id order by ts
            rows between unbounded preceding and current row
        ) as cash_flow
    from cash_steps
),
grid as (
    select distinct run_id, ts from bars
),
grid_symbols as (
    select g.run_id, g.ts, s.symbol
    from grid as g
    join (select distinct run_id, symbol from bars) as s on g.run_id = s.run_id
),
marked as (
    select gs.run_id, gs.ts, gs.symbol, coalesce(p.units, 0) as units, b.close
    from grid_symbols as gs
    asof left join positions as p
        on gs.run_id = p.run_id and gs.symbol = p.symbol and gs.ts >= p.ts
    asof left join bars as b
        on gs.run_id = b.run_id and gs.symbol = b.symbol and gs.ts >= b.ts
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
        r.initial_cash + coalesce(c.cash_flow, 0.0) as cash,
        v.position_value,
        r.initial_cash + coalesce(c.cash_flow, 0.0) + v.position_value as equity,
        v.in_market
    from valued as v
    join runs as r on v.run_id = r.run_id
    asof left join cash as c on v.run_id = c.run_id and v.ts >= c.ts
)
select * from final
