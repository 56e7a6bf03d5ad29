-- name: rpt.round_trips
-- version: 3
-- description: FIFO round trips (long only) with pro-rata fees, net P&L and return on entry notional
-- The arithmetic mirrors workbench.book.match_round_trip operation by operation.
with matches as (
    select * from acct.fifo_matches
),
sized as (
    select
        *,
        matched_units / 100000000 as qty,
        entry_fee * (matched_units / entry_units) + exit_fee * (matched_units / exit_units)
            as fees
    from matches
),
final as (
    select
        run_id,
        symbol,
        'LONG' as side,
        qty,
        entry_ts,
        entry_price,
        exit_ts,
        exit_price,
        fees,
        (exit_price - entry_price) * qty - fees as pnl,
        ((exit_price - entry_price) * qty - fees) / (entry_price * qty) * 100.0 as return_pct,
        entry_fill_seq,
        exit_fill_seq
    from sized
)
select * from final
