"""PII scan speed: a table scan at two sizes, and free-text detection against plain Presidio.

    .venv/bin/python -m bench.scan_speed                      # 100,000 and 5,000,000 rows
    .venv/bin/python -m bench.scan_speed --part text --notes 1000   # quick check

Two measurements, each a ratio to a baseline taken in the same run (never a timed
assertion):

* **Scan time against table size.** One ``contacts`` table (id, email, phone, full_name,
  city, notes, amount, created_at) is loaded at ``--rows-small`` and ``--rows-large``
  rows in a throwaway PostgreSQL server (``tests/support/pg_server.py``), filled on the server
  from small pools of Faker values, then vacuumed and analysed. ``scan_once`` scans a
  table the way Tenure does: reflect it, ``estimate_rows``, ``sample_values`` (up to
  1,000 values of every text, other, integer and numeric column, ``TABLESAMPLE SYSTEM``
  in the database) and ``classify_column`` on every column. Each size is scanned
  ``--repeat`` times with a fresh connector; the median is reported, and the ratio
  large / small against the target of at most 2.
* **Free-text throughput and recall.** ``--notes`` seeded support notes (half English
  from Faker en_CA, half French from fr_CA, twelve templates with PII and four without
  per language, phones in eight layouts), with the character span of every planted
  name, e-mail address and phone number. Tenure's batched path
  (``value_scan.analyse_texts``: spaCy ``nlp.pipe`` through ``BatchAnalyzerEngine``
  plus Tenure's recognizers) is timed against a plain loop of
  ``AnalyzerEngine.analyze`` (default registry, same spaCy models with all their pipes),
  both after a warm-up and both with ``detect_language`` per text; the target is 5 times
  the plain loop's texts per second. A planted span counts as found when a result of the
  same type overlaps it and ``entities_hit`` would count that result (score at least
  0.5, or any positive score when it covers the whole text, once nested results are
  settled by ``text_engine.settle_nested``); the same rule scores both paths. Recall
  with any positive score is shown too, since Presidio's own phone recognizer scores 0.4.

Prints Markdown. ``--part scan`` or ``--part text`` runs one half only. The notes name
people from Faker's en/fr lists, which the given-name recognizer
(``anonymizers.detection.recognizers``) is built from; ``--unseen-names`` draws them
from other locales instead (``bench.data.UNSEEN_NAME_LOCALES``), where only NER can
find them. The figures go to ``bench/results/scan_speed.json``; ``--smoke`` runs both
halves at the smallest sizes.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from sqlalchemy import Engine, create_engine, text

from anonymizers.detection import VALUE_FAMILIES, ColumnFinding, classify_column
from anonymizers.detection.entities import EMAIL_ADDRESS, PERSON, PHONE_NUMBER
from anonymizers.detection.text_engine import detect_language, text_engine
from anonymizers.detection.value_scan import analyse_texts, counted_results
from bench import harness
from bench.data import (
    TEXT_PII_SHARE,
    UNSEEN_NAME_LOCALES,
    Note,
    NoteWriter,
    Span,
    write_notes,
)
from bench.peers import baseline_analyzer
from connectors.protocol import ConnectorOptions
from connectors.sql.connector import SQLConnector
from tests.support.pg_server import PostgresServer, wait_until_ready

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

SEED: Final = 20_261_201
ENTITIES: Final = [PERSON, EMAIL_ADDRESS, PHONE_NUMBER]
SCAN_TARGET: Final = harness.Target(2.0)
SPEED_TARGET: Final = harness.Target(5.0, at_least=True)
SAMPLE_LIMIT: Final = 1_000
BATCH_SIZE: Final = 64
DATABASE: Final = "scan_bench"
#: Pools the big table is filled from (the notes pool is 40 % PII, like the column).
PEOPLE, CITIES, TABLE_NOTES, TABLE_PII_SHARE = 5_000, 400, 4_000, 0.4
EXAMPLES: Final = 4
SMOKE: Final = {"rows_small": 100, "rows_large": 200, "notes": 40, "repeat": 1}

# ---------------------------------------------------------------------------- table scan

CREATE_TABLE: Final = """
CREATE TABLE {table} (
    id bigint NOT NULL,
    email text,
    phone text,
    full_name text,
    city text,
    notes text,
    amount numeric(12, 2),
    created_at timestamptz
)"""
CREATE_POOLS: Final = (
    "CREATE TABLE pool_people (k integer PRIMARY KEY, full_name text, email text, phone text)",
    "CREATE TABLE pool_cities (k integer PRIMARY KEY, city text)",
    "CREATE TABLE pool_notes (k integer PRIMARY KEY, note text)",
)
# Pool rows are picked by multiplying the id by a prime: every column gets its own
# permutation of the pool, with no random() per row to slow the load.
FILL: Final = """
INSERT INTO {table}
SELECT g.i, p.email, CASE WHEN g.i % 10 = 3 THEN NULL ELSE p.phone END, p.full_name,
       c.city, CASE WHEN g.i % 5 = 1 THEN NULL ELSE n.note END,
       round((random() * 5000)::numeric, 2),
       timestamptz '2026-06-01 00:00+00' - random() * interval '1000 days'
