"""The suites, one module per port; importing this package registers every check in order."""

from workbench.contract.suites import (  # noqa: F401 (registration order is report order)
    market_data,
    order_router,
    risk,
    state,
    event_bus,
)
