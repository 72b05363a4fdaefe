"""Redacting a Maildir of business e-mail: Tenure's anonymize pass against a naive Presidio loop.

    .venv/bin/python -m bench.redact_maildir                    # 10,000 messages
    .venv/bin/python -m bench.redact_maildir --messages 500     # quick check

A seeded Maildir inbox (``bench.data.write_maildir``; Faker en_CA and fr_CA, half each)
holds ``--messages`` business e-mails, every one older than the cut-off: from a customer,
to a member of staff at ``360.agency``, a subject that sometimes names the customer, and
a body of 3 to 10 sentences that embeds the customer's name, phone number
(``bench.data.NoteWriter``'s eight layouts) and e-mail address; 30 % are multipart with an
HTML alternative. The planted values are kept per message.

* **Tenure** goes through the connector protocol as the nightly flow does:
  ``open_connector("mail", "maildir:///<dir>?internal_domains=360.agency",
  ConnectorOptions(read_only=False, bookkeeping_dir=...))``, ``count_expiry`` and the
  ``execute_chunk`` loop of ``flows.run.lifecycle._work_through`` with action
  ``anonymize``, ``ColumnRewrite``s for ``subject`` and ``body`` built like
  ``flows.run.lifecycle.column_rewrites`` from the ``redact_text`` operator, and
  ``skip_marked``. The pass is split into redaction (the
  operator's ``operate``), store I/O (the store's ``scan`` and ``update``) and the rest
  (bookkeeping, pandas).
* **Baseline**: a loop that reads each message with ``mailbox.Maildir``, runs
  Presidio's ``AnalyzerEngine.analyze`` + ``AnonymizerEngine.anonymize`` on the subject
  and the plain-text body (``bench.peers.baseline_analyzer``: the pinned spaCy
  models, offline, default registry; language from ``detect_language``) and writes the
  message back with the same shape Tenure gives it. It runs on the first
  ``--baseline-messages`` of its own copy of the inbox (all by default), since its
  figure is a rate.

Both engines are loaded and warmed up on other messages first. After each run, every
message's subject and text parts are decoded and searched for the planted values:
a value *survives* when it is still there verbatim; "nothing left" also requires that no
run of three or more letters or digits of it survives as a word. See bench/README.md;
the figures go to ``bench/results/redact_maildir.json``.
"""

from __future__ import annotations

import argparse
import html
import mailbox
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from anonymizers.registry import create_operator
from bench import harness
from bench.data import (
    MAIL_DOMAIN,
    MAIL_PARSER,
    Planted,
    Recall,
    visible_texts,
    write_maildir,
)
from bench.peers import baseline_engines, presidio_redact
from connectors.protocol import (
    ChunkWork,
    ColumnRewrite,
    Connector,
    ConnectorOptions,
    ExpirySelection,
)
from connectors.registry import open_connector

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

SEED: Final = 20_261_126
COLLECTION: Final = "inbox"
LABEL: Final = "mail_redaction"
CUTOFF: Final = datetime(2025, 1, 1, tzinfo=UTC)
CHUNK_SIZE: Final = 50_000
SMOKE: Final = {"messages": 20, "baseline_messages": 10}
PROFILED: Final = "run Tenure's pass under cProfile"
KEPT: Final = "work here instead of a temporary folder, and keep the folders"


def copy_maildir(source: Path, target: Path) -> Path:
    """A fresh copy, made outside every timer and flushed to disk."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    os.sync()
    return target


# ---------------------------------------------------------------------------- checks


def measure_recall(root: Path, planted: Sequence[Planted]) -> Recall:
    """Which planted values are still in the messages' subjects and text parts."""
    files = {name.split(",")[0].split(":")[0]: root / "cur" / name
             for name in os.listdir(root / "cur")}  # fmt: skip
    recall = Recall()
    for message in planted:
        text = "\n".join(visible_texts(files[message.key].read_bytes()))
        for entity, value in message.values.items():
            recall.add(entity, value, text, message.key)
    return recall


# ---------------------------------------------------------------------------- Tenure


