"""Tenure's operators against presidio-structured on one customer DataFrame, in the same run.

    pip install -e ".[bench]"     # presidio-structured, installed for this benchmark only
    .venv/bin/python -m bench.anonymize_vs_structured                             # 200,000 rows
    .venv/bin/python -m bench.anonymize_vs_structured --rows 20000 --text-rows 200  # quick check

One seeded DataFrame (Faker en_CA and fr_CA, mixed) holds ``email``, ``phone``, ``name``,
``postal_code`` and a support ``note``, in pandas' ``str`` dtype with Python storage
whether or not pyarrow is installed (see ``STRING``). 85 % of the notes embed their row's
name, e-mail or phone (``bench.data.NoteWriter``); the planted values' spans are
kept per row, so that recall can be measured.

* **Structured columns** (target: Tenure at least 20 times faster). Each column goes
  through Tenure's operator (``create_operator(...).operate(series)``) and through
  ``StructuredEngine(PandasDataProcessor()).anonymize`` with a fixed
  ``StructuredAnalysis`` entity mapping, so presidio-structured's column detection is
  not timed. Pairs: ``pseudonym`` / ``hash`` (sha256 with a fixed salt: salted, not
  keyed like Tenure's HMAC), ``mask`` / ``mask`` (same parameters), ``replace`` /
  ``replace``, ``generalize to=fsa`` / ``custom`` with ``lambda x: x[:3]``. Outputs are
  checked before anything is timed. presidio-structured writes into the DataFrame it is
  given, so each of its runs gets a copy made outside the timer.
* **Free text** (target: no slower at equal or better recall). The first
  ``--text-rows`` notes go through Tenure's ``redact_text`` operator and through a plain
  ``AnalyzerEngine.analyze`` + ``AnonymizerEngine.anonymize`` per text (presidio-structured
  only applies one operator to a whole cell; it does not look inside text). The analyzer
  is ``bench.peers.baseline_analyzer``: the same pinned spaCy models, offline, with
  Presidio's default registry; its language comes from Tenure's ``detect_language``. A
  planted value counts as found when it no longer appears in the output. 2,000 notes by
  default: about 25 s on 2 cores, the whole script about 2.5 minutes.

Times are medians of ``--repeats`` (structured) and ``--text-repeats`` (free text) runs,
taken with ``time.perf_counter`` after a warm-up; the figures go to
``bench/results/anonymize_vs_structured.json``. ``--profile`` runs Tenure's structured
part once under cProfile. Nothing reaches the network. The pseudonym key is the
benchmark's own (``bench/__init__.py``), long enough for ``pseudonym``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final

import pandas as pd

from anonymizers.registry import create_operator
from bench import harness
from bench.data import TEXT_PII_SHARE, Note, NoteWriter, Person, Recall, write_notes
from bench.peers import baseline_engines, presidio_redact_all

if TYPE_CHECKING:
    pass

SEED: Final = 20_261_208
STRUCTURED_TARGET: Final = harness.Target(20.0, at_least=True)
TEXT_TARGET: Final = harness.Target(1.0, at_least=True)
SMOKE: Final = {"rows": 300, "text_rows": 20, "repeats": 1}
SALT: Final = os.environ["TENURE_PSEUDONYM_KEY"]
#: pandas' default ``str`` dtype, pinned to Python storage: with pyarrow installed the
#: default becomes Arrow storage, where each of presidio-structured's cell-by-cell writes
#: (``DataFrame.at``) costs more the longer the column (131 s for one 200,000-row column
#: instead of about 2.5 s), which would measure pyarrow rather than the operators.
STRING: Final = pd.StringDtype(storage="python", na_value=float("nan"))
MASK: Final = {"masking_char": "*", "chars_to_mask": 12, "from_end": False}
_TAG: Final = re.compile(r"<[A-Z][A-Z_]*>")
INSTALL_HINT: Final = (
    'presidio-structured is not installed: pip install -e ".[bench]" '
    "(or .venv/bin/pip install presidio-structured)"
)


@dataclass(frozen=True)
class Pair:
    """One column, Tenure's operator for it and presidio-structured's nearest equivalent."""

    column: str
    entity: str  # the column's entity in presidio-structured's fixed mapping
    tenure: tuple[str, dict[str, object]]
    presidio: tuple[str, dict[str, object]]
    label: str


PAIRS: Final = (
    Pair(
        "email",
        "EMAIL_ADDRESS",
        ("pseudonym", {}),
        ("hash", {"hash_type": "sha256", "salt": SALT}),
        "pseudonym (HMAC) / hash (salted sha256)",
    ),
    Pair("phone", "PHONE_NUMBER", ("mask", MASK), ("mask", MASK), "mask / mask"),
    Pair(
        "name",
        "PERSON",
        ("replace", {"new_value": "<PERSON>"}),
        ("replace", {"new_value": "<PERSON>"}),
        "replace / replace",
    ),
    Pair(
        "postal_code",
        "CA_POSTAL_CODE",
        ("generalize", {"to": "fsa"}),
        ("custom", {"lambda": lambda code: code[:3]}),
        "generalize fsa / custom x[:3]",
    ),
)


def require_presidio_structured() -> None:
    """Exit with the install command when it is missing: it is a benchmark-only extra."""
    try:
        import presidio_structured  # noqa: F401
    except ImportError:
        sys.exit(INSTALL_HINT)


# ---------------------------------------------------------------------------- data


class _RowWriter(NoteWriter):
    """Remembers the person of the last note, so a row's columns are the note's person."""

    last: Person

    def person(self, language: str) -> Person:
        self.last = super().person(language)
        return self.last


def customers(rows: int, seed: int) -> tuple[pd.DataFrame, list[Note]]:
    """The DataFrame and, per row, its note with the spans of the values planted in it."""
    writer = _RowWriter(seed)
    records: list[tuple[str, str, str, str, str]] = []
    notes: list[Note] = []
    for _ in range(rows):
        note = writer.note(TEXT_PII_SHARE)
        person = writer.last
        postal_code = writer.fakers[note.language].postcode()
        records.append((person.email, person.phone, person.name, postal_code, note.text))
        notes.append(note)
    frame = pd.DataFrame.from_records(
        records, columns=["email", "phone", "name", "postal_code", "note"]
    )
    return frame.astype(STRING), notes


# ---------------------------------------------------------------------------- structured


def tenure_column(pair: Pair, values: pd.Series) -> pd.Series:
    name, params = pair.tenure
    return create_operator(name, params).operate(values)


def tenure_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every structured column through its operator, as Tenure writes them back."""
    return pd.DataFrame({pair.column: tenure_column(pair, frame[pair.column]) for pair in PAIRS})


