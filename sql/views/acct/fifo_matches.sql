-- name: acct.fifo_matches
-- version: 7
-- description: FIFO matching of buy and sell fills, long and short, per run and symbol, in units of 1e-8
-- Each buy (sell) covers an interval of the symbol's cumulative bought (sold) units. The ends of
-- all those intervals cut the line into segments; each segment lies in exactly one buy and, up
-- to the units sold so far, one sell: the first buy (sell) whose interval ends at or after the
-- segment's end. One stream of both sides, read from the top down, carries that buy and that
-- sell to every cut, with everything a match reports; a match is a (buy, sell) pair with the
-- length of its segments. Plan-stable by construction: sorts, windows and group-bys, no join, so
-- no estimate can make the work quadratic in fills. Integer lengths keep it exact. Read from the
-- largest cut down, the last leg seen of each side is the first one ending at or after the cut;
-- at a cut shared by a buy and a sell the sell row comes last and alone keeps the segment's
-- units (its neighbour below is the next smaller cut). Fills are matched on their lengths on
-- acct.adjusted_fills' line (line_units: the units after the run's splits, in 1/line_scale of a
-- unit, less what the books floored away from each lot at a split and paid in lieu), so lots
-- held through a split match the sells after it, and every pair is the books' own. A match
-- reports matched_line_units, and entry_line_units and exit_line_units: the fills' sizes on the
-- line as the books held them when the match closed (the entry's lot floored split by split up
-- to then, the exit's own), which share the fees pro rata. entry_units, exit_units and
-- matched_units are those over line_scale: the books' units exactly for a match closed after
-- its symbol's last split (and in a run without splits), rounded to the unit for one closed
-- before a split that did not scale it to whole units (rpt.round_trips reads the line).
-- A fill a reverse split floored to nothing has no length: it matches nothing (it would share
-- a cut).
-- Shorts (portfolio.allow_short, adr/0026) need nothing more: under FIFO the k-th unit bought
-- always meets the k-th unit sold, whichever came first. The earlier fill of a pair is its
-- entry: a buy first is a LONG round trip, a sell first a SHORT one.
with fills as (
    select
        run_id, symbol, fill_seq, side, ts, price, fee, units, line_units, line_scale,
        lot_lines, splits_after
    from acct.adjusted_fills
    where line_units > 0
),
legs as (
    select
        run_id,
        symbol,
        side,
        line_scale,
        sum(line_units) over (
            partition by run_id, symbol, side order by fill_seq
            rows between unbounded preceding and current row
        ) as cut,
        {
            'fill_seq': fill_seq, 'ts': ts, 'price': price, 'fee': fee, 'units': units,
            'lot_lines': case when splits_after > 0 then lot_lines end,
            'line_units': coalesce(lot_lines[1], line_units), 'splits_after': splits_after
        } as leg
    from fills
),
stream as (
    select
        run_id,
        symbol,
        cut,
        side,
        line_scale,
        case when side = 'BUY' then leg end as buy_leg,
        case when side = 'SELL' then leg end as sell_leg
    from legs
),
covered as (
    select
        run_id,
        symbol,
        last_value(buy_leg ignore nulls) over down as buy,
        last_value(sell_leg ignore nulls) over down as sell,
        line_scale,
        cut - coalesce(lead(cut) over down, 0) as seg_units
    from stream
    window down as (
        partition by run_id, symbol order by cut desc, side asc
        rows between unbounded preceding and current row
    )
),
matched as (
    select run_id, symbol, buy, sell, line_scale, sum(seg_units) as matched_line_units
    from covered
    where seg_units > 0 and buy is not null and sell is not null
    group by run_id, symbol, buy, sell, line_scale
),
oriented as (
    select
        run_id,
        symbol,
        case when buy.fill_seq < sell.fill_seq then 'LONG' else 'SHORT' end as side,
        case when buy.fill_seq < sell.fill_seq then buy else sell end as entry,
        case when buy.fill_seq < sell.fill_seq then sell else buy end as exit,
        matched_line_units,
        line_scale
    from matched
),
sized as (
    select
        *,
        coalesce(
            entry.lot_lines[entry.splits_after - exit.splits_after + 1], entry.line_units
        ) as entry_line_units,
        exit.line_units as exit_line_units
    from oriented
),
final as (
    select
        run_id,
        symbol,
        entry.fill_seq as entry_fill_seq,
        exit.fill_seq as exit_fill_seq,
        entry.ts as entry_ts,
        entry.price as entry_price,
        entry.fee as entry_fee,
        cast((entry_line_units + line_scale // 2) // line_scale as bigint) as entry_units,
        exit.ts as exit_ts,
        exit.price as exit_price,
        exit.fee as exit_fee,
        cast((exit_line_units + line_scale // 2) // line_scale as bigint) as exit_units,
        cast((matched_line_units + line_scale // 2) // line_scale as bigint) as matched_units,
        side,
        matched_line_units,
        entry_line_units,
        exit_line_units,
        line_scale
    from sized
)
select * from final
