-- name: acct.fifo_lots
-- version: 4
-- description: every fill that opened a position as a FIFO lot (LONG a buy, SHORT a sell), with how much of it is closed and how much is open
-- Lots are in the units (and prices) after the run's splits (acct.adjusted_fills). A fill that
-- crossed zero (shorts, adr/0026) first closed the other side's lots: its lot is the rest
-- (lot_units), while its fee is shared pro rata to the whole fill (fill_units).
with fills as (
    select run_id, symbol, fill_seq, side, ts, price, fee, units
    from acct.adjusted_fills
),
exits as (
    select run_id, symbol, exit_fill_seq as fill_seq, sum(matched_units) as exit_units
    from acct.fifo_matches
    group by run_id, symbol, exit_fill_seq
),
closed as (
    select run_id, symbol, entry_fill_seq as fill_seq, sum(matched_units) as closed_units
    from acct.fifo_matches
    group by run_id, symbol, entry_fill_seq
),
lots as (
    select
        f.run_id,
        f.symbol,
        f.fill_seq,
        f.ts,
        f.price,
        f.fee,
        f.units as fill_units,
        f.units - coalesce(x.exit_units, 0) as lot_units,
        case when f.side = 'BUY' then 'LONG' else 'SHORT' end as side
    from fills as f
    left join exits as x
        on f.run_id = x.run_id and f.symbol = x.symbol and f.fill_seq = x.fill_seq
),
final as (
    select
        l.run_id,
        l.symbol,
        l.fill_seq as lot_fill_seq,
        l.ts as entry_ts,
        l.price as entry_price,
        l.fee as entry_fee,
        l.lot_units,
        coalesce(c.closed_units, 0) as closed_units,
        l.lot_units - coalesce(c.closed_units, 0) as open_units,
        l.lot_units / 100000000 as qty,
        (l.lot_units - coalesce(c.closed_units, 0)) / 100000000 as open_qty,
        l.side,
        l.fill_units
    from lots as l
    left join closed as c
        on l.run_id = c.run_id and l.symbol = c.symbol and l.fill_seq = c.fill_seq
    where l.lot_units > 0
)
select * from final
