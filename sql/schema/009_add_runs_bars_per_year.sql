-- migration: 009_add_runs_bars_per_year
-- description: how many bars a year of the run's calendar holds, for annualising per-bar
-- statistics (rpt.performance's Sharpe); null for 24x7 data, where it is 365 days of bars
alter table runs add column bars_per_year double;
