"""``workbench <command>``: the command line. Argument parsing lives here and only here."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from workbench.config import DEFAULT_ENV_PREFIX
from workbench.errors import (
    ConfigError,
    Terminated,
    WorkbenchError,
    as_interruption,
    raise_if_signalled,
)
from workbench.secrets import scrub

EXIT_INTERNAL = 70
EXIT_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader left (`| head`)


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
    from workbench import pandas_probe
    from workbench.telemetry.log import JsonlLog
    from workbench.warehouse.connect import resolve_path
    from workbench.warehouse.ingest import ingest

    pandas_probe.skip()  # this process never needs pandas
    path = resolve_path(args.warehouse, args.env_prefix)
    log_dir = path.parent / "logs"
    with JsonlLog(log_dir / "ingest.jsonl") as log:  # the file is held only for the write
        result = ingest(path, args.paths, args.symbol, timeframe=args.timeframe,
                        fmt=args.format, gaps=args.gaps, source=args.source,
                        replace=args.replace, log=log, calendar=args.calendar)
    warnings = [f for f in result.findings if f.severity == "warning"]
    if warnings:
        from workbench.feeds.qc import summarize

        print(f"{len(warnings)} QC finding(s), policy --gaps {args.gaps}:\n       "
              + summarize(warnings), file=sys.stderr)
    print(result.summary())
    return 0


def cmd_ingest_actions(args: argparse.Namespace) -> int:
    from workbench import pandas_probe
    from workbench.warehouse.actions import ingest_actions

    pandas_probe.skip()
    result = ingest_actions(_warehouse(args), args.path,
                            replace=args.replace)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(result.summary())
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from workbench import pandas_probe
    from workbench.config import parse_when
    from workbench.engine.run import run_backtest

    pandas_probe.skip()  # this process never needs pandas; pyarrow would import it (0.2-0.3 s)

    for flag, value in (("--from", args.start), ("--to", args.end)):
        if value is not None:
            parse_when(value, flag)
    result = run_backtest(args.config, overrides=args.set or (), warehouse=_warehouse(args),
                          start=args.start, end=args.end, gaps=args.gaps, out=args.out,
                          env_prefix=args.env_prefix, strategy_path=args.strategy_path,
                          tags=args.tag or ())
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
    symbols = result.manifest.get("symbols") or []
    bars = result.manifest.get("bars", m.get("bars"))  # every symbol's; m: distinct bar times
    per = f" ({len(symbols)} symbols)" if len(symbols) > 1 else ""
    print(f"{result.manifest['name']}: {bars} bars{per}, {result.headline}")
    for symbol, source in (result.manifest.get("resampled_from") or {}).items():
        print(f"note: {symbol} {result.manifest['timeframe']} bars resampled from the stored "
              f"{source} bars")
    for line in result.warnings:
        print(f"warning: {line}")
    if report:
        print(f"report: {report}")
    print(f"run_id={result.run_id} dir={result.run_dir}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """``workbench sweep``: the config backtested at every point of the grid on dask."""
    from workbench.grid import parse_grid
    from workbench.sweeps import sweep

    result = sweep(args.config, parse_grid(args.grid), overrides=args.set or (),
                   name=args.name, warehouse=_warehouse(args), scheduler=args.scheduler,
                   workers=args.workers, env_prefix=args.env_prefix,
                   strategy_path=args.strategy_path, tags=args.tag or ())
    if args.json:
        print(json.dumps(_jsonable(result.to_dict()), sort_keys=True, default=str))
    else:
        print(result.table())
    return 0


def cmd_walkforward(args: argparse.Namespace) -> int:
    """``workbench walkforward``: parameters chosen on each train window by a sweep, then
    backtested on the test window that follows."""
    from workbench.grid import parse_grid
    from workbench.walkforward import walkforward

    result = walkforward(args.config, parse_grid(args.grid), train=args.train, test=args.test,
                         anchored=args.anchored, metric=args.metric,
                         overrides=args.set or (), name=args.name,
                         warehouse=_warehouse(args), scheduler=args.scheduler,
                         workers=args.workers, env_prefix=args.env_prefix,
                         strategy_path=args.strategy_path)
    if args.json:
        print(json.dumps(_jsonable(result.to_dict()), sort_keys=True, default=str))
    else:
        print(result.table())
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    """``workbench parity``: our backtest and a peer engine's run of the same config, compared
    under the tolerance spec; exit 1 outside it."""
    from workbench.parity.harness import run_parity

    result = run_parity(args.engine, args.config, overrides=args.set or (),
                        warehouse=_warehouse(args), out=args.out, env_prefix=args.env_prefix)
    if args.json:
        print(json.dumps(_jsonable(result.to_dict()), sort_keys=True))
    else:
        print(result.table())
    return 0 if result.passed else 1


def _positive_pct(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage in (0, 100]")
    return value


def cmd_fidelity(args: argparse.Namespace) -> int:
    """``workbench fidelity``: the config under each latency profile, a participation cap and
    the full cost model, side by side."""
    from workbench.fidelity import run_fidelity

    result = run_fidelity(args.config, overrides=args.set or (), warehouse=_warehouse(args),
                          env_prefix=args.env_prefix, cap_pct=args.cap,
                          spread_bps=args.spread_bps, impact_k=args.impact_k)
    if args.json:
        print(json.dumps(_jsonable(result.to_dict()), sort_keys=True))
    else:
        print(result.table())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.report.notebooks import run_report

    print(run_report(args.run_id, warehouse=_warehouse(args), out=args.out,
                     env_prefix=args.env_prefix, force=args.force))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from workbench.report.notebooks import run_compare

    print(run_compare(args.run_ids, warehouse=_warehouse(args), out=args.out,
                      env_prefix=args.env_prefix, force=args.force))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from workbench.warehouse.audit import run_query

    columns, rows = run_query(args.query, _warehouse(args), args.limit + 1, args.timeout)
    cut = len(rows) > args.limit
    print_rows(columns, rows[:args.limit], args.format)
    if cut:
        print(f"note: output cut at --limit {args.limit} rows; raise --limit or narrow the "
              "query", file=sys.stderr)
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


def cmd_fake_exchange(args: argparse.Namespace) -> int:
    from workbench.config import parse_when
    from workbench.venues.fake_binance import serve
    from workbench.venues.faults import FaultSpecError, parse_spec

    if args.faults:
        try:
            parse_spec(args.faults)
        except FaultSpecError as exc:
            raise ConfigError(str(exc), where="--faults",
                              fix="see docs/operations.md for the fault grammar") from None
    orders: dict[str, Any] = {"commission": _decimal_text(args.commission, "--commission"),
                              "participation": args.participation,
                              "max_num_orders": args.max_num_orders}
    if args.retention_s is not None:
        orders["retention_ms"] = round(args.retention_s * 1000)
    if args.retained_orders is not None:
        orders["retained_orders"] = args.retained_orders
    if args.balances is not None:
        orders["balances"] = _balances(args.balances)
    if args.fee_asset is not None:
        if not args.fee_asset_price:
            raise ConfigError("--fee-asset needs the asset's price in the quote asset",
                              where="--fee-asset-price", fix="add e.g. --fee-asset-price 300")
        orders["fee_asset"] = args.fee_asset
        orders["fee_asset_price"] = _decimal_text(args.fee_asset_price or "", "--fee-asset-price")
    env = os.environ
    try:
        return serve(Path(args.data), args.symbol, port=args.port, speed=args.speed,
                     start_ms=parse_when(args.start, "--start"), faults=args.faults,
                     api_key=args.api_key or env.get("WB_VENUE__API_KEY") or "fake-api-key",
                     api_secret=(args.api_secret or env.get("WB_VENUE__API_SECRET")
                                 or "fake-api-secret"),
                     weight_limit=args.weight_limit, verbose=args.verbose, **orders)
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise WorkbenchError(f"cannot listen on 127.0.0.1:{args.port}: {reason}",
                             fix="pick another --port, or --port 0 for a free one") from None


def _decimal_text(text: str, flag: str) -> str:
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0:
        raise ConfigError(f"{text!r} is not a decimal number >= 0", where=flag,
                          fix=f"write e.g. {flag} 0.001")
    return text


def _balances(text: str) -> dict[str, str]:
    """``USDT=10000,BTC=0.5`` -> {asset: decimal text}."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        asset, eq, amount = part.partition("=")
        asset = asset.strip()
        if not eq or not asset.isalnum() or not asset.isupper():
            raise ConfigError(f"{part!r} is not ASSET=AMOUNT", where="--balances",
                              fix="write e.g. --balances USDT=10000,BTC=0.5")
        out[asset] = _decimal_text(amount.strip(), "--balances")
    return out


