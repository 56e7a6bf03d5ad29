-- name: acct.fifo_matches
-- version: 1
-- description: FIFO matching of sell fills against buy lots, per run and symbol, in units of 1e-8
-- Each buy (sell) covers an interval of the symbol's cumulative bought (sold) units. The ends of
-- all those intervals cut the line into segments; each segment lies in exactly one buy and, up
-- to the units sold so far, one sell (found by ASOF joins, so the work grows as n log n). A match
-- is a (buy, sell) pair with the units of its segments. Integer units keep it exact.
with fills as (
    select
        run_id, symbol, fill_seq, side, ts, price, fee,
        cast(round(qty * 100000000) as bigint) as units
    from main.fills
),
legs as (
    select
        *,
        sum(units) over (
            partition by run_id, symbol, side order by fill_seq
            rows between unbounded preceding and current row
        ) as cum_end
    from fills
),
buys as (
    select * from legs where side = 'BUY'
),
sells as (
    select * from legs where side = 'SELL'
),
cuts as (
    select run_id, symbol, cum_end as cut from buys
    union
    select run_id, symbol, cum_end as cut from sells
),
segments as (
    select
        run_id,
        symbol,
        cut as seg_end,
        cut - coalesce(
            lag(cut) over (partition by run_id, symbol order by cut), 0
        ) as seg_units
    from cuts
),
matched as (
    select
        g.run_id,
        g.symbol,
        b.fill_seq as entry_fill_seq,
        s.fill_seq as exit_fill_seq,
        sum(g.seg_units) as matched_units
    from segments as g
    asof join buys as b
        on g.run_id = b.run_id and g.symbol = b.symbol and g.seg_end <= b.cum_end
    asof join sells as s
        on g.run_id = s.run_id and g.symbol = s.symbol and g.seg_end <= s.cum_end
    group by g.run_id, g.symbol, b.fill_seq, s.fill_seq
),
final as (
    select
        m.run_id,
        m.symbol,
        m.entry_fill_seq,
        m.exit_fill_seq,
        b.ts as entry_ts,
        b.price as entry_price,
        b.fee as entry_fee,
        b.units as entry_units,
        s.ts as exit_ts,
        s.price as exit_price,
        s.fee as exit_fee,
        s.units as exit_units,
        m.matched_units
    from matched as m
    join buys as b
        on m.run_id = b.run_id and m.symbol = b.symbol and m.entry_fill_seq = b.fill_seq
    join sells as s
        on m.run_id = s.run_id and m.symbol = s.symbol and m.exit_fill_seq = s.fill_seq
)
select * from final
