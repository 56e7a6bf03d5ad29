-- name: rpt.cost_breakdown
-- version: 3
-- description: each run's P&L split into gross (before costs), fees, spread, slippage, impact and funding, in the quote currency
-- net_pnl is the final equity less the initial cash (the last row of acct.equity_curve); fees
-- are the fills' fees (paid in cash); spread, slippage and impact are what simulated market
-- fills paid in their prices, and funding what funding and borrow rows charged (main.costs);
-- gross_pnl = net_pnl + total_costs: the run's P&L had trading been free.
with runs as (
    select run_id, initial_cash from main.runs
),
last_equity as (
    select run_id, arg_max(equity, ts) as final_equity
    from acct.equity_curve
    group by run_id
),
fees as (
    select run_id, sum(fee order by fill_seq) as fees, count(*) as fills
    from main.fills
    group by run_id
),
priced as (
    select
        run_id,
        sum(case when kind = 'spread' then amount else 0 end order by fill_seq) as spread,
        sum(case when kind = 'slippage' then amount else 0 end order by fill_seq) as slippage,
        sum(case when kind = 'impact' then amount else 0 end order by fill_seq) as impact,
        sum(
            case when kind in ('funding', 'borrow') then amount else 0 end order by ts, fill_seq
        ) as funding
    from main.costs
    group by run_id
),
costs as (
    select
        r.run_id,
        e.final_equity - r.initial_cash as net_pnl,
        coalesce(f.fees, 0) as fees,
        coalesce(p.spread, 0) as spread,
        coalesce(p.slippage, 0) as slippage,
        coalesce(p.impact, 0) as impact,
        coalesce(p.funding, 0) as funding,
        coalesce(f.fills, 0) as fills
    from runs as r
    join last_equity as e on r.run_id = e.run_id
    left join fees as f on r.run_id = f.run_id
    left join priced as p on r.run_id = p.run_id
),
final as (
    select
        run_id,
        net_pnl + fees + spread + slippage + impact + funding as gross_pnl,
        fees,
        spread,
        slippage,
        impact,
        funding,
        fees + spread + slippage + impact + funding as total_costs,
        net_pnl,
        fills,
        (fees + spread + slippage + impact + funding) / nullif(fills, 0) as cost_per_fill
    from costs
)
select * from final