FROM generate_series(1::bigint, :rows) AS g(i)
JOIN pool_people AS p ON p.k = (g.i * 7919) % :people
JOIN pool_cities AS c ON c.k = (g.i * 104729) % :cities
JOIN pool_notes AS n ON n.k = (g.i * 15485863) % :notes"""


@dataclass(frozen=True)
class ScanTiming:
    """One scan of one table, in seconds, and what it found."""

    reflect: float
    sample: float
    classify: float
    estimated_rows: int
    findings: dict[str, ColumnFinding]
    classify_by_column: dict[str, float]

    @property
    def total(self) -> float:
        return self.reflect + self.sample + self.classify


@dataclass(frozen=True)
class ScanRow:
    rows: int
    load_seconds: float
    runs: list[ScanTiming]

    def runs_of(self, metric: Callable[[ScanTiming], float]) -> harness.Runs:
        return harness.Runs.of(metric(run) for run in self.runs)

    def median(self, metric: Callable[[ScanTiming], float]) -> float:
        return self.runs_of(metric).median


def scan_once(connector: SQLConnector, table: str) -> ScanTiming:
    """Reflect ``table``, estimate its rows, sample its columns and classify each one."""
    started = time.perf_counter()
    info = connector.table_info(table)
    if info is None:
        raise LookupError(f"no table {table!r}")
    reflected = time.perf_counter()
    rows = connector.estimate_rows(table)
    sampled = [c.name for c in info.columns.values() if c.family in VALUE_FAMILIES]
    values = connector.sample_values(table, sampled, SAMPLE_LIMIT)
    sampled_at = time.perf_counter()
    findings: dict[str, ColumnFinding] = {}
    seconds: dict[str, float] = {}
    for name, column in info.columns.items():
        column_started = time.perf_counter()
        findings[name] = classify_column(name, column.family, values.get(name, []))
        seconds[name] = time.perf_counter() - column_started
    done = time.perf_counter()
    return ScanTiming(
        reflected - started, sampled_at - reflected, done - sampled_at, rows, findings, seconds
    )


def load_pools(engine: Engine, seed: int) -> None:
    """Small tables of Faker values the big tables are filled from."""
    writer = NoteWriter(seed)
    people = [writer.person(writer.language()) for _ in range(PEOPLE)]
    cities = [writer.fakers[writer.language()].city() for _ in range(CITIES)]
    notes = write_notes(TABLE_NOTES, seed + 7, TABLE_PII_SHARE)
    with engine.begin() as connection:
        for statement in CREATE_POOLS:
            connection.execute(text(statement))
        connection.execute(
            text("INSERT INTO pool_people VALUES (:k, :n, :e, :p)"),
            [{"k": k, "n": p.name, "e": p.email, "p": p.phone} for k, p in enumerate(people)],
        )
        connection.execute(
            text("INSERT INTO pool_cities VALUES (:k, :c)"),
            [{"k": k, "c": city} for k, city in enumerate(cities)],
        )
        connection.execute(
            text("INSERT INTO pool_notes VALUES (:k, :n)"),
            [{"k": k, "n": note.text} for k, note in enumerate(notes)],
        )
    _autocommit(engine, "ANALYZE pool_people", "ANALYZE pool_cities", "ANALYZE pool_notes")


def load_table(engine: Engine, table: str, rows: int) -> float:
    """Create and fill ``table`` with ``rows`` rows, index and analyse it: seconds taken."""
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(CREATE_TABLE.format(table=table)))
        connection.execute(text("SELECT setseed(0.2026)"))
        connection.execute(
            text(FILL.format(table=table)),
            {"rows": rows, "people": PEOPLE, "cities": CITIES, "notes": TABLE_NOTES},
        )
        connection.execute(text(f"ALTER TABLE {table} ADD PRIMARY KEY (id)"))
    _autocommit(engine, f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


def _autocommit(engine: Engine, *statements: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for statement in statements:
            connection.execute(text(statement))


def warm_up_classifier(seed: int) -> None:
    """Load the models and compile the recognizers before anything is timed."""
    text_engine()
    notes = [note.text for note in write_notes(harness.WARM_UP, seed + 99, 1.0)]
    classify_column("notes", "text", notes)
    classify_column("full_name", "text", ["Marie Tremblay", "John Smith"])


def run_scans(sizes: Sequence[int], repeat: int, seed: int) -> list[ScanRow]:
    server = PostgresServer.start()
    try:
        wait_until_ready(server.admin_url)
        _autocommit(create_engine(server.admin_url), f"CREATE DATABASE {DATABASE}")
        url = server.url(DATABASE)
        engine = create_engine(url)
        load_pools(engine, seed)
        loads = {rows: load_table(engine, f"contacts_{rows}", rows) for rows in sizes}
        engine.dispose()
        warm_up_classifier(seed)
        result = []
        for rows in sizes:
            runs = []
            for _ in range(repeat):
                connector = SQLConnector("bench", url, ConnectorOptions(read_only=True))
                runs.append(scan_once(connector, f"contacts_{rows}"))
                connector.close()
            result.append(ScanRow(rows, loads[rows], runs))
        return result
    finally:
        server.stop()


def scan_ratios(rows: list[ScanRow]) -> tuple[float, float]:
    """Large over small: the total's medians, and estimate + sample's alone."""
    small, large = rows[0], rows[-1]
    total = large.runs_of(lambda r: r.total).ratio_to(small.runs_of(lambda r: r.total))
    sample = large.runs_of(lambda r: r.sample).ratio_to(small.runs_of(lambda r: r.sample))
    return total, sample


def print_scans(rows: list[ScanRow]) -> None:
    print("## Scan time against table size\n")
    print(f"Median of {len(rows[0].runs)} scans per size; each with a fresh connector.\n")
    headers = [
        "Rows",
        "Load + VACUUM ANALYZE s",
        "Estimated rows",
        "Reflect s",
        "Estimate + sample s",
        "Classify s",
        "Total s",
        "Runs (total s)",
    ]
    table = [
        [
            f"{row.rows:,}",
            f"{row.load_seconds:.1f}",
            f"{row.runs[-1].estimated_rows:,}",
            f"{row.median(lambda r: r.reflect):.3f}",
            f"{row.median(lambda r: r.sample):.3f}",
            f"{row.median(lambda r: r.classify):.2f}",
            f"{row.median(lambda r: r.total):.2f}",
            row.runs_of(lambda r: r.total).listed(),
        ]
        for row in rows
    ]
    print(harness.markdown_table(headers, table, "rrrrrrrl"))
    small, large = rows[0], rows[-1]
    ratio, sample_ratio = scan_ratios(rows)
    print(
        f"\nRatio {large.rows:,} / {small.rows:,} rows: total {ratio:.2f}x "
        f"(target {SCAN_TARGET}, {SCAN_TARGET.verdict(ratio)}); estimate + sample alone"
        f" {sample_ratio:.2f}x.\n"
    )
    print("Labels (confidence ≥ 0.5), values sampled and median classify seconds per column:\n")
    headers = ["Column", *(f"{row.rows:,} rows" for row in rows)]
    cells = [
        [column, *(_finding_cell(row, column) for row in rows)]
        for column in rows[0].runs[-1].findings
    ]
    print(harness.markdown_table(headers, cells))
    print()


def scan_figures(rows: list[ScanRow]) -> dict[str, object]:
    ratio, sample_ratio = scan_ratios(rows)
    return {
        "sizes": [
            {
                "rows": row.rows,
                "load_s": row.load_seconds,
                "estimated_rows": row.runs[-1].estimated_rows,
                "reflect_s": row.runs_of(lambda r: r.reflect),
                "sample_s": row.runs_of(lambda r: r.sample),
                "classify_s": row.runs_of(lambda r: r.classify),
                "total_s": row.runs_of(lambda r: r.total),
                "labels": {
                    column: sorted(finding.labels())
                    for column, finding in row.runs[-1].findings.items()
                },
            }
            for row in rows
        ],
        "ratio": ratio,
        "sample_ratio": sample_ratio,
        "target": str(SCAN_TARGET),
        "met": SCAN_TARGET.met(ratio),
    }


def _finding_cell(row: ScanRow, column: str) -> str:
    finding = row.runs[-1].findings[column]
    labels = ", ".join(sorted(finding.labels())) or "-"
    free = ", free text" if finding.free_text else ""
    seconds = row.median(lambda r: r.classify_by_column[column])
    return f"{labels} (n={finding.sample_size}{free}; {seconds:.2f} s)"


# ---------------------------------------------------------------------------- free text


@dataclass
class Tally:
    """Planted spans found, per entity, and results that hit no planted span."""

    planted: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    found_any_score: Counter[str] = field(default_factory=Counter)
    unplanted: Counter[str] = field(default_factory=Counter)
    missed: dict[str, list[str]] = field(default_factory=dict)
    unplanted_examples: dict[str, list[str]] = field(default_factory=dict)
    by_language: dict[str, Counter[str]] = field(default_factory=dict)


def tenure_path(texts: Sequence[str], batch_size: int) -> list[list[RecognizerResult]]:
    return analyse_texts(texts, ENTITIES, free_text=True, batch_size=batch_size)


def plain_loop(analyzer: AnalyzerEngine, texts: Sequence[str]) -> list[list[RecognizerResult]]:
    return [
        analyzer.analyze(text, language=detect_language(text), entities=ENTITIES) for text in texts
    ]


def counted(note_text: str, results: Sequence[RecognizerResult]) -> list[RecognizerResult]:
    """The results ``entities_hit`` counts (``value_scan.counted_results``): the recall
    rule is the scan's own."""
    return counted_results(note_text, results)