@dataclass
class Split:
    """Where a pass's seconds went."""

    total: float = 0.0
    redaction: float = 0.0
    scan: float = 0.0
    update: float = 0.0
    messages: int = 0
    chunks: int = 0

    @property
    def io(self) -> float:
        return self.scan + self.update

    @property
    def other(self) -> float:
        return self.total - self.redaction - self.io

    def figures(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "chunks": self.chunks,
            "total_s": self.total,
            "redaction_s": self.redaction,
            "scan_s": self.scan,
            "update_s": self.update,
            "other_s": self.other,
            "messages_per_s": harness.ratio(self.messages, self.total),
        }


def _timed_transform(transform: Callable[[Any], Any], split: Split) -> Callable[[Any], Any]:
    def timed(values: Any) -> Any:
        started = time.perf_counter()
        try:
            return transform(values)
        finally:
            split.redaction += time.perf_counter() - started

    return timed


def _instrument_store(store: Any, split: Split) -> None:
    """Time the store's ``scan`` (every frame it yields) and ``update`` on this instance."""
    scan, update = store.scan, store.update

    def timed_scan(*args: Any, **kwargs: Any) -> Iterator[pd.DataFrame]:
        frames = scan(*args, **kwargs)
        while True:
            started = time.perf_counter()
            try:
                frame = next(frames)
            except StopIteration:
                split.scan += time.perf_counter() - started
                return
            split.scan += time.perf_counter() - started
            yield frame

    def timed_update(*args: Any, **kwargs: Any) -> int:
        started = time.perf_counter()
        try:
            return int(update(*args, **kwargs))
        finally:
            split.update += time.perf_counter() - started

    store.scan = timed_scan
    store.update = timed_update


def selection() -> ExpirySelection:
    return ExpirySelection(
        table=COLLECTION,
        clock_column="sent_at",
        cutoff=CUTOFF,
        primary_key=("message_key",),
        skip_marked=LABEL,
    )


def open_mail(root: Path, books: Path) -> Connector:
    url = f"maildir:///{root}?internal_domains={MAIL_DOMAIN}"
    return open_connector("mail", url, ConnectorOptions(read_only=False, bookkeeping_dir=books))


def run_tenure(root: Path, books: Path, chunk_size: int, expected: int) -> Split:
    """``count_expiry`` then the chunk loop with the two rewrites, as the nightly flow
    runs an anonymize binding; the operator's and the store's time are measured inside."""
    split = Split()
    operator = create_operator("redact_text", {})
    rewrites = tuple(
        ColumnRewrite(
            column,
            sql=operator.sql_expression,
            transform=_timed_transform(operator.operate, split),
        )
        for column in ("subject", "body")
    )
    connector = open_mail(root, books)
    _instrument_store(getattr(connector, "store"), split)  # noqa: B009  (not in the protocol)
    chosen = selection()
    run_id = str(uuid.uuid4())
    try:
        started = time.perf_counter()
        counts = connector.count_expiry(chosen)
        after = None
        while True:
            work = ChunkWork(
                run_id=run_id,
                label=LABEL,
                chunk_no=split.chunks + 1,
                selection=chosen,
                after=after,
                limit=chunk_size,
                action="anonymize",
                period_zone="UTC",
                rewrites=rewrites,
            )
            result = connector.execute_chunk(work)
            if result.last is None:
                break
            split.chunks = work.chunk_no
            split.messages += result.rows
            after = result.last
        split.total = time.perf_counter() - started
        scan_seconds = split.scan  # the checks below scan again, outside the pass
        harness.check(counts.expired == expected, f"count_expiry: {counts.expired:,} expired")
        harness.check(split.messages == expected, f"the chunks rewrote {split.messages:,} messages")
        journal = sum(entry.rows for entry in connector.journal(run_id))
        harness.check(journal == expected, f"the journal holds {journal:,} rows")
        again = connector.count_expiry(chosen).expired
        harness.check(again == 0, f"{again:,} messages still selected after the pass (skip_marked)")
        split.scan = scan_seconds
    finally:
        connector.close()
    return split