def cmd_contract_tests(args: argparse.Namespace) -> int:
    """``workbench contract-tests``: every port's contract suite against each adapter."""
    from workbench.contract import adapters, gate, report, runner

    sha, fingerprint = gate.current_git_sha(), gate.code_fingerprint()
    reports = []
    for name in dict.fromkeys(args.adapter or adapters.DEFAULT_ADAPTERS):
        def say(result: runner.Result, name: str = name) -> None:
            print(report.line(name, result), flush=True)

        done = runner.run_adapter(adapters.make(name), say)
        if done.skip_reason:
            print(f"SKIP  {name:15}  all {len(done.results)} checks  ({done.skip_reason})")
        reports.append(done)
    print()
    for done in reports:
        print(report.summary_line(done))
    if args.junit:
        report.write_junit(Path(args.junit), reports)
    if args.json:
        report.write_json(Path(args.json), report.summary(
            reports, git_sha=sha, fingerprint=fingerprint, version=gate.version()))
    warehouse = _warehouse(args)
    gate.record(warehouse, reports, git_sha=sha, fingerprint=fingerprint)
    print(f"recorded for git {sha[:12]} (fingerprint {fingerprint[:12]}) in {warehouse}")
    return 1 if any(done.failed for done in reports) else 0


def cmd_live(args: argparse.Namespace) -> int:
    """``workbench shadow|paper|live`` (and ``python -m workbench.live --mode ...``)."""
    from workbench.config import parse_when
    from workbench.engine.live import LiveOptions, run_live

    until = parse_when(args.until, "--until") if args.until else None
    options = LiveOptions(max_bars=args.max_bars, until=until,
                          tiny=bool(getattr(args, "tiny", False)))

    def announce(line: str) -> None:
        print(line, flush=True)

    result = run_live(args.config, args.command, overrides=args.set or (), run_id=args.run_id,
                      warehouse=_warehouse(args), runs_dir=args.runs_dir, options=options,
                      env_prefix=args.env_prefix, echo=sys.stderr, announce=announce,
                      confirm_live=bool(getattr(args, "confirm_live", False)))
    lat = result.latency_summary()
    print(f"{result.mode} run {result.run_id} {result.status}: {result.bars} bars decided "
          f"(across restarts), bar arrival to decision p50 {lat['p50_ms']} ms, p95 "
          f"{lat['p95_ms']} ms, p99 {lat['p99_ms']} ms")
    print(f"run_id={result.run_id} dir={result.run_dir} journal={result.journal_dir}")
    return 0


