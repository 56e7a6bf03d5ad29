"""``workbench <command>``: the command line. Argument parsing lives here and only here."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from workbench.config import DEFAULT_ENV_PREFIX
from workbench.errors import WorkbenchError

EXIT_INTERNAL = 70


# --- output formatting --------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return _text(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = "table") -> None:
    out = sys.stdout
    if fmt == "json":
        out.write(json.dumps([{c: _jsonable(v) for c, v in zip(columns, row, strict=True)}
                              for row in rows], indent=None, default=str) + "\n")
        return
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
        return
    cells = [[_text(v) if v is not None else "NULL" for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True))  # noqa: E731
    out.write(line(columns).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


# --- commands -----------------------------------------------------------------------------------
def cmd_ingest(args: argparse.Namespace) -> int:
    from workbench.telemetry.log import JsonlLog
    from workbench.warehouse.connect import open_rw, resolve_path
    from workbench.warehouse.ingest import ingest

    path = resolve_path(args.warehouse, args.env_prefix)
    con = open_rw(path)
    log_dir = path.parent / "logs"
    try:
        with JsonlLog(log_dir / "ingest.jsonl") as log:
            result = ingest(con, args.paths, args.symbol, timeframe=args.timeframe,
                            fmt=args.format, gaps=args.gaps, source=args.source,
                            replace=args.replace, log=log)
    finally:
        con.close()
    warnings = [f for f in result.findings if f.severity == "warning"]
    if warnings:
        from workbench.feeds.qc import summarize

        print(f"{len(warnings)} QC finding(s), policy --gaps {args.gaps}:\n       "
              + summarize(warnings), file=sys.stderr)
    print(result.summary())
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from workbench.config import parse_when
    from workbench.engine.backtest import run_backtest

    for flag, value in (("--from", args.start), ("--to", args.end)):
        if value is not None:
            parse_when(value, flag)
    result = run_backtest(args.config, overrides=args.set or (), warehouse=_warehouse(args),
                          start=args.start, end=args.end, gaps=args.gaps, out=args.out,
                          env_prefix=args.env_prefix, strategy_path=args.strategy_path)
    report = None
    if args.report:
        from workbench.report.notebooks import run_report

        report = run_report(result.run_id, warehouse=_warehouse(args),
                            env_prefix=args.env_prefix)
    if args.json:
        extra = {"report": str(report)} if report else {}
        print(json.dumps({"run_id": result.run_id, "dir": str(result.run_dir),
                          "warnings": result.warnings, **extra, **_jsonable(result.metrics)},
                         sort_keys=True))
        return 0
    m = result.metrics
    print(f"{result.manifest['name']}: {m.get('bars')} bars, {result.headline}")
    for symbol, source in (result.manifest.get("resampled_from") or {}).items():
        print(f"note: {symbol} {result.manifest['timeframe']} bars resampled from the stored "
              f"{source} bars")
    for line in result.warnings:
        print(f"warning: {line}")
    if report:
        print(f"report: {report}")
    print(f"run_id={result.run_id} dir={result.run_dir}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.report.notebooks import run_report

    print(run_report(args.run_id, warehouse=_warehouse(args), out=args.out,
                     env_prefix=args.env_prefix))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.report.notebooks import run_compare

    print(run_compare(args.run_ids, warehouse=_warehouse(args), out=args.out,
                      env_prefix=args.env_prefix))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from workbench.warehouse.audit import run_query

    columns, rows = run_query(args.query, _warehouse(args))
    print_rows(columns, rows, args.format)
    return 0


def cmd_views(args: argparse.Namespace) -> int:
    from workbench.warehouse import views

    action = args.action
    if action == "lock":
        found = views.lock()
        print(f"locked {len(found)} views in {views.lock_path()}")
        return 0
    found = views.discover()
    if action == "check":
        problems = views.problems(found, views.read_lock())
        if problems:
            print("the SQL views disagree with sql/views.lock:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            return 1
        print(f"{len(found)} views match sql/views.lock")
        return 0
    if action == "deploy":
        from workbench.warehouse.connect import open_rw

        con = open_rw(_warehouse(args))
        try:
            views.deploy(con, found)
        finally:
            con.close()
        print(f"deployed {len(found)} views to {_warehouse(args)}")
        return 0
    lock = (views.read_lock() or {}).get("views", {})
    rows = []
    for v in found:
        entry = lock.get(v.name)
        state = ("unlocked" if entry is None else "ok" if entry["fingerprint"] == v.fingerprint
                 and entry["version"] == v.version else "changed")
        rows.append((v.name, v.version, v.fingerprint[:12], state, ", ".join(v.parents),
                     v.description))
    print_rows(("name", "version", "fingerprint", "lock", "parents", "description"), rows)
    return 0


_RUNS = """
select r.run_id, r.mode, r.name, r.status, r.started_at, r.bar_count as bars,
       p.trades, round(p.total_return_pct, 4) as total_return_pct,
       round(p.max_drawdown_pct, 4) as max_drawdown_pct, round(p.sharpe, 3) as sharpe