def presidio_frame(frame: pd.DataFrame, pairs: Sequence[Pair]) -> pd.DataFrame:
    """presidio-structured on ``frame``, which it overwrites: pass a copy."""
    from presidio_anonymizer.entities import OperatorConfig
    from presidio_structured import PandasDataProcessor, StructuredAnalysis, StructuredEngine

    analysis = StructuredAnalysis(entity_mapping={pair.column: pair.entity for pair in pairs})
    operators = {pair.entity: OperatorConfig(*pair.presidio) for pair in pairs}
    engine = StructuredEngine(data_processor=PandasDataProcessor())
    result = engine.anonymize(frame, analysis, operators)
    assert isinstance(result, pd.DataFrame)
    return result


def check_structured(frame: pd.DataFrame) -> dict[str, int]:
    """Both sides' outputs, checked once before timing; returns distinct inputs per column.

    No original value may survive on either side; mask, replace and the postal code must
    come out identical on both sides; hashes and pseudonyms must keep values apart.
    """
    check = harness.check
    tenure = tenure_frame(frame)
    presidio = presidio_frame(frame.copy(), PAIRS)
    distinct: dict[str, int] = {}
    for pair in PAIRS:
        original, ours, theirs = frame[pair.column], tenure[pair.column], presidio[pair.column]
        check(len(ours) == len(theirs) == len(frame), f"{pair.column}: rows lost")
        check(bool(ours.notna().all()), f"{pair.column}: Tenure produced nulls")
        kept = f"{pair.column}: a value came out unchanged"
        check(not (ours.to_numpy() == original.to_numpy()).any(), f"Tenure, {kept}")
        check(not (theirs.to_numpy() == original.to_numpy()).any(), f"presidio, {kept}")
        distinct[pair.column] = original.nunique()
        if pair.column == "email":
            check(bool(ours.str.fullmatch(r"psn_default_[a-z2-7]{20}").all()), "pseudonym form")
            check(bool(theirs.str.fullmatch(r"[0-9a-f]{64}").all()), "sha256 form")
            same = ours.nunique() == theirs.nunique() == distinct[pair.column]
            check(same, "pseudonyms or hashes merged distinct e-mails")
        else:
            check(ours.tolist() == theirs.tolist(), f"{pair.column}: the two sides differ")
    return distinct


