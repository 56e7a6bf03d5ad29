-- name: acct.equity_curve
-- version: 3
-- description: cash + marked positions per run per bar time (after that bar's fills)
-- Positions and cash change on the bar a fill executed on (fills.bar_ts). Each symbol is marked
-- at its last close at or before the bar time; account cash is the initial cash plus every
-- symbol's cumulative cash flow. Two paths give the same rows: a one-symbol run's account rows
-- are its bars (one pass); otherwise (several symbols, or unknown) every symbol's latest state
-- is carried to every bar time of the run. Each path reads main.run_bars itself, so the run
-- filter reaches the scan (a shared CTE would be materialised for every run). A corporate
-- action (main.action_events) moves units (a split) and cash (a dividend, a split's cash in
-- lieu) on its bar, as a fill does; so does a position's borrow or funding (main.costs rows of
-- those kinds, at the bar time they were paid on; adr/0026).
with runs as (
    select run_id, initial_cash, coalesce(len(symbols), 0) as n_symbols from main.runs
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
    union all
    select run_id, symbol, ts, units_after - units_before as d_units, cash_quote as d_cash
    from main.action_events
    union all
    select run_id, symbol, ts, 0 as d_units, -amount as d_cash
    from main.costs
    where kind in ('borrow', 'funding')
),
steps as (
    select
        run_id, symbol, ts,
        sum(sum(d_units)) over per_symbol as units,
        sum(sum(d_cash)) over per_symbol as cash_flow
    from fills
    group by run_id, symbol, ts
    window per_symbol as (
        partition by run_id, symbol order by ts
        rows between unbounded preceding and current row
    )
),
one_symbol as (
    select
        b.run_id,
        b.ts,
        coalesce(last_value(f.cash_flow ignore nulls) over per_symbol, 0.0) as cash_flow,
        coalesce(last_value(f.units ignore nulls) over per_symbol, 0) as units,
        b.close
    from main.run_bars as b
    join runs as r on b.run_id = r.run_id and r.n_symbols = 1
    left join steps as f on b.run_id = f.run_id and b.symbol = f.symbol and b.ts = f.ts
    window per_symbol as (
        partition by b.run_id order by b.ts
        rows between unbounded preceding and current row
    )
),
several_bars as (
    select b.run_id, b.symbol, b.ts, b.close
    from main.run_bars as b
    join runs as r on b.run_id = r.run_id and r.n_symbols <> 1
),
grid_symbols as (
    select g.run_id, g.ts, s.symbol, b.close, f.units, f.cash_flow
    from (select distinct run_id, ts from several_bars) as g
    join (select distinct run_id, symbol from several_bars) as s on g.run_id = s.run_id
    left join several_bars as b on g.run_id = b.run_id and s.symbol = b.symbol and g.ts = b.ts
    left join steps as f on g.run_id = f.run_id and s.symbol = f.symbol and g.ts = f.ts
),
several as (
    select
        run_id,
        ts,
        sum(cash_flow) as cash_flow,
        coalesce(sum(units / 100000000 * close) filter (where units <> 0), 0.0)
            as position_value,
        bool_or(units <> 0) as in_market
    from (
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
    )
    group by run_id, ts
),
valued as (
    select
        run_id, ts, cash_flow,
        case when units <> 0 then units / 100000000 * close else 0.0 end as position_value,
        units <> 0 as in_market
    from one_symbol
    union all
    select run_id, ts, cash_flow, position_value, in_market from several
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
