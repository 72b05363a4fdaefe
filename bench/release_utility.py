"""What analysts get from the demo's rollups: small-cell suppression against differential privacy.

    .venv/bin/python -m bench.release_utility [--customers 500,50000] [--repeat 20] [--dir PATH]

For each demo size the demo CRM is generated into SQLite (kept and reused under
``--dir``), and each rollup of the shipped policy's aggregated bindings gets its exact
cells from SQL: per period (in the policy's time zone) and dimensions, the number of
distinct people (the binding's ``people:`` key, else its subject key) over all rows,
as if every period were closed and released. Against them: the project's suppression
(`flows.releases.withhold_small_cells` at the policy's ``min_cell_size``), and OpenDP's
discrete Laplace (`anonymizers.differential_privacy.noisy_counts`) over every cell of the
declared domain at each epsilon, the sensitivity being the cells of one period (a
person may appear in all of them), the noise drawn ``--repeat`` times. See
bench/README.md ("Utility of the released statistics").
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from datetime import time as midnight
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa

from anonymizers.differential_privacy import noisy_counts
from bench import harness
from connectors.protocol import PublishedCell, RollupSink
from connectors.rollups import period_end, period_starts
from connectors.times import wall_instant
from flows.demo import vocabulary
from flows.demo.generate import DemoSpec, build_demo_store
from flows.releases import shown, withhold_small_cells
from retention_rules.loader import load_policy
from retention_rules.model import AggregateThenDeleteAction, Dataset, Policy, Suppression
from retention_rules.planner import rollup_sinks
from tests.support.demo import DEMO_AS_OF
from tests.support.paths import SHIPPED_POLICY

#: The smallest sizes: one demo of 1,000 customers (its web rollup has cells of 20 people
#: and more), three draws of the noise.
SMOKE = {"customers": "1000", "repeat": 3}
EPSILONS = (0.5, 1.0, 2.0)
#: The issue's goal: at this epsilon, the median relative error of the cells counting at
#: least `LARGE` people is at most `GOAL_ERROR`.
GOAL_EPSILON = 1.0
GOAL_ERROR = 0.20
LARGE = 20
#: The dimensions' values where the policy declares no domain: what the demo draws from.
DEMO_DOMAIN: dict[str, tuple[str, ...]] = {
    "feature": vocabulary.FEATURES,
    "country": ("CA", "US", "FR"),
}
#: Clock values read at a time to check the SQL periods against `period_starts`.
CHECK_CHUNK = 200_000
#: The generator's sources: a kept demo store is reused only if they are unchanged.
GENERATOR = ("generate.py", "people.py", "planted.py", "schema.py", "vocabulary.py")

CellKey = tuple[Any, ...]
"""``(period start, *dimension values)``."""


# ---------------------------------------------------------------------------- the demo


@dataclass(frozen=True)
class Demo:
    """A generated demo store and what building it took (None: reused from ``--dir``)."""

    customers: int
    path: Path
    seconds: float | None
    rows: dict[str, int]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def generator_digest() -> str:
    """A short digest of the generator's sources, naming the stores it built."""
    digest = hashlib.sha256()
    for name in GENERATOR:
        digest.update((Path(vocabulary.__file__).parent / name).read_bytes())
    return digest.hexdigest()[:10]


def demo_store(folder: Path, customers: int, seed: int) -> Demo:
    """The demo of ``customers`` customers in ``folder``: built (into a temporary name,
    renamed at the end, so an interrupted build is never reused), or the one a previous
    run built there from the same generator, seed and instant."""
    name = f"demo-{customers}-seed{seed}-{DEMO_AS_OF:%Y%m%d}-{generator_digest()}.sqlite"
    path = folder / name
    if path.exists():
        engine = sa.create_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as conn:
                rows = {
                    table: conn.execute(
                        sa.select(sa.func.count()).select_from(sa.table(table))
                    ).scalar_one()
                    for table in ("customers", "usage_events", "web_clicks")
                }
        finally:
            engine.dispose()
        harness.check(rows["customers"] == customers, f"{path} holds {rows['customers']} customers")
        return Demo(customers, path, None, rows)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    engine = sa.create_engine(f"sqlite:///{partial}")
    try:
        spec = DemoSpec(customers=customers, seed=seed, as_of=DEMO_AS_OF)
        seconds, rows = harness.timed(lambda: build_demo_store(engine, spec))
    finally:
        engine.dispose()
    os.replace(partial, path)
    return Demo(customers, path, seconds, rows)


