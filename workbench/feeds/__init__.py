"""Where bars come from: files (ingest), the warehouse (backtests), the venue (live)."""