def _live_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    from workbench.engine.live import journal_dir
    from workbench.engine.operator import run_dir_of

    return run_dir_of(args.runs_dir, args.run), journal_dir(_warehouse(args), args.run)


def cmd_control(args: argparse.Namespace) -> int:
    """``workbench halt|flatten|resume --run ID``."""
    from workbench.engine.operator import request

    run_dir, journal = _live_paths(args)
    answer = request(run_dir, journal, args.command, reason=args.reason, dry_run=args.dry_run,
                     confirm=getattr(args, "confirm", False), wait_s=args.wait)
    if not answer.get("ok"):
        print(f"error: {args.command} of run {args.run}: {answer.get('error')}", file=sys.stderr)
        return 3 if answer.get("pending") else 1
    if answer.get("dry_run"):
        print(f"dry run: {args.command} would {answer.get('would')}")
    elif answer.get("queued"):
        print(f"{args.command}: {answer.get('note')}")
    else:
        print(f"{args.command}: done; halted: {answer.get('halted') or 'no'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from workbench.engine.operator import live_runs, status

    if args.run is None:
        rows = live_runs(args.runs_dir)
        print_rows(("run_id", "mode", "status", "last_bar_ts", "bars", "halted", "updated_at"),
                   [(r.get("run_id"), r.get("mode"), r.get("status"), r.get("last_bar_ts"),
                     r.get("bars"), r.get("halted"), r.get("updated_at")) for r in rows],
                   args.format)
        return 0
    run_dir, journal = _live_paths(args)
    found = status(run_dir, journal)
    if args.format == "json":
        print(json.dumps(found, sort_keys=True, default=str))
        return 0
    lat = found.get("latency") or {}
    positions = ", ".join(f"{s} {q!r}" for s, q in (found.get("positions") or {}).items())
    lines = [
        ("run", f"{found.get('run_id')} ({found.get('mode')})"),
        ("status", f"{found.get('status')}, " + (
            "process running" if found["running"] else
            "no process (resume: the same command with --run-id)"
            if found.get("status") == "running" else "no process")),
        ("last bar", f"{found.get('last_bar_ts')} (lag {found.get('lag_ms')} ms)"),
        ("bars", found.get("bars")),
        ("positions", positions or "flat"),
        ("equity", f"{found.get('equity')!r} (cash {found.get('cash')!r})"),
        ("P&L today", found.get("pnl_today")),
        ("halted", found.get("halted") or "no"),
        ("last error", found.get("last_error") or "none"),
        ("alerts", found.get("alerts")),
        ("latency", f"p50 {lat.get('p50_ms')} ms, p95 {lat.get('p95_ms')} ms, "
                    f"p99 {lat.get('p99_ms')} ms"),
        ("updated", found.get("updated_at")),
    ]
    for name, value in lines:
        print(f"{name:>10}: {value}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from workbench.engine.live import journal_dir
    from workbench.engine.operator import replay_check

    journal = journal_dir(_warehouse(args), args.run)
    report = replay_check(journal, _warehouse(args), args.run)
    for line in report.lines:
        print(line)
    if report.difference is not None:
        print(f"DIFFERENT: {report.difference}")
        return 1
    print("equal")
    return 0


# The headline of the listed runs, as each run stored it (metrics `headline.*`); runs written
# before that are computed from rpt.performance one at a time: filtered by `run_id = ?` it
# reaches every scan of the views, while joined to the latest runs (or filtered by `in (...)`)
# it computed every run in the warehouse (seconds per large run), holding the file all along.
_STORED = """
select run_id,
       cast(max(value) filter (where name = 'headline.trades') as bigint) as trades,
       round(max(value) filter (where name = 'headline.total_return_pct'), 4)
           as total_return_pct,
       round(max(value) filter (where name = 'headline.max_drawdown_pct'), 4)
           as max_drawdown_pct,
       round(max(value) filter (where name = 'headline.sharpe'), 3) as sharpe
from metrics
where run_id in (select unnest(?::varchar[])) and name like 'headline.%'
group by run_id
"""
_PERFORMANCE = """
select run_id, trades, round(total_return_pct, 4) as total_return_pct,
       round(max_drawdown_pct, 4) as max_drawdown_pct, round(sharpe, 3) as sharpe
from rpt.performance where run_id = ?
"""
_RUNS_BARE = """
select run_id, mode, name, status, started_at, bar_count as bars, {owner}
from runs as r {where} order by started_at desc limit ?
"""


def _with_headline(con: Any, columns: list[str], rows: list[tuple[Any, ...]]
                   ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The rows with the headline columns of rpt.performance after ``bars``."""
    stored = con.sql(_STORED, params=[[row[0] for row in rows]])
    extra: list[str] = list(stored.columns[1:])
    found: dict[str, tuple[Any, ...]] = {r[0]: r[1:] for r in stored.fetchall()}
    for row in rows:  # one run at a time: see _PERFORMANCE
        if row[0] in found:
            continue
        rel = con.sql(_PERFORMANCE, params=[row[0]])
        extra = list(rel.columns[1:])
        for perf in rel.fetchall():
            found[perf[0]] = perf[1:]
    if not rows:
        extra = list(con.sql(_PERFORMANCE, params=[None]).columns[1:])
    at = columns.index("bars") + 1
    blank = (None,) * len(extra)
    return (columns[:at] + extra + columns[at:],
            [row[:at] + tuple(found.get(row[0], blank)) + row[at:] for row in rows])


def _owner_columns(con: Any) -> str:
    """``pid, host`` where the schema has them (migration 002), else nulls."""
    have = con.execute("select count(*) from duckdb_columns() where schema_name = 'main' and "
                       "table_name = 'runs' and column_name in ('pid', 'host')").fetchall()[0][0]
    return "r.pid as __pid, r.host as __host" if have == 2 else "null as __pid, null as __host"


def _shown(columns: list[str], rows: list[tuple[Any, ...]]
           ) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Rows with the status a reader should see (a dead process's run is abandoned), without
    the owner columns."""
    from workbench.warehouse.stale import effective_status

    at = {name: i for i, name in enumerate(columns)}
    keep = [i for i, name in enumerate(columns) if not name.startswith("__")]
    out = []
    for row in rows:
        values = list(row)
        values[at["status"]] = effective_status(row[at["status"]], row[at["__pid"]],
                                                row[at["__host"]])
        out.append(tuple(values[i] for i in keep))
    return [columns[i] for i in keep], out


def cmd_runs(args: argparse.Namespace) -> int:
    from workbench.warehouse.connect import reading

    with reading(_warehouse(args)) as con:
        deployed = _views_deployed(con)  # before the first backtest there are no views yet
        owner = _owner_columns(con)
        if args.action == "list":
            where, params = _cohort_filter(con, args.tag)
            rel = con.sql(_RUNS_BARE.format(owner=owner, where=where),
                          params=[*params, args.limit])
            columns, rows = list(rel.columns), rel.fetchall()
            if deployed:
                columns, rows = _with_headline(con, columns, rows)
            print_rows(*_shown(columns, rows), args.format)
            return 0
        run_id = args.run_id
        rel = con.sql(f"select *, {owner} from runs as r where run_id = ?", params=[run_id])
        rows = rel.fetchall()
        if not rows:
            known = [r[0] for r in con.sql("select run_id from runs").fetchall()]
            close = difflib.get_close_matches(run_id, known, n=3, cutoff=0.3)
            raise WorkbenchError(f"no such run: {run_id}",
                                 fix=(f"closest: {', '.join(close)}; " if close else "")
                                 + "list them with `workbench runs list`")
        columns, shown = _shown(rel.columns, rows)
        record = dict(zip(columns, shown[0], strict=True))
        perf = con.sql("select * from rpt.performance where run_id = ?" if deployed
                       else "select 1 where false", params=[run_id] if deployed else None)
        prow = perf.fetchall()
        if prow:
            record["performance"] = {k: v for k, v in zip(perf.columns, prow[0], strict=True)
                                     if k != "run_id"}
    from workbench.secrets import redact

    for key in ("config_json", "versions", "view_versions", "tags"):
        if isinstance(record.get(key), str):
            record[key] = json.loads(record[key])
    record["config_json"] = redact(record.get("config_json"))  # rows of older versions too
    print(json.dumps(_jsonable(record), indent=2, sort_keys=True, default=str))
    return 0


def _cohort_filter(con: Any, items: list[str] | None) -> tuple[str, list[Any]]:
    """The ``where`` clause (and its parameter) of ``runs list --tag KEY=VALUE``."""
    from workbench import registry
    from workbench.tags import as_tags

    tags = as_tags(items)
    if not tags:
        return "", []
    ids = registry.cohort_ids(con, tags) if registry.has_tags(con) else []
    return "where r.run_id in (select unnest(?::varchar[]))", [ids]


def cmd_runs_compare(args: argparse.Namespace) -> int:
    """``workbench runs compare A B ... [--tag KEY=VALUE]``: runs side by side."""
    from workbench.registry import compare

    found = compare(args.run_ids, tags=args.tag, warehouse=_warehouse(args))
    if args.json:
        print(json.dumps(_jsonable(found.to_dict()), sort_keys=True, default=str))
        return 0
    for n, (title, columns, rows) in enumerate(found.sections()):
        print(("\n" if n else "") + f"{title}:")
        if columns:
            print_rows(columns, rows)
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """``workbench rerun RUN_ID``: exit 0 when the rerun's files are byte-identical, 1 when
    they differ, 2 when the run cannot be rerun (as ``cmp`` and ``diff`` say trouble)."""
    from workbench import pandas_probe
    from workbench.rerun import rerun

    pandas_probe.skip()
    runs_dir = os.environ.get(f"{args.env_prefix}RUNS_DIR") or "runs"
    try:
        found = rerun(args.run_id, warehouse=_warehouse(args), out=args.out,
                      env_prefix=args.env_prefix, runs_dir=runs_dir)
    except WorkbenchError as exc:
        if exc.exit_code == 1:  # refused, not different: a script tells the two apart
            exc.exit_code = 2
        raise
    for line in found.warnings:
        print(f"warning: {line}", file=sys.stderr)
    if found.difference is None:
        print(f"identical: rerun {found.run.run_id} of {found.original} wrote "
              "trades.csv, orders.csv, fills.csv and equity.csv byte for byte as the original")
    else:
        print(f"DIFFERENT from {found.original} ({found.original_dir}): {found.difference}")
    print(f"run_id={found.run.run_id} dir={found.run.run_dir}")
    return 0 if found.identical else 1


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def _views_deployed(con: Any) -> bool:
    return bool(con.execute("select count(*) from duckdb_views() where schema_name = 'rpt' "
                            "and view_name = 'performance'").fetchall()[0][0])


# arguments echoed back (paths, ids): a control character in one could forge output lines
_ECHOED = (("out", "--out"), ("config", "--config"), ("warehouse", "--warehouse"),
           ("paths", "PATH"), ("source", "--source"), ("run_id", "RUN_ID"),
           ("run_ids", "RUN_ID"), ("data", "--data"), ("name", "--name"),
           ("scheduler", "--scheduler"))
_INVISIBLE = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068"
                       "\u2069\u200e\u200f")


def _check_echoed(args: argparse.Namespace) -> None:
    """Refuse control characters (and line or direction overrides) in echoed arguments."""
    import unicodedata

    for attr, flag in _ECHOED:
        value = getattr(args, attr, None)
        for text in value if isinstance(value, list) else [value]:
            if not isinstance(text, str):
                continue
            bad = next((c for c in text if c in _INVISIBLE or unicodedata.category(c) == "Cc"),
                       None)
            if bad is not None:
                raise ConfigError(
                    f"{flag} {text!r} holds the control character U+{ord(bad):04X}",
                    where=flag,
                    fix="pass a name without control characters (newlines, tabs, escapes)")


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
    p.add_argument("--calendar", metavar="NAME", default="24x7",
                   help="when bars are expected: 24x7 (default), an exchange code such as "
                        "XNYS (the calendars extra), or a CSV file of sessions (open,close)")
    p.add_argument("--source", metavar="NAME", help="source label (default: the file name)")
    p.add_argument("--replace", action="store_true",
                   help="overwrite stored bars that conflict with the file")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("ingest-actions", parents=[common],
                       help="load splits and dividends (CSV: symbol,ex_date,kind,ratio,amount)")
    p.add_argument("path", metavar="FILE")
    p.add_argument("--replace", action="store_true",
                   help="overwrite stored actions (same symbol, ex-date, kind) that differ")
    p.set_defaults(func=cmd_ingest_actions)

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
    _tag_argument(p, "tag the run (repeatable); stored with it, not part of its config or hash")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("rerun", parents=[common],
                       help="rerun a backtest from its record and check its files are "
                            "byte-identical (exit 1 with the first difference, 2 when it "
                            "cannot be rerun)")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", metavar="DIR", help="the rerun's directory (default: "
                                                "runs/<run_id>)")
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("sweep", parents=[common],
                       help="backtest a config over a grid of overrides on dask.distributed")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a config key and its values, e.g. --grid strategy.params.fast=5,10 "
                        "(repeatable: the sweep runs every combination)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key at every point (repeatable)")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="a running dask scheduler, e.g. tcp://10.0.0.5:8786 (default: a local "
                        "cluster on 127.0.0.1)")
    p.add_argument("--workers", type=_positive_int, default=2, metavar="N",
                   help="worker processes of the local cluster (default 2)")
    p.add_argument("--name", help="the sweep's name; points are runs <name>/<point> "
                                  "(default: the config's run.name)")
    _tag_argument(p, "tag every point's run (repeatable)")
    p.add_argument("--strategy-path", action="append", metavar="DIR",
                   help="a directory to import the strategy's module from (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("walkforward", parents=[common],
                       help="choose parameters on rolling or anchored train windows by a "
                            "sweep, and backtest them on the test window that follows")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a config key and its values, as for `workbench sweep` (repeatable)")
    p.add_argument("--train", required=True, metavar="DURATION",
                   help="the train window: 30d, 12h, 90m")
    p.add_argument("--test", required=True, metavar="DURATION",
                   help="the test window that follows each train window: 7d, 12h, 90m")
    p.add_argument("--anchored", action="store_true",
                   help="every train window starts at the first bar and grows (default: "
                        "rolling, the train window slides by --test)")
    p.add_argument("--metric", default="sharpe", metavar="COLUMN",
                   help="the rpt.performance column the choice maximises (default sharpe; "
                        "ties go to the first point in grid order)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key everywhere (repeatable); data.start and "
                        "data.end bound the analysis")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="a running dask scheduler (default: a local cluster on 127.0.0.1)")
    p.add_argument("--workers", type=_positive_int, default=2, metavar="N",
                   help="worker processes of the local cluster (default 2)")
    p.add_argument("--name", help="the analysis' name; runs are <name>/w<window>/... "
                                  "(default: the config's run.name)")
    p.add_argument("--strategy-path", action="append", metavar="DIR",
                   help="a directory to import the strategy's module from (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_walkforward)

    p = sub.add_parser("parity", parents=[common],
                       help="run a config in a peer engine too and compare (exit 1 if outside "
                            "the tolerance spec)")
    p.add_argument("--engine", required=True, choices=("backtrader", "backtesting", "nautilus"))
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--out", metavar="DIR",
                   help="directory for both runs and parity.json (default: runs/<parity_id>)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_parity)

    p = sub.add_parser("fidelity", parents=[common],
                       help="backtest a config under each latency profile, a participation "
                            "cap and the full cost model, and compare")
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (repeatable)")
    p.add_argument("--cap", type=_positive_pct, default=10.0, metavar="PCT",
                   help="the participation cap of the capped variants (default 10 %%)")
    p.add_argument("--spread-bps", type=float, default=2.0, metavar="BPS",
                   help="the full cost model's spread where the config has none (default 2)")
    p.add_argument("--impact-k", type=float, default=0.1, metavar="K",
                   help="the full cost model's square-root impact where the config has none "
                        "(default 0.1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_fidelity)

    p = sub.add_parser("report", parents=[common],
                       help="execute the report notebook for a run and export HTML")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--out", metavar="PATH",
                   help="a directory, or an .html file (default: reports/<run_id>/)")
    p.add_argument("--force", action="store_true", help="overwrite a report already there")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", parents=[common], help="two or more runs side by side")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--out", metavar="PATH",
                   help="a directory, or an .html file (default: reports/compare-...)")
    p.add_argument("--force", action="store_true", help="overwrite a comparison already there")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sql", parents=[common], help="run a read-only audit query")
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--limit", type=_positive_int, default=10_000,
                   help="print at most this many rows (default 10000; says when it cut)")
    p.add_argument("--timeout", type=_positive_float, default=60.0, metavar="SECONDS",
                   help="stop the query after this many seconds (default 60)")
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("views", parents=[common], help="list, check, deploy or lock SQL views")
    p.add_argument("action", choices=("list", "check", "deploy", "lock"))
    p.set_defaults(func=cmd_views)

    p = sub.add_parser("fake-exchange", parents=[common],
                       help="serve bars from a file as a local Binance Spot REST exchange")
    p.add_argument("--data", required=True, metavar="FILE", help="bars: CSV, Parquet or JSON")
    p.add_argument("--symbol", required=True)
    p.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    p.add_argument("--speed", type=_positive_float, default=1.0,
                   help="venue seconds per wall second (600: ten minutes per second)")
    p.add_argument("--start", metavar="TS", help="venue clock start (default: first bar)")
    p.add_argument("--faults", metavar="SPEC", help="e.g. klines:429@3,time:skew=+2000")
    p.add_argument("--api-key", help="the key pair it accepts (default: WB_VENUE__API_KEY and "
                   "WB_VENUE__API_SECRET from the environment, else fake-api-key/-secret)")
    p.add_argument("--api-secret", help=argparse.SUPPRESS)
    p.add_argument("--balances", metavar="A=N,...",
                   help="the account's balances (default: 10000 of the quote asset, 0 base)")
    p.add_argument("--commission", default="0.001", help="commission rate (default 0.001)")
    p.add_argument("--participation", type=_positive_float,
                   help="partial fills: the share of a bar's volume an order may take per bar")
    p.add_argument("--fee-asset", metavar="ASSET",
                   help="take commissions in this asset (e.g. BNB) while the account holds it")
    p.add_argument("--fee-asset-price", metavar="N",
                   help="the fee asset's price in the quote asset (with --fee-asset)")
    p.add_argument("--max-num-orders", type=_positive_int, default=200,
                   help="the MAX_NUM_ORDERS filter (default 200)")
    p.add_argument("--retention-s", type=_positive_float, metavar="S",
                   help="finished orders are forgotten S venue seconds after they finished "
                        "(default 259200: 3 days); asked for later: -2013")
    p.add_argument("--retained-orders", type=_positive_int, metavar="N",
                   help="at most N finished orders are kept, the oldest forgotten first "
                        "(default 10000)")
    p.add_argument("--weight-limit", type=_positive_int, default=6000,
                   help="request weight per minute (default 6000)")
    p.add_argument("--verbose", action="store_true", help="log each request to stderr")
    p.set_defaults(func=cmd_fake_exchange)

    p = sub.add_parser("contract-tests", parents=[common],
                       help="hold each adapter to the port contracts (the live gate reads it)")
    p.add_argument("--adapter", action="append",
                   choices=("paper", "fake-binance", "binance-testnet"),
                   help="repeat for several (default: paper and fake-binance)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML here")
    p.add_argument("--json", metavar="FILE", help="write the JSON summary here")
    p.set_defaults(func=cmd_contract_tests)

    for mode, text in (("shadow", "run a strategy on live venue bars; record orders, send none"),
                       ("paper", "run a strategy on live venue bars with simulated fills")):
        p = sub.add_parser(mode, parents=[common], help=text)
        _live_arguments(p)
    p = sub.add_parser("live", parents=[common],
                       help="trade live: real orders to the venue (needs --confirm-live)")
    _live_arguments(p)
    p.add_argument("--confirm-live", action="store_true",
                   help="required: the run sends real orders")
    p.add_argument("--tiny", action="store_true",
                   help="size every order down to the venue's minimum notional (or "
                        "live.tiny_notional)")

    for action, text in (("halt", "stop a live run's new orders (within a second)"),
                         ("flatten", "close every position of a live run, then halt it"),
                         ("resume", "lift a live run's halt (needs --confirm)")):
        p = sub.add_parser(action, parents=[common], help=text)
        p.add_argument("--run", required=True, metavar="RUN_ID")
        p.add_argument("--runs-dir", default="runs", metavar="DIR")
        p.add_argument("--reason", help="said in the journal and the log")
        p.add_argument("--dry-run", action="store_true", help="log what it would do, do nothing")
        p.add_argument("--wait", type=_positive_float, default=5.0, metavar="SECONDS",
                       help="how long to wait for the run's answer (default 5)")
        if action == "resume":
            p.add_argument("--confirm", action="store_true", help="required: trading resumes")
        p.set_defaults(func=cmd_control)

    p = sub.add_parser("status", parents=[common], help="live runs, or one run's state")
    p.add_argument("--run", metavar="RUN_ID")
    p.add_argument("--runs-dir", default="runs", metavar="DIR")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("replay", parents=[common],
                       help="rebuild a live run's state from its journal and check it")
    p.add_argument("--run", required=True, metavar="RUN_ID")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("runs", parents=[common], help="list runs or show one")
    rsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    rl = rsub.add_parser("list", parents=[common], help="recent runs with headline numbers")
    rl.add_argument("--limit", type=_positive_int, default=20)
    rl.add_argument("--format", choices=("table", "csv", "json"), default="table")
    _tag_argument(rl, "only runs carrying this tag (repeatable: every one)")
    rs = rsub.add_parser("show", parents=[common], help="one run's record and performance")
    rs.add_argument("run_id", metavar="RUN_ID")
    p.set_defaults(func=cmd_runs)
    rc = rsub.add_parser("compare", parents=[common],
                         help="runs side by side: headline numbers, config keys, data and "
                              "code that differ")
    rc.add_argument("run_ids", nargs="*", metavar="RUN_ID")
    _tag_argument(rc, "add the cohort of runs carrying this tag (repeatable: every one), "
                      "with its mean and median")
    rc.add_argument("--json", action="store_true", help="print one JSON object")
    rc.set_defaults(func=cmd_runs_compare)
    return parser


