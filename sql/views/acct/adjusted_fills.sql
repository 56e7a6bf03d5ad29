-- name: acct.adjusted_fills
-- version: 4
-- description: every fill in the units of its symbol after the run's later splits, and its length on the line FIFO matches on, less the fractions the books paid in lieu (adr/0025)
-- A split (main.action_events, kind SPLIT) applies at a bar time before that bar's fills. The
-- books (Book.apply_action) scale each open lot by the exact fraction num/den of the split's
-- ratio, floor it to the unit and pay the fractions as cash in lieu; this view follows them
-- split by split, never by the float product of the ratios (1:3 then 10:1 is 10/3, but
-- 10.0 * 0.3333333333333333 is 3.333333333333333, which floors 9 units to 29, not 30):
-- * units: the fill's units scaled by each later split in turn, floored each time (a lot's
--   size in the books, which shares its fees pro rata); price: divided by each later ratio in
--   turn (a lot's price in the books); factor: the product of the later ratios, for reading.
--   Floored, not rounded: these are the books' numbers, and the books floor. Rounding would
--   not help matching either: that is done on the exact line below, which needs neither.
-- * line_units: the fill's length on the matching line, in 1/line_scale of a unit after the
--   last split, where line_scale is the product of the symbol's split denominators: a unit
--   traded between splits k and k+1 is exactly W_k = (numerators after k) * (denominators up
--   to k) of them (line_weight, the fill's), so matching is exact and pairs the same fills as
--   the books, split or not. A lot open at a split loses, at its end, what the books floored
--   away from it (they take the fraction from every open lot, not from the oldest one): its
--   remaining r becomes floor(r * num / den). The lots open at split k are the newest fills
--   of the position's side whose sizes add up to units_before (FIFO closes the oldest first):
--   all whole (their scaled units) but the oldest, which holds the rest. So no recursion and
--   no synthetic rows: each fill is unnested with its later splits (fills times the symbol's
--   splits), and a window per split finds its open lots.
-- * lot_lines: the fill's size on the line after 0, 1, ... of its later splits (floored split
--   by split, as the books' lot size), for the fee shares of a trip closed between them (null
--   for a fill of a symbol without splits: its size is line_units); splits_after: how many
--   splits came after the fill.
-- A fill's later splits are a slice of one list per symbol, joined on (run_id, symbol): a key
-- join, linear in fills. num/den: the first convergent of the ratio's continued fraction
-- within 1e-9 of it times its denominator, the fraction a p:q split was written as (1/3 for
-- 0.3333333333333333), as workbench.model.split_fraction finds it (the nearest fraction with
-- a denominator up to 10**9; a ratio written with many decimals, 1.23456789, could differ).
-- The weights are HUGEINT products of the numerators and denominators, exact (a product of
-- doubles is rounded above 2**53: three 999983:999979 splits); beyond HUGEINT the view raises
-- an overflow error, never a wrong length.
-- Without a split every factor is 1: units, price and line_units are the fill's own. The fills
-- of a symbol that had no split in its run (most runs: crypto has none) take that short way,
-- and only the others go through the lists below.
with split_symbols as (
    -- each branch below reads the base tables itself, so a run filter reaches their scans
    -- (a CTE read twice is materialised for every run)
    select distinct run_id, symbol from main.action_events where kind = 'SPLIT'
),
unsplit as (
    select
        f.run_id, f.symbol, f.fill_seq, f.side, f.ts, f.bar_ts, f.price, f.fee,
        cast(round(f.qty * 100000000) as bigint) as units,
        1.0 as factor,
        cast(round(f.qty * 100000000) as bigint) as traded_units,
        cast(1 as hugeint) as line_weight,
        cast(null as hugeint[]) as lot_lines,
        cast(0 as bigint) as splits_after,
        cast(round(f.qty * 100000000) as hugeint) as line_units,
        cast(1 as hugeint) as line_scale
    from main.fills as f
    anti join split_symbols as s on f.run_id = s.run_id and f.symbol = s.symbol
),
fills as (
    select
        f.run_id, f.symbol, f.fill_seq, f.side, f.ts, f.bar_ts, f.price, f.fee,
        cast(round(f.qty * 100000000) as bigint) as units
    from main.fills as f
    semi join split_symbols as s on f.run_id = s.run_id and f.symbol = s.symbol
),
ratios as (
    select run_id, symbol, action_seq, ts, ratio, units_before
    from main.action_events
    where kind = 'SPLIT'
),
fractions as (
    -- the ratio's continued fraction, convergent by convergent (h/k), up to the first within
    -- 1e-9 of a whole number of units per k (a ratio p:q is one of them: it is then p/q)
    select
        *,
        list_reduce(
            range(0, 40),
            lambda c, i: case
                when c.done or c.x = floor(c.x) or c.k > 1000000000 then c
                else {
                    'x': 1 / (c.x - floor(c.x)),
                    'h': cast(floor(1 / (c.x - floor(c.x))) as bigint) * c.h + c.hp,
                    'hp': c.h,
                    'k': cast(floor(1 / (c.x - floor(c.x))) as bigint) * c.k + c.kp,
                    'kp': c.k,
                    'done': abs(
                        ratio * (cast(floor(1 / (c.x - floor(c.x))) as bigint) * c.k + c.kp)
                        - (cast(floor(1 / (c.x - floor(c.x))) as bigint) * c.h + c.hp)
                    ) < 1e-9
                }
            end,
            {
                'x': ratio, 'h': cast(floor(ratio) as bigint), 'hp': cast(1 as bigint),
                'k': cast(1 as bigint), 'kp': cast(0 as bigint),
                'done': ratio = floor(ratio)
            }
        ) as convergent
    from ratios
),
weighted as (
    select
        *,
        coalesce(list_reduce(list(num) over later, lambda acc, x: acc * x, cast(1 as hugeint)),
            1)
            * list_reduce(list(den) over upto, lambda acc, x: acc * x, cast(1 as hugeint))
            as weight,
        list_reduce(list(den) over (partition by run_id, symbol), lambda acc, x: acc * x,
            cast(1 as hugeint)) as scale
    from (select *, convergent.h as num, convergent.k as den from fractions)
    window
        later as (
            partition by run_id, symbol order by ts, action_seq
            rows between 1 following and unbounded following
        ),
        upto as (
            partition by run_id, symbol order by ts, action_seq
            rows between unbounded preceding and current row
        )
),
splits as (
    select
        run_id, symbol, ts,
        {
            'seq': action_seq, 'ratio': ratio, 'num': num, 'den': den,
            'held': abs(units_before),
            'side': case when units_before > 0 then 'BUY' else 'SELL' end,
            'weight': weight, 'weight_before': weight // den * num, 'scale': scale
        } as split
    from weighted
),
symbol_splits as (
    select run_id, symbol, list(split order by split.seq) as all_splits, max(split.scale) as scale
    from splits
    group by run_id, symbol
),
stream as (
    select run_id, symbol, fill_seq, side, ts, bar_ts, price, fee, units, null as split
    from fills
    union all
    select
        run_id, symbol, null as fill_seq, null as side, ts, ts as bar_ts, null as price,
        null as fee, null as units, split
    from splits
),
counted as (
    select
        *,
        count(split) over (
            partition by run_id, symbol order by bar_ts, split is null, split.seq
            rows between unbounded preceding and current row
        ) as splits_before
    from stream
),
listed as (
    select
        c.*,
        coalesce(list_slice(s.all_splits, c.splits_before + 1, len(s.all_splits)), [])
            as later_splits,
        coalesce(s.scale, 1) as line_scale
    from counted as c
    left join symbol_splits as s on c.run_id = s.run_id and c.symbol = s.symbol
    where c.split is null
),
scaled as (
    select
        run_id, symbol, fill_seq, side, ts, bar_ts, fee, later_splits, line_scale,
        units as traded,
        cast(
            list_reduce(later_splits, lambda acc, s: acc * s.num // s.den, cast(units as hugeint))
            as bigint
        ) as units,
        list_reduce(later_splits, lambda acc, s: acc / s.ratio, price) as price,
        list_reduce(later_splits, lambda acc, s: acc * s.ratio, 1.0) as factor,
        coalesce(later_splits[1].weight_before, line_scale) as line_weight,
        list_transform(
            range(0, len(later_splits) + 1),
            lambda j: list_reduce(
                later_splits[1:j], lambda acc, x: acc * x.num // x.den, cast(units as hugeint)
            ) * coalesce(later_splits[j].weight, later_splits[1].weight_before, line_scale)
        ) as lot_lines
    from listed
),
held as (
    select
        run_id, symbol, fill_seq, s,
        list_reduce(
            later_splits[1:i - 1], lambda acc, x: acc * x.num // x.den, cast(traded as hugeint)
        ) as size
    from (
        select *, unnest(later_splits) as s, generate_subscripts(later_splits, 1) as i
        from scaled
    )
    where s.side = side and s.held > 0
),
open_lots as (
    select
        run_id, symbol, fill_seq, s,
        least(size, s.held - coalesce(sum(size) over newer, 0)) as remaining
    from held
    window newer as (
        partition by run_id, symbol, s.seq order by fill_seq desc
        rows between unbounded preceding and 1 preceding
    )
),
in_lieu as (
    select
        run_id, symbol, fill_seq,
        sum(remaining * s.weight_before - remaining * s.num // s.den * s.weight) as floored
    from open_lots
    where remaining > 0
    group by run_id, symbol, fill_seq
),
final as (
    select
        f.run_id,
        f.symbol,
        f.fill_seq,
        f.side,
        f.ts,
        f.bar_ts,
        f.price,
        f.fee,
        f.units,
        f.factor,
        f.traded as traded_units,
        f.line_weight,
        f.lot_lines,
        len(f.later_splits) as splits_after,
        f.traded * f.line_weight - coalesce(l.floored, 0) as line_units,
        f.line_scale
    from scaled as f
    left join in_lieu as l
        on f.run_id = l.run_id and f.symbol = l.symbol and f.fill_seq = l.fill_seq
    union all
    select * from unsplit
)
select * from final