# ---------------------------------------------------------------------------- exact cells


@dataclass(frozen=True)
class Exact:
    """One rollup's exact cells over all rows: rows and people per (period, dimensions)."""

    rollup: str
    dataset: str
    people: str
    dimensions: tuple[str, ...]
    periods: list[date]
    domain: list[tuple[str, ...]]
    """Every combination of the dimensions' values: the cells of one period."""
    rows: dict[CellKey, int]
    persons: dict[CellKey, int]
    seconds: float

    @property
    def cells_per_period(self) -> int:
        return len(self.domain)

    def matrix(self) -> npt.NDArray[np.int64]:
        """People per cell of the whole domain (zero where no row is), one line a period."""
        return np.array(
            [[self.persons.get((p, *cell), 0) for cell in self.domain] for p in self.periods],
            dtype=np.int64,
        ).reshape(len(self.periods), len(self.domain))


def domain_of(
    policy_domain: dict[str, list[Any]], dimensions: Sequence[str]
) -> list[tuple[str, ...]]:
    """The cells of one period: the declared domain of each dimension, else the demo's."""
    values = [
        tuple(str(v) for v in policy_domain[d]) if d in policy_domain else DEMO_DOMAIN[d]
        for d in dimensions
    ]
    return list(itertools.product(*values))


def period_bounds(
    conn: sa.Connection, table: sa.Table, clock: str, period: str, zone: ZoneInfo
) -> list[tuple[date, datetime]]:
    """Every period from the oldest row's to the newest's: its first day and the UTC
    instant it begins (midnight in ``zone``, read by `wall_instant`'s rule)."""
    oldest, newest = conn.execute(
        sa.select(sa.func.min(table.c[clock]), sa.func.max(table.c[clock]))
    ).one()
    harness.check(oldest is not None, f"{table.name} holds no rows")
    first, last = period_starts(pd.Series([oldest, newest]), period, zone, ZoneInfo("UTC"))
    bounds = []
    start: date = first
    while start <= last:
        begins = wall_instant(datetime.combine(start, midnight()), zone).astimezone(UTC)
        bounds.append((start, begins.replace(tzinfo=None)))
        start = period_end(start, period)
    return bounds