def _tag_argument(p: argparse.ArgumentParser, text: str) -> None:
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help=text)


def _live_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set venue.base_url=http://127.0.0.1:8765")
    p.add_argument("--run-id", metavar="RUN_ID",
                   help="resume this run from its journal (or start a new run with this id)")
    p.add_argument("--max-bars", type=_positive_int, metavar="N",
                   help="end cleanly after N decided bars, counted across restarts")
    p.add_argument("--until", metavar="TS", help="end cleanly after the bar closing at TS")
    p.add_argument("--runs-dir", default="runs", metavar="DIR",
                   help="where run directories go (default: runs/)")
    p.set_defaults(func=cmd_live)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.warehouse = getattr(args, "warehouse", None)
    args.env_prefix = getattr(args, "env_prefix", DEFAULT_ENV_PREFIX)
    debug = os.environ.get(f"{args.env_prefix}DEBUG")
    previous = _terminate_on_sigterm()
    try:
        _check_echoed(args)
        code = int(args.func(args))
        raise_if_signalled()  # a signal whose exception was lost on the way
        return code
    except BrokenPipeError:
        _quiet_stdout()  # the reader went away (`| head`): stop quietly
        return EXIT_PIPE
    except WorkbenchError as exc:
        print(f"error: {scrub(exc.render())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated)
        return _stopped(exc)
    except Exception as exc:
        stop = as_interruption(exc)  # Ctrl-C or SIGTERM inside DuckDB: "Query interrupted"
        if isinstance(stop, KeyboardInterrupt):
            return _stopped(stop)
        if debug:
            print(scrub("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"error: internal error: {type(exc).__name__}: {scrub(str(exc))}\n       at "
              f"{where.filename}:{where.lineno}; rerun with {args.env_prefix}DEBUG=1 for the "
              "traceback, and please report it", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])


def _stopped(stop: KeyboardInterrupt) -> int:
    """Say that a signal ended the command; its exit status (143 for SIGTERM, 130 Ctrl-C)."""
    if isinstance(stop, Terminated):
        print(f"error: terminated by {stop.signal_name}", file=sys.stderr)
        return 128 + signal.SIGTERM
    print("error: interrupted", file=sys.stderr)
    return 130


def _terminate_on_sigterm() -> Any:
    """SIGTERM (`timeout`, systemd, docker) ends a command as Ctrl-C does: the run is marked
    failed with the signal named, and the exit status is 143. Both signals are also noted
    (``errors.note_signal``), so one whose exception was lost still ends the command. Returns
    the previous handlers."""
    from workbench.errors import clear_signals, note_signal

    clear_signals()
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if not note_signal(signal.Signals(signum).name):
            raise Terminated(signal.Signals(signum).name)

    def interrupt(signum: int, frame: Any) -> None:
        if not note_signal("SIGINT"):
            raise KeyboardInterrupt

    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:  # leave a caller's own handler alone
        signal.signal(signal.SIGINT, interrupt)
    return signal.signal(signal.SIGTERM, handler), previous_int


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so the final flush at exit cannot raise BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (captured in a test): nothing to flush
        return


def entry() -> None:
    """The console script: ``main``, then exit without tearing down the interpreter.

    A backtest leaves millions of small objects behind; freeing them one by one at exit takes
    longer than the operating system reclaiming the memory. Everything has been written, closed
    and flushed by then (files, the DuckDB connection, threads joined).
    """
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader of a pipe left before the last write reached it
        _quiet_stdout()
        code = code or EXIT_PIPE
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    os._exit(code)


def entry_live(argv: Sequence[str]) -> None:
    """``python -m workbench.live --mode shadow|paper|live ...``: ``workbench MODE ...``."""
    args = list(argv)
    mode = None
    for i, arg in enumerate(args):
        if arg == "--mode" and i + 1 < len(args):
            mode = args[i + 1]
            del args[i:i + 2]
            break
        if arg.startswith("--mode="):
            mode = arg.split("=", 1)[1]
            del args[i]
            break
    if mode not in ("shadow", "paper", "live"):
        print("usage: python -m workbench.live --mode shadow|paper|live --config FILE "
              "[--run-id ID] [--max-bars N] [--until TS] [--set KEY=VALUE]... "
              "[--confirm-live] [--tiny]\n"
              "error: --mode must be shadow, paper or live"
              f"{'' if mode is None else f', not {mode!r}'}", file=sys.stderr)
        sys.stdout.flush()
        os._exit(2)
    sys.argv[0] = "python -m workbench.live"
    code = main([mode, *args])
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()

