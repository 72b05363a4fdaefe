"""Tenure's operators against presidio-structured on one customer DataFrame, in the same run.

    pip install -e ".[bench]"     # presidio-structured, installed for this benchmark only
    .venv/bin/python -m bench.anonymize_vs_structured                             # 200,000 rows
    .venv/bin/python -m bench.anonymize_vs_structured --rows 20000 --text-rows 200  # quick check

One seeded DataFrame (Faker en_CA and fr_CA, mixed) holds ``email``, ``phone``, ``name``,
``postal_code`` and a support ``note``, in pandas' ``str`` dtype with Python storage
whether or not pyarrow is installed (see ``STRING``). 85 % of the notes embed their row's
name, e-mail or phone (``bench.scan_speed.NoteWriter``); the planted values' spans are
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
  is ``bench.scan_speed.baseline_analyzer``: the same pinned spaCy models, offline, with
  Presidio's default registry; its language comes from Tenure's ``detect_language``. A
  planted value counts as found when it no longer appears in the output. 2,000 notes by
  default: about 25 s on 2 cores, the whole script about 2.5 minutes.

Times are medians of ``--repeats`` (structured) and ``--text-repeats`` (free text) runs,
taken with ``time.perf_counter`` after a warm-up. ``--json PATH`` writes the figures;
``--profile`` runs Tenure's structured part once under cProfile. Nothing reaches the
network.
"""

from __future__ import annotations

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
# A benchmark-only key, long enough for ``pseudonym`` (``MIN_KEY_BYTES``).
os.environ.setdefault("TENURE_PSEUDONYM_KEY", "bench-only-pseudonym-key-2026")

import argparse
import cProfile
import importlib.metadata
import io
import json
import platform
import pstats
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

import anonymizers.basic
import anonymizers.generalize
import anonymizers.keyed
import anonymizers.text_redaction  # noqa: F401  (the imports register the operators)
from anonymizers.detection.text_engine import detect_language, text_engine
from anonymizers.operators import create_operator
from bench.scan_speed import (
    TEXT_PII_SHARE,
    WARM_UP,
    Note,
    NoteWriter,
    Person,
    baseline_analyzer,
    write_notes,
)

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

SEED: Final = 20_261_208
STRUCTURED_TARGET: Final = 20.0
TEXT_TARGET: Final = 1.0
SALT: Final = os.environ["TENURE_PSEUDONYM_KEY"]
#: pandas' default ``str`` dtype, pinned to Python storage: with pyarrow installed the
#: default becomes Arrow storage, where each of presidio-structured's cell-by-cell writes
#: (``DataFrame.at``) costs more the longer the column (131 s for one 200,000-row column
#: instead of about 2.5 s), which would measure pyarrow rather than the operators.
STRING: Final = pd.StringDtype(storage="python", na_value=float("nan"))
MASK: Final = {"masking_char": "*", "chars_to_mask": 12, "from_end": False}
_TAG: Final = re.compile(r"<[A-Z][A-Z_]*>")
#: What "nothing left" looks for: runs of 3+ letters or digits, only digits in a phone
#: (its "ext." or "poste" is not personal).
_PIECE: Final = re.compile(r"[^\W_]{3,}")
_PHONE_PIECE: Final = re.compile(r"\d{3,}")
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
    tenure = tenure_frame(frame)
    presidio = presidio_frame(frame.copy(), PAIRS)
    distinct: dict[str, int] = {}
    for pair in PAIRS:
        original, ours, theirs = frame[pair.column], tenure[pair.column], presidio[pair.column]
        assert len(ours) == len(theirs) == len(frame), pair.column
        assert ours.notna().all(), f"{pair.column}: Tenure produced nulls"
        kept = f"{pair.column}: a value came out unchanged"
        assert not (ours.to_numpy() == original.to_numpy()).any(), f"Tenure, {kept}"
        assert not (theirs.to_numpy() == original.to_numpy()).any(), f"presidio, {kept}"
        distinct[pair.column] = original.nunique()
        if pair.column == "email":
            assert ours.str.fullmatch(r"psn_default_[a-z2-7]{20}").all()
            assert theirs.str.fullmatch(r"[0-9a-f]{64}").all()
            assert ours.nunique() == theirs.nunique() == distinct[pair.column]
        else:
            assert ours.tolist() == theirs.tolist(), f"{pair.column}: the two sides differ"
    return distinct


@dataclass
class Timing:
    """Median seconds of both sides for one part, and every run's figure."""

    part: str
    rows: int
    tenure_runs: list[float]
    presidio_runs: list[float]
    target: float
    note: str = ""

    @property
    def tenure(self) -> float:
        return statistics.median(self.tenure_runs)

    @property
    def presidio(self) -> float:
        return statistics.median(self.presidio_runs)

    @property
    def ratio(self) -> float:
        return self.presidio / self.tenure

    @property
    def met(self) -> bool:
        return self.ratio >= self.target


def seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


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
            tenure_runs.append(
                seconds(lambda pair=pair, values=values: tenure_column(pair, values))
            )
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
    profiler = cProfile.Profile()
    profiler.runcall(tenure_frame, frame)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


# ---------------------------------------------------------------------------- free text


@dataclass
class Recall:
    """Planted values per entity, and how many no longer appear in the output."""

    planted: Counter[str] = field(default_factory=Counter)
    gone: Counter[str] = field(default_factory=Counter)
    #: Stricter: no piece of the value (``_PIECE``) survives as a word either.
    no_piece_left: Counter[str] = field(default_factory=Counter)
    tags: int = 0
    missed: list[str] = field(default_factory=list)

    def share(self, counts: Counter[str], entity: str | None = None) -> float:
        planted = self.planted[entity] if entity else sum(self.planted.values())
        found = counts[entity] if entity else sum(counts.values())
        return found / planted if planted else float("nan")


def measure_recall(notes: Sequence[Note], outputs: Sequence[str]) -> Recall:
    recall = Recall()
    for note, output in zip(notes, outputs, strict=True):
        recall.tags += len(_TAG.findall(output))
        for span in note.spans:
            value = note.text[span.start : span.end]
            recall.planted[span.entity] += 1
            if value in output:
                recall.missed.append(f"{span.entity} {value!r} in {output!r}")
                continue
            recall.gone[span.entity] += 1
            pieces = (_PHONE_PIECE if span.entity == "PHONE_NUMBER" else _PIECE).findall(value)
            if not any(_survives(piece, output) for piece in pieces):
                recall.no_piece_left[span.entity] += 1
    return recall


def _survives(piece: str, text: str) -> bool:
    return re.search(rf"(?<![^\W_]){re.escape(piece)}(?![^\W_])", text) is not None


def tenure_redact(texts: Sequence[str]) -> list[str]:
    redacted = create_operator("redact_text", {}).operate(pd.Series(texts, dtype=object))
    return [str(text) for text in redacted]


def presidio_redact(
    analyzer: AnalyzerEngine, anonymizer: AnonymizerEngine, texts: Sequence[str]
) -> list[str]:
    """Presidio as documented: analyze then anonymize (default ``replace``), one text at a time."""
    return [
        anonymizer.anonymize(text, analyzer.analyze(text, language=detect_language(text))).text
        for text in texts
    ]


@dataclass
class TextResult:
    timing: Timing
    tenure: Recall
    presidio: Recall

    @property
    def met(self) -> bool:
        return self.timing.met and self.tenure.share(self.tenure.gone) >= self.presidio.share(
            self.presidio.gone
        )


def run_text(notes: Sequence[Note], repeats: int, seed: int) -> TextResult:
    """Both redactions on the same notes, after both engines are loaded and warmed up."""
    from presidio_anonymizer import AnonymizerEngine

    texts = [note.text for note in notes]
    text_engine()  # first: it also keeps tldextract offline
    analyzer, anonymizer = baseline_analyzer(), AnonymizerEngine()
    warm_up = [note.text for note in write_notes(WARM_UP, seed + 99, 1.0)]
    tenure_redact(warm_up)
    presidio_redact(analyzer, anonymizer, warm_up)
    tenure_runs, presidio_runs = [], []
    ours: list[str] = []
    theirs: list[str] = []
    for _ in range(repeats):
        started = time.perf_counter()
        ours = tenure_redact(texts)
        tenure_runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = presidio_redact(analyzer, anonymizer, texts)
        presidio_runs.append(time.perf_counter() - started)
    timing = Timing(
        "free text", len(texts), tenure_runs, presidio_runs, TEXT_TARGET, "redact_text / analyze"
    )
    return TextResult(timing, measure_recall(notes, ours), measure_recall(notes, theirs))


# ---------------------------------------------------------------------------- report


def versions() -> dict[str, str]:
    names = ("presidio-structured", "presidio-analyzer", "presidio-anonymizer", "pandas")
    found = {name: importlib.metadata.version(name) for name in (*names, "spacy", "faker")}
    return {"python": platform.python_version(), **found, "cores": str(os.cpu_count())}


