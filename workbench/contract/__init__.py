"""Port contract tests as a product command (``workbench contract-tests``, DESIGN 9).

One suite per port, run against every adapter: ``market_data`` (MarketDataProvider),
``order_router`` (the Broker port driven through the step), ``risk`` (RiskEngine),
``snapshot_store`` and ``portfolio_store`` (saved and restored state), ``event_bus`` (clock and
record order). ``runner.py`` runs the checks (no pytest at run time), ``adapters.py`` builds
what each adapter trades through, ``report.py`` writes JUnit XML and the JSON summary, and
``gate.py`` records each adapter's result in the warehouse and answers whether the suite
passed for an adapter on this version of the code.
"""
