-- name: acct.fifo_matches
-- version: 1
-- description: FIFO matching of sell fills against buy lots, per run and symbol, in units of 1e-8
-- Each buy and each sell covers an interval of the symbol's cumulative bought (sold) units;
-- a match is the overlap of a buy's interval with a sell's. Integer units keep it exact.
with fills as (
    select
        run_id, symbol, fill_seq, side, ts, price, fee,
        cast(round(qty * 100000000) as bigint) as units
    from main.fills
),
buys as (
    select
        *,
        sum(units) over (
            partition by run_id, symbol order by fill_seq
            rows between unbounded preceding and current row
        ) as cum_end
    from fills
    where side = 'BUY'
),
sells as (
    select
        *,
        sum(units) over (
            partition by run_id, symbol order by fill_seq
            rows between unbounded preceding and current row
        ) as cum_end
    from fills
    where side = 'SELL'
),
final as (
    select
        b.run_id,
        b.symbol,
        b.fill_seq as entry_fill_seq,
        s.fill_seq as exit_fill_seq,
        b.ts as entry_ts,
        b.price as entry_price,
        b.fee as entry_fee,
        b.units as entry_units,
        s.ts as exit_ts,
        s.price as exit_price,
        s.fee as exit_fee,
        s.units as exit_units,
        least(b.cum_end, s.cum_end) - greatest(b.cum_end - b.units, s.cum_end - s.units)
            as matched_units
    from buys as b
    join sells as s
        on b.run_id = s.run_id
        and b.symbol = s.symbol
        and b.cum_end - b.units < s.cum_end
        and s.cum_end - s.units < b.cum_end
)
select * from final
