-- name: acct.fifo_lots
-- version: 7
-- description: every fill that opened a position as a FIFO lot (LONG a buy, SHORT a sell), with how much of it is closed and how much is open
-- Lots are in the units (and prices) after the run's splits (acct.adjusted_fills). A fill that
-- crossed zero (shorts, adr/0026) first closed the other side's lots: its lot is the rest
-- (lot_units), while its fee is shared pro rata to the whole fill (fill_units). The sums are
-- taken on the matching line (line_units, exact; acct.adjusted_fills) and read in units of
-- 1e-8: a lot held through a split is what the books kept of it, less the fraction they paid
-- in lieu (adr/0025), so its open_units are whole after the last split, the books' own. A lot
-- closed before a split that did not scale it to whole units is a fraction of a unit there:
-- lot_units and closed_units round it to the unit, qty keeps it.
with fills as (
    select run_id, symbol, fill_seq, side, ts, price, fee, units, line_units, line_scale
    from acct.adjusted_fills
),
ends as (
    -- one read of the matches: each closes part of its entry's lot with part of its exit
    select
        run_id,
        symbol,
        unnest([entry_fill_seq, exit_fill_seq]) as fill_seq,
        unnest([0, matched_line_units]) as exit_line_units,
        unnest([matched_line_units, 0]) as closed_line_units
    from acct.fifo_matches
),
per_fill as (
    select
        run_id, symbol, fill_seq,
        sum(exit_line_units) as exit_line_units,
        sum(closed_line_units) as closed_line_units
    from ends
    group by run_id, symbol, fill_seq
),
open_lots as (
    select
        f.run_id,
        f.symbol,
        f.fill_seq,
        f.ts,
        f.price,
        f.fee,
        f.units as fill_units,
        f.line_units - coalesce(c.exit_line_units, 0) as lot_line_units,
        coalesce(c.closed_line_units, 0) as closed_line_units,
        f.line_units - coalesce(c.exit_line_units, 0) - coalesce(c.closed_line_units, 0)
            as open_line_units,
        f.line_scale,
        case when f.side = 'BUY' then 'LONG' else 'SHORT' end as side
    from fills as f
    left join per_fill as c
        on f.run_id = c.run_id and f.symbol = c.symbol and f.fill_seq = c.fill_seq
    where f.line_units - coalesce(c.exit_line_units, 0) > 0
),
final as (
    select
        run_id,
        symbol,
        fill_seq as lot_fill_seq,
        ts as entry_ts,
        price as entry_price,
        fee as entry_fee,
        cast((lot_line_units + line_scale // 2) // line_scale as bigint) as lot_units,
        cast((closed_line_units + line_scale // 2) // line_scale as bigint) as closed_units,
        cast((open_line_units + line_scale // 2) // line_scale as bigint) as open_units,
        (lot_line_units // line_scale + lot_line_units % line_scale / line_scale) / 100000000
            as qty,
        (open_line_units // line_scale + open_line_units % line_scale / line_scale) / 100000000
            as open_qty,
        side,
        fill_units
    from open_lots
)
select * from final
