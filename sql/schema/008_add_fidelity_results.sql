-- migration: 008_add_fidelity_results
-- description: `workbench fidelity`: each comparison of one config under the execution
-- assumptions (latency profiles, a participation cap, the full cost model), one row per
-- variant, each variant a run of its own
create table fidelity_results (
    fidelity_id     varchar not null,        -- one comparison
    created_at      timestamptz not null,
    variant_seq     integer not null,        -- the order the variants ran in (1: the baseline)
    variant         varchar not null,        -- INSTANT, FAST + cap 10%, SLOW + cap + costs, ...
    latency         varchar not null,        -- INSTANT | FAST | NORMAL | SLOW
    cap_pct         double,                  -- the participation cap (null: none)
    full_costs      boolean not null,
    run_id          varchar not null,        -- runs.run_id
    total_return_pct double,
    sharpe          double,
    trades          bigint,
    total_costs     double,                  -- rpt.cost_breakdown.total_costs
    cost_per_trade  double,
    edge_kept_pct   double,                  -- return over the baseline's, in percent
    primary key (fidelity_id, variant_seq)
);
