-- migration: 006_add_parity_results
-- description: `workbench parity`: each comparison of a peer engine's run of our strategy with
-- our own backtest of the same config, one row per compared quantity (the metrics, the trade
-- count, the trades themselves), with the tolerance the spec gives that peer and the verdict
create table parity_results (
    parity_id       varchar not null,        -- one comparison
    created_at      timestamptz not null,
    engine          varchar not null,        -- backtrader | backtesting | nautilus
    engine_version  varchar not null,
    strategy        varchar not null,        -- module:Class
    config_hash     varchar not null,
    data_hash       varchar not null,
    run_id          varchar not null,        -- our backtest of the same config (runs.run_id)
    quantity        varchar not null,        -- total_return_pct, ..., trade_count, trades
    ours            double,
    peer            double,
    diff            double,                  -- peer - ours
    tolerance       double,                  -- the spec's, for this peer (null: not held)
    held            boolean not null,        -- the spec holds this quantity for this peer
    within          boolean not null,        -- |diff| <= tolerance (true when not held)
    passed          boolean not null,        -- the whole comparison
    detail          varchar,                 -- the first differing trade, or why not held
    primary key (parity_id, quantity)
);
