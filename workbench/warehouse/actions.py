"""``workbench ingest-actions``: a CSV of splits and dividends -> ``corporate_actions``.

The file has a header ``symbol,ex_date,kind,ratio,amount``: ``kind`` is ``split`` (``ratio``
new units per old unit, e.g. ``2`` or ``3:2``; ``amount`` empty) or ``dividend`` (``amount``
in the quote currency per unit held; ``ratio`` empty); ``ex_date`` is ``YYYY-MM-DD``. Every bad
cell is named by line and column and nothing is loaded; a symbol without stored bars is a
warning (its bars may come later). Loading the same rows again changes nothing; a stored action
of the same symbol, ex-date and kind with other values is refused unless ``replace``.
"""

from __future__ import annotations

import contextlib
import csv
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.config import check_symbol
from workbench.errors import DataError
from workbench.manifest import new_id
from workbench.model import ActionKind, CorporateAction
from workbench.warehouse.ingest import writing
from workbench.warehouse.io import insert_arrow

COLUMNS = ("symbol", "ex_date", "kind", "ratio", "amount")
_SHOWN = 20  # problems listed in the error; the rest are counted
MAX_RATIO = 1_000_000.0
"""The largest split (and 1 over it the largest reverse split) taken: far past any real one,
and well inside the 64-bit units a position is kept in."""


@dataclass
class ActionsResult:
    """What an ingest of actions did (``summary`` is the CLI's line)."""

    ingest_id: str
    rows_read: int = 0
    inserted: int = 0
    replaced: int = 0
    unchanged: int = 0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"ingested corporate actions: {self.rows_read} rows read, {self.inserted} "
                f"inserted, {self.replaced} replaced, {self.unchanged} unchanged "
                f"(ingest_id={self.ingest_id})")


@dataclass(frozen=True)
class _Row:
    line: int
    symbol: str
    ex_date: date
    kind: str
    ratio: float | None
    amount: float | None


def ingest_actions(target: Any, path: str | Path, *, replace: bool = False) -> ActionsResult:
    """Load one actions file; raise DataError (nothing loaded) on any bad row. ``target`` is
    an open connection or the warehouse's path (opened read-write only for the write)."""
    path = Path(path)
    rows = parse(path)
    result = ActionsResult(new_id("act"), rows_read=len(rows))
    with writing(target) as con:
        _write(con, rows, path, result, replace)
    return result


