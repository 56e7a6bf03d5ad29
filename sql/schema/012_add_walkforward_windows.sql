-- migration: 012_add_walkforward_windows
-- description: `workbench walkforward`: one row per window of a walk-forward analysis: its
-- train and test spans, the train sweep (experiments.sweep_id), the parameters chosen on it by
-- the metric and their in-sample value, and the test window's run (runs.run_id)
create table walkforward_windows (
    wf_id         varchar not null,       -- one walk-forward analysis
    window_seq    integer not null,       -- the window's place, from 1, in time order
    name          varchar not null,       -- the analysis' name; runs are `<name>/w<seq>/...`
    metric        varchar not null,       -- the rpt.performance column the choice maximised
    anchored      boolean not null,       -- true: every train window starts at the first bar
    train_start   timestamptz not null,   -- inclusive
    train_end     timestamptz not null,   -- exclusive; the test window starts here
    test_start    timestamptz not null,   -- inclusive
    test_end      timestamptz not null,   -- exclusive
    sweep_id      varchar,                -- the train sweep (experiments, rpt.sweep_results)
    point_seq     integer,                -- the chosen point of that sweep; null: none chosen
    params        json,                   -- {grid key: value} chosen; null: none chosen
    train_run_id  varchar,                -- the chosen point's run on the train window
    in_sample     double,                 -- its metric: the value the choice was made on
    test_run_id   varchar,                -- the chosen params' run on the test window
    status        varchar not null,       -- completed | no_choice | failed
    error_kind    varchar,                -- config_error | strategy_error | engine_fault
    error         varchar,                -- why no choice, or why the test run failed
    ended_at      timestamptz not null,
    primary key (wf_id, window_seq)
);