def tenure_warm_up(messages: Sequence[bytes]) -> None:
    """Load the models and recognizers outside the timer."""
    texts = [text for raw in messages for text in visible_texts(raw)[:2]]
    create_operator("redact_text", {}).operate(pd.Series(texts, dtype=object))


# ---------------------------------------------------------------------------- baseline


def run_baseline(
    root: Path, limit: int | None, analyzer: AnalyzerEngine, anonymizer: AnonymizerEngine
) -> Split:
    """Read, redact subject and plain body, write back: one message at a time."""
    split = Split()
    started = time.perf_counter()
    box = mailbox.Maildir(str(root), factory=None, create=False)
    keys = sorted(box.iterkeys())[:limit]
    for key in keys:
        msg = MAIL_PARSER.parsebytes(box.get_bytes(key))
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(preferencelist=("plain",))
        body = part.get_content() if part is not None else ""
        had_html = msg.get_body(preferencelist=("html",)) is not None
        redacting = time.perf_counter()
        subject = presidio_redact(analyzer, anonymizer, str(msg["Subject"] or ""))
        body = presidio_redact(analyzer, anonymizer, body)
        split.redaction += time.perf_counter() - redacting
        msg.replace_header("Subject", subject)
        msg.clear_content()  # the same shape Tenure writes: plain text, escaped HTML
        msg.set_content(body)
        if had_html:
            msg.add_alternative(f"<pre>{html.escape(body)}</pre>", subtype="html")
        box[key] = msg
        split.messages += 1
    split.total = time.perf_counter() - started
    split.scan = split.total - split.redaction  # read, parse, rebuild, write: all I/O here
    return split


def baseline_warm_up(
    messages: Sequence[bytes], analyzer: AnalyzerEngine, anonymizer: AnonymizerEngine
) -> None:
    for raw in messages:
        for text in visible_texts(raw)[:2]:
            presidio_redact(analyzer, anonymizer, text)


# ---------------------------------------------------------------------------- report


def _rate(messages: int, seconds: float) -> str:
    return f"{messages / seconds:,.1f}" if seconds > 0 else "-"


def speedup(tenure: Split, baseline: Split | None) -> float | None:
    """Tenure's messages per second over the naive loop's."""
    if baseline is None or not baseline.messages:
        return None
    return harness.ratio(tenure.messages / tenure.total, baseline.messages / baseline.total)


def render(tenure: Split, baseline: Split | None) -> str:
    def row(label: str, split: Split, seconds: float, ratio: str = "") -> list[str]:
        share = f"{seconds / split.total:.0%}" if split.total else "-"
        return [
            label,
            f"{split.messages:,}",
            f"{seconds:.2f}",
            share,
            _rate(split.messages, seconds),
            ratio,
        ]

    ratio = speedup(tenure, baseline)
    rows = [
        row(
            "Tenure, whole pass (`count_expiry` + chunks)",
            tenure,
            tenure.total,
            "" if ratio is None else f"**{ratio:.2f}x**",
        ),
        row("- redaction (`redact_text` operate)", tenure, tenure.redaction),
        row("- store I/O: `scan`", tenure, tenure.scan),
        row("- store I/O: `update`", tenure, tenure.update),
        row("- the rest (bookkeeping, pandas, rebuild checks)", tenure, tenure.other),
    ]
    if baseline is not None:
        rows += [
            row("Naive loop, whole pass", baseline, baseline.total, "1.00x"),
            row("- redaction (`analyze` + `anonymize`)", baseline, baseline.redaction),
            row("- I/O (read, parse, rebuild, write)", baseline, baseline.scan),
        ]
    headers = ["Path", "Messages", "Seconds", "Share", "Messages/s", "Ratio"]
    return harness.markdown_table(headers, rows, "lrrrrr")


def render_recall(tenure: Recall, baseline: Recall | None) -> str:
    headers = ["Entity", "Planted", "Tenure gone", "Tenure nothing left"]
    if baseline is not None:
        headers += ["Planted (naive)", "Naive gone", "Naive nothing left"]
    rows = []
    for entity in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", None):
        cells = _recall_cells(tenure, entity)
        if baseline is not None:
            cells += _recall_cells(baseline, entity)
        rows.append([entity or "all", *cells])
    return harness.markdown_table(headers, rows, "l" + "r" * (len(headers) - 1))


