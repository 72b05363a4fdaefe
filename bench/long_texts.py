"""Redacting one long text: time per character as the text grows, in pieces and whole.

    .venv/bin/python -m bench.long_texts                       # 10k to 640k characters
    .venv/bin/python -m bench.long_texts --lengths 5000,80000  # quick check

Each text is a seeded run of Faker (en_CA) support-note lines, each naming a person, a
phone number and an e-mail address. ``redact_texts`` (what ``redact_text`` runs) cuts a
text longer than ``PIECE_CHARS`` into pieces; the *whole* column runs the same passes
over the text as one piece (``_redact_pieces``), as Tenure did before, up to
``--whole-max`` characters (its time grows faster than the text). The figure is the time
per 1,000 characters, and its ratio to the shortest text's, measured in one run: a
ratio near 1 means linear time. Every planted e-mail address must be gone.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Sequence

from faker import Faker

from anonymizers.detection.text_engine import PIECE_CHARS, text_engine
from anonymizers.text_redaction import _redact_pieces, redact_texts
from bench import harness

SMOKE = {"lengths": "2000,6000", "whole_max": 6_000}
Redactor = Callable[[Sequence[str], list[str] | None, float], list[str]]
KINDS: dict[str, Redactor] = {"pieces": redact_texts, "whole": _redact_pieces}


def note(length: int, seed: int = 7) -> tuple[str, list[str]]:
    fake = Faker("en_CA")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    lines: list[str] = []
    emails: list[str] = []
    size = 0
    while size < length:
        email = f"c{len(emails)}.{fake.user_name()}@{fake.free_email_domain()}"
        line = (
            f"Call {fake.first_name()} {fake.last_name()} at {fake.phone_number()} "
            f"or {email} about order {rng.randint(1000, 9999)}. {fake.sentence()}\n"
        )
        lines.append(line)
        emails.append(email)
        size += len(line)
    return "".join(lines), emails


def redact(function: Redactor, text: str) -> tuple[float, str]:
    """Seconds to redact ``text`` alone, and the redacted text."""
    seconds, (redacted,) = harness.timed(lambda: function([text], None, 0.0))
    return seconds, redacted


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lengths", default="10000,40000,160000,640000")
    parser.add_argument("--whole-max", type=int, default=160_000)
    args = harness.parse_args(parser, argv, SMOKE)
    with harness.Benchmark("long_texts", args) as bench:
        text_engine()
        redact(redact_texts, note(2_000, seed=1)[0])  # warm up
        print(f"Piece size {PIECE_CHARS:,} characters.\n")
        base: dict[str, float] = {}
        rows: list[list[str]] = []
        figures: list[dict[str, object]] = []
        for length in (int(n) for n in args.lengths.split(",")):
            text, emails = note(length)
            cells = [f"{len(text):,}"]
            measured: dict[str, object] = {"characters": len(text)}
            for kind, function in KINDS.items():
                if kind == "whole" and length > args.whole_max:
                    cells += ["-", "-", "-"]
                    continue
                seconds, redacted = redact(function, text)
                survivors = [e for e in emails if e in redacted]
                harness.check(not survivors, f"{kind}: {len(survivors)} e-mail addresses survive")
                per_k = 1000 * seconds / len(text) * 1000
                base.setdefault(kind, per_k)
                cells += [f"{seconds:.2f}", f"{per_k:.2f}", f"{per_k / base[kind]:.2f}"]
                measured[kind] = {
                    "seconds": seconds,
                    "ms_per_1k": per_k,
                    "ratio": per_k / base[kind],
                }
            rows.append(cells)
            figures.append(measured)
            print(f"{len(text):,} characters done", flush=True)
        headers = ["Characters", "Pieces s", "ms / 1k", "Ratio", "Whole s", "ms / 1k", "Ratio"]
        print()
        print(harness.markdown_table(headers, rows, "rrrrrrr"))
        bench.figures.update(piece_chars=PIECE_CHARS, lengths=figures)


if __name__ == "__main__":
    main()
