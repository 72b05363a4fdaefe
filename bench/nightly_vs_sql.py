"""Tenure's nightly run against the hand-written SQL it replaces, on PostgreSQL.

    .venv/bin/python -m bench.nightly_vs_sql [--rows 2000000]

One seeded click-stream database is copied (``CREATE DATABASE ... TEMPLATE``) for every
run, so each side starts from identical rows. Scenario A deletes what is older than 13
months; scenario B first keeps a monthly rollup of it, counting people. Both sides use
the cut-off the planner computes for one fixed instant, on a server that skips fsync and
on one as durable as production (``--durability``). See bench/README.md for what is
measured; the figures go to ``bench/results/nightly_vs_sql.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, create_engine, event, text

from bench import harness
from connectors.protocol import PublishedCell, RollupSink
from connectors.sql.connector import SQLConnector
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions, RunReport
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from retention_rules.planner import plan_rules, rollup_sinks
from tests.support.pg_server import DURABILITY_SETTINGS, PostgresServer, wait_until_ready

ZONE = "America/Montreal"
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=ZoneInfo(ZONE))
"""Both sides evaluate at this instant, so their cut-offs are identical."""
SPAN = relativedelta(months=26)
TARGETS = {"A": harness.Target(1.5), "B": harness.Target(2.5)}
PEAK_TARGET_MB = 500
#: The smallest sizes; the command-line part (three `tenure run`s, each starting
#: Prefect's temporary API server: 10 to 40 s apiece) is left out.
SMOKE = {"rows": 2_000, "chunks": "1000", "repeat": 1, "no_cli": True}
#: The server's durability: ``off`` skips fsync, synchronous commits and full-page writes
#: (a throwaway server, as the tests start it); ``on`` has all three, as in production.
DURABILITY = {"off": False, "on": True}
#: People counts (a sketch) must equal ``count(DISTINCT)`` in cells of fewer people
#: (``--people-exact-under``), and be within PEOPLE_ERROR of it (or one person) in
#: larger ones.
EXACT_PEOPLE = 500
PEOPLE_ERROR = 0.02
ROLLUP = "views_by_feature"
TENURE = Path(sys.executable).parent / "tenure"
FEATURES = [
    "home", "search", "pricing", "signup", "login", "dashboard",
    "contacts", "campaigns", "reports", "settings", "billing", "help",
]  # fmt: skip
COUNTRIES = [
    "CA", "US", "FR", "BE", "CH", "GB", "DE", "ES", "IT", "MX",
    "BR", "MA", "SN", "CI", "HT", "JP", "IN", "AU", "NL", "PT",
]  # fmt: skip

POLICY = """\
version: 1
name: bench_clicks
timezone: America/Montreal
categories:
  web.visitor_id: {description: "Cookie identifier of a visitor", identifier: direct}
  web.clickstream: {description: "Pages, features and response times", identifier: none}
  usage.location: {description: "Country of the connection", identifier: quasi}
purposes:
  website_analytics:
    description: Audience measurement.
    legal_basis: consent
    min_retention: 30 days
    max_retention: 13 months
stores:
  clicks:
    url: ${BENCH_URL}
datasets:
  - name: web_clicks
    store: clicks
    table: web_clicks
    purpose: website_analytics
    primary_key: id
    subject_key: visitor_id
    columns:
      visitor_id: web.visitor_id
      url: web.clickstream
      feature: web.clickstream
      country: usage.location
      response_ms: web.clickstream
    clock: {column: occurred_at}
    retention: 13 months
    action: @ACTION@
