"""Clock and record order (the "event bus" is the journal): records replay in the order they
were published, the clock never goes back, and in sim the same bars give the same records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workbench.contract.adapters import Rig
from workbench.contract.runner import Skip, check, expect
from workbench.engine.journal import JournalContents, MemoryJournal, OrderRecord, Record
from workbench.model import Fill, Order, OrderStatus, Side


class RecordingJournal(MemoryJournal):
    """A memory journal that also notes each record as it is published."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, int, str]] = []

    def order(self, record: OrderRecord) -> None:
        self.published.append(("order", record.order_seq, "NEW"))
        super().order(record)

    def event(self, order: Order, status: OrderStatus, reason: str | None, ts: int) -> None:
        self.published.append(("event", order.order_seq, status.value))
        super().event(order, status, reason, ts)

    def fill(self, fill: Fill) -> None:
        self.published.append(("fill", fill.order_seq, str(fill.qty_units)))
        super().fill(fill)


def key(record: Record) -> tuple[str, int, str]:
    if isinstance(record, OrderRecord):
        return ("order", record.order_seq, "NEW")
    if isinstance(record, Fill):
        return ("fill", record.order_seq, str(record.qty_units))
    return ("event", record.order_seq, record.status.value)


def script(rig: Rig) -> None:
    """A few orders across bars: fills, a resting order, a cancel."""
    rig.order(Side.BUY, 0.002)
    resting = rig.order(Side.BUY, 0.001, limit=round(rig.bars[-1].close * 0.97, 2))
    touch = rig.order(Side.BUY, 0.001, limit=rig.bars[-1].close - 1.75)
    rig.advance(1)
    rig.order(Side.SELL, 0.001)
    rig.cancel(resting)
    rig.advance(1)
    if touch.is_open:
        rig.cancel(touch)


def first_difference(a: list[Any], b: list[Any]) -> int:
    """The index of the first record that differs (the shorter length when one is a prefix)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


def records(journal: Any) -> Iterator[Record]:
    return iter(journal.replay())


@check("event_bus.publish_order_kept")
def publish_order_kept(a: Any) -> str:
    """The journal replays its records in the order the step published them."""
    if not a.steps_time:
        raise Skip("the script steps venue time (fake venues only)")
    journal = RecordingJournal()
    rig = a.rig(journal=journal)
    script(rig)
    replayed = [key(r) for r in records(journal)]
    expect(replayed == journal.published,
           f"replay order differs from publish order at record "
           f"{first_difference(replayed, journal.published)}")
    return f"{len(replayed)} records in publish order"


@check("event_bus.clock_never_goes_back")
def clock_never_goes_back(a: Any) -> str:
    """Every record's time is >= the one before it; in sim the clock is the bar's close."""
    if not a.steps_time:
        raise Skip("the script steps venue time (fake venues only)")
    rig = a.rig()
    script(rig)
    contents: JournalContents = rig.step.journal.contents()
    stamps = [r.ts for r in records(rig.step.journal)]
    back = next((i for i in range(1, len(stamps)) if stamps[i] < stamps[i - 1]), None)
    expect(back is None, f"record {back} is stamped before the one published before it")
    last = rig.bars[-1]
    expect(rig.step.now == last.ts + 60_000,
           f"the step's clock says {rig.step.now}, the last bar closed at {last.ts + 60_000}")
    return f"{len(stamps)} stamps, {len(contents.fills)} fills, non-decreasing"


@check("event_bus.same_bars_same_records")
def same_bars_same_records(a: Any) -> str:
    """The same bars and orders twice give the same records, field by field."""
    if not a.steps_time:
        raise Skip("a real venue's ids and times differ from run to run")
    runs = []
    for _ in range(2):
        rig = a.rig()
        script(rig)
        runs.append(list(records(rig.step.journal)))
    expect(runs[0] == runs[1], "two runs of the same bars gave different records: first "
           f"difference at record {first_difference(runs[0], runs[1])}")
    return f"{len(runs[0])} records, identical"
