-- migration: 007_add_costs
-- description: every cost a run paid, one row per fill and kind: the fee (in cash) and the
-- half spread, slippage and market impact a simulated market fill paid in its price (they are
-- in fills.price already: kept here so that rpt.cost_breakdown can say what each assumption
-- cost); funding and borrow rows will accrue here too
create table costs (
    run_id          varchar not null,
    ts              timestamptz not null,    -- the fill's time (fills.ts)
    symbol          varchar not null,
    kind            varchar not null,        -- fee | spread | slippage | impact
    amount          double not null,         -- quote currency, > 0 a cost
    fill_seq        bigint                   -- the fill it belongs to
);