"""
ACTIONS = {
    "A": "delete",
    "B": (
        "\n      type: aggregate_then_delete"
        "\n      rollups:"
        f"\n        - name: {ROLLUP}"
        "\n          period: month"
        "\n          dimensions: [feature, country]"
        "\n          measures: [count, {sum: response_ms}]"
    ),
}
SCENARIOS = {"A": "delete", "B": "aggregate_then_delete"}

CREATE_TABLE = """
CREATE TABLE web_clicks (
    id bigint PRIMARY KEY,
    visitor_id text,
    occurred_at timestamptz NOT NULL,
    url text,
    feature text,
    country text,
    response_ms integer
)"""
# OFFSET 0 keeps the subquery from being flattened, so each random value is drawn once.
FILL = """
INSERT INTO web_clicks
SELECT i, visitor, occurred, '/' || feature || '/' || page, feature, country, response
FROM (
    SELECT
        i,
        'v' || (1 + floor(random() * :visitors))::bigint AS visitor,
        to_timestamp(:lo + :span * CASE WHEN :ordered THEN (i - 1 + random()) / :n
                                        ELSE random() END) AS occurred,
        (CAST(:features AS text[]))[1 + floor(random() * :n_features)::int] AS feature,
        floor(random() * 40)::int AS page,
        CASE WHEN random() < 0.005 THEN NULL
             ELSE (CAST(:countries AS text[]))[1 + floor(random() * :n_countries)::int]
        END AS country,
        CASE WHEN random() < 0.01 THEN NULL ELSE 20 + floor(random() * 1980)::int END
            AS response
    FROM generate_series(1, :n) AS i
    OFFSET 0
) AS g"""
RAW_DELETE = "DELETE FROM web_clicks WHERE occurred_at < :cutoff"
RAW_AGG_TABLE = """
CREATE TABLE raw_views_by_feature (
    period_start date, feature text, country text, n bigint, sum_response_ms bigint,
    people bigint
)"""
# People as the policy's rollup counts them: distinct subject keys (visitor_id) per cell.
RAW_AGGREGATE = f"""
INSERT INTO raw_views_by_feature
SELECT date_trunc('month', occurred_at AT TIME ZONE '{ZONE}')::date, feature, country,
       count(*), sum(response_ms), count(DISTINCT visitor_id)
FROM web_clicks WHERE occurred_at < :cutoff GROUP BY 1, 2, 3"""
RAW_CELLS = """
SELECT period_start, feature, country, n, sum_response_ms, people FROM raw_views_by_feature"""


@dataclass
class Timing:
    """One line of the results table."""

    rows: int
    scenario: str
    chunk: int
    durability: str
    tenure: harness.Runs
    raw: harness.Runs
    peak_mb: float | None = None
    people: PeopleError | None = None

    @property
    def tenure_s(self) -> float:
        return self.tenure.median

    @property
    def raw_s(self) -> float:
        return self.raw.median

    @property
    def ratio(self) -> float:
        return harness.ratio(self.tenure_s, self.raw_s)

    def figures(self) -> dict[str, object]:
        target = TARGETS[self.scenario]
        return {
            "rows": self.rows,
            "scenario": self.scenario,
            "action": SCENARIOS[self.scenario],
            "chunk": self.chunk,
            "durability": self.durability,
            "tenure_s": self.tenure,
            "raw_s": self.raw,
            "ratio": self.ratio,
            "target": str(target),
            "met": target.met(self.ratio),
            "peak_mb": self.peak_mb,
            "people": self.people,
        }


@dataclass
class Memory:
    """Peak resident memory of one Tenure run in its own process."""

    rows: int
    scenario: str
    chunk: int
    durability: str
    baseline_mb: float
    peak_mb: float
    seconds: float
    processed: int


@dataclass
class Results:
    timings: list[Timing] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    cli: list[tuple[str, float]] = field(default_factory=list)
    servers: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per durability: the server's settings as it reports them (SHOW)."""
    version: str = ""


CellKey = tuple[date, str | None, str | None]
"""A rollup cell: (month, feature, country)."""


@dataclass(frozen=True)
class Cell:
    """What the two sides must agree on in one cell."""

    rows: int
    sum_response_ms: float
    people: int | None


@dataclass(frozen=True)
class PeopleError:
    """How Tenure's people counts compare with ``count(DISTINCT visitor_id)``."""

    cells: int
    exact: int
    """Cells whose people count equals the baseline's."""
    max_relative: float
    """The largest |Tenure - baseline| / baseline over the cells."""
    smallest_inexact: int | None
    """The fewest people (``count(DISTINCT)``) of a cell whose count was not exact."""


