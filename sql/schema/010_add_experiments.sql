-- migration: 010_add_experiments
-- description: `workbench sweep`: one row per point of a parameter sweep, its parameters,
-- status and, when it failed, why (config_error, strategy_error, engine_fault, worker_lost);
-- a completed point's run is an ordinary run (runs.run_id)
create table experiments (
    sweep_id     varchar not null,        -- one sweep
    point_seq    integer not null,        -- the point's place in the grid, from 1
    name         varchar not null,        -- the sweep's name; the point's run is `<name>/<point>`
    params       json not null,           -- {grid key: value} of this point
    config_hash  varchar not null,        -- the point's effective config (runs.config_hash)
    run_id       varchar,                 -- runs.run_id; null unless completed
    status       varchar not null,        -- pending | running | completed | failed
    error_kind   varchar,                 -- config_error | strategy_error | engine_fault |
                                          -- worker_lost; null when cancelled (Ctrl-C)
    error        varchar,                 -- what went wrong, secrets masked
    attempts     integer not null,        -- times the point was started (a lost worker retries)
    worker       varchar,                 -- the dask worker that ran it last
    started_at   timestamptz,
    ended_at     timestamptz,
    primary key (sweep_id, point_seq)
);
