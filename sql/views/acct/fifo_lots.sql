-- name: acct.fifo_lots
-- version: 5
-- description: every fill that opened a position as a FIFO lot (LONG a buy, SHORT a sell), with how much of it is closed and how much is open
-- Lots are in the units (and prices) after the run's splits (acct.adjusted_fills). A fill that
-- crossed zero (shorts, adr/0026) first closed the other side's lots: its lot is the rest
-- (lot_units), while its fee is shared pro rata to the whole fill (fill_units). The sums are
-- taken on the matching line (line_units, exact) and read in units of 1e-8: a lot held through
-- a split is what the books kept of it, less the fraction they paid in lieu (adr/0025), so its
-- open_units are whole after the last split; a lot closed before a split that did not scale
-- it to whole units has a fraction of a unit in lot_units and closed_units (doubles).
with fills as (
    select run_id, symbol, fill_seq, side, ts, price, fee, units, line_units, line_scale
    from acct.adjusted_fills
),
exits as (
    select
        run_id, symbol, exit_fill_seq as fill_seq, sum(matched_line_units) as exit_line_units
    from acct.fifo_matches
    group by run_id, symbol, exit_fill_seq
),
closed as (
    select
        run_id, symbol, entry_fill_seq as fill_seq, sum(matched_line_units) as closed_line_units
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
        f.line_units - coalesce(x.exit_line_units, 0) as lot_line_units,
        f.line_scale,
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
        l.lot_line_units / l.line_scale as lot_units,
        coalesce(c.closed_line_units, 0) / l.line_scale as closed_units,
        (l.lot_line_units - coalesce(c.closed_line_units, 0)) / l.line_scale as open_units,
        l.lot_line_units / l.line_scale / 100000000 as qty,
        (l.lot_line_units - coalesce(c.closed_line_units, 0)) / l.line_scale / 100000000
            as open_qty,
        l.side,
        l.fill_units
    from lots as l
    left join closed as c
        on l.run_id = c.run_id and l.symbol = c.symbol and l.fill_seq = c.fill_seq
    where l.lot_line_units > 0
)
select * from final