def score(notes: Sequence[Note], analysed: Sequence[Sequence[RecognizerResult]]) -> Tally:
    tally = Tally()
    for note, results in zip(notes, analysed, strict=True):
        kept = counted(note.text, results)
        language = tally.by_language.setdefault(note.language, Counter())
        for span in note.spans:
            tally.planted[span.entity] += 1
            language[f"planted {span.entity}"] += 1
            if any(_covers(result, span) for result in kept):
                tally.found[span.entity] += 1
                language[f"found {span.entity}"] += 1
            else:
                tally.missed.setdefault(span.entity, []).append(_marked(note.text, span, results))
            if any(_covers(result, span) for result in results if result.score > 0):
                tally.found_any_score[span.entity] += 1
        for result in kept:
            if not any(_covers(result, span) for span in note.spans):
                tally.unplanted[result.entity_type] += 1
                tally.unplanted_examples.setdefault(result.entity_type, []).append(
                    f"{result.score:.2f} {note.text[result.start : result.end]!r} in {note.text!r}"
                )
    return tally


def _covers(result: RecognizerResult, span: Span) -> bool:
    return bool(
        result.entity_type == span.entity and result.start < span.end and span.start < result.end
    )


def _marked(note_text: str, span: Span, results: Sequence[RecognizerResult]) -> str:
    """The note with the missed span in brackets, and what was found on it (any type)."""
    on_it = [
        f"{r.entity_type} {r.score:.2f} {note_text[r.start : r.end]!r}"
        for r in results
        if r.start < span.end and span.start < r.end
    ]
    marked = f"{note_text[: span.start]}[[{note_text[span.start : span.end]}]]"
    return f"{marked}{note_text[span.end :]}  ← {'; '.join(on_it) or 'nothing'}"


