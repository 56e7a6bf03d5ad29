"""Rebuild a live run's state from its journal: the last good snapshot plus the WAL tail.

The fold is here and only here: :func:`apply_record` folds one record into a :class:`State`
(no I/O, no clock, no randomness; it changes nothing but the state it is given), :func:`fold`
folds a stream. The live runtime uses the same functions on restart, ``workbench replay`` uses
them to check a run, and a snapshot is ``State.to_dict()`` of the folded state, so snapshot +
tail and a replay from the first record give the same state (a property test holds them to it).

Payloads the fold reads (extra keys are kept in the WAL and ignored here):

* ``control``: ``{"action": "start", "initial_cash": float}`` first; later ``"halt"`` (with
  ``"reason"``), ``"resume"``, ``"flatten"`` (sets ``flatten_requested`` and halts, reason
  ``"flatten"``, as the live loop does: only the flatten's own closing orders pass the halt).
  Other actions are counted and otherwise ignored.
* ``bar``: ``{"symbol", "ts", "close", ...}``: the last bar ts and close per symbol.
* ``decision``: anything; an optional ``"strategy_state"`` (the strategy's ``get_state()``) is
  adopted as the state's ``strategy``.
* ``order``: the order as taken on (``client_order_id``, ``order_seq``, ``symbol``, ``side``,
  ``type``, ``qty``, ``qty_units``, ``limit_price``, ``ts``, ``bar_ts``, ...); status ``NEW``.
  A second order record with a known ``client_order_id`` is refused (ReplayError): a restart
  must never journal the same order twice.
* ``order_event``: ``{"client_order_id", "status", "reason", "ts"}``: the order's latest status.
* ``fill``: ``{"fill_seq", "client_order_id", "symbol", "side", "qty", "qty_units", "price",
  "fee", "ts", "bar_ts"}`` and, when the venue kept its commission in the asset bought,
  ``"fee_units"``; cash and positions move exactly as ``Book.apply_fill`` moves them
  (``qty * price`` in floats, units in integers of ``model.QTY_SCALE``); the order executed
  ``qty_units + fee_units``.
* ``risk_event``: ``{"reason", ...}``; an optional ``"risk_state"`` is adopted as ``risk``.
* ``snapshot_ref``: the last snapshot named in the log.
* ``gap`` (bars the venue does not have) and ``alert``: counted, otherwise for the warehouse.
* ``order_failures``: ``{"failures": int, "cause": str, ...}``: the count of order requests in
  a row the venue failed, after a change (a failure, or an answer: 0); a later ``resume``
  control starts it again at 0, as the live loop does. Journals from before this record hold
  none: the count is 0.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple

from workbench.errors import WorkbenchError
from workbench.model import OrderStatus
from workbench.recovery.snapshot import Loaded, load_snapshot
from workbench.recovery.wal import Record, TornTail, WalCorruption, WalReader

STATE_VERSION = 1
ORDER_STATUSES = frozenset(s.value for s in OrderStatus) | {"UNKNOWN"}
"""Statuses an order event may carry: the model's, plus ``UNKNOWN`` (sent, outcome not known)."""
_TERMINAL = frozenset(s.value for s in OrderStatus if s.terminal)


class ReplayError(WorkbenchError):
    """A record the fold cannot apply (a missing field, an unknown order, a duplicate)."""


@dataclass
class State:
    """What a live run knows, as folded from its journal. Plain JSON-able data."""

    seq: int = 0
    """The last WAL record applied."""
    initial_cash: float = 0.0
    cash: float = 0.0
    fees_paid: float = 0.0
    units: dict[str, int] = field(default_factory=dict)
    """Positions in integer units of 1e-8 (``model.QTY_SCALE``); a flat symbol is absent."""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every order by client_order_id, with its latest ``status``, ``reason``, ``filled_units``."""
    fills: list[dict[str, Any]] = field(default_factory=list)
    last_bar_ts: dict[str, int] = field(default_factory=dict)
    last_close: dict[str, float] = field(default_factory=dict)
    halted: bool = False
    halt_reason: str | None = None
    flatten_requested: bool = False
    risk: dict[str, Any] = field(default_factory=dict)
    strategy: Any = None
    snapshot_ref: dict[str, Any] | None = None
    order_failures: int = 0
    """Order requests in a row the venue failed (``BinanceBroker.failures``), as journaled."""
    counts: dict[str, int] = field(default_factory=dict)
    """Records applied, by kind."""

    def open_orders(self) -> dict[str, dict[str, Any]]:
        return {coid: o for coid, o in self.orders.items() if o["status"] not in _TERMINAL}

    def position(self, symbol: str) -> int:
        return self.units.get(symbol, 0)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy as plain JSON-able data (what a snapshot stores)."""
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}
        out["state_version"] = STATE_VERSION
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> State:
        version = data.get("state_version")
        if version != STATE_VERSION:
            raise ReplayError(f"a snapshot state of version {version!r}; this workbench reads "
                              f"version {STATE_VERSION}",
                              fix="remove the snapshot files to replay from the first record")
        names = {f.name for f in fields(cls)}
        return cls(**{k: copy.deepcopy(v) for k, v in data.items() if k in names})


