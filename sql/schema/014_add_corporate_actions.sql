-- migration: 014_add_corporate_actions
-- description: equity splits and dividends (`workbench ingest-actions`), and what a backtest
-- did with them: one action_events row per action it applied to a symbol (the position's
-- units before and after a split, the cash of a dividend or of the fraction a split left),
-- which the accounting views read beside the fills (adr/0025)
create table corporate_actions (
    symbol     varchar not null,
    ex_date    date not null,              -- the first day the shares trade without it
    kind       varchar not null,           -- split | dividend
    ratio      double,                     -- split: new units per old unit (2 for 2:1)
    amount     double,                     -- dividend: quote currency per unit held
    source     varchar not null,           -- the file it came from
    ingest_id  varchar not null,
    primary key (symbol, ex_date, kind)
);

create table action_events (
    run_id        varchar not null,
    action_seq    bigint not null,         -- counts from 1 per run, in the order applied
    symbol        varchar not null,
    ts            timestamptz not null,    -- the bar time it was applied at (first at or after
                                           -- the ex-date's 00:00 UTC); fills of that bar
                                           -- come after it
    kind          varchar not null,        -- SPLIT | DIVIDEND
    ex_date       date not null,
    ratio         double,                  -- SPLIT
    amount        double,                  -- DIVIDEND: per unit held
    units_before  bigint not null,         -- the position, in units of 1e-8
    units_after   bigint not null,
    cash_quote    double not null,         -- dividend paid, or a split's cash in lieu
    primary key (run_id, action_seq)
);
