"""The engine: one step (``step.py``) shared by every loop, wired for a mode by ``kernel.py``
(clock, feed, broker, journal); today the backtest loop (``backtest.py``, with the job around it
in ``run.py``); the live loop will drive the same step through the same kernel."""