# --- the fold ------------------------------------------------------------------------------------
def _need(record: Record, key: str) -> Any:
    try:
        return record.payload[key]
    except (KeyError, TypeError):
        raise ReplayError(f"a {record.kind} record has no {key!r}",
                          where=f"WAL seq {record.seq}") from None


def _order_for(state: State, record: Record) -> dict[str, Any]:
    coid = _need(record, "client_order_id")
    order = state.orders.get(coid)
    if order is None:
        raise ReplayError(f"a {record.kind} record for order {coid!r}, which no order record "
                          "before it created", where=f"WAL seq {record.seq}")
    return order


def _control(state: State, record: Record) -> None:
    action = _need(record, "action")
    if action == "start":
        cash = float(_need(record, "initial_cash"))
        if state.counts.get("fill"):
            raise ReplayError("a start record after fills", where=f"WAL seq {record.seq}")
        state.initial_cash = state.cash = cash
    elif action == "halt":
        state.halted = True
        state.halt_reason = record.payload.get("reason")
    elif action == "resume":
        state.halted = False
        state.halt_reason = None
        state.flatten_requested = False
        state.order_failures = 0
    elif action == "flatten":
        state.flatten_requested = True
        state.halted = True  # the loop halts, then closes every position (engine/live.py)
        state.halt_reason = "flatten"


def _bar(state: State, record: Record) -> None:
    symbol = _need(record, "symbol")
    ts = _need(record, "ts")
    if ts >= state.last_bar_ts.get(symbol, ts):
        state.last_bar_ts[symbol] = ts
        if "close" in record.payload:
            state.last_close[symbol] = record.payload["close"]


def _decision(state: State, record: Record) -> None:
    if "strategy_state" in record.payload:
        state.strategy = copy.deepcopy(record.payload["strategy_state"])


def _order(state: State, record: Record) -> None:
    coid = _need(record, "client_order_id")
    if coid in state.orders:
        raise ReplayError(f"a second order record for client_order_id {coid!r}",
                          where=f"WAL seq {record.seq}",
                          fix="a restart must query the venue for a journaled order, never "
                              "journal (or send) it again")
    order = copy.deepcopy(record.payload)
    order.update(status=OrderStatus.NEW.value, reason=None, filled_units=0,
                 updated_ts=order.get("ts"), wal_seq=record.seq)
    state.orders[coid] = order


def _order_event(state: State, record: Record) -> None:
    order = _order_for(state, record)
    status = _need(record, "status")
    if status not in ORDER_STATUSES:
        raise ReplayError(f"an order event with the unknown status {status!r}",
                          where=f"WAL seq {record.seq}")
    order["status"] = status
    order["reason"] = record.payload.get("reason")
    order["updated_ts"] = record.payload.get("ts", order["updated_ts"])


def _fill(state: State, record: Record) -> None:
    order = _order_for(state, record)
    p = record.payload
    symbol, side = _need(record, "symbol"), _need(record, "side")
    qty, units = float(_need(record, "qty")), _need(record, "qty_units")
    price, fee = float(_need(record, "price")), float(_need(record, "fee"))
    if not isinstance(units, int) or units <= 0:
        raise ReplayError(f"a fill with qty_units {units!r}", where=f"WAL seq {record.seq}")
    notional = qty * price  # as Book.apply_fill: the same floats in the same order
    if side == "BUY":
        state.cash = state.cash - (notional + fee)
        delta = units
    elif side == "SELL":
        state.cash += notional - fee
        delta = -units
    else:
        raise ReplayError(f"a fill with side {side!r}", where=f"WAL seq {record.seq}")
    state.fees_paid += fee
    held = state.units.get(symbol, 0) + delta
    if held:
        state.units[symbol] = held
    else:
        state.units.pop(symbol, None)
    if symbol not in state.last_close:
        state.last_close[symbol] = price
    fee_units = p.get("fee_units", 0)
    if not isinstance(fee_units, int) or fee_units < 0:
        raise ReplayError(f"a fill with fee_units {fee_units!r}", where=f"WAL seq {record.seq}")
    order["filled_units"] += units + fee_units
    state.fills.append(copy.deepcopy(dict(p)) | {"wal_seq": record.seq})