from runs as r left join rpt.performance as p on p.run_id = r.run_id
order by r.started_at desc
limit ?
"""
_RUNS_BARE = """
select run_id, mode, name, status, started_at, bar_count as bars
from runs order by started_at desc limit ?
"""


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.warehouse.connect import reading

    with reading(_warehouse(args)) as con:
        deployed = _views_deployed(con)  # before the first backtest there are no views yet
        if args.action == "list":
            rel = con.sql(_RUNS if deployed else _RUNS_BARE, params=[args.limit])
            print_rows(rel.columns, rel.fetchall(), args.format)
            return 0
        run_id = args.run_id
        rel = con.sql("select * from runs where run_id = ?", params=[run_id])
        rows = rel.fetchall()
        if not rows:
            known = [r[0] for r in con.sql("select run_id from runs").fetchall()]
            close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.3)
            raise WorkbenchError(f"no such run: {run_id}",
                                 fix=(f"closest: {', '.join(close)}; " if close else "")
                                 + "list them with `workbench runs list`")
        record = dict(zip(rel.columns, rows[0], strict=True))
        perf = con.sql("select * from rpt.performance where run_id = ?" if deployed
                       else "select 1 where false", params=[run_id] if deployed else None)
        prow = perf.fetchall()
        if prow:
            record["performance"] = {k: v for k, v in zip(perf.columns, prow[0], strict=True)
                                     if k != "run_id"}
    for key in ("config_json", "versions", "view_versions"):
        if isinstance(record.get(key), str):
            record[key] = json.loads(record[key])
    print(json.dumps(_jsonable(record), indent=2, sort_keys=True, default=str))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _views_deployed(con: Any) -> bool:
    return bool(con.execute("select count(*) from duckdb_views() where schema_name = 'rpt' "
                            "and view_name = 'performance'").fetchall()[0][0])


def _warehouse(args: argparse.Namespace) -> Path:
    from workbench.warehouse.connect import resolve_path

    return resolve_path(args.warehouse, args.env_prefix)


# --- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--warehouse", metavar="PATH", default=argparse.SUPPRESS,
                        help="DuckDB file (default: $WB_WAREHOUSE or warehouse/workbench.duckdb)")
    common.add_argument("--env-prefix", metavar="PREFIX", default=argparse.SUPPRESS,
                        help="prefix of environment overrides (default: WB_)")
    parser = argparse.ArgumentParser(
        prog="workbench", parents=[common],
        description="Backtest on 1-minute bars, audit by SQL, report from notebooks.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", parents=[common], help="load bar files into the warehouse")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--symbol", required=True)
    p.add_argument("--timeframe", default="1m")
    p.add_argument("--format", choices=("parquet", "csv", "binance-json"))
    p.add_argument("--gaps", choices=("fail", "forward", "none"), default="fail")
    p.add_argument("--source", metavar="NAME", help="source label (default: the file name)")
    p.add_argument("--replace", action="store_true",
                   help="overwrite stored bars that conflict with the file")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("backtest", parents=[common], help="run a backtest from a config")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set costs.fee_bps=5 (repeatable)")
    p.add_argument("--from", dest="start", metavar="DATE", help="first bar time (inclusive)")
    p.add_argument("--to", dest="end", metavar="DATE", help="end time (exclusive)")
    p.add_argument("--gaps", choices=("fail", "forward", "none"))
    p.add_argument("--strategy-path", action="append", metavar="DIR",
                   help="a directory to import the strategy's module from, before the working "
                        f"directory (repeatable, or several separated by {os.pathsep!r})")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<run_id>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--report", action="store_true",
                   help="then write the run's HTML report (as `workbench report` does)")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("report", parents=[common],
                       help="execute the report notebook for a run and export HTML")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", metavar="PATH",
                   help="a directory, or an .html file (default: reports/<run_id>/)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", parents=[common], help="two or more runs side by side")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--out", metavar="PATH",
                   help="a directory, or an .html file (default: reports/compare-...)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sql", parents=[common], help="run a read-only audit query")
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("views", parents=[common], help="list, check, deploy or lock SQL views")
    p.add_argument("action", choices=("list", "check", "deploy", "lock"))
    p.set_defaults(func=cmd_views)

    p = sub.add_parser("runs", parents=[common], help="list runs or show one")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    rl = rsub.add_parser("list", parents=[common], help="recent runs with headline numbers")
    rl.add_argument("--limit", type=_positive_int, default=20)
    rl.add_argument("--format", choices=("table", "csv", "json"), default="table")
    rs = rsub.add_parser("show", parents=[common], help="one run's record and performance")
    rs.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=cmd_runs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.warehouse = getattr(args, "warehouse", None)
    args.env_prefix = getattr(args, "env_prefix", DEFAULT_ENV_PREFIX)
    debug = os.environ.get(f"{args.env_prefix}DEBUG")
    try:
        return int(args.func(args))
    except WorkbenchError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"error: internal error: {type(exc).__name__}: {exc}\n       at "
              f"{where.filename}:{where.lineno}; rerun with {args.env_prefix}DEBUG=1 for the "
              "traceback, and please report it", file=sys.stderr)
        return EXIT_INTERNAL


def entry() -> None:
    """The console script: ``main``, then exit without tearing down the interpreter.

    A backtest leaves millions of small objects behind; freeing them one by one at exit takes
    longer than the operating system reclaiming the memory. Everything has been written, closed
    and flushed by then (files, the DuckDB connection, threads joined).
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()