def exact_cells(
    engine: sa.Engine,
    dataset: Dataset,
    sink: RollupSink,
    domain: list[tuple[str, ...]],
    zone: ZoneInfo,
) -> Exact:
    """``COUNT(*)`` and ``COUNT(DISTINCT people)`` per period and dimensions, in SQL.

    A temporary table holds each period's first instant (UTC: SQLite keeps naive UTC
    text); each row's period is the last that begins at or before its clock.
    """
    harness.check(sink.subject is not None, f"rollup {sink.name} counts no people")
    people = str(sink.subject)
    started = time.perf_counter()
    clock = dataset.clock.column
    with engine.connect() as conn:
        table = sa.Table(dataset.table, sa.MetaData(), autoload_with=conn)
        bounds = period_bounds(conn, table, clock, sink.period, zone)
        starts = sa.Table(
            "bench_period_starts",
            sa.MetaData(),
            sa.Column("utc_from", sa.DateTime, primary_key=True),
            sa.Column("period_start", sa.Date, nullable=False),
            prefixes=["TEMPORARY"],
        )
        starts.create(conn)
        conn.execute(starts.insert(), [{"utc_from": b, "period_start": p} for p, b in bounds])
        period = (
            sa.select(starts.c.period_start)
            .where(starts.c.utc_from <= table.c[clock])
            .order_by(starts.c.utc_from.desc())
            .limit(1)
            .scalar_subquery()
            .label("period")
        )
        inner = sa.select(
            period, *(table.c[d] for d in sink.dimensions), table.c[people]
        ).subquery()
        keys = [inner.c.period, *(inner.c[d] for d in sink.dimensions)]
        query = sa.select(
            *keys, sa.func.count(), sa.func.count(sa.distinct(inner.c[people]))
        ).group_by(*keys)
        found = conn.execute(query).all()
        starts.drop(conn)
        conn.commit()  # the temporary table gone for good (pysqlite runs DDL outside transactions)
    rows: dict[CellKey, int] = {}
    persons: dict[CellKey, int] = {}
    for *key, n, distinct in found:
        cell = (_as_date(key[0]), *(str(v) for v in key[1:]))
        rows[cell], persons[cell] = int(n), int(distinct)
    return Exact(
        sink.name,
        dataset.name,
        people,
        sink.dimensions,
        [p for p, _ in bounds],
        domain,
        rows,
        persons,
        time.perf_counter() - started,
    )


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def check_exact(
    engine: sa.Engine, dataset: Dataset, sink: RollupSink, exact: Exact, zone: ZoneInfo
) -> None:
    """The SQL periods agree with the project's own rule (`period_starts`, as the nightly
    run places rows) row for row, every row is in a cell and every value in the domain."""
    by_period: dict[date, int] = {}
    clocks: sa.Select[Any] = sa.select(sa.column(dataset.clock.column)).select_from(
        sa.table(dataset.table)
    )
    with engine.connect() as conn:
        for chunk in pd.read_sql(clocks, conn, chunksize=CHECK_CHUNK):
            starts = period_starts(chunk.iloc[:, 0], sink.period, zone, ZoneInfo("UTC"))
            for start, n in starts.value_counts().items():
                by_period[start] = by_period.get(start, 0) + int(n)
    from_sql: dict[date, int] = {}
    for (start, *_), n in exact.rows.items():
        from_sql[start] = from_sql.get(start, 0) + n
    harness.check(
        from_sql == by_period,
        f"{exact.rollup}: rows per period differ between SQL and period_starts",
    )
    known = set(exact.domain)
    stray = sorted({key[1:] for key in exact.rows} - known)
    harness.check(not stray, f"{exact.rollup}: values outside the domain: {stray[:3]}")


# ---------------------------------------------------------------------------- the methods


@dataclass(frozen=True)
class Suppressed:
    """What small-cell suppression publishes of one rollup."""

    min_cell_size: int
    with_data: int
    domain: int
    published: int
    large: int
    large_published: int
    people_withheld_share: float
    """Of the people the cells count (a person once per cell), those in withheld cells."""

    @property
    def of_data(self) -> float:
        return self.published / self.with_data if self.with_data else 0.0

    @property
    def of_domain(self) -> float:
        return self.published / self.domain

    def figures(self) -> dict[str, object]:
        return {
            "min_cell_size": self.min_cell_size,
            "cells_with_data": self.with_data,
            "cells_of_domain": self.domain,
            "published": self.published,
            "published_of_data": self.of_data,
            "published_of_domain": self.of_domain,
            "large_cells": self.large,
            "large_published": self.large_published,
            "median_relative_error": 0.0,
            "people_withheld_share": self.people_withheld_share,
        }


