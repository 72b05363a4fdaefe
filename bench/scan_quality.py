"""Column-level precision and recall of ``classify_column`` on the labelled evaluation set.

    .venv/bin/python -m bench.scan_quality          # 1,000 rows a table
    .venv/bin/python -m bench.scan_quality --list   # the set: columns, families, true labels

Every column of the evaluation set (``bench.data.build_eval_set``) is classified from its
name, type family and up to 1,000 sampled values. A column is *predicted* to hold entity
E when its confidence for E is at least ``LABEL_THRESHOLD`` (0.5, the classifier's own labelling
threshold: a name rule of medium strength or better, or a Wilson lower bound of the
matching share of at least one half). Each (column, entity) pair is then a true or false
positive or a false negative; precision and recall are computed per entity, overall,
and over the direct identifiers (e-mail, phone, SIN, card, IP, person name, postal code),
where the target is recall >= 0.98 and precision >= 0.95; then the columns as the
independent set (``bench/independent_set.py``, measured by ``bench/scan_peers.py``) judges
them: personal or not, and the personal entity types right. Prints Markdown. ``--rows``
sets the rows of each table (products: a fifth of that).

``--unseen-names`` draws people's names from locales whose names the given-name
recognizer was not built from (see ``build_eval_set``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import pandas as pd

from anonymizers.detection import LABEL_THRESHOLD, classify_column
from anonymizers.detection.classify import Value
from anonymizers.detection.entities import DIRECT_IDENTIFIERS, SCANNED_ENTITIES
from anonymizers.detection.text_engine import text_engine
from bench import harness, independent_set
from bench.data import EVAL_ROWS, EvalSet, Key, build_eval_set

SAMPLE = 1_000
SAMPLE_SEED = 0
TARGET_RECALL = 0.98
TARGET_PRECISION = 0.95
SMOKE = {"rows": 60}


@dataclass
class Tally:
    """True positives, false positives and false negatives of one group of entities."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, other: Tally) -> None:
        self.tp, self.fp, self.fn = self.tp + other.tp, self.fp + other.fp, self.fn + other.fn

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def figures(self) -> dict[str, object]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