@dataclass
class Timing:
    """Median seconds of both sides for one part, and every run's figure."""

    part: str
    rows: int
    tenure_runs: list[float]
    presidio_runs: list[float]
    target: harness.Target
    note: str = ""

    @property
    def tenure(self) -> float:
        return harness.Runs.of(self.tenure_runs).median

    @property
    def presidio(self) -> float:
        return harness.Runs.of(self.presidio_runs).median

    @property
    def ratio(self) -> float:
        """presidio's time over Tenure's: how many times faster Tenure is."""
        return harness.Runs.of(self.presidio_runs).ratio_to(harness.Runs.of(self.tenure_runs))

    @property
    def met(self) -> bool:
        return self.target.met(self.ratio)

    def figures(self) -> dict[str, object]:
        return {
            "part": self.part,
            "rows": self.rows,
            "operators": self.note,
            "tenure_s": harness.Runs.of(self.tenure_runs),
            "presidio_s": harness.Runs.of(self.presidio_runs),
            "ratio": self.ratio,
            "target": str(self.target),
            "met": self.met,
        }


def seconds(run: Callable[[], object]) -> float:
    return harness.timed(run)[0]


def timed_presidio(frame: pd.DataFrame, pairs: Sequence[Pair]) -> float:
    """One presidio-structured run on a fresh copy; the copy is not timed."""
    copy = frame[[pair.column for pair in pairs]].copy()
    return seconds(lambda: presidio_frame(copy, pairs))


def run_structured(frame: pd.DataFrame, repeats: int) -> list[Timing]:
    """Per column, then all four columns in one call; runs of both sides alternate."""
    timings = []
    for pair in PAIRS:
        values = frame[pair.column]
        tenure_runs, presidio_runs = [], []
        for _ in range(repeats):
            tenure_runs.append(seconds(partial(tenure_column, pair, values)))
            presidio_runs.append(timed_presidio(frame, [pair]))
        timings.append(
            Timing(
                pair.column, len(frame), tenure_runs, presidio_runs, STRUCTURED_TARGET, pair.label
            )
        )
    tenure_runs, presidio_runs = [], []
    for _ in range(repeats):
        tenure_runs.append(seconds(lambda: tenure_frame(frame)))
        presidio_runs.append(timed_presidio(frame, PAIRS))
    timings.append(
        Timing(
            "all four columns",
            len(frame),
            tenure_runs,
            presidio_runs,
            STRUCTURED_TARGET,
            "one call per side",
        )
    )
    return timings


