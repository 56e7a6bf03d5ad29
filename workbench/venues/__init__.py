"""Venues the live runtime talks to. ``fake_binance`` is a local Binance-compatible exchange.

A venue is a separate party: nothing here imports the engine, the brokers or the strategy.
"""