def suppress(exact: Exact, sink: RollupSink, k: int) -> Suppressed:
    """The project's rule (`withhold_small_cells`) on the exact cells at ``k`` people."""
    cells = [
        PublishedCell(key[0], dict(zip(exact.dimensions, key[1:], strict=True)), n, {},
                      subjects=exact.persons[key])
        for key, n in exact.rows.items()
    ]  # fmt: skip
    released = withhold_small_cells(cells, replace(sink, min_cell_size=k))
    published = shown(released)
    harness.check(
        all(c.subjects is not None and c.subjects >= k for c in published),
        f"{exact.rollup}: a published cell counts fewer than {k} people",
    )
    total = sum(exact.persons.values())
    withheld = sum(c.subjects or 0 for c in released if c.withheld)
    return Suppressed(
        min_cell_size=k,
        with_data=len(cells),
        domain=len(exact.periods) * exact.cells_per_period,
        published=len(published),
        large=sum(1 for n in exact.persons.values() if n >= LARGE),
        large_published=sum(1 for c in published if (c.subjects or 0) >= LARGE),
        people_withheld_share=withheld / total if total else 0.0,
    )


@dataclass(frozen=True)
class Private:
    """What differential privacy at ``epsilon`` publishes of one rollup, per draw."""

    epsilon: float
    spent: float
    scale: float
    margin: int
    domain: int
    large: int
    large_median_people: float | None
    errors: list[float] = field(default_factory=list)
    """Per draw: the median relative error of the cells counting at least `LARGE`."""
    noise: list[float] = field(default_factory=list)
    """Per draw: the median absolute error of those cells (people)."""
    within: list[float] = field(default_factory=list)
    """Per draw: the share of the domain's cells whose error is within the margin."""

    @property
    def error(self) -> float | None:
        return statistics.median(self.errors) if self.errors else None

    def figures(self) -> dict[str, object]:
        return {
            "epsilon": self.epsilon,
            "epsilon_spent": self.spent,
            "scale": self.scale,
            "margin95": self.margin,
            "cells_of_domain": self.domain,
            "published_of_domain": 1.0,
            "large_cells": self.large,
            "large_median_people": self.large_median_people,
            "median_relative_error": _summary(self.errors),
            "median_absolute_error": _summary(self.noise),
            "within_margin": _summary(self.within),
        }


def _summary(values: Sequence[float]) -> dict[str, object] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": list(values),
    }


def privatize(exact: Exact, epsilon: float, repeat: int) -> Private:
    """Every period's release over the whole domain through `noisy_counts`, at the
    sensitivity of one period's cells; each period's ``repeat`` draws are one call (the
    vector repeated: every element gets its own noise at the same scale)."""
    true = exact.matrix()
    d = exact.cells_per_period
    noisy = np.empty((repeat, *true.shape), dtype=np.int64)
    scale, margin, spent = 0.0, 0, 0.0
    for i, counts in enumerate(true):
        released = noisy_counts(np.tile(counts, repeat).tolist(), sensitivity=d, epsilon=epsilon)
        noisy[:, i, :] = released.counts.reshape(repeat, d)
        scale, margin, spent = released.scale, released.margin, released.epsilon
    harness.check(bool((noisy >= 0).all()), f"{exact.rollup}: a negative count was released")
    harness.check(spent <= epsilon, f"{exact.rollup}: spent {spent} > {epsilon}")
    error = np.abs(noisy - true)
    large = true >= LARGE
    relative = error[:, large] / true[large]
    return Private(
        epsilon=epsilon,
        spent=spent,
        scale=scale,
        margin=margin,
        domain=int(true.size),
        large=int(large.sum()),
        large_median_people=float(np.median(true[large])) if large.any() else None,
        errors=[float(np.median(r)) for r in relative] if large.any() else [],
        noise=[float(np.median(e[large])) for e in error] if large.any() else [],
        within=[float(np.mean(e <= margin)) for e in error],
    )


# ---------------------------------------------------------------------------- a size


@dataclass
class Rollup:
    """One rollup at one size: its exact cells and what each method makes of them."""

    customers: int
    exact: Exact
    suppressed: Suppressed
    private: list[Private]