def profile_structured(frame: pd.DataFrame, top: int = 20) -> str:
    """Where Tenure's time goes on the four columns: cProfile, by own time and cumulative."""
    profiler = harness.Profile()
    with profiler.running():
        tenure_frame(frame)
    return profiler.report(top, ("tottime", "cumulative"))


# ---------------------------------------------------------------------------- free text


def measure_recall(notes: Sequence[Note], outputs: Sequence[str]) -> tuple[Recall, int]:
    """Recall of the planted values, and the tags the outputs hold."""
    recall = Recall()
    tags = 0
    for note, output in zip(notes, outputs, strict=True):
        tags += len(_TAG.findall(output))
        for span in note.spans:
            recall.add(span.entity, note.text[span.start : span.end], output, repr(output))
    return recall, tags


def tenure_redact(texts: Sequence[str]) -> list[str]:
    redacted = create_operator("redact_text", {}).operate(pd.Series(texts, dtype=object))
    return [str(text) for text in redacted]


@dataclass
class TextResult:
    timing: Timing
    tenure: Recall
    presidio: Recall
    tenure_tags: int
    presidio_tags: int

    @property
    def met(self) -> bool:
        return self.timing.met and self.tenure.share(self.tenure.gone) >= self.presidio.share(
            self.presidio.gone
        )

    def figures(self) -> dict[str, object]:
        return {
            **self.timing.figures(),
            "met": self.met,
            "recall": {"tenure": self.tenure.figures(), "presidio": self.presidio.figures()},
            "tags": {"tenure": self.tenure_tags, "presidio": self.presidio_tags},
        }


def run_text(notes: Sequence[Note], repeats: int, seed: int) -> TextResult:
    """Both redactions on the same notes, after both engines are loaded and warmed up."""
    texts = [note.text for note in notes]
    analyzer, anonymizer = baseline_engines()
    warm_up = [note.text for note in write_notes(harness.WARM_UP, seed + 99, 1.0)]
    tenure_redact(warm_up)
    presidio_redact_all(analyzer, anonymizer, warm_up)
    tenure_runs, presidio_runs = [], []
    ours: list[str] = []
    theirs: list[str] = []
    for _ in range(repeats):
        seconds, ours = harness.timed(lambda: tenure_redact(texts))
        tenure_runs.append(seconds)
        seconds, theirs = harness.timed(lambda: presidio_redact_all(analyzer, anonymizer, texts))
        presidio_runs.append(seconds)
    timing = Timing(
        "free text", len(texts), tenure_runs, presidio_runs, TEXT_TARGET, "redact_text / analyze"
    )
    (tenure, tenure_tags), (presidio, presidio_tags) = (
        measure_recall(notes, ours),
        measure_recall(notes, theirs),
    )
    return TextResult(timing, tenure, presidio, tenure_tags, presidio_tags)


# ---------------------------------------------------------------------------- report


def print_structured(timings: Sequence[Timing], distinct: dict[str, int]) -> None:
    first = timings[0]
    print(f"## Structured columns ({first.rows:,} rows, median of {len(first.tenure_runs)})\n")
    headers = [
        "Part",
        "Operators (Tenure / presidio-structured)",
        "Distinct values",
        "Tenure s",
        "presidio-structured s",
        "Ratio",
        "Target",
        "",
    ]
    rows = []
    for timing in timings:
        count = distinct.get(timing.part)
        rows.append(
            [
                timing.part,
                timing.note,
                f"{count:,}" if count else "-",
                f"{timing.tenure:.4f}",
                f"{timing.presidio:.3f}",
                f"{timing.ratio:,.1f}x",
                str(timing.target),
                timing.target.verdict(timing.ratio),
            ]
        )
    print(harness.markdown_table(headers, rows, "llrrrrrl"))
    print(
        "\nThe e-mail pair is not equivalent in strength: presidio's `hash` is sha256 of the "
        "value and a fixed salt (salted, not keyed), Tenure's `pseudonym` an HMAC-SHA256.\n"
    )


