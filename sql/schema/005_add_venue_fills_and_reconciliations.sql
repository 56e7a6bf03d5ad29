-- migration: 005_add_venue_fills_and_reconciliations
-- description: a live run's venue executions as the venue reported them (a fill upstream may
-- aggregate several: its venue_fill_id lists their trade ids), and each reconciliation of the
-- journal with the venue (open orders and balances), with its differences
create table venue_fills (
    run_id           varchar not null,
    ts               timestamptz not null,    -- the step's clock when it was heard of
    client_order_id  varchar not null,
    order_seq        bigint not null,
    symbol           varchar not null,
    side             varchar not null,
    trade_id         bigint not null,
    price            decimal(38, 18) not null,
    qty              decimal(38, 18) not null,
    commission       decimal(38, 18) not null,
    commission_asset varchar not null,
    fee_quote        double not null,           -- the commission in the quote asset
    venue_ts         timestamptz,
    wall_ts          timestamptz
);
create table reconciliations (
    run_id      varchar not null,
    ts          timestamptz not null,
    wall_ts     timestamptz,
    trigger     varchar not null,                -- start | restart | periodic
    ok          boolean not null,
    differences integer not null,
    halted      boolean not null,                -- a difference halted the run
    detail      json                             -- the differences
);
