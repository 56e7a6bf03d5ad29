-- name: rpt.live_vs_backtest
-- version: 2
-- description: each order a shadow, paper or live run's strategy proposed beside the order its backtest twin (run <run_id>.backtest: the same config on the same bars) proposed, matched by symbol, bar and rank within the bar; agree is false where they differ
-- Operator flatten orders (tag 'flatten') are not the strategy's and are left out. A bar where
-- only one side proposed an order has NULLs on the other side.
with live_runs as (
    select run_id
    from main.runs
    where mode in ('shadow', 'paper', 'live')
),
ranked as (
    -- every strategy order of every run, ranked within its bar; a twin keyed by its live run
    select
        case when o.run_id like '%.backtest'
            then left(o.run_id, length(o.run_id) - length('.backtest'))
            else o.run_id
        end as run_id,
        o.run_id like '%.backtest' as is_twin,
        o.symbol,
        o.bar_ts,
        o.order_seq,
        o.side,
        o.type,
        o.qty,
        o.limit_price,
        o.status,
        row_number() over (
            partition by o.run_id, o.symbol, o.bar_ts order by o.order_seq
        ) as rank_in_bar
    from main.orders as o
    where coalesce(o.tag, '') <> 'flatten'
),
live as (
    select k.*
    from ranked as k
    inner join live_runs as r on k.run_id = r.run_id
    where not k.is_twin
),
twin as (
    select *
    from ranked
    where is_twin
),
paired as (
    select
        coalesce(l.run_id, t.run_id) as run_id,
        coalesce(l.symbol, t.symbol) as symbol,
        coalesce(l.bar_ts, t.bar_ts) as bar_ts,
        coalesce(l.rank_in_bar, t.rank_in_bar) as rank_in_bar,
        l.order_seq as live_order_seq,
        l.side as live_side,
        l.type as live_type,
        l.qty as live_qty,
        l.limit_price as live_limit_price,
        l.status as live_status,
        t.order_seq as backtest_order_seq,
        t.side as backtest_side,
        t.type as backtest_type,
        t.qty as backtest_qty,
        t.limit_price as backtest_limit_price,
        t.status as backtest_status,
        l.side is not distinct from t.side
        and l.type is not distinct from t.type
        and l.qty is not distinct from t.qty
        and l.limit_price is not distinct from t.limit_price as agree
    from live as l
    full outer join twin as t
        on l.run_id = t.run_id
        and l.symbol = t.symbol
        and l.bar_ts = t.bar_ts
        and l.rank_in_bar = t.rank_in_bar
),
final as (
    select p.*
    from paired as p
    inner join live_runs as r on p.run_id = r.run_id
)
select * from final