def aggregated(policy: Policy) -> list[tuple[Dataset, RollupSink, int, dict[str, list[Any]]]]:
    """Each rollup of the policy's aggregated bindings: its binding, its sink, the
    suppression's ``min_cell_size`` (the rollup's own, else the binding's) and its
    declared domain."""
    found = []
    for dataset in policy.datasets:
        action = dataset.action
        if not isinstance(action, AggregateThenDeleteAction):
            continue
        for sink in rollup_sinks(dataset):
            rollup = action.rollup(sink.name)
            disclosure = action.disclosure(rollup)
            k = disclosure.min_cell_size if isinstance(disclosure, Suppression) else None
            domain = {d: list(v) for d, v in rollup.domain.items()}
            found.append((dataset, sink, k or action.min_cell_size, domain))
    return found


def measure_size(
    demo: Demo, policy: Policy, epsilons: Sequence[float], repeat: int
) -> list[Rollup]:
    zone = ZoneInfo(policy.timezone)
    engine = sa.create_engine(demo.url)
    done = []
    try:
        for dataset, sink, k, declared in aggregated(policy):
            domain = domain_of(declared, sink.dimensions)
            exact = exact_cells(engine, dataset, sink, domain, zone)
            check_exact(engine, dataset, sink, exact, zone)
            private = [privatize(exact, e, repeat) for e in epsilons]
            done.append(Rollup(demo.customers, exact, suppress(exact, sink, k), private))
            print(
                f"  {sink.name}: {len(exact.periods)} periods of {exact.cells_per_period} cells,"
                f" {len(exact.rows):,} with data, exact in {exact.seconds:.1f} s"
            )
    finally:
        engine.dispose()
    return done


# ---------------------------------------------------------------------------- output


def _share(value: float) -> str:
    """A share in whole percent, never rounded up to all or down to none."""
    shown = f"{value:.0%}"
    if shown == "100%" and value < 1:
        return "< 100%" if value >= 0.9995 else f"{value:.1%}"
    if shown == "0%" and value > 0:
        return "> 0%" if value < 0.0005 else f"{value:.1%}"
    return shown


def _error(private: Private) -> str:
    if not private.errors:
        return "no cell ≥ 20"
    errors = private.errors
    return f"{statistics.median(errors):.1%} ({min(errors):.1%} to {max(errors):.1%})"


def render(results: list[Rollup], repeat: int) -> str:
    """The utility table: a line per size, rollup and method."""
    rows: list[list[object]] = []
    for r in results:
        s = r.suppressed
        rows.append([
            f"{r.customers:,}", r.exact.rollup, f"suppression, k = {s.min_cell_size}",
            f"{_share(s.of_data)} of {s.with_data:,}", f"{_share(s.of_domain)} of {s.domain:,}",
            f"{s.large:,} ({s.large_published:,} published)", "0 (exact)", "exact", "",
            _share(s.people_withheld_share),
        ])  # fmt: skip
        for p in r.private:
            rows.append([
                f"{r.customers:,}", r.exact.rollup, f"DP, ε = {p.epsilon:g}",
                f"100% of {s.with_data:,}", f"100% of {p.domain:,}",
                f"{p.large:,}", _error(p), f"±{p.margin}",
                _share(statistics.median(p.within)), "0%",
            ])  # fmt: skip
    headers = [
        "Customers", "Rollup", "Method", "Published, of cells with data",
        "Published, of the domain", "Cells ≥ 20 people", "Median relative error, cells ≥ 20",
        "95% margin", "Within margin", "People in withheld cells",
    ]  # fmt: skip
    return "\n".join([
        f"Utility of the released rollups (differential privacy: median over {repeat} draws,"
        " with the smallest and largest draw's)",
        "",
        harness.markdown_table(headers, rows, "lllrrrrrrr"),
    ])  # fmt: skip


