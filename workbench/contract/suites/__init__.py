"""The suites, one module per port; importing this package registers every check."""

from workbench.contract.suites import (  # noqa: F401 (registers the checks)
    event_bus,
    market_data,
    order_router,
    risk,
    state,
)
