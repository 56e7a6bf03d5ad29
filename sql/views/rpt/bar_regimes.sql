-- name: rpt.bar_regimes
-- version: 2
-- description: each bar a run saw labelled with its regime: trend (up, down, flat) and volatility (low, normal, high)
-- For analysis, not for trading: the volatility terciles are cut over all of the run's bars
-- of the symbol, so a bar's label uses bars after it. Counts are in bars of the run.
-- Trend: the slope of the slow simple moving average of the close, SMA_BARS = 60 closes
-- (this bar's and the 59 before), as its change from the previous bar's SMA in basis points;
-- up above +SLOPE_BPS = 0.5, down below -0.5, flat between (both ends included). Volatility:
-- the sample standard deviation of the last VOL_BARS = 60 log returns of the close (this bar's
-- return and the 59 before, not annualised), cut at its 1/3 and 2/3 quantiles
-- (quantile_cont) over the run's labelled bars of the symbol: low up to the first cut, high
-- above the second, normal between. A bar without enough history for a label (the first 60
-- bars of the symbol) is `warmup` on that axis.
-- The closes are read in one unit across the run's splits (main.action_events, kind SPLIT, as
-- the run applied them): each close times the product of the ratios of the splits at or before
-- its bar, so a split is no price move; `close` is the stored one and `sma` is in its unit.
with stream as (
    select run_id, symbol, ts, close, cast(null as double) as ratio
    from main.run_bars
    union all
    select run_id, symbol, ts, null as close, ratio
    from main.action_events
    where kind = 'SPLIT'
),
factored as (
    select
        run_id,
        symbol,
        ts,
        close,
        ratio,
        coalesce(product(ratio) over (
            partition by run_id, symbol order by ts, ratio is null
            rows between unbounded preceding and current row
        ), 1.0) as factor
    from stream
),
adjusted as (
    select run_id, symbol, ts, close, factor, close * factor as unit_close
    from factored
    where ratio is null
),
bars as (
    select
        run_id,
        symbol,
        ts,
        close,
        factor,
        avg(unit_close) over sma_window as unit_sma,
        count(*) over sma_window as sma_n,
        ln(unit_close / lag(unit_close) over per_symbol) as log_ret
    from adjusted
    window
        per_symbol as (partition by run_id, symbol order by ts),
        sma_window as (
            partition by run_id, symbol order by ts
            rows between 59 preceding and current row
        )
),
measured as (
    select
        run_id,
        symbol,
        ts,
        close,
        case when sma_n = 60 then unit_sma / factor end as sma,
        case
            when sma_n = 60 and lag(sma_n) over per_symbol = 60
                then (unit_sma / lag(unit_sma) over per_symbol - 1) * 10000
        end as sma_slope_bps,
        case when count(log_ret) over vol_window = 60 then stddev_samp(log_ret) over vol_window
        end as realized_vol
    from bars
    window
        per_symbol as (partition by run_id, symbol order by ts),
        vol_window as (
            partition by run_id, symbol order by ts
            rows between 59 preceding and current row
        )
),
cuts as (
    select
        run_id,
        symbol,
        quantile_cont(realized_vol, 1.0 / 3) as low_cut,
        quantile_cont(realized_vol, 2.0 / 3) as high_cut
    from measured
    group by run_id, symbol
),
final as (
    select
        m.run_id,
        m.symbol,
        m.ts,
        m.close,
        m.sma,
        m.sma_slope_bps,
        m.realized_vol,
        case
            when m.sma_slope_bps is null then 'warmup'
            when m.sma_slope_bps > 0.5 then 'up'
            when m.sma_slope_bps < -0.5 then 'down'
            else 'flat'
        end as trend,
        case
            when m.realized_vol is null then 'warmup'
            when m.realized_vol <= c.low_cut then 'low'
            when m.realized_vol > c.high_cut then 'high'
            else 'normal'
        end as volatility
    from measured as m
    join cuts as c on m.run_id = c.run_id and m.symbol = c.symbol
)
select * from final
