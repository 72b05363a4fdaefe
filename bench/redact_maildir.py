"""Redacting a Maildir of business e-mail: Tenure's anonymize pass against a naive Presidio loop.

    .venv/bin/python -m bench.redact_maildir                    # 10,000 messages
    .venv/bin/python -m bench.redact_maildir --messages 500     # quick check

A seeded Maildir inbox (Faker en_CA and fr_CA, half each) holds ``--messages`` business
e-mails, every one older than the cut-off: from a customer, to a member of staff at
``360.agency``, a subject that sometimes names the customer, and a body of 3 to 10
sentences that embeds the customer's name, phone number (``bench.data.NoteWriter``'s
eight layouts) and e-mail address; 30 % are multipart with an HTML alternative. The planted
values are kept per message.

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
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from anonymizers.registry import create_operator
from bench import harness
from bench.data import NoteWriter, Person, Recall
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
DOMAIN: Final = "360.agency"
COLLECTION: Final = "inbox"
LABEL: Final = "mail_redaction"
CUTOFF: Final = datetime(2025, 1, 1, tzinfo=UTC)
OLDEST: Final = datetime(2023, 1, 2, tzinfo=UTC)
NEWEST: Final = datetime(2024, 12, 20, tzinfo=UTC)
CHUNK_SIZE: Final = 50_000
HTML_SHARE: Final = 0.3
PARSER: Final = BytesParser(policy=policy.default)
SMOKE: Final = {"messages": 20, "baseline_messages": 10}
PROFILED: Final = "run Tenure's pass under cProfile"
KEPT: Final = "work here instead of a temporary folder, and keep the folders"

# ---------------------------------------------------------------------------- messages

# fmt: off
_SUBJECTS: Final = {
    "en": (
        ("Question about invoice {n}", "Order {n}: delivery date", "Quote request for {day}",
         "Follow-up on ticket {n}", "Change of contact details", "Meeting next {day}"),
        ("{name} - order {n}", "Re: invoice {n} ({name})", "Callback request from {name}"),
    ),
    "fr": (
        ("Question sur la facture {n}", "Commande {n} : date de livraison",
         "Demande de soumission pour {day}", "Suivi du billet {n}",
         "Changement de coordonnées", "Rencontre {day} prochain"),
        ("{name} - commande {n}", "Re : facture {n} ({name})", "Demande de rappel de {name}"),
    ),
}
_SENTENCES: Final = {
    "en": {
        "name": ("My name is {name} and I am writing about order {n}.",
                 "This is {name} again, following up on ticket {n}.",
                 "Please note that {name} is now the contact for our account."),
        "phone": ("You can reach me at {phone} any weekday before 5 pm.",
                  "My direct line is {phone}.",
                  "Please call me back at {phone} when you have a moment."),
        "email": ("Please send the revised quote to {email}.",
                  "My new e-mail address is {email}; please update your records.",
                  "Copy {email} on your reply, please."),
        "other": ("The parcel arrived on {day} but two items were missing.",
                  "We would like to move the delivery window to the morning.",
                  "The invoice total of ${amount} does not match the quote we received.",
                  "Could you confirm the new price before we sign?",
                  "Our team meets on {day}, so a reply before then would help.",
                  "Thank you for your patience with this.",
                  "The tracking number you gave me does not work.",
                  "We are happy with the service overall.",
                  "Reference number {n} appears on the last statement.",
                  "Let me know if you need anything else from us."),
    },
    "fr": {
        "name": ("Je m'appelle {name} et je vous écris au sujet de la commande {n}.",
                 "C'est encore {name}, pour faire suite au billet {n}.",
                 "Veuillez noter que {name} est maintenant la personne-ressource du compte."),
        "phone": ("Vous pouvez me joindre au {phone} en semaine avant 17 h.",
                  "Ma ligne directe est le {phone}.",
                  "Merci de me rappeler au {phone} quand vous aurez un moment."),
        "email": ("Veuillez envoyer la soumission révisée à {email}.",
                  "Ma nouvelle adresse courriel est {email}; merci de mettre votre dossier à jour.",
                  "Mettez {email} en copie de votre réponse, s'il vous plaît."),
        "other": ("Le colis est arrivé {day}, mais il manquait deux articles.",
                  "Nous aimerions déplacer la livraison en matinée.",
                  "Le total de la facture, {amount} $, ne correspond pas à la soumission.",
                  "Pouvez-vous confirmer le nouveau prix avant la signature?",
                  "Notre équipe se réunit {day}; une réponse d'ici là nous aiderait.",
                  "Merci de votre patience.",
                  "Le numéro de suivi que vous m'avez donné ne fonctionne pas.",
                  "Nous sommes satisfaits du service dans l'ensemble.",
                  "Le numéro de référence {n} figure sur le dernier relevé.",
                  "Dites-moi s'il vous faut autre chose de notre part."),
    },
}
# fmt: on
_GREETING: Final = {"en": "Hello {staff},", "fr": "Bonjour {staff},"}
_SIGN_OFF: Final = {"en": "Regards,", "fr": "Cordialement,"}
_DAYS: Final = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi"),
}


@dataclass(frozen=True)
class Planted:
    """The customer's values put in one message, by the message's file key."""

    key: str
    language: str
    person: Person
    values: dict[str, str] = field(default_factory=dict)
    """Entity type -> the planted value."""


class MailWriter:
    """Seeded business e-mails from customers (``NoteWriter``'s people) to staff."""

    def __init__(self, seed: int) -> None:
        self.people = NoteWriter(seed)
        self.rng = random.Random(seed + 7)
        staff = self.people.fakers["en"]
        self.staff = [(staff.first_name(), staff.last_name()) for _ in range(12)]

    def message(self, number: int) -> tuple[bytes, Planted, datetime]:
        rng = self.rng
        language = self.people.language()
        person = self.people.person(language)
        first, last = rng.choice(self.staff)
        values = {
            "name": person.name,
            "phone": person.phone,
            "email": person.email,
            "n": str(rng.randint(1_000, 99_999)),
            "day": rng.choice(_DAYS[language]),
            "amount": f"{rng.uniform(10, 5_000):,.2f}",
            "staff": first,
        }
        if language == "fr":
            values["amount"] = values["amount"].replace(",", "\u202f").replace(".", ",")
        plain_subjects, named_subjects = _SUBJECTS[language]
        subject = rng.choice(named_subjects if rng.random() < 0.3 else plain_subjects)
        sentences = _SENTENCES[language]
        count = rng.randint(3, 10)
        chosen = [rng.choice(sentences[kind]) for kind in ("name", "phone", "email")]
        kinds = rng.choices(("name", "phone", "email", "other"), (1, 1, 1, 6), k=count - 3)
        chosen += [rng.choice(sentences[kind]) for kind in kinds]
        rng.shuffle(chosen)
        paragraphs = [
            _GREETING[language].format(**values),
            " ".join(s.format(**values) for s in chosen),
            f"{_SIGN_OFF[language]}\n{person.name}\n{person.phone}",
        ]
        sent = OLDEST + timedelta(seconds=rng.randint(0, int((NEWEST - OLDEST).total_seconds())))
        msg = EmailMessage()
        msg["From"] = f"{person.name} <{person.email}>"
        msg["To"] = f"{first} {last} <{first.lower()}.{last.lower()}@{DOMAIN}>"
        msg["Subject"] = subject.format(**values)
        msg["Date"] = format_datetime(sent)
        msg["Message-ID"] = f"<{uuid.UUID(int=rng.getrandbits(128))}@mail.{DOMAIN}>"
        msg.set_content("\n\n".join(paragraphs))
        if rng.random() < HTML_SHARE:
            markup = "".join(
                f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in paragraphs
            )
            msg.add_alternative(f"<html><body>{markup}</body></html>", subtype="html")
        key = f"{int(sent.timestamp())}.M{number:06d}P4242Q{rng.randint(0, 999)}.bench"
        planted = Planted(key, language, person, {
            "PERSON": person.name, "PHONE_NUMBER": person.phone, "EMAIL_ADDRESS": person.email,
        })  # fmt: skip
        return msg.as_bytes(policy=msg.policy.clone(linesep="\n")), planted, sent


def write_maildir(root: Path, count: int, seed: int) -> list[Planted]:
    """``count`` messages in ``root/cur`` (seen, so ``:2,S``), dated their sent time."""
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    writer = MailWriter(seed)
    planted = []
    for number in range(count):
        raw, found, sent = writer.message(number)
        path = root / "cur" / f"{found.key},S={len(raw)}:2,S"
        path.write_bytes(raw)
        os.utime(path, (sent.timestamp(), sent.timestamp()))
        planted.append(found)
    return planted


def copy_maildir(source: Path, target: Path) -> Path:
    """A fresh copy, made outside every timer and flushed to disk."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    os.sync()
    return target


# ---------------------------------------------------------------------------- checks


def visible_texts(raw: bytes) -> list[str]:
    """The decoded subject and every text part (HTML unescaped) of a message."""
    msg = PARSER.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    texts = [str(msg["Subject"] or "")]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            content = part.get_content()
            texts.append(
                html.unescape(content) if part.get_content_subtype() == "html" else content
            )
    return texts


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
    url = f"maildir:///{root}?internal_domains={DOMAIN}"
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
        msg = PARSER.parsebytes(box.get_bytes(key))
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
