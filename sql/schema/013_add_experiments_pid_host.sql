-- migration: 013_add_experiments_pid_host
-- description: the sweep driver that owns a point while it is `pending` or `running` (pid on
-- host), so the points of a driver killed mid-sweep are seen as abandoned instead of waiting
-- forever (as runs.pid and runs.host do for a run)
alter table experiments add column pid bigint;
alter table experiments add column host varchar;
