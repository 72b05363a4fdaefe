"""Tenure's nightly run against the hand-written SQL it replaces, on PostgreSQL.

    .venv/bin/python -m bench.nightly_vs_sql [--rows 2000000]

One seeded click-stream database is copied (``CREATE DATABASE ... TEMPLATE``) for every
run, so each side starts from identical rows. Scenario A deletes what is older than 13
months; scenario B first keeps a monthly rollup of it. Both sides use the cut-off the
planner computes for one fixed instant. See bench/README.md for what is measured; the
figures go to ``bench/results/nightly_vs_sql.json``.
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
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, create_engine, event, text

from bench import harness
from connectors.sql.bookkeeping import rollup_table_name
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions, RunReport
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from retention_rules.planner import plan_rules
from tests.support.pg_server import PostgresServer, wait_until_ready

ZONE = "America/Montreal"
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=ZoneInfo(ZONE))
"""Both sides evaluate at this instant, so their cut-offs are identical."""
SPAN = relativedelta(months=26)
TARGETS = {"A": harness.Target(1.5), "B": harness.Target(2.5)}
PEAK_TARGET_MB = 500
#: The smallest sizes; the command-line part (three `tenure run`s, each starting
#: Prefect's temporary API server: 10 to 40 s apiece) is left out.
SMOKE = {"rows": 2_000, "chunks": "1000", "repeat": 1, "no_cli": True}
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
    period_start date, feature text, country text, n bigint, sum_response_ms bigint
)"""
RAW_AGGREGATE = f"""
INSERT INTO raw_views_by_feature
SELECT date_trunc('month', occurred_at AT TIME ZONE '{ZONE}')::date, feature, country,
       count(*), sum(response_ms)
FROM web_clicks WHERE occurred_at < :cutoff GROUP BY 1, 2, 3"""


@dataclass
class Timing:
    """One line of the results table."""

    rows: int
    scenario: str
    chunk: int
    tenure_s: float
    raw: harness.Runs
    peak_mb: float | None = None

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
            "tenure_s": self.tenure_s,
            "raw_s": self.raw,
            "ratio": self.ratio,
            "target": str(target),
            "met": target.met(self.ratio),
            "peak_mb": self.peak_mb,
        }


@dataclass
class Memory:
    """Peak resident memory of one Tenure run in its own process."""

    rows: int
    scenario: str
    chunk: int
    baseline_mb: float
    peak_mb: float
    seconds: float
    processed: int


@dataclass
class Results:
    timings: list[Timing] = field(default_factory=list)
    memory: list[Memory] = field(default_factory=list)
    cli: list[tuple[str, float]] = field(default_factory=list)


class Bench:
    """A throwaway PostgreSQL server, seeded template databases and their copies."""

    def __init__(self, workdir: Path, layout: str) -> None:
        self.workdir = workdir
        self.layout = layout
        self.server = PostgresServer.start()
        wait_until_ready(self.server.admin_url)
        self.admin = create_engine(self.server.admin_url, isolation_level="AUTOCOMMIT")
        # A vacuum of one side's dead rows must not run during the other side's timing.
        self.set_server("autovacuum", "off")
        with self.admin.connect() as connection:
            self.version = str(connection.execute(text("SHOW server_version")).scalar_one())
        self.policies = {s: self._write_policy(s) for s in ACTIONS}
        loaded = load_policy(self.policies["A"], {"BENCH_URL": self.server.url("postgres")})
        (plan,) = plan_rules(loaded.policy, PolicyClock.at(loaded.policy.timezone, NOW))
        self.cutoff = plan.cutoff
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


def check_rollups(tenure_url: str, raw_url: str, deleted: int) -> None:
    """Tenure's rollup cells hold the deleted rows, cell for cell as the raw GROUP BY."""
    agg = rollup_table_name("web_clicks", ROLLUP)
    cells = (
        "SELECT period_start, dim_feature, dim_country, sum(n)::bigint, sum(sum_response_ms)"
        f" FROM {agg} GROUP BY 1, 2, 3"
    )
    raw_cells = (
        "SELECT period_start, feature, country, n, sum_response_ms FROM raw_views_by_feature"
    )
    fetched = []
    for url, query in ((tenure_url, cells), (raw_url, raw_cells)):
        with connect(url) as engine, engine.connect() as connection:
            rows = connection.execute(text(query))
            fetched.append({tuple(r[:3]): (int(r[3]), float(r[4] or 0)) for r in rows})
    tenure, raw = fetched
    tenure_n = sum(n for n, _ in tenure.values())
    raw_n = sum(n for n, _ in raw.values())
    harness.check(tenure_n == deleted, f"rollup counts {tenure_n:,} != rows deleted {deleted:,}")
    harness.check(raw_n == deleted, f"raw aggregate counts {raw_n:,} != rows deleted {deleted:,}")
    harness.check(tenure == raw, f"rollup cells differ: {len(tenure.keys() ^ raw.keys())} keys")


