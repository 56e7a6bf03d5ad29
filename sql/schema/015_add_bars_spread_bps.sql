-- migration: 015_add_bars_spread_bps
-- description: a bar's quoted spread in basis points, when its file had a spread_bps column
-- (null otherwise); a run with costs.spread_column reads it in place of costs.spread_bps
alter table bars add column spread_bps double;
