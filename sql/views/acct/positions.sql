-- name: acct.positions
-- version: 7
-- description: open positions at the end of each run: FIFO cost of open lots, last mark, unrealized P&L
-- A short (adr/0026) has negative units, cost and market value: unrealized P&L is still market
-- value less cost (a short gains what the price fell). Across splits the open lots are what the
-- books kept of them, the fractions paid in lieu taken from each (acct.fifo_lots, adr/0025):
-- the quantity is the books' position exactly.
with lots as (
    select
        run_id,
        symbol,
        case when side = 'LONG' then open_units else -open_units end as open_units,
        entry_price
    from acct.fifo_lots
    where open_units > 0
),
marks as (
    select run_id, symbol, arg_max(close, ts) as last_close, max(ts) as last_ts
    from main.run_bars
    group by run_id, symbol
),
open_cost as (
    select
        run_id,
        symbol,
        sum(open_units) as units,
        sum(open_units / 100000000 * entry_price) as cost_quote
    from lots
    group by run_id, symbol
),
final as (
    select
        o.run_id,
        o.symbol,
        o.units / 100000000 as qty,
        o.cost_quote / (o.units / 100000000) as avg_entry_price,
        o.cost_quote,
        m.last_close,
        m.last_ts,
        o.units / 100000000 * m.last_close as market_value_quote,
        o.units / 100000000 * m.last_close - o.cost_quote as unrealized_pnl_quote
    from open_cost as o
    join marks as m on o.run_id = m.run_id and o.symbol = m.symbol
)
select * from final
