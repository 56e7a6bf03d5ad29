-- name: acct.adjusted_fills
-- version: 1
-- description: every fill in the units of its symbol after the run's later splits (adr/0025)
-- A split (main.action_events, kind SPLIT) applies at a bar time before that bar's fills, so a
-- fill is scaled by the product of the ratios of the splits after its bar: units times it
-- (floored, as the books scale their lots), price over it. Without a split the factor is 1 and
-- units and price are the fill's own. One window over fills and splits together: no join.
with fills as (
    select
        run_id, symbol, fill_seq, side, ts, bar_ts, price, fee,
        cast(round(qty * 100000000) as bigint) as units,
        cast(null as double) as ratio
    from main.fills
),
splits as (
    select
        run_id, symbol, null as fill_seq, null as side, ts, ts as bar_ts,
        null as price, null as fee, null as units, ratio
    from main.action_events
    where kind = 'SPLIT'
),
stream as (
    select * from fills
    union all
    select * from splits
),
factored as (
    select
        *,
        coalesce(product(ratio) over (
            partition by run_id, symbol order by bar_ts desc, ratio is not null
            rows between unbounded preceding and current row
        ), 1.0) as factor
    from stream
),
final as (
    select
        run_id,
        symbol,
        fill_seq,
        side,
        ts,
        bar_ts,
        case when factor = 1.0 then price else price / factor end as price,
        fee,
        case when factor = 1.0 then units else cast(floor(units * factor) as bigint) end
            as units,
        factor
    from factored
    where ratio is null
)
select * from final