def _risk_event(state: State, record: Record) -> None:
    if "risk_state" in record.payload:
        state.risk = copy.deepcopy(record.payload["risk_state"])


def _order_failures(state: State, record: Record) -> None:
    failures = _need(record, "failures")
    if not isinstance(failures, int) or failures < 0:
        raise ReplayError(f"an order_failures record with failures {failures!r}",
                          where=f"WAL seq {record.seq}")
    state.order_failures = failures


def _snapshot_ref(state: State, record: Record) -> None:
    state.snapshot_ref = copy.deepcopy(record.payload)


_APPLY = {
    "control": _control, "bar": _bar, "decision": _decision, "order": _order,
    "order_event": _order_event, "fill": _fill, "risk_event": _risk_event,
    "snapshot_ref": _snapshot_ref, "order_failures": _order_failures,
    # counted only (the warehouse, the monitor, reconciliation after a restart)
    "gap": lambda s, r: None, "alert": lambda s, r: None, "venue_fill": lambda s, r: None,
    "reconciliation": lambda s, r: None,
}


def apply_record(state: State, record: Record) -> None:
    """Fold one record into ``state`` (in place). Records must come in seq order after
    ``state.seq``; one at or before it is refused (it is already in the state)."""
    if record.seq <= state.seq:
        raise ReplayError(f"record seq {record.seq} is not after the state's seq {state.seq}",
                          where=f"WAL seq {record.seq}")
    _APPLY[record.kind](state, record)
    state.seq = record.seq
    state.counts[record.kind] = state.counts.get(record.kind, 0) + 1


def fold(records: Iterable[Record], state: State | None = None) -> State:
    """A new State: ``state`` (a copy; an empty State when None) with ``records`` folded in."""
    out = State() if state is None else State.from_dict(state.to_dict())
    for record in records:
        apply_record(out, record)
    return out


# --- rebuild and compare -------------------------------------------------------------------------
class Recovery(NamedTuple):
    """A rebuilt state and how it was got: the snapshot used (None: from the first record),
    snapshot files passed over, and a torn WAL tail dropped."""

    state: State
    snapshot: Loaded
    torn: TornTail | None


def recover(journal_dir: str | Path) -> Recovery:
    """The last good snapshot plus the WAL records after it. Raises WalCorruption for a corrupt
    log, or for a snapshot covering records the log does not hold."""
    loaded = load_snapshot(journal_dir)
    snap = loaded.snapshot
    state = State() if snap is None else State.from_dict(snap.state)
    if snap is not None and snap.wal_seq != state.seq:
        raise ReplayError(f"the snapshot says it covers WAL seq {snap.wal_seq} but its state "
                          f"has seq {state.seq}", where=str(loaded.source))
    reader = WalReader(journal_dir, state.seq + 1)
    for record in reader:
        apply_record(state, record)
    result = reader.result
    assert result is not None
    if result.last_seq < state.seq:
        raise WalCorruption(
            f"the snapshot {loaded.source} covers WAL seq {state.seq} but the log ends at seq "
            f"{result.last_seq}: records the snapshot saw are missing from the log",
            path=reader.path, offset=result.end, last_good_seq=result.last_seq)
    return Recovery(state, loaded, result.torn)


def rebuild(journal_dir: str | Path) -> State:
    """The state of the run journaled in ``journal_dir`` (see :func:`recover`)."""
    return recover(journal_dir).state


class Difference(NamedTuple):
    path: str
    a: Any
    b: Any

    def __str__(self) -> str:
        return f"{self.path}: {self.a!r} != {self.b!r}"


_MISSING = object()


def _first_difference(a: Any, b: Any, path: str) -> Difference | None:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
            if va is _MISSING or vb is _MISSING:
                return Difference(f"{path}[{key!r}]", None if va is _MISSING else va,
                                  None if vb is _MISSING else vb)
            found = _first_difference(va, vb, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for i, (va, vb) in enumerate(zip(a, b, strict=False)):
            found = _first_difference(va, vb, f"{path}[{i}]")
            if found is not None:
                return found
        if len(a) != len(b):
            return Difference(f"len({path})", len(a), len(b))
        return None
    if type(a) is not type(b) or a != b:
        return Difference(path, a, b)
    return None


def compare(a: State, b: State) -> Difference | None:
    """The first difference between two states (fields in a fixed order), or None when equal.
    Floats compare exactly: the fold is deterministic."""
    return _first_difference(a.to_dict(), b.to_dict(), "state")
