"""The engine: one step (``step.py``) shared by every loop; today the backtest loop
(``backtest.py``, with the job around it in ``run.py``); the live loop will drive the same step."""
