-- migration: 002_add_runs_pid_host
-- description: the process that owns a run while it is `running` (pid on host), so a row whose
-- process is gone is seen as abandoned instead of running forever
alter table runs add column pid bigint;
alter table runs add column host varchar;
