-- migration: 001_create_core_tables
-- description: the warehouse's core tables (DESIGN 5.1). Timestamps are TIMESTAMPTZ in UTC.

create table runs (
    run_id        varchar primary key,
    mode          varchar not null,          -- backtest | shadow | paper | live
    name          varchar,
    status        varchar not null,          -- running | completed | failed
    error         varchar,
    config_json   json,
    config_hash   varchar,
    data_hash     varchar,
    git_sha       varchar,
    started_at    timestamptz not null,
    ended_at      timestamptz,
    versions      json,                      -- package, Python and OS versions
    view_versions json,                      -- {view name: {version, fingerprint}}
    gap_policy    varchar,
    symbols       varchar[],
    timeframe     varchar,
    timeframe_ms  bigint,
    initial_cash  double,                    -- quote currency
    quote         varchar,
    start_ts      timestamptz,               -- first bar's open time the run saw
    end_ts        timestamptz,               -- last bar's open time the run saw
    bar_count     bigint,
    seed          bigint,
    run_dir       varchar
);

create table bars (
    symbol    varchar not null,
    timeframe varchar not null,
    ts        timestamptz not null,          -- bar open time, as Binance labels klines
    open      double not null,
    high      double not null,
    low       double not null,
    close     double not null,
    volume    double not null,
    trades    bigint,
    source    varchar not null,              -- file name, venue, or 'fill' (gap filled forward)
    ingest_id varchar,
    primary key (symbol, timeframe, ts)
);

-- The bars a run actually saw (after its own gap policy), so accounting views mark positions
-- at exactly the prices the engine used.
create table run_bars (
    run_id varchar not null,
    symbol varchar not null,
    ts     timestamptz not null,
    close  double not null,
    filled boolean not null                  -- a flat bar the gap policy filled forward
);

create table qc_events (
    ingest_id  varchar,                      -- set for findings of an ingest
    run_id     varchar,                      -- set for findings of a run's read
    event_seq  bigint not null,
    stage      varchar not null,             -- ingest | backtest
    file       varchar,
    row_number bigint,                       -- ingest: 1-based data row in the file
    symbol     varchar,
    timeframe  varchar,
    ts         timestamptz,
    rule       varchar not null,             -- gap, duplicate, ohlc, nan, misaligned, ...
    severity   varchar not null,             -- error | warning
    action     varchar not null,             -- refused | filled | kept
    policy     varchar,
    detail     varchar not null,
    data       json,
    recorded_at timestamptz not null
);

create table orders (
    run_id            varchar not null,
    order_seq         bigint not null,
    client_order_id   varchar not null,
    symbol            varchar not null,
    side              varchar not null,      -- BUY | SELL
    type              varchar not null,      -- MARKET | LIMIT
    qty               double not null,
    limit_price       double,
    status            varchar not null,      -- final status
    reason            varchar,
    ts                timestamptz not null,  -- decided at (bar close time)
    bar_ts            timestamptz not null,  -- open time of the bar it was decided on
    updated_ts        timestamptz not null,
    filled_qty        double not null,
    expire_after_bars bigint,
    reduce_only       boolean not null,
    tag               varchar,
    primary key (run_id, order_seq)
);

create table order_events (
    run_id          varchar not null,
    event_seq       bigint not null,
    order_seq       bigint not null,
    client_order_id varchar not null,
    ts              timestamptz not null,
    status          varchar not null,
    reason          varchar
);

create table fills (
    run_id          varchar not null,
    fill_seq        bigint not null,
    order_seq       bigint not null,
    client_order_id varchar not null,
    symbol          varchar not null,
    side            varchar not null,
    qty             double not null,
    price           double not null,
    fee             double not null,         -- quote currency, on the fill's notional
    ts              timestamptz not null,    -- when the engine learned of the fill
    bar_ts          timestamptz not null,    -- open time of the bar it executed on
    venue_fill_id   varchar,
    primary key (run_id, fill_seq)
);

create table risk_events (
    run_id          varchar not null,
    ts              timestamptz not null,
    client_order_id varchar,
    order_seq       bigint,
    symbol          varchar,
    rule            varchar not null,
    reason_code     varchar not null,
    detail          json
);

create table snapshots (
    run_id         varchar not null,
    ts             timestamptz not null,
    cash           double not null,
    position_value double not null,
    equity         double not null,
    positions      json
);

create table metrics (
    run_id varchar,
    ts     timestamptz not null,
    name   varchar not null,
    value  double,
    labels json
);

create table view_versions (
    name            varchar not null,
    version         integer not null,
    fingerprint     varchar not null,
    sqlglot_version varchar not null,
    deployed_at     timestamptz not null,
    primary key (name, version, fingerprint)
);