@dataclass(frozen=True)
class TextResult:
    notes: int
    tenure_seconds: float
    plain_seconds: float
    tenure: Tally
    plain: Tally
    misdetected: int
    unseen_names: bool

    @property
    def rates(self) -> tuple[float, float]:
        """Texts per second: Tenure's, the plain loop's."""
        return self.notes / self.tenure_seconds, self.notes / self.plain_seconds

    @property
    def ratio(self) -> float:
        """Tenure's texts per second over the plain loop's."""
        return harness.ratio(self.plain_seconds, self.tenure_seconds)

    def figures(self) -> dict[str, object]:
        tenure_rate, plain_rate = self.rates
        return {
            "notes": self.notes,
            "unseen_names": self.unseen_names,
            "tenure_s": self.tenure_seconds,
            "plain_s": self.plain_seconds,
            "tenure_texts_per_s": tenure_rate,
            "plain_texts_per_s": plain_rate,
            "ratio": self.ratio,
            "target": str(SPEED_TARGET),
            "met": SPEED_TARGET.met(self.ratio),
            "language_misdetected": self.misdetected,
            "recall": {
                side: {
                    "planted": dict(tally.planted),
                    "found": dict(tally.found),
                    "found_any_score": dict(tally.found_any_score),
                    "unplanted": dict(tally.unplanted),
                }
                for side, tally in (("tenure", self.tenure), ("plain", self.plain))
            },
        }


