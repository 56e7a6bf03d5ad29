-- name: rpt.round_trips
-- version: 7
-- description: FIFO round trips (long and short) with pro-rata fees, net P&L and return on entry notional
-- The arithmetic mirrors workbench.book.match_round_trip operation by operation: a SHORT round
-- trip (entry a sell, exit a buy; adr/0026) gains the entry price less the exit price. Across
-- splits (adr/0025) the pairs are the books' own; a trip closed after its symbol's last split
-- is the books' to the bit (the lot's size and price scaled split by split, as the books do),
-- one closed before a split is in the units and prices after it (a fraction of a unit where
-- the split did not scale it to whole units), with the same P&L up to rounding. The cash the
-- books paid in lieu of a floored fraction is no round trip (it is in acct.equity_curve).
with matches as (
    select * from acct.fifo_matches
),
sized as (
    select
        *,
        matched / 100000000 as qty,
        entry_fee * (matched / entry) + exit_fee * (matched / exit) as fees
    from (
        select
            *,
            matched_line_units // line_scale + matched_line_units % line_scale / line_scale
                as matched,
            entry_line_units // line_scale + entry_line_units % line_scale / line_scale
                as entry,
            exit_line_units // line_scale + exit_line_units % line_scale / line_scale as exit
        from matches
    )
),
priced as (
    select
        *,
        case
            when side = 'LONG' then (exit_price - entry_price) * qty - fees
            else (entry_price - exit_price) * qty - fees
        end as pnl
    from sized
),
final as (
    select
        run_id,
        symbol,
        side,
        qty,
        entry_ts,
        entry_price,
        exit_ts,
        exit_price,
        fees,
        pnl,
        pnl / (entry_price * qty) * 100.0 as return_pct,
        entry_fill_seq,
        exit_fill_seq
    from priced
)
select * from final
