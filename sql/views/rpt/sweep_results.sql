-- name: rpt.sweep_results
-- version: 1
-- description: each point of a parameter sweep: its parameters, status and run, with the rpt.performance numbers of the run
-- The numbers are the run's headline as it stored them (metrics `headline.<column of
-- rpt.performance>`, computed through the same versioned views when the run completed), so
-- reading a sweep never recomputes rpt.performance over the whole warehouse (a join to it
-- does, whatever the filter). A failed or cancelled point has no run: its numbers are null.
with points as (
    select
        sweep_id, point_seq, name, params, config_hash, run_id, status, error_kind, error,
        attempts, worker, started_at, ended_at
    from main.experiments
),
headline as (
    select run_id, name, value
    from main.metrics
    where name like 'headline.%'
      and run_id in (select run_id from main.experiments where run_id is not null)
),
numbers as (
    select
        run_id,
        max(value) filter (where name = 'headline.total_return_pct') as total_return_pct,
        max(value) filter (where name = 'headline.cagr_pct') as cagr_pct,
        max(value) filter (where name = 'headline.max_drawdown_pct') as max_drawdown_pct,
        max(value) filter (where name = 'headline.sharpe') as sharpe,
        cast(max(value) filter (where name = 'headline.trades') as bigint) as trades,
        max(value) filter (where name = 'headline.win_rate_pct') as win_rate_pct,
        max(value) filter (where name = 'headline.fees_quote') as fees_quote,
        cast(max(value) filter (where name = 'headline.fills') as bigint) as fills,
        max(value) filter (where name = 'headline.exposure_pct') as exposure_pct,
        cast(max(value) filter (where name = 'headline.orders') as bigint) as orders,
        cast(max(value) filter (where name = 'headline.blocked_orders') as bigint)
            as blocked_orders,
        max(value) filter (where name = 'headline.block_rate_pct') as block_rate_pct,
        cast(max(value) filter (where name = 'headline.bars') as bigint) as bars,
        max(value) filter (where name = 'headline.final_equity') as final_equity
    from headline
    group by run_id
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
        n.total_return_pct,
        n.cagr_pct,
        n.max_drawdown_pct,
        n.sharpe,
        n.trades,
        n.win_rate_pct,
        n.fees_quote,
        n.fills,
        n.exposure_pct,
        n.orders,
        n.blocked_orders,
        n.block_rate_pct,
        n.bars,
        n.final_equity
    from points as p
    left join numbers as n on p.run_id = n.run_id
)
select * from final