@dataclass
class Outcome:
    """Per-entity tallies, the errors (column, entity, confidence) and free-text timings."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    errors: list[tuple[str, Key, str, float]] = field(default_factory=list)
    free_text_rates: list[tuple[Key, int, float]] = field(default_factory=list)
    predicted: dict[Key, frozenset[str]] = field(default_factory=dict)


def sample_values(series: pd.Series) -> list[Value]:
    """Up to ``SAMPLE`` values as plain Python objects (``None`` for missing)."""
    sampled = series.sample(min(SAMPLE, len(series)), random_state=SAMPLE_SEED)
    return [None if pd.isna(value) else value for value in sampled.astype(object).tolist()]


def evaluate(data: EvalSet) -> Outcome:
    outcome = Outcome(tallies={entity: Tally() for entity in SCANNED_ENTITIES})
    for (table, column), truth in data.truth.items():
        values = sample_values(data.tables[table][column])
        started = time.perf_counter()
        finding = classify_column(column, data.families[(table, column)], values)
        elapsed = time.perf_counter() - started
        if finding.free_text:
            outcome.free_text_rates.append(((table, column), len(values), len(values) / elapsed))
        predicted = finding.labels(LABEL_THRESHOLD)
        outcome.predicted[(table, column)] = predicted
        for entity in SCANNED_ENTITIES:
            tally = outcome.tallies[entity]
            confidence = finding.entities.get(entity, 0.0)
            if entity in predicted and entity in truth:
                tally.tp += 1
            elif entity in predicted:
                tally.fp += 1
                outcome.errors.append(("false positive", (table, column), entity, confidence))
            elif entity in truth:
                tally.fn += 1
                outcome.errors.append(("false negative", (table, column), entity, confidence))
    return outcome


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _row(label: str, tally: Tally) -> list[object]:
    return [
        label,
        tally.tp + tally.fn,
        tally.tp,
        tally.fp,
        tally.fn,
        _ratio(tally.precision),
        _ratio(tally.recall),
    ]


def totals(outcome: Outcome) -> tuple[Tally, Tally]:
    """The direct identifiers' tallies summed, and all entities'."""
    direct, overall = Tally(), Tally()
    for entity, tally in outcome.tallies.items():
        overall.add(tally)
        if entity in DIRECT_IDENTIFIERS:
            direct.add(tally)
    return direct, overall


def target_met(direct: Tally) -> bool:
    return (direct.recall or 0) >= TARGET_RECALL and (direct.precision or 0) >= TARGET_PRECISION


def by_person(outcome: Outcome, data: EvalSet) -> independent_set.Score:
    """The columns judged as the independent set judges them: personal or not, and the
    personal entity types right (``independent_set.score``)."""
    truth = {key: frozenset(labels) for key, labels in data.truth.items()}
    return independent_set.score(outcome.predicted, truth)


def report(outcome: Outcome, data: EvalSet) -> tuple[str, bool]:
    """The Markdown report, and whether the direct-identifier target is met."""
    direct, overall = totals(outcome)
    columns = by_person(outcome, data)
    rows = [
        _row(entity + (" *" if entity in DIRECT_IDENTIFIERS else ""), tally)
        for entity, tally in outcome.tallies.items()
    ]
    rows += [_row("**direct identifiers (*)**", direct), _row("**all entities**", overall)]
    headers = ["entity", "columns", "TP", "FP", "FN", "precision", "recall"]
    met = target_met(direct)
    lines = [
        f"Column labels at confidence >= {LABEL_THRESHOLD}.",
        "",
        harness.markdown_table(headers, rows, "lrrrrrr"),
        "",
        f"Target (direct identifiers: recall >= {TARGET_RECALL}, precision >= "
        f"{TARGET_PRECISION}): {'met' if met else 'NOT met'}.",
        "",
        f"Personal columns: precision {columns.personal_precision:.3f}, recall "
        f"{columns.personal_recall:.3f}; entity types right {columns.type_accuracy:.3f} "
        f"({columns.typed_right} of {columns.typed_both}).",
    ]
    if outcome.errors:
        errors = [
            [kind, f"{table}.{column}", entity, f"{confidence:.3f}"]
            for kind, (table, column), entity, confidence in outcome.errors
        ]
        lines += [
            "",
            harness.markdown_table(["error", "column", "entity", "confidence"], errors, "lllr"),
        ]
    if outcome.free_text_rates:
        rates = [
            [f"{table}.{column}", count, f"{rate:.0f}"]
            for (table, column), count, rate in outcome.free_text_rates
        ]
        lines += [
            "",
            harness.markdown_table(["free-text column", "values", "values/s"], rates, "lrr"),
        ]
    return "\n".join(lines), met


def figures(outcome: Outcome, data: EvalSet) -> dict[str, object]:
    direct, overall = totals(outcome)
    columns = by_person(outcome, data)
    return {
        "personal_precision": columns.personal_precision,
        "personal_recall": columns.personal_recall,
        "type_accuracy": columns.type_accuracy,
        "entities": {entity: tally.figures() for entity, tally in outcome.tallies.items()},
        "direct_identifiers": direct.figures(),
        "all_entities": overall.figures(),
        "target_met": target_met(direct),
        "errors": [
            {"kind": kind, "column": f"{table}.{column}", "entity": entity, "confidence": c}
            for kind, (table, column), entity, c in outcome.errors
        ],
        "free_text_values_per_second": {
            f"{table}.{column}": rate for (table, column), _, rate in outcome.free_text_rates
        },
    }


def list_set(data: EvalSet) -> None:
    """The columns of the set, their type families and true labels."""
    labelled = sum(bool(labels) for labels in data.truth.values())
    print(f"{len(data.truth)} columns in {len(data.tables)} tables, {labelled} with PII")
    for (table, column), labels in data.truth.items():
        print(f"  {table}.{column} ({data.families[(table, column)]}): {sorted(labels) or '-'}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--unseen-names",
        action="store_true",
        help="people's names from locales the given-name recognizer does not know",
    )
    parser.add_argument("--rows", type=int, default=EVAL_ROWS, help="rows of each table")
    parser.add_argument("--list", action="store_true", help="list the set's columns and labels")
    args = harness.parse_args(parser, argv, SMOKE)
    data = build_eval_set(unseen_names=args.unseen_names, rows=args.rows)
    if args.list:
        list_set(data)
        return
    with harness.Benchmark("scan_quality", args) as bench:
        load_s, _ = harness.timed(text_engine)  # the models, outside the per-column timings
        classify_s, outcome = harness.timed(lambda: evaluate(data))
        markdown, _ = report(outcome, data)
        print(markdown)
        print(f"\nEngine load {load_s:.1f} s, classification {classify_s:.1f} s.")
        bench.figures.update(figures(outcome, data), engine_load_s=load_s, classify_s=classify_s)


if __name__ == "__main__":
    main()