class Bench:
    """A throwaway PostgreSQL server, seeded template databases and their copies."""

    def __init__(self, workdir: Path, layout: str, durability: str) -> None:
        self.workdir = workdir / f"durability-{durability}"
        self.workdir.mkdir()
        self.layout = layout
        self.durability = durability
        self.server = PostgresServer.start(durable=DURABILITY[durability])
        wait_until_ready(self.server.admin_url)
        self.admin = create_engine(self.server.admin_url, isolation_level="AUTOCOMMIT")
        # A vacuum of one side's dead rows must not run during the other side's timing.
        self.set_server("autovacuum", "off")
        self.version = self.show("server_version")
        self.settings = {name: self.show(name) for name in DURABILITY_SETTINGS}
        wanted = "on" if DURABILITY[durability] else "off"
        harness.check(
            set(self.settings.values()) == {wanted},
            f"durability {durability}: the server runs with {self.settings}",
        )
        self.policies = {s: self._write_policy(s) for s in ACTIONS}
        environ = {"BENCH_URL": self.server.url("postgres")}
        loaded = load_policy(self.policies["A"], environ)
        (plan,) = plan_rules(loaded.policy, PolicyClock.at(loaded.policy.timezone, NOW))
        self.cutoff = plan.cutoff
        # The rollup as Tenure reads it back: the loaded policy's sink, which counts people.
        (dataset,) = load_policy(self.policies["B"], environ).policy.datasets
        (self.sink,) = rollup_sinks(dataset)
        harness.check(self.sink.subject == "visitor_id", f"rollup counts {self.sink.subject}")
        self._runs = 0

    def close(self) -> None:
        self.admin.dispose()
        self.server.stop()

    def _write_policy(self, scenario: str) -> Path:
        path = self.workdir / f"policy_{scenario}.yaml"
        path.write_text(POLICY.replace("@ACTION@", ACTIONS[scenario]))
        return path

    def seed(self, rows: int) -> str:
        """A template database holding `rows` clicks spread evenly over 26 months."""
        name = f"seed_{rows}"
        self._admin(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
        engine = create_engine(self.server.url(name))
        lo = (NOW - SPAN).timestamp()
        params = {
            "n": rows,
            "lo": lo,
            "span": NOW.timestamp() - lo,
            "ordered": self.layout == "ordered",
            "visitors": max(rows // 20, 1),
            "features": FEATURES,
            "n_features": len(FEATURES),
            "countries": COUNTRIES,
            "n_countries": len(COUNTRIES),
        }
        with engine.begin() as connection:
            connection.execute(text(CREATE_TABLE))
            connection.execute(text("SELECT setseed(0.2026)"))
            connection.execute(text(FILL), params)
            connection.execute(text("CREATE INDEX web_clicks_at ON web_clicks (occurred_at)"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE web_clicks"))
        engine.dispose()
        return name

    def copy(self, seed: str, name: str) -> str:
        """A fresh copy of a seed database, checkpointed and read once (warm cache)."""
        self._admin(
            f"DROP DATABASE IF EXISTS {name}",
            f"CREATE DATABASE {name} TEMPLATE {seed} STRATEGY FILE_COPY",
        )
        url = self.server.url(name)
        with connect(url) as engine, engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM web_clicks")).scalar_one()
        self._admin("CHECKPOINT")
        return url

    def show(self, setting: str) -> str:
        with self.admin.connect() as connection:
            return str(connection.execute(text(f"SHOW {setting}")).scalar_one())

    def drop(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def state_url(self) -> str:
        self._runs += 1
        return f"sqlite:///{self.workdir / f'state_{self._runs}.sqlite'}"

    def counts(self, url: str) -> tuple[int, int]:
        """(rows, rows older than the cut-off)."""
        with connect(url) as engine, engine.connect() as connection:
            row = connection.execute(
                text("SELECT count(*), count(*) FILTER (WHERE occurred_at < :c) FROM web_clicks"),
                {"c": self.cutoff},
            ).one()
        return int(row[0]), int(row[1])

    def set_server(self, *settings: str) -> None:
        """ALTER SYSTEM SET name = value for each pair, then reload."""
        pairs = zip(settings[::2], settings[1::2], strict=True)
        self._admin(*(f"ALTER SYSTEM SET {k} = {v}" for k, v in pairs), "SELECT pg_reload_conf()")

    def _admin(self, *statements: str) -> None:
        with self.admin.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))


@contextmanager
def connect(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def run_tenure(
    policy: Path, url: str, chunk: int, state_url: str, *, dry_run: bool = False
) -> tuple[float, RunReport]:
    """`run_policy` in this process; seconds and the report (an error raises)."""
    # The coverage gate is a fixed cost per run (measured by bench/scan_speed.py), not
    # part of the work compared with raw SQL here.
    options = RunOptions(
        dry_run=dry_run, chunk_size=chunk, now=NOW, state_url=state_url, coverage_gate=False
    )
    start = time.perf_counter()
    report = run_policy(policy, options, environ={"BENCH_URL": url})
    elapsed = time.perf_counter() - start
    errors = [o.error for o in report.outcomes if o.error]
    if errors:
        raise RuntimeError(f"Tenure run failed: {errors}")
    return elapsed, report


def run_raw(url: str, scenario: str, cutoff: datetime) -> tuple[float, int]:
    """The hand-written equivalent in one transaction; seconds and rows deleted."""
    with connect(url) as engine:
        if scenario == "B":
            with engine.begin() as connection:
                connection.execute(text(RAW_AGG_TABLE))
        start = time.perf_counter()
        with engine.begin() as connection:
            if scenario == "B":
                connection.execute(text(RAW_AGGREGATE), {"cutoff": cutoff})
            deleted = connection.execute(text(RAW_DELETE), {"cutoff": cutoff}).rowcount
        return time.perf_counter() - start, deleted


def people_within(estimate: int, people: int, exact_under: int = EXACT_PEOPLE) -> bool:
    """Whether a people count (a sketch's estimate) is close enough to ``people``, the
    ``count(DISTINCT)``: equal under ``exact_under`` people, else within PEOPLE_ERROR of
    it or one person, whichever is more."""
    allowed = 0.0 if people < exact_under else max(1.0, PEOPLE_ERROR * people)
    return abs(estimate - people) <= allowed


def compare_cells(
    tenure: dict[CellKey, Cell], raw: dict[CellKey, Cell], exact_under: int = EXACT_PEOPLE
) -> list[str]:
    """Where Tenure's cells differ from the raw GROUP BY: rows and sums exactly, people
    by `people_within`. Empty when they agree."""
    problems = [
        f"cell {key} only in {'Tenure' if key in tenure else 'the raw aggregate'}"
        for key in sorted(tenure.keys() ^ raw.keys(), key=str)
    ]
    for key in sorted(tenure.keys() & raw.keys(), key=str):
        mine, theirs = tenure[key], raw[key]
        if (mine.rows, mine.sum_response_ms) != (theirs.rows, theirs.sum_response_ms):
            problems.append(
                f"cell {key}: rows {mine.rows:,}, sum {mine.sum_response_ms:,.0f};"
                f" raw {theirs.rows:,}, {theirs.sum_response_ms:,.0f}"
            )
        elif (
            mine.people is None
            or theirs.people is None
            or not people_within(mine.people, theirs.people, exact_under)
        ):
            problems.append(f"cell {key}: people {mine.people}, count(DISTINCT) {theirs.people}")
    return problems


def tenure_cells(url: str, sink: RollupSink) -> dict[CellKey, Cell]:
    """Tenure's rollup through the connector's public reading, every cell merged."""
    connector = SQLConnector("clicks", url)
    try:
        published: list[PublishedCell] = connector.rollup_cells("web_clicks", sink)
    finally:
        connector.close()
    return {
        (c.period_start, c.dimensions["feature"], c.dimensions["country"]): Cell(
            c.count, float(c.measures["sum_response_ms"] or 0.0), c.subjects
        )
        for c in published
    }


def raw_cells(url: str) -> dict[CellKey, Cell]:
    with connect(url) as engine, engine.connect() as connection:
        rows = connection.execute(text(RAW_CELLS)).all()
    return {(r[0], r[1], r[2]): Cell(int(r[3]), float(r[4] or 0), int(r[5])) for r in rows}


def check_rollups(
    sink: RollupSink, tenure_url: str, raw_url: str, deleted: int, exact_under: int
) -> PeopleError:
    """Tenure's rollup cells hold the deleted rows, cell for cell as the raw GROUP BY:
    counts and sums equal, people as `people_within` allows."""
    tenure, raw = tenure_cells(tenure_url, sink), raw_cells(raw_url)
    tenure_n = sum(c.rows for c in tenure.values())
    raw_n = sum(c.rows for c in raw.values())
    harness.check(tenure_n == deleted, f"rollup counts {tenure_n:,} != rows deleted {deleted:,}")
    harness.check(raw_n == deleted, f"raw aggregate counts {raw_n:,} != rows deleted {deleted:,}")
    problems = compare_cells(tenure, raw, exact_under)
    harness.check(
        not problems,
        f"rollup cells differ in {len(problems)} of {len(raw)}: {'; '.join(problems[:5])}",
    )
    counted = [(tenure[k].people or 0, c.people or 0) for k, c in raw.items()]
    return PeopleError(
        cells=len(counted),
        exact=sum(mine == theirs for mine, theirs in counted),
        max_relative=max((abs(m - t) / t for m, t in counted if t), default=0.0),
        smallest_inexact=min((t for m, t in counted if m != t), default=None),
    )


def people_shown(people: PeopleError) -> str:
    inexact = (
        ""
        if people.smallest_inexact is None
        else f", the smallest inexact cell has {people.smallest_inexact:,} people"
    )
    return (
        f"people exact in {people.exact:,} of {people.cells:,} cells,"
        f" at most {people.max_relative:.2%} off{inexact}"
    )


def scenario(
    bench: Bench,
    seed: str,
    rows: int,
    name: str,
    args: argparse.Namespace,
) -> list[Timing]:
    """Tenure at each of ``args.chunks`` and raw SQL (median of ``args.repeat`` runs),
    each run on its own copy of `seed`."""
    chunks = [int(c) for c in args.chunks.split(",")]
    raw_times: list[float] = []
    tenure_times: dict[int, list[float]] = {chunk: [] for chunk in chunks}
    people: dict[int, PeopleError | None] = {}
    # Raw SQL and Tenure take turns, so that the machine's drift falls on both sides.
    for attempt in range(args.repeat):
        raw_url = bench.copy(seed, "raw")
        before, expired = bench.counts(raw_url)
        seconds, raw_deleted = run_raw(raw_url, name, bench.cutoff)
        raw_times.append(seconds)
        harness.check(raw_deleted == expired, f"raw deleted {raw_deleted:,}, expected {expired:,}")
        raw_left = bench.counts(raw_url)[0]
        for chunk in chunks:
            url = bench.copy(seed, "tenure")
            tenure_s, report = run_tenure(bench.policies[name], url, chunk, bench.state_url())
            tenure_times[chunk].append(tenure_s)
            left = bench.counts(url)[0]
            processed = report.outcomes[0].processed
            harness.check(left == raw_left, f"Tenure left {left:,} rows, raw SQL {raw_left:,}")
            removed = before - left
            harness.check(
                processed == removed, f"Tenure reported {processed:,}, removed {removed:,}"
            )
            if name == "B" and attempt == 0:
                people[chunk] = check_rollups(
                    bench.sink, url, raw_url, removed, args.people_exact_under
                )
            print(
                f"  Tenure chunk {chunk:,}, run {attempt + 1}: {tenure_s:.2f} s, deleted"
                f" {processed:,} in {report.outcomes[0].chunks} chunks"
            )
            bench.drop("tenure")
        bench.drop("raw")
    raw = harness.Runs.of(raw_times)
    print(f"  raw SQL: {raw.median:.2f} s (median of {raw.listed()}), deleted {raw_deleted:,}")
    timings = []
    for chunk in chunks:
        tenure = harness.Runs.of(tenure_times[chunk])
        timing = Timing(rows, name, chunk, bench.durability, tenure, raw, people=people.get(chunk))
        found = people.get(chunk)
        print(
            f"  Tenure chunk {chunk:,}: {tenure.median:.2f} s (median of {tenure.listed()}),"
            f" {timing.ratio:.2f}x" + ("" if found is None else f"; {people_shown(found)}")
        )
        timings.append(timing)
    return timings


def memory_run(policy: str, url: str, chunk: int, state_url: str) -> tuple[float, int]:
    """One run in the measuring process: seconds, and rows processed."""
    seconds, report = run_tenure(Path(policy), url, chunk, state_url)
    return seconds, report.outcomes[0].processed


def measure_memory(bench: Bench, seed: str, rows: int, name: str, chunk: int) -> Memory:
    """Run Tenure in a spawned process and read its peak RSS (VmHWM); the SQL connector
    and pandas count in the figure after imports."""
    url = bench.copy(seed, "memory")
    args = (str(bench.policies[name]), url, chunk, bench.state_url())
    measured = harness.peak_in_child(memory_run, *args, imports=["connectors.sql.connector"])
    bench.drop("memory")
    seconds, processed = measured.result
    memory = Memory(
        rows,
        name,
        chunk,
        bench.durability,
        measured.imports_mb,
        measured.peak_mb,
        seconds,
        processed,
    )
    print(
        f"  {rows:,} rows, scenario {name}: peak {memory.peak_mb:.0f} MB"
        f" (after imports {memory.baseline_mb:.0f} MB), {memory.seconds:.2f} s"
    )
    return memory


def measure_cli(bench: Bench, seed: str) -> list[tuple[str, float]]:
    """`tenure run` end to end (scenario A), and the fixed cost of starting it."""
    url = bench.copy(seed, "cli")
    # the keys are the benchmark's own (bench/__init__.py), as the in-process runs use
    env = {**os.environ, "BENCH_URL": url, "PREFECT_HOME": str(bench.workdir / "prefect-home")}
    policy = str(bench.policies["A"])
    state = bench.state_url()
    now = ["--now", NOW.replace(tzinfo=None).isoformat(timespec="seconds")]
    run = [str(TENURE), "run", policy, *now, "--state", state, "--json"]

    def timed(command: list[str]) -> float:
        elapsed, done = harness.timed(
            lambda: subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        )
        harness.check(
            done.returncode == 0,
            f"{' '.join(command[1:3])} exited {done.returncode}: {done.stderr.strip()[-800:]}",
        )
        return elapsed

    before = bench.counts(url)
    figures = [
        ("tenure validate --offline (interpreter, imports; no Prefect)", timed(
            [str(TENURE), "validate", "--offline", policy])),
        ("tenure run --dry-run, first start (empty PREFECT_HOME: migrations)", timed(
            [*run, "--dry-run"])),
        ("tenure run (scenario A, chunk 10,000, end to end)", timed(run)),
    ]  # fmt: skip
    after = bench.counts(url)
    harness.check(after[1] == 0 and after[0] == before[0] - before[1], f"CLI run left {after}")
    figures.append(("tenure run --dry-run on the cleaned table (Prefect start)", timed(
        [*run, "--dry-run"])))  # fmt: skip
    in_process, _ = run_tenure(bench.policies["A"], url, 10_000, state, dry_run=True)
    figures.append(("run_policy(dry_run=True) in process on the cleaned table", in_process))
    bench.drop("cli")
    for label, seconds in figures:
        print(f"  {label}: {seconds:.2f} s")
    return figures


def _label(statement: str) -> str:
    """A statement's kind: its first words, without the values."""
    words = re.sub(r"\s+", " ", statement).strip()
    words = re.sub(r"\(\$?\d+(, \$\d+)*\)|\(%\(\w+\)s(, %\(\w+\)s)*\)", "(...)", words)
    return words[:78]


@contextmanager
def statement_clock(totals: dict[str, list[float]]) -> Iterator[None]:
    """Client-side seconds per statement kind: driver conversion, round trip, server."""

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        entry = totals.setdefault(_label(statement), [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - conn.info["bench_started"].pop()

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def server_durations(log: str) -> dict[str, list[float]]:
    """Server-side seconds per protocol phase and statement, from the server log."""
    totals: dict[str, list[float]] = {}
    pattern = re.compile(r"duration: ([\d.]+) ms  (parse|bind|execute|statement)[^:]*: (.*)")
    for match in pattern.finditer(log):
        entry = totals.setdefault(f"{match[2]:<8}{_label(match[3])}", [0, 0.0])
        entry[0] += 1
        entry[1] += float(match[1]) / 1000
    return totals


def _print_totals(title: str, totals: dict[str, list[float]], top: int) -> None:
    print(f"\n{title}\n{'calls':>7}{'seconds':>9}  statement")
    for label, (calls, seconds) in sorted(totals.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{int(calls):>7}{seconds:>9.2f}  {label}")


def profile(bench: Bench, seed: str, name: str, chunk: int, top: int) -> None:
    """cProfile one Tenure run; print the dominant functions and statements, client
    side (SQLAlchemy events) and server side (PostgreSQL's statement log)."""
    url = bench.copy(seed, "profiled")
    log = bench.server.root / "server.log"
    offset = log.stat().st_size
    bench.set_server("log_min_duration_statement", "0", "log_parameter_max_length", "0")
    client: dict[str, list[float]] = {}
    profiler = harness.Profile()
    with statement_clock(client), profiler.running():
        seconds, _ = run_tenure(bench.policies[name], url, chunk, bench.state_url())
    bench.set_server("log_min_duration_statement", "-1", "log_parameter_max_length", "-1")
    with log.open(errors="replace") as handle:
        handle.seek(offset)
        server = server_durations(handle.read())
    bench.drop("profiled")
    print(f"\n== scenario {name}, chunk {chunk:,}: {seconds:.2f} s (under cProfile)")
    _print_totals("client-side time per statement (compile excluded)", client, top)
    _print_totals("server-side time per phase and statement", server, top)
    print(profiler.report(top, ("tottime", "cumulative")))


def settings_shown(settings: dict[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items())


def render(results: Results, layout: str) -> str:
    """The Markdown tables of the figures."""
    durability = "; ".join(
        f"durability {d}: {settings_shown(settings)}" for d, settings in results.servers.items()
    )
    lines = [
        f"Tenure vs hand-written SQL on PostgreSQL {results.version}, layout {layout},"
        f" {os.cpu_count()} CPUs ({durability})",
        "",
        harness.markdown_table(
            [
                "N",
                "Scenario",
                "Durability",
                "Chunk",
                "Tenure s",
                "Raw SQL s",
                "Ratio",
                "Target",
                "Peak MB",
            ],
            [
                [
                    f"{t.rows:,}",
                    f"{t.scenario} {SCENARIOS[t.scenario]}",
                    t.durability,
                    f"{t.chunk:,}",
                    f"{t.tenure_s:.2f}",
                    f"{t.raw_s:.2f}",
                    f"{t.ratio:.2f}x",
                    f"{TARGETS[t.scenario]} {TARGETS[t.scenario].verdict(t.ratio)}",
                    "-" if t.peak_mb is None else f"{t.peak_mb:.0f}",
                ]
                for t in results.timings
            ],
            "rllrrrrrr",
        ),
    ]
    if results.memory:
        lines += [
            "",
            f"Peak RSS of the Tenure process (VmHWM, target < {PEAK_TARGET_MB} MB)",
            "",
            harness.markdown_table(
                ["N", "Scenario", "Durability", "Chunk", "Imports MB", "Peak MB", "Run s", "Rows"],
                [
                    [
                        f"{m.rows:,}",
                        f"{m.scenario} {SCENARIOS[m.scenario]}",
                        m.durability,
                        f"{m.chunk:,}",
                        f"{m.baseline_mb:.0f}",
                        f"{m.peak_mb:.0f}",
                        f"{m.seconds:.2f}",
                        f"{m.processed:,}",
                    ]
                    for m in results.memory
                ],
                "rllrrrrr",
            ),
        ]
    if results.cli:
        lines += [
            "",
            "Command line (wall time of the subprocess)",
            "",
            harness.markdown_table(
                ["Seconds", "Command"],
                [[f"{seconds:.2f}", label] for label, seconds in results.cli],
                "rl",
            ),
        ]
    return "\n".join(lines)


def figures(results: Results, bench: Bench) -> dict[str, object]:
    return {
        "postgresql": results.version,
        "now": NOW,
        "cutoff": bench.cutoff,
        "durability": results.servers,
        "timings": [t.figures() for t in results.timings],
        "memory": results.memory,
        "peak_target_mb": PEAK_TARGET_MB,
        "cli": [{"command": label, "seconds": seconds} for label, seconds in results.cli],
    }


def durabilities(value: str) -> list[str]:
    """``--durability``: a comma-separated list of ``off`` and ``on``."""
    chosen = [word.strip() for word in value.split(",")]
    unknown = [word for word in chosen if word not in DURABILITY]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown durability {', '.join(map(repr, unknown))} (use off, on or off,on)"
        )
    return list(dict.fromkeys(chosen))


def measure(bench: Bench, args: argparse.Namespace, results: Results, first: bool) -> None:
    """Everything measured on one server: the scenarios, and on the first server the
    memory (N and N/4) and the command line, which do not depend on its durability."""
    chunks = [int(c) for c in args.chunks.split(",")]
    names = args.scenarios.split(",")
    print(f"durability {bench.durability} ({settings_shown(bench.settings)}):")
    print(f"cut-off {bench.cutoff.isoformat()} (now {NOW.isoformat()})")
    seeding = time.perf_counter()
    seed = bench.seed(args.rows)
    print(f"seeded {args.rows:,} rows in {time.perf_counter() - seeding:.1f} s")
    if args.profile:
        for name in ("A", "B"):
            profile(bench, seed, name, chunks[0], top=25)
        return
    timings = []
    for name in names:
        print(f"scenario {name} ({SCENARIOS[name]}):")
        timings += scenario(bench, seed, args.rows, name, args)
    results.timings += timings
    if first and not args.no_memory:
        print("memory (spawned process):")
        quarter_rows = max(args.rows // 4, 1)
        quarter = bench.seed(quarter_rows)
        for rows, source in ((args.rows, seed), (quarter_rows, quarter)):
            for name in names:
                results.memory.append(measure_memory(bench, source, rows, name, chunks[0]))
        bench.drop(quarter)
        peaks = {(m.rows, m.scenario, m.chunk): m.peak_mb for m in results.memory}
        for t in timings:
            t.peak_mb = peaks.get((t.rows, t.scenario, t.chunk))
    if first and not args.no_cli:
        print("command line:")
        results.cli = measure_cli(bench, seed)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows per table")
    parser.add_argument("--chunks", default="10000,50000", help="Tenure chunk sizes")
    parser.add_argument(
        "--layout",
        choices=["random", "ordered"],
        default="random",
        help="random: occurred_at independent of id; ordered: rising with id",
    )
    parser.add_argument("--scenarios", default="A,B", help="which scenarios to time")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of raw SQL and of Tenure, taken in turns (each side's median)",
    )
    parser.add_argument(
        "--durability",
        type=durabilities,
        default="off,on",
        help="the server's fsync, synchronous_commit and full_page_writes: off (a"
        " throwaway server), on (production), or off,on (each on a server of its own)",
    )
    parser.add_argument(
        "--people-exact-under",
        type=int,
        default=EXACT_PEOPLE,
        help="cells of fewer people must count them exactly (0: every cell within"
        f" {PEOPLE_ERROR * 100:.0f}%% or one person)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line runs")
    args = harness.parse_args(parser, argv, SMOKE, profile="cProfile A and B instead")
    results = Results()
    with (
        harness.Benchmark("nightly_vs_sql", args) as run,
        tempfile.TemporaryDirectory(prefix="tenure-bench-") as tmp,
    ):
        for index, durability in enumerate(args.durability):
            bench = Bench(Path(tmp), args.layout, durability)
            try:
                results.servers[durability] = bench.settings
                results.version = bench.version
                measure(bench, args, results, first=index == 0)
            finally:
                bench.close()
        if args.profile:
            return
        run.figures.update(figures(results, bench))
        print()
        print(render(results, args.layout))


if __name__ == "__main__":
    main()
