"""The DuckDB warehouse: connection rules, migrations, versioned views, bulk I/O."""