def parse(path: Path) -> list[_Row]:
    """The file's rows, checked; DataError naming every bad line and column."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # a BOM is not a header
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read the actions file: {exc}", where=str(path),
                        fix="pass a UTF-8 CSV file with the header " + ",".join(COLUMNS)) \
            from None
    header = [c.strip().lower() for c in lines[0]] if lines else []
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"the header lacks the column(s) {', '.join(missing)}",
                        where=f"{path}, line 1",
                        fix="the first line must name " + ",".join(COLUMNS))
    at = {c: header.index(c) for c in COLUMNS}
    problems: list[str] = []
    rows: list[_Row] = []
    seen: dict[tuple[str, date, str], int] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        row = _row(number, cells, at, problems)
        if row is None:
            continue
        key = (row.symbol, row.ex_date, row.kind)
        if key in seen:
            problems.append(f"line {number}, columns symbol/ex_date/kind: {row.kind} of "
                            f"{row.symbol} on {row.ex_date} is already on line {seen[key]}")
            continue
        seen[key] = number
        rows.append(row)
    if problems:
        shown = problems[:_SHOWN]
        more = len(problems) - len(shown)
        raise DataError(
            f"refused to ingest {len(problems)} bad row(s):\n       " + "\n       ".join(shown)
            + (f"\n       ... and {more} more" if more else ""), where=str(path),
            fix="fix those rows and run `workbench ingest-actions` again (nothing was loaded)")
    return rows


def _row(number: int, cells: list[str], at: dict[str, int], problems: list[str]
         ) -> _Row | None:
    def cell(name: str) -> str:
        i = at[name]
        return cells[i].strip() if i < len(cells) else ""

    def bad(column: str, what: str) -> None:
        problems.append(f"line {number}, column {column}: {what}")

    before = len(problems)
    symbol = cell("symbol")
    try:
        check_symbol(symbol)
    except ValueError as exc:
        bad("symbol", str(exc))
    ex_date = None
    try:
        ex_date = date.fromisoformat(cell("ex_date"))
    except ValueError:
        bad("ex_date", f"{cell('ex_date')!r} is not a date (write YYYY-MM-DD)")
    kind = cell("kind").lower()
    ratio = amount = None
    if kind == "split":
        ratio = _ratio(cell("ratio"), lambda what: bad("ratio", what))
        if cell("amount"):
            bad("amount", "a split has no amount (leave it empty)")
    elif kind == "dividend":
        amount = _positive(cell("amount"), lambda what: bad("amount", what))
        if cell("ratio"):
            bad("ratio", "a dividend has no ratio (leave it empty)")
    else:
        bad("kind", f"unknown kind {cell('kind')!r} (use split or dividend)")
    if len(problems) > before or ex_date is None:
        return None
    return _Row(number, symbol, ex_date, kind, ratio, amount)


def _positive(text: str, bad: Any) -> float | None:
    try:
        value = float(text)
    except ValueError:
        bad(f"{text!r} is not a number")
        return None
    if not math.isfinite(value) or value <= 0:
        bad(f"{text} must be a number above 0")
        return None
    return value


def _ratio(text: str, bad: Any) -> float | None:
    """``2``, ``1.5`` or ``3:2`` (new:old) as new units per old unit."""
    if ":" in text:
        new, _, old = text.partition(":")
        a, b = _positive(new, bad), _positive(old, bad)
        value = a / b if a is not None and b is not None else None
    else:
        value = _positive(text, bad)
    if value == 1.0:
        bad(f"{text} changes nothing (a split's ratio is new units per old unit, e.g. 2 or 3:2)")
        return None
    if value is not None and not 1 / MAX_RATIO <= value <= MAX_RATIO:
        bad(f"{text} is beyond any split (from 1:{MAX_RATIO:.0f} to {MAX_RATIO:.0f}:1; the "
            "ratio is new units per old unit, e.g. 2 or 3:2)")
        return None
    return value


def _write(con: Any, rows: list[_Row], path: Path, result: ActionsResult, replace: bool) -> None:
    table = pa.table({
        "symbol": pa.array([r.symbol for r in rows], pa.string()),
        "ex_date": pa.array([r.ex_date for r in rows], pa.date32()),
        "kind": pa.array([r.kind for r in rows], pa.string()),
        "ratio": pa.array([r.ratio for r in rows], pa.float64()),
        "amount": pa.array([r.amount for r in rows], pa.float64()),
        "line": pa.array([r.line for r in rows], pa.int64()),
    })
    con.execute("begin transaction")
    try:
        con.register("__wb_actions", table)
        compared = con.execute(
            "select n.line, n.symbol, n.ex_date, n.kind, o.ratio, o.amount, "
            "o.symbol is not null as present, "
            "o.ratio is not distinct from n.ratio and o.amount is not distinct from n.amount "
            "as same from __wb_actions as n left join corporate_actions as o "
            "on o.symbol = n.symbol and o.ex_date = n.ex_date and o.kind = n.kind "
            "order by n.line").fetchall()
        conflicts = [r for r in compared if r[6] and not r[7]]
        if conflicts and not replace:
            raise DataError(
                f"{len(conflicts)} row(s) differ from actions already stored:\n       "
                + "\n       ".join(
                    f"line {line}: {kind} of {symbol} on {day} is stored with ratio "
                    f"{ratio!r}, amount {amount!r}"
                    for line, symbol, day, kind, ratio, amount, _, _ in conflicts[:_SHOWN]),
                where=str(path), fix="pass --replace to overwrite them (nothing was loaded)")
        known = {s for (s,) in con.execute(
            "select distinct symbol from bars where symbol in (select symbol from "
            "__wb_actions)").fetchall()}
        result.warnings = [f"{s}: no bars stored yet (its actions are loaded anyway)"
                           for s in sorted({r.symbol for r in rows} - known)]
        con.execute(
            "delete from corporate_actions as o using __wb_actions as n where o.symbol = "
            "n.symbol and o.ex_date = n.ex_date and o.kind = n.kind and not ("
            "o.ratio is not distinct from n.ratio and o.amount is not distinct from n.amount)")
        new = con.sql(
            "select symbol, ex_date, kind, ratio, amount from __wb_actions as n where not "
            "exists (select 1 from corporate_actions as o where o.symbol = n.symbol and "
            "o.ex_date = n.ex_date and o.kind = n.kind)").to_arrow_table()
        con.unregister("__wb_actions")
        insert_arrow(con, "corporate_actions", new, source=path.name,
                     ingest_id=result.ingest_id)
        con.execute("commit")
    except BaseException:
        from workbench.warehouse.connect import rollback_quietly

        with contextlib.suppress(Exception):
            con.unregister("__wb_actions")
        rollback_quietly(con)
        raise
    result.replaced = len(conflicts)
    result.inserted = sum(1 for r in compared if not r[6])
    result.unchanged = len(compared) - result.inserted - result.replaced


def read_actions(con: Any, symbols: list[str]) -> list[CorporateAction]:
    """The stored actions of ``symbols``, in ex-date order (none in a warehouse made before
    the table was: nothing could have been stored there)."""
    from workbench.warehouse.migrations import has_table

    if not has_table(con, "corporate_actions"):
        return []
    rows = con.execute(
        "select symbol, strftime(ex_date, '%Y-%m-%d'), kind, ratio, amount from "
        "corporate_actions where list_contains(?, symbol) order by ex_date, symbol, kind",
        [list(symbols)]).fetchall()
    return [CorporateAction(symbol, day, ActionKind(kind.upper()), ratio, amount,
                            _midnight_ms(day)) for symbol, day, kind, ratio, amount in rows]


def _midnight_ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
