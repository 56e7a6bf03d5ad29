-- migration: 003_add_live_tables
-- description: what a live run's flusher writes besides the core tables: its alerts, and the
-- wall-clock time each order was taken on and each fill was heard of (ts is the step's clock)
create table alerts (
    run_id   varchar not null,
    ts       timestamptz not null,
    kind     varchar not null,                -- bar_gap, error_rate, daily_loss_halt, ...
    severity varchar not null,                -- warning | error
    message  varchar not null,
    data     json
);
alter table fills add column wall_ts timestamptz;
alter table orders add column wall_ts timestamptz;