def run_text(count: int, seed: int, batch_size: int, *, unseen_names: bool) -> TextResult:
    notes = write_notes(count, seed, TEXT_PII_SHARE, unseen_names=unseen_names)
    texts = [note.text for note in notes]
    analyzer = baseline_analyzer()
    text_engine()
    tenure_path(texts[: harness.WARM_UP], batch_size)
    plain_loop(analyzer, texts[: harness.WARM_UP])
    tenure_seconds, tenure = harness.timed(lambda: tenure_path(texts, batch_size))
    plain_seconds, plain = harness.timed(lambda: plain_loop(analyzer, texts))
    misdetected = sum(detect_language(note.text) != note.language for note in notes)
    return TextResult(
        count,
        tenure_seconds,
        plain_seconds,
        score(notes, tenure),
        score(notes, plain),
        misdetected,
        unseen_names,
    )


def print_text(result: TextResult) -> None:
    tenure_rate, plain_rate = result.rates
    ratio = result.ratio
    print("## Free-text detection: Tenure batched against a plain analyze() loop\n")
    if result.unseen_names:
        print(f"Names from {', '.join(UNSEEN_NAME_LOCALES)} (`--unseen-names`).\n")
    print(
        f"{result.notes:,} support notes; entities {', '.join(ENTITIES)}; "
        f"language detected differently from the generator's in {result.misdetected}.\n"
    )
    paths = [
        [
            "Tenure `analyse_texts` (batched)",
            f"{result.tenure_seconds:.2f}",
            f"{tenure_rate:,.0f}",
            f"{ratio:.2f}x",
            f"{SPEED_TARGET} {SPEED_TARGET.verdict(ratio)}",
        ],
        [
            "Plain `AnalyzerEngine.analyze` loop",
            f"{result.plain_seconds:.2f}",
            f"{plain_rate:,.0f}",
            "1.00x",
            "-",
        ],
    ]
    print(harness.markdown_table(["Path", "Seconds", "Texts/s", "Ratio", "Target"], paths, "lrrrr"))
    print(
        "\nRecall on planted spans (rule of `entities_hit`; “any score”: any positive score)"
        " and results on no planted span:\n"
    )
    headers = [
        "Entity",
        "Planted",
        "Tenure",
        "Plain loop",
        "Tenure, any score",
        "Plain, any score",
        "Tenure unplanted",
        "Plain unplanted",
    ]
    t, p = result.tenure, result.plain
    recall = [
        [
            entity or "all",
            f"{_total(t.planted, entity):,}",
            _share(t.found, t.planted, entity),
            _share(p.found, p.planted, entity),
            _share(t.found_any_score, t.planted, entity),
            _share(p.found_any_score, p.planted, entity),
            f"{_total(t.unplanted, entity):,}",
            f"{_total(p.unplanted, entity):,}",
        ]
        for entity in [*ENTITIES, None]
    ]
    print(harness.markdown_table(headers, recall, "lrrrrrrr"))
    print("\nRecall by the generator's language (Tenure / plain loop):\n")
    languages = [
        [
            language,
            *(
                f"{_language_recall(t, language, e)} / {_language_recall(p, language, e)}"
                for e in ENTITIES
            ),
        ]
        for language in sorted(t.by_language)
    ]
    print(harness.markdown_table(["Language", *ENTITIES], languages, "l" + "r" * len(ENTITIES)))
    for label, tally in (("Tenure", result.tenure), ("plain loop", result.plain)):
        print(f"\nMissed by {label} (first {EXAMPLES} per entity, span in [[ ]]):\n")
        for entity in ENTITIES:
            for example in tally.missed.get(entity, [])[:EXAMPLES]:
                print(f"- {entity}: {example}")
        print(f"\nResults of {label} on no planted span (first {EXAMPLES} per entity):\n")
        for entity in ENTITIES:
            for example in tally.unplanted_examples.get(entity, [])[:EXAMPLES]:
                print(f"- {entity}: {example}")
    print()


