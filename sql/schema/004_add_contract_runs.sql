-- migration: 004_add_contract_runs
-- description: each adapter's result of `workbench contract-tests`, for the live gate: the code
-- it ran on (git SHA and a fingerprint of the workbench package sources) and its counts
create table contract_runs (
    run_at           timestamptz not null,
    adapter          varchar not null,            -- paper | fake-binance | binance-testnet
    git_sha          varchar not null,
    code_fingerprint varchar not null,            -- sha256 of workbench/**/*.py
    passed           integer not null,
    failed           integer not null,
    skipped          integer not null,
    ok               boolean not null,            -- nothing failed and something passed
    summary_json     json not null                -- the adapter's part of the JSON summary
);