def print_text(result: TextResult) -> None:
    timing = result.timing
    print(f"## Free text ({timing.rows:,} notes, median of {len(timing.tenure_runs)})\n")
    paths = [
        [
            "Tenure `redact_text`",
            f"{timing.tenure:.2f}",
            f"{timing.rows / timing.tenure:,.0f}",
            f"{timing.ratio:.2f}x",
            f"{timing.target} at equal recall",
            "met" if result.met else "**missed**",
        ],
        [
            "Presidio analyze + anonymize",
            f"{timing.presidio:.2f}",
            f"{timing.rows / timing.presidio:,.0f}",
            "1.00x",
            "-",
            "",
        ],
    ]
    headers = ["Path", "Seconds", "Texts/s", "Ratio", "Target", ""]
    print(harness.markdown_table(headers, paths, "lrrrrl"))
    print(
        "\nRecall: planted value gone from the output (and, stricter, no piece of it left: "
        "no run of 3+ letters or digits of it, digits only for phones)\n"
    )
    ours, theirs = result.tenure, result.presidio
    rows = []
    for entity in [*sorted(ours.planted), None]:
        planted = ours.planted[entity] if entity else sum(ours.planted.values())
        rows.append(
            [
                entity or "all",
                f"{planted:,}",
                f"{ours.share(ours.gone, entity):.3f}",
                f"{theirs.share(theirs.gone, entity):.3f}",
                f"{ours.share(ours.nothing_left, entity):.3f}",
                f"{theirs.share(theirs.nothing_left, entity):.3f}",
            ]
        )
    headers = [
        "Entity",
        "Planted",
        "Tenure",
        "Presidio",
        "Tenure, nothing left",
        "Presidio, nothing left",
    ]
    print(harness.markdown_table(headers, rows, "lrrrrr"))
    print(
        f"\nTags per note: Tenure {result.tenure_tags / timing.rows:.2f}, "
        f"Presidio {result.presidio_tags / timing.rows:.2f}.\n"
    )
    for label, recall in (("Tenure", ours), ("Presidio", theirs)):
        for example in recall.missed[:3]:
            print(f"- missed by {label}: {example}")
    print()


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="DataFrame rows")
    parser.add_argument(
        "--text-rows", type=int, default=2_000, help="notes redacted (0: skip free text)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="structured runs (median)")
    parser.add_argument("--text-repeats", type=int, default=1, help="free-text runs (median)")
    args = harness.parse_args(
        parser, argv, SMOKE, seed=SEED, profile="cProfile Tenure's structured part"
    )
    require_presidio_structured()
    if args.text_rows > args.rows:
        parser.error("--text-rows cannot exceed --rows")
    with harness.Benchmark("anonymize_vs_structured", args) as bench:
        built, (frame, notes) = harness.timed(lambda: customers(args.rows, args.seed))
        print(", ".join(f"{name} {version}" for name, version in harness.versions().items()))
        print()
        with_pii = sum(bool(note.spans) for note in notes)
        print(
            f"DataFrame: {len(frame):,} rows ({frame['email'].dtype!r}) built in {built:.1f} s; "
            f"{with_pii:,} notes ({with_pii / len(notes):.1%}) embed their row's name, e-mail "
            "or phone.\n"
        )
        distinct = check_structured(frame)
        print(
            "Checks passed: no original value kept; mask, replace and FSA identical on both"
            " sides.\n"
        )
        timings = run_structured(frame, args.repeats)
        print_structured(timings, distinct)
        bench.figures.update(
            distinct_values=distinct, structured=[timing.figures() for timing in timings]
        )
        if args.text_rows:
            text = run_text(notes[: args.text_rows], args.text_repeats, args.seed)
            print_text(text)
            bench.figures["text"] = text.figures()
        if args.profile:
            print("## cProfile: Tenure, all four columns\n\n```")
            print(profile_structured(frame))
            print("```\n")


if __name__ == "__main__":
    main()