def _recall_cells(recall: Recall, entity: str | None) -> list[str]:
    planted = recall.planted[entity] if entity else sum(recall.planted.values())
    return [
        f"{planted:,}",
        f"{recall.share(recall.gone, entity):.3f}",
        f"{recall.share(recall.nothing_left, entity):.3f}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000, help="messages in the inbox")
    parser.add_argument(
        "--baseline-messages",
        type=int,
        default=2_000,
        help="messages the naive loop redacts (a rate; 0: skip it, -1: all)",
    )
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    args = harness.parse_args(parser, argv, SMOKE, seed=SEED, profile=PROFILED, work_dir=KEPT)
    with (
        harness.Benchmark("redact_maildir", args) as bench,
        harness.work_folder(args.dir, "tenure-maildir-") as base,
    ):
        source, warm = base / "source", base / "warm-up"
        for folder in (source, warm):
            shutil.rmtree(folder, ignore_errors=True)
        planted = write_maildir(source, args.messages, args.seed)
        warm_raw = [p.read_bytes() for p in sorted(write_maildir_warm(warm, args.seed))]
        size = sum(p.stat().st_size for p in (source / "cur").iterdir())
        print(
            f"{args.messages:,} messages ({size / 2**20:.1f} MB) written in"
            f" {time.perf_counter() - bench.started:.1f} s"
        )
        loading, _ = harness.timed(lambda: tenure_warm_up(warm_raw))
        print(f"Tenure's engine loaded and warmed up in {loading:.1f} s")

        root = copy_maildir(source, base / "tenure")
        books = base / "tenure-books"
        shutil.rmtree(books, ignore_errors=True)
        profiler = harness.Profile(enabled=args.profile)
        with profiler.running():
            tenure = run_tenure(root, books, args.chunk_size, args.messages)
        tenure_recall = measure_recall(root, planted)
        examples = tenure_recall.missed[:3]
        print(
            f"Tenure: {tenure.total:.1f} s, {tenure.messages / tenure.total:.1f} messages/s;"
            f" survivors {tenure_recall.survivors:,} of {sum(tenure_recall.planted.values()):,}"
            + (f" (e.g. {'; '.join(examples)})" if examples else "")
        )

        baseline = baseline_recall = None
        limit = None if args.baseline_messages < 0 else min(args.baseline_messages, args.messages)
        if limit != 0:
            loading = time.perf_counter()
            analyzer, anonymizer = baseline_engines()
            baseline_warm_up(warm_raw, analyzer, anonymizer)
            print(f"Naive engine loaded and warmed up in {time.perf_counter() - loading:.1f} s")
            naive_root = copy_maildir(source, base / "naive")
            baseline = run_baseline(naive_root, limit, analyzer, anonymizer)
            done = sorted(planted, key=lambda p: p.key)[: baseline.messages]
            baseline_recall = measure_recall(naive_root, done)
            print(
                f"Naive loop: {baseline.total:.1f} s for {baseline.messages:,} messages,"
                f" {baseline.messages / baseline.total:.1f} messages/s"
            )
        print()
        print(render(tenure, baseline))
        print()
        print(render_recall(tenure_recall, baseline_recall))
        if tenure_recall.missed:
            print("\nSurvived Tenure: " + "; ".join(tenure_recall.missed[:6]))
        if args.profile:
            print(profiler.report(30))
        bench.figures.update(
            tenure=tenure.figures(),
            baseline=None if baseline is None else baseline.figures(),
            ratio=speedup(tenure, baseline),
            recall={
                "tenure": tenure_recall.figures(),
                "baseline": None if baseline_recall is None else baseline_recall.figures(),
            },
        )


def write_maildir_warm(root: Path, seed: int) -> list[Path]:
    """A few other messages (another seed) to warm both engines up on."""
    write_maildir(root, harness.WARM_UP, seed + 1)
    return list((root / "cur").iterdir())


if __name__ == "__main__":
    main()
