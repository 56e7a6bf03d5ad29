-- name: rpt.risk_blocks
-- version: 1
-- description: orders blocked by pre-trade risk per run, rule and reason code, with their share of all orders
-- Only blocks of orders count here; a daily-loss stop event (no order) is in main.risk_events.
with blocks as (
    select run_id, ts, rule, reason_code
    from main.risk_events
    where client_order_id is not null
),
orders as (
    select run_id, count(*) as orders
    from main.orders
    group by run_id
),
final as (
    select
        b.run_id,
        b.rule,
        b.reason_code,
        count(*) as blocks,
        min(b.ts) as first_ts,
        max(b.ts) as last_ts,
        count(*) / any_value(o.orders) * 100 as share_of_orders_pct
    from blocks as b
    join orders as o on b.run_id = o.run_id
    group by b.run_id, b.rule, b.reason_code
)
select * from final