def goal_lines(results: list[Rollup]) -> tuple[list[str], list[dict[str, object]]]:
    """The issue's goal at ε = 1, per size and rollup, with why it is missed."""
    lines, verdicts = [], []
    for r in results:
        p = next((p for p in r.private if p.epsilon == GOAL_EPSILON), None)
        if p is None:
            continue
        where = f"{r.customers:,} customers, {r.exact.rollup}"
        if p.error is None:
            lines.append(f"- {where}: no cell counts {LARGE} people or more: nothing to measure")
            verdicts.append({"customers": r.customers, "rollup": r.exact.rollup, "met": None})
            continue
        met = p.error <= GOAL_ERROR
        line = (
            f"- {where}: median relative error {p.error:.1%} on {p.large:,} cells ≥ {LARGE}"
            f" (goal ≤ {GOAL_ERROR:.0%}): {'met' if met else 'missed'}"
        )
        if not met:
            noise = statistics.median(p.noise)
            line += (
                f"; the noise's scale is {p.scale:g} people (sensitivity {r.exact.cells_per_period}"
                f" cells per period / ε {p.epsilon:g}: a person may be in every cell), so"
                f" the median error is about {noise:g} people, while the median cell ≥ {LARGE}"
                f" counts {p.large_median_people:g}; 20% needs cells of about"
                f" {noise / GOAL_ERROR:.0f} people"
            )
        lines.append(line)
        verdicts.append({
            "customers": r.customers, "rollup": r.exact.rollup, "met": met,
            "median_relative_error": p.error, "large_cells": p.large,
        })  # fmt: skip
    return lines, verdicts


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of customer counts: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"not a list of customer counts: {text!r}")
    return sizes


def _epsilons(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of epsilons: {text!r}") from None
    if not values or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"epsilons must be above 0: {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--customers", default="500,50000", help="demo sizes, comma-separated (500,50000)"
    )
    parser.add_argument(
        "--epsilons",
        default=",".join(f"{e:g}" for e in EPSILONS),
        help="privacy loss of one period's release, comma-separated (0.5,1,2)",
    )
    parser.add_argument("--repeat", type=int, default=20, help="draws of the noise (20)")
    args = harness.parse_args(
        parser, argv, SMOKE, seed=2025, work_dir="keep the demo stores here, reused by the next run"
    )
    sizes = _sizes(str(args.customers))
    epsilons = _epsilons(str(args.epsilons))
    harness.check(args.repeat >= 1, "--repeat must be at least 1")
    policy = load_policy(SHIPPED_POLICY, environ={}).policy
    results: list[Rollup] = []
    demos: list[Demo] = []
    with (
        harness.Benchmark("release_utility", args) as run,
        harness.work_folder(args.dir, "tenure-bench-utility-") as folder,
    ):
        for customers in sizes:
            demo = demo_store(folder, customers, args.seed)
            demos.append(demo)
            built = "reused" if demo.seconds is None else f"built in {demo.seconds:.1f} s"
            print(
                f"demo of {customers:,} customers {built}: usage_events"
                f" {demo.rows['usage_events']:,}, web_clicks {demo.rows['web_clicks']:,} rows"
            )
            results += measure_size(demo, policy, epsilons, args.repeat)
        print()
        print(render(results, args.repeat))
        lines, verdicts = goal_lines(results)
        print(f"\nGoal at ε = {GOAL_EPSILON:g}: every cell of the domain published (it is), and")
        print("\n".join(lines))
        run.figures.update({
            "epsilons": epsilons,
            "large": LARGE,
            "builds": [
                {"customers": d.customers, "seconds": d.seconds, "reused": d.seconds is None,
                 "rows": d.rows}
                for d in demos
            ],
            "cells": [
                {"customers": r.customers, "rollup": r.exact.rollup, "dataset": r.exact.dataset,
                 "people": r.exact.people, "periods": len(r.exact.periods),
                 "cells_per_period": r.exact.cells_per_period, "with_data": len(r.exact.rows),
                 "rows": sum(r.exact.rows.values()), "exact_seconds": r.exact.seconds}
                for r in results
            ],
            "suppression": [
                {"customers": r.customers, "rollup": r.exact.rollup, **r.suppressed.figures()}
                for r in results
            ],
            "differential_privacy": [
                {"customers": r.customers, "rollup": r.exact.rollup, **p.figures()}
                for r in results for p in r.private
            ],
            "goal": verdicts,
        })  # fmt: skip


if __name__ == "__main__":
    main()
