-- migration: 011_add_runs_tags
-- description: a run's tags (`workbench backtest --tag KEY=VALUE`): {key: value} text, written
-- with the run's row in the same insert and never changed after; metadata only (not in the
-- config, its hash or the run's files); null when the run has none
alter table runs add column tags json;
