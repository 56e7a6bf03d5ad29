"""Parity with peer engines: our Strategy class, unchanged, run inside Backtrader,
backtesting.py or NautilusTrader, and compared with our own backtest of the same config.

Optional: the peers come with the ``parity`` extra (``pip install 'workbench[parity]'``); the
core package never imports this one. See docs/parity.md.

The strategy runs in our own ``Step`` (its context, journal and books), driven bar by bar by
the peer's loop; its orders go to the peer's broker through a ``PeerBroker`` and the peer's
executions come back as our fills. Both runs are then folded by the same code (the versioned
views in a private DuckDB, the Book's round trips), so any difference is the peers' fills.
"""
