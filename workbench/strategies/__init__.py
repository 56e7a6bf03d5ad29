"""Example strategies. Name one in config as ``module:Class``, e.g.
``workbench.strategies.sma_cross:SmaCross``."""