def print_structured(timings: Sequence[Timing], distinct: dict[str, int]) -> None:
    first = timings[0]
    print(f"## Structured columns ({first.rows:,} rows, median of {len(first.tenure_runs)})\n")
    print(
        "| Part | Operators (Tenure / presidio-structured) | Distinct values | Tenure s "
        "| presidio-structured s | Ratio | Target | |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for timing in timings:
        count = distinct.get(timing.part)
        print(
            f"| {timing.part} | {timing.note} | {f'{count:,}' if count else '-'} "
            f"| {timing.tenure:.4f} | {timing.presidio:.3f} | {timing.ratio:,.1f}x "
            f"| ≥ {timing.target:g}x | {_verdict(timing.met)} |"
        )
    print(
        "\nThe e-mail pair is not equivalent in strength: presidio's `hash` is sha256 of the "
        "value and a fixed salt (salted, not keyed), Tenure's `pseudonym` an HMAC-SHA256.\n"
    )


def print_text(result: TextResult) -> None:
    timing = result.timing
    print(f"## Free text ({timing.rows:,} notes, median of {len(timing.tenure_runs)})\n")
    print("| Path | Seconds | Texts/s | Ratio | Target | |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    print(
        f"| Tenure `redact_text` | {timing.tenure:.2f} | {timing.rows / timing.tenure:,.0f} "
        f"| {timing.ratio:.2f}x | ≥ {timing.target:g}x at equal recall | {_verdict(result.met)} |"
    )
    print(
        f"| Presidio analyze + anonymize | {timing.presidio:.2f} "
        f"| {timing.rows / timing.presidio:,.0f} | 1.00x | - | |"
    )
    print(
        "\nRecall: planted value gone from the output (and, stricter, no piece of it left: "
        "no run of 3+ letters or digits of it, digits only for phones)\n"
    )
    print(
        "| Entity | Planted | Tenure | Presidio | Tenure, nothing left | Presidio, nothing left |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    ours, theirs = result.tenure, result.presidio
    for entity in [*sorted(ours.planted), None]:
        planted = ours.planted[entity] if entity else sum(ours.planted.values())
        print(
            f"| {entity or 'all'} | {planted:,} | {ours.share(ours.gone, entity):.3f} "
            f"| {theirs.share(theirs.gone, entity):.3f} "
            f"| {ours.share(ours.no_piece_left, entity):.3f} "
            f"| {theirs.share(theirs.no_piece_left, entity):.3f} |"
        )
    print(
        f"\nTags per note: Tenure {ours.tags / timing.rows:.2f}, "
        f"Presidio {theirs.tags / timing.rows:.2f}.\n"
    )
    for label, recall in (("Tenure", ours), ("Presidio", theirs)):
        for example in recall.missed[:3]:
            print(f"- missed by {label}: {example}")
    print()


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def write_json(
    path: Path,
    args: Any,
    timings: Sequence[Timing],
    distinct: dict[str, int],
    text: TextResult | None,
) -> None:
    def part(timing: Timing) -> dict[str, object]:
        return {
            **asdict(timing),
            "tenure_seconds": timing.tenure,
            "presidio_seconds": timing.presidio,
            "ratio": timing.ratio,
            "met": timing.met,
        }

    figures: dict[str, object] = {
        "versions": versions(),
        "rows": args.rows,
        "text_rows": args.text_rows,
        "seed": args.seed,
        "distinct_values": distinct,
        "structured": [part(timing) for timing in timings],
    }
    if text is not None:
        figures["text"] = {
            **part(text.timing),
            "met": text.met,
            "recall": {
                label: {
                    "planted": dict(recall.planted),
                    "gone": dict(recall.gone),
                    "no_piece_left": dict(recall.no_piece_left),
                    "tags": recall.tags,
                }
                for label, recall in (("tenure", text.tenure), ("presidio", text.presidio))
            },
        }
    path.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="DataFrame rows")
    parser.add_argument(
        "--text-rows", type=int, default=2_000, help="notes redacted (0: skip free text)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="structured runs (median)")
    parser.add_argument("--text-repeats", type=int, default=1, help="free-text runs (median)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--profile", action="store_true", help="cProfile Tenure's structured part")
    args: Any = parser.parse_args(argv)
    require_presidio_structured()
    if args.text_rows > args.rows:
        parser.error("--text-rows cannot exceed --rows")
    started = time.perf_counter()
    frame, notes = customers(args.rows, args.seed)
    built = time.perf_counter() - started
    print(", ".join(f"{name} {version}" for name, version in versions().items()) + "\n")
    with_pii = sum(bool(note.spans) for note in notes)
    print(
        f"DataFrame: {len(frame):,} rows ({frame['email'].dtype!r}) built in {built:.1f} s; "
        f"{with_pii:,} notes ({with_pii / len(notes):.1%}) embed their row's name, e-mail "
        "or phone.\n"
    )
    distinct = check_structured(frame)
    print("Checks passed: no original value kept; mask, replace and FSA identical on both sides.\n")
    timings = run_structured(frame, args.repeats)
    print_structured(timings, distinct)
    text = None
    if args.text_rows:
        text = run_text(notes[: args.text_rows], args.text_repeats, args.seed)
        print_text(text)
    if args.profile:
        print("## cProfile: Tenure, all four columns\n\n```")
        print(profile_structured(frame))
        print("```\n")
    if args.json:
        write_json(args.json, args, timings, distinct, text)
    print(f"Whole script: {time.perf_counter() - started:.0f} s on {os.cpu_count()} cores.")


if __name__ == "__main__":
    main()
