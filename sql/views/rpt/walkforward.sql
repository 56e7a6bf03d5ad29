-- name: rpt.walkforward
-- version: 1
-- description: each window of a walk-forward analysis: its spans, the parameters chosen on the train window, their in-sample and out-of-sample metric, the gap, and the test run's return compounded over the windows so far
-- The out-of-sample numbers are the test run's headline as it stored them (metrics
-- `headline.<column of rpt.performance>`), like rpt.sweep_results, so reading an analysis
-- never recomputes rpt.performance over the warehouse. gap = in_sample - out_of_sample: how
-- much of the train window's metric did not carry over. stitched_return_pct compounds the
-- test runs' total returns up to this window; a window without a test run holds cash.
with windows as (
    select
        wf_id, window_seq, name, metric, anchored, train_start, train_end, test_start,
        test_end, sweep_id, point_seq, params, train_run_id, in_sample, test_run_id, status,
        error_kind, error, ended_at
    from main.walkforward_windows
),
headline as (
    select run_id, name, value
    from main.metrics
    where name like 'headline.%'
      and run_id in (
          select test_run_id from main.walkforward_windows where test_run_id is not null
      )
),
tested as (
    select
        w.wf_id,
        w.window_seq,
        max(h.value) filter (where h.name = 'headline.' || w.metric) as out_of_sample,
        max(h.value) filter (where h.name = 'headline.total_return_pct') as test_return_pct,
        cast(max(h.value) filter (where h.name = 'headline.trades') as bigint) as test_trades
    from windows as w
    join headline as h on w.test_run_id = h.run_id
    group by w.wf_id, w.window_seq
),
final as (
    select
        w.wf_id,
        w.window_seq,
        w.name,
        w.metric,
        w.anchored,
        w.train_start,
        w.train_end,
        w.test_start,
        w.test_end,
        w.status,
        w.sweep_id,
        w.point_seq,
        w.params,
        w.train_run_id,
        w.test_run_id,
        w.in_sample,
        t.out_of_sample,
        w.in_sample - t.out_of_sample as gap,
        t.test_return_pct,
        t.test_trades,
        (
            exp(sum(ln(1 + coalesce(t.test_return_pct, 0) / 100)) over (
                partition by w.wf_id order by w.window_seq
                rows between unbounded preceding and current row
            )) - 1
        ) * 100 as stitched_return_pct,
        w.error_kind,
        w.error,
        w.ended_at
    from windows as w
    left join tested as t on w.wf_id = t.wf_id and w.window_seq = t.window_seq
)
select * from final