def scenario(
    bench: Bench, seed: str, rows: int, name: str, chunks: list[int], repeat: int
) -> list[Timing]:
    """Tenure at each chunk size and raw SQL (median of `repeat` runs), each run on its
    own copy of `seed`."""
    raw_times: list[float] = []
    for attempt in range(repeat):
        if attempt:
            bench.drop("raw")
        raw_url = bench.copy(seed, "raw")
        before, expired = bench.counts(raw_url)
        seconds, raw_deleted = run_raw(raw_url, name, bench.cutoff)
        raw_times.append(seconds)
        harness.check(raw_deleted == expired, f"raw deleted {raw_deleted:,}, expected {expired:,}")
    raw = harness.Runs.of(raw_times)
    raw_s = raw.median
    raw_left = bench.counts(raw_url)[0]
    print(
        f"  raw SQL: {raw_s:.2f} s (median of {raw.listed()}),"
        f" deleted {raw_deleted:,} of {before:,}"
    )
    timings = []
    for chunk in chunks:
        url = bench.copy(seed, "tenure")
        tenure_s, report = run_tenure(bench.policies[name], url, chunk, bench.state_url())
        left = bench.counts(url)[0]
        processed = report.outcomes[0].processed
        harness.check(left == raw_left, f"Tenure left {left:,} rows, raw SQL {raw_left:,}")
        removed = before - left
        harness.check(processed == removed, f"Tenure reported {processed:,}, removed {removed:,}")
        if name == "B":
            check_rollups(url, raw_url, removed)
        print(
            f"  Tenure chunk {chunk:,}: {tenure_s:.2f} s, deleted {processed:,}"
            f" in {report.outcomes[0].chunks} chunks ({tenure_s / raw_s:.2f}x)"
        )
        timings.append(Timing(rows, name, chunk, tenure_s, raw))
        bench.drop("tenure")
    bench.drop("raw")
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
    memory = Memory(rows, name, chunk, measured.imports_mb, measured.peak_mb, seconds, processed)
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


def render(results: Results, layout: str, version: str) -> str:
    """The Markdown tables of the figures."""
    lines = [
        f"Tenure vs hand-written SQL on PostgreSQL {version}, layout {layout},"
        f" {os.cpu_count()} CPUs",
        "",
        harness.markdown_table(
            ["N", "Scenario", "Chunk", "Tenure s", "Raw SQL s", "Ratio", "Target", "Peak MB"],
            [
                [
                    f"{t.rows:,}",
                    f"{t.scenario} {SCENARIOS[t.scenario]}",
                    f"{t.chunk:,}",
                    f"{t.tenure_s:.2f}",
                    f"{t.raw_s:.2f}",
                    f"{t.ratio:.2f}x",
                    f"{TARGETS[t.scenario]} {TARGETS[t.scenario].verdict(t.ratio)}",
                    "-" if t.peak_mb is None else f"{t.peak_mb:.0f}",
                ]
                for t in results.timings
            ],
            "rlrrrrrr",
        ),
    ]
    if results.memory:
        lines += [
            "",
            f"Peak RSS of the Tenure process (VmHWM, target < {PEAK_TARGET_MB} MB)",
            "",
            harness.markdown_table(
                ["N", "Scenario", "Chunk", "Imports MB", "Peak MB", "Run s", "Rows"],
                [
                    [
                        f"{m.rows:,}",
                        f"{m.scenario} {SCENARIOS[m.scenario]}",
                        f"{m.chunk:,}",
                        f"{m.baseline_mb:.0f}",
                        f"{m.peak_mb:.0f}",
                        f"{m.seconds:.2f}",
                        f"{m.processed:,}",
                    ]
                    for m in results.memory
                ],
                "rlrrrrr",
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
        "postgresql": bench.version,
        "now": NOW,
        "cutoff": bench.cutoff,
        "timings": [t.figures() for t in results.timings],
        "memory": results.memory,
        "peak_target_mb": PEAK_TARGET_MB,
        "cli": [{"command": label, "seconds": seconds} for label, seconds in results.cli],
    }


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
    parser.add_argument("--repeat", type=int, default=3, help="raw SQL runs (median)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line runs")
    args = harness.parse_args(parser, argv, SMOKE, profile="cProfile A and B instead")
    chunks = [int(c) for c in args.chunks.split(",")]
    results = Results()
    with (
        harness.Benchmark("nightly_vs_sql", args) as run,
        tempfile.TemporaryDirectory(prefix="tenure-bench-") as tmp,
    ):
        bench = Bench(Path(tmp), args.layout)
        try:
            print(f"cut-off {bench.cutoff.isoformat()} (now {NOW.isoformat()})")
            seeding = time.perf_counter()
            seed = bench.seed(args.rows)
            print(f"seeded {args.rows:,} rows in {time.perf_counter() - seeding:.1f} s")
            if args.profile:
                for name in ("A", "B"):
                    profile(bench, seed, name, chunks[0], top=25)
                return
            for name in args.scenarios.split(","):
                print(f"scenario {name} ({SCENARIOS[name]}):")
                results.timings += scenario(bench, seed, args.rows, name, chunks, args.repeat)
            if not args.no_memory:
                print("memory (spawned process):")
                quarter = bench.seed(max(args.rows // 4, 1))
                for rows, source in ((args.rows, seed), (max(args.rows // 4, 1), quarter)):
                    for name in args.scenarios.split(","):
                        results.memory.append(measure_memory(bench, source, rows, name, chunks[0]))
                bench.drop(quarter)
                for t in results.timings:
                    t.peak_mb = next(
                        (
                            m.peak_mb
                            for m in results.memory
                            if (m.rows, m.scenario, m.chunk) == (t.rows, t.scenario, t.chunk)
                        ),
                        None,
                    )
            if not args.no_cli:
                print("command line:")
                results.cli = measure_cli(bench, seed)
            run.figures.update(figures(results, bench))
        finally:
            bench.close()
        print()
        print(render(results, args.layout, bench.version))


if __name__ == "__main__":
    main()
