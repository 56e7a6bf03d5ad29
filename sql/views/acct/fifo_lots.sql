-- name: acct.fifo_lots
-- version: 3
-- description: every buy fill as a FIFO lot, with how much of it is closed and how much is open
-- Lots are in the units (and prices) after the run's splits (acct.adjusted_fills).
with buys as (
    select run_id, symbol, fill_seq, ts, price, fee, units
    from acct.adjusted_fills
    where side = 'BUY'
),
closed as (
    select run_id, symbol, entry_fill_seq as fill_seq, sum(matched_units) as closed_units
    from acct.fifo_matches
    group by run_id, symbol, entry_fill_seq
),
final as (
    select
        b.run_id,
        b.symbol,
        b.fill_seq as lot_fill_seq,
        b.ts as entry_ts,
        b.price as entry_price,
        b.fee as entry_fee,
        b.units as lot_units,
        coalesce(c.closed_units, 0) as closed_units,
        b.units - coalesce(c.closed_units, 0) as open_units,
        b.units / 100000000 as qty,
        (b.units - coalesce(c.closed_units, 0)) / 100000000 as open_qty
    from buys as b
    left join closed as c
        on b.run_id = c.run_id and b.symbol = c.symbol and b.fill_seq = c.fill_seq
)
select * from final