def _total(counts: Counter[str], entity: str | None) -> int:
    return counts[entity] if entity else sum(counts.values())


def _share(found: Counter[str], planted: Counter[str], entity: str | None) -> str:
    total = _total(planted, entity)
    return f"{_total(found, entity) / total:.3f}" if total else "-"


def _language_recall(tally: Tally, language: str, entity: str) -> str:
    counts = tally.by_language[language]
    planted = counts[f"planted {entity}"]
    return f"{counts[f'found {entity}'] / planted:.3f}" if planted else "-"


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows-small", type=int, default=100_000)
    parser.add_argument("--rows-large", type=int, default=5_000_000)
    parser.add_argument("--notes", type=int, default=5_000)
    parser.add_argument("--part", choices=("scan", "text", "all"), default="all")
    parser.add_argument("--repeat", type=int, default=3, help="scans per size (median)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="spaCy nlp.pipe")
    parser.add_argument(
        "--unseen-names",
        action="store_true",
        help="notes name people from locales the given-name recognizer does not list",
    )
    args = harness.parse_args(parser, argv, SMOKE, seed=SEED)
    with harness.Benchmark("scan_speed", args) as bench:
        if args.part in ("scan", "all"):
            rows = run_scans([args.rows_small, args.rows_large], args.repeat, args.seed)
            print_scans(rows)
            bench.figures["scan"] = scan_figures(rows)
        if args.part in ("text", "all"):
            text = run_text(args.notes, args.seed, args.batch_size, unseen_names=args.unseen_names)
            print_text(text)
            bench.figures["text"] = text.figures()


if __name__ == "__main__":
    main()
