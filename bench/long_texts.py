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
import time

from faker import Faker

from anonymizers.detection.text_engine import PIECE_CHARS, text_engine
from anonymizers.text_redaction import _redact_pieces, redact_texts


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


def timed(function: object, text: str) -> tuple[float, str]:
    start = time.perf_counter()
    (redacted,) = function([text], None, 0.0)  # type: ignore[operator]
    return time.perf_counter() - start, redacted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10000,40000,160000,640000")
    parser.add_argument("--whole-max", type=int, default=160_000)
    args = parser.parse_args()
    text_engine()
    timed(redact_texts, note(2_000, seed=1)[0])  # warm up
    print(f"piece size {PIECE_CHARS:,} characters")
    print(f"{'characters':>10} {'pieces s':>9} {'ms/1k':>7} {'ratio':>6} "
          f"{'whole s':>8} {'ms/1k':>7} {'ratio':>6}")  # fmt: skip
    base: dict[str, float] = {}
    for length in (int(n) for n in args.lengths.split(",")):
        text, emails = note(length)
        cells = [f"{len(text):>10,}"]
        for kind, function in (("pieces", redact_texts), ("whole", _redact_pieces)):
            if kind == "whole" and length > args.whole_max:
                cells.append(f"{'-':>8} {'-':>7} {'-':>6}")
                continue
            seconds, redacted = timed(function, text)
            survivors = [e for e in emails if e in redacted]
            assert not survivors, f"{kind}: {len(survivors)} e-mail addresses survive"
            per_k = 1000 * seconds / len(text) * 1000
            base.setdefault(kind, per_k)
            cells.append(f"{seconds:>8.2f} {per_k:>7.2f} {per_k / base[kind]:>6.2f}")
        print(" ".join(cells), flush=True)


if __name__ == "__main__":
    main()
