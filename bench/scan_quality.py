"""Column-level precision and recall of ``classify_column`` on the labelled evaluation set.

    .venv/bin/python -m bench.scan_quality

Every column of ``bench.scan_eval_set`` is classified from its name, type family and
up to 1,000 sampled values. A column is *predicted* to hold entity E when its
confidence for E is at least ``LABEL_THRESHOLD`` (0.5, the classifier's own labelling
threshold: a name rule of medium strength or better, or a Wilson lower bound of the
matching share of at least one half). Each (column, entity) pair is then a true or false
positive or a false negative; precision and recall are computed per entity, overall,
and over the direct identifiers (e-mail, phone, SIN, card, IP, person name, postal code),
where the target is recall >= 0.98 and precision >= 0.95. Prints Markdown.

``--unseen-names`` draws people's names from locales whose names the given-name
recognizer of ``text_redaction`` was not built from (see ``build_eval_set``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import pandas as pd

from anonymizers.detection import LABEL_THRESHOLD, classify_column
from anonymizers.detection.classify import Value
from anonymizers.detection.entities import DIRECT_IDENTIFIERS, SCANNED_ENTITIES
from anonymizers.detection.text_engine import text_engine
from bench.scan_eval_set import EvalSet, Key, build_eval_set

SAMPLE = 1_000
SAMPLE_SEED = 0
TARGET_RECALL = 0.98
TARGET_PRECISION = 0.95


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


@dataclass
class Outcome:
    """Per-entity tallies, the errors (column, entity, confidence) and free-text timings."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    errors: list[tuple[str, Key, str, float]] = field(default_factory=list)
    free_text_rates: list[tuple[Key, int, float]] = field(default_factory=list)


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


def _row(label: str, tally: Tally) -> str:
    return (
        f"| {label} | {tally.tp + tally.fn} | {tally.tp} | {tally.fp} | {tally.fn} "
        f"| {_ratio(tally.precision)} | {_ratio(tally.recall)} |"
    )


def report(outcome: Outcome) -> tuple[str, bool]:
    """The Markdown report, and whether the direct-identifier target is met."""
    direct, overall = Tally(), Tally()
    lines = [
        f"Column labels at confidence >= {LABEL_THRESHOLD}.",
        "",
        "| entity | columns | TP | FP | FN | precision | recall |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entity, tally in outcome.tallies.items():
        lines.append(_row(entity + (" *" if entity in DIRECT_IDENTIFIERS else ""), tally))
        overall.add(tally)
        if entity in DIRECT_IDENTIFIERS:
            direct.add(tally)
    lines += [_row("**direct identifiers (*)**", direct), _row("**all entities**", overall)]
    met = (direct.recall or 0) >= TARGET_RECALL and (direct.precision or 0) >= TARGET_PRECISION
    lines += ["", f"Target (direct identifiers: recall >= {TARGET_RECALL}, precision >= "
              f"{TARGET_PRECISION}): {'met' if met else 'NOT met'}."]  # fmt: skip
    if outcome.errors:
        lines += ["", "| error | column | entity | confidence |", "|---|---|---|---:|"]
        lines += [
            f"| {kind} | {table}.{column} | {entity} | {confidence:.3f} |"
            for kind, (table, column), entity, confidence in outcome.errors
        ]
    if outcome.free_text_rates:
        lines += ["", "| free-text column | values | values/s |", "|---|---:|---:|"]
        lines += [
            f"| {table}.{column} | {count} | {rate:.0f} |"
            for (table, column), count, rate in outcome.free_text_rates
        ]
    return "\n".join(lines), met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--unseen-names",
        action="store_true",
        help="people's names from locales the given-name recognizer does not know",
    )
    unseen_names = parser.parse_args().unseen_names
    started = time.perf_counter()
    text_engine()  # load the models once, outside the per-column timings
    loaded = time.perf_counter()
    outcome = evaluate(build_eval_set(unseen_names=unseen_names))
    markdown, _ = report(outcome)
    print(markdown)
    classified = time.perf_counter() - loaded
    print(f"\nEngine load {loaded - started:.1f} s, classification {classified:.1f} s.")


if __name__ == "__main__":
    main()
