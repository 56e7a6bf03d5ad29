-- name: rpt.drawdown
-- version: 3
-- description: running peak equity (starting from the initial cash) and drawdown in percent, per bar
with curve as (
    select run_id, ts, equity from acct.equity_curve
),
runs as (
    select run_id, initial_cash from main.runs
),
peaks as (
    select
        c.run_id,
        c.ts,
        c.equity,
        greatest(
            r.initial_cash,
            max(c.equity) over (
                partition by c.run_id order by c.ts
                rows between unbounded preceding and current row
            )
        ) as peak_equity
    from curve as c
    join runs as r on c.run_id = r.run_id
),
final as (
    select run_id, ts, equity, peak_equity, (equity / peak_equity - 1) * 100 as drawdown_pct
    from peaks
)
select * from final
