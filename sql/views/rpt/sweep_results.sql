-- name: rpt.sweep_results
-- version: 1
-- description: each point of a parameter sweep: its parameters, status and run, with the rpt.performance numbers of the run
-- A failed or cancelled point has no run: its performance columns are null. Filter by
-- sweep_id: the join then reaches rpt.performance for that sweep's runs only.
with points as (
    select
        sweep_id, point_seq, name, params, config_hash, run_id, status, error_kind, error,
        attempts, worker, started_at, ended_at
    from main.experiments
),
performance as (
    select
        run_id, bars, first_ts, last_ts, final_equity, total_return_pct, cagr_pct,
        max_drawdown_pct, sharpe, trades, win_rate_pct, fees_quote, fills, exposure_pct,
        orders, blocked_orders, block_rate_pct
    from rpt.performance
),
final as (
    select
        p.sweep_id,
        p.point_seq,
        p.name,
        p.params,
        p.run_id,
        p.status,
        p.error_kind,
        p.error,
        p.attempts,
        p.worker,
        p.started_at,
        p.ended_at,
        f.total_return_pct,
        f.cagr_pct,
        f.max_drawdown_pct,
        f.sharpe,
        f.trades,
        f.win_rate_pct,
        f.fees_quote,
        f.fills,
        f.exposure_pct,
        f.orders,
        f.blocked_orders,
        f.block_rate_pct,
        f.bars,
        f.first_ts,
        f.last_ts,
        f.final_equity
    from points as p
    left join performance as f on p.run_id = f.run_id
)
select * from final
