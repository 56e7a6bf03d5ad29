"""The engine: one step (``step.py``) driven by two loops (``backtest.py``, ``live.py``)."""
