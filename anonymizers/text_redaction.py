"""``redact_text``: find personal information in free text (English or French) and hide it.

The finding is the text engine's (``anonymizers.detection.text_engine``: Presidio's
analyzer with the installed spaCy models and the one recognizer registry, nested findings
settled by its one rule), as in the scan, so what the scan finds is what gets redacted.
Each finding is replaced by its type, e.g. ``<PHONE_NUMBER>``, so the text stays
readable, or by a realistic surrogate of that type.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from anonymizers.detection.text_engine import (
    BATCH_SIZE,
    TextEngine,
    by_language,
    detect_language,
    settle_nested,
    split_pieces,
    text_engine,
)
from anonymizers.keyed import key_id_param, pool_index, surrogate_pool
from anonymizers.operators import Operator, map_non_null
from anonymizers.secrets import pseudonym_key
from connectors import workers

if TYPE_CHECKING:
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

#: A text is re-analysed until it no longer changes (at most this often), so that
#: redacting already redacted text changes nothing.
MAX_PASSES = 4


_TAG = re.compile(r"<[A-Z][A-Z_]*>")
_ALNUM = re.compile(r"[^\W_]")


# What a tag stands for, as text of the tag's own length: the second pass then sees about
# the sentence the first one saw (offsets unchanged), instead of "<PERSON>", which the
# small models like to call a place.
_STAND_INS = {
    "<PERSON>": "Paul Roy",
    "<PHONE_NUMBER>": "(514) 555-0100",
    "<EMAIL_ADDRESS>": "ab@example.test",
    "<LOCATION>": "Sherbrooke",
    "<ORGANIZATION>": "Desjardins Inc",
    "<NRP>": "Inuit",
    "<CA_POSTAL_CODE>": "Montréal H3C 2G9",
}
_DATE_STAND_INS = {"en": "12 May 2024", "fr": "12 mai 2024"}


def with_stand_ins(text: str, language: str) -> str:
    """``text`` with each tag replaced by a plausible value of the same length."""

    def stand_in(match: re.Match[str]) -> str:
        tag = match.group()
        if tag == "<DATE_TIME>":
            return _DATE_STAND_INS[language]
        return _STAND_INS.get(tag) or f" {tag[1:-1].lower().replace('_', ' ')} "

    return _TAG.sub(stand_in, text)


def redact_once(
    engine: TextEngine, texts: Sequence[str], entities: list[str] | None, threshold: float
) -> list[str]:
    """One analysis pass of the text engine, batched per language through ``nlp.pipe``."""
    from presidio_anonymizer.entities import OperatorConfig

    redacted = list(texts)
    replace = {"DEFAULT": OperatorConfig("replace")}
    nlp_engine: SpacyNlpEngine = engine.analyzer.nlp_engine  # type: ignore[assignment]
    for language, positions in by_language(texts).items():
        seen = [with_stand_ins(texts[position], language) for position in positions]
        processed = nlp_engine.process_batch(seen, language, batch_size=BATCH_SIZE)
        for position, text_seen, output in zip(positions, seen, processed, strict=True):
            found = engine.analyzer.analyze(
                text_seen,
                language,
                entities=entities,
                score_threshold=threshold,
                nlp_artifacts=output[1],
            )
            results = settle_nested(_outside_tags(texts[position], found))
            if results:
                redacted[position] = engine.anonymizer.anonymize(
                    text=texts[position],
                    analyzer_results=results,  # type: ignore[arg-type]
                    operators=replace,
                ).text
    return redacted


def _outside_tags(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Trim findings off the tags of an earlier redaction: those are done already."""
    tags = [match.span() for match in _TAG.finditer(text)]
    if not tags:
        return results
    kept = []
    for result in results:
        for start, end in tags:
            if start <= result.start < end:
                result.start = end
            if start < result.end <= end:
                result.end = start
        while result.start < result.end and text[result.start].isspace():
            result.start += 1
        while result.end > result.start and text[result.end - 1].isspace():
            result.end -= 1
        if _ALNUM.search(text, result.start, result.end):  # not just a leftover "(" or "."
            kept.append(result)
    return kept


def redact_texts(
    texts: Sequence[str], entities: list[str] | None = None, threshold: float = 0.0
) -> list[str]:
    """Redact each text, repeating until nothing changes (so the result is idempotent);
    a text longer than `PIECE_CHARS` is redacted as the pieces of `split_pieces`."""
    pieces = [split_pieces(text) for text in texts]
    redacted = _redact_pieces([piece for split in pieces for piece in split], entities, threshold)
    joined, at = [], 0
    for split in pieces:
        joined.append("".join(redacted[at : at + len(split)]))
        at += len(split)
    return joined


def redact_batched(
    texts: Sequence[str], entities: list[str] | None = None, threshold: float = 0.0
) -> list[str]:
    """`redact_texts` over batches of ``texts`` (``connectors.workers.text_batches``), on
    the run's workers: each worker process builds the text engine once and keeps it."""
    redact = partial(redact_texts, entities=entities, threshold=threshold)
    return workers.flattened(workers.current().map(redact, workers.text_batches(texts)))


def _redact_pieces(texts: Sequence[str], entities: list[str] | None, threshold: float) -> list[str]:
    engine = text_engine()
    redacted = list(texts)
    pending = list(range(len(redacted)))
    for _ in range(MAX_PASSES):
        if not pending:
            break
        again = redact_once(engine, [redacted[i] for i in pending], entities, threshold)
        changed = [(i, text) for i, text in zip(pending, again, strict=True) if text != redacted[i]]
        for i, text in changed:
            redacted[i] = text
        pending = [i for i, _ in changed]
    return redacted


class RedactText(Operator):
    """Replace the personal information found in free text by its type, e.g. ``<PERSON>``,
    or (``replace_with: surrogate``) by a realistic stand-in of the same type.

    ``entities`` restricts the types looked for (default: all Presidio knows here);
    ``score_threshold`` drops weaker findings (default 0: redact whenever in doubt).
    Surrogates are picked by the keyed hash of the text and the finding's position, so a
    text always gets the same ones, but two notes about one person are not linked through
    them. Like the structured surrogate, that form is not idempotent (a surrogate name is
    a name): rows are marked once rewritten and never rewritten twice.
    """

    name: ClassVar[str] = "redact_text"
    allowed_params: ClassVar[frozenset[str]] = frozenset(
        {"entities", "score_threshold", "replace_with", "key_id"}
    )
    entities: list[str] | None
    score_threshold: float
    replace_with: str
    key_id: str

    def validate(self) -> None:
        super().validate()
        entities = self.params.get("entities")
        if entities is not None and (
            not isinstance(entities, list | tuple)
            or not entities
            or not all(isinstance(entity, str) for entity in entities)
        ):
            raise self._error("entities", "must be a non-empty list of entity type names")
        self.entities = None if entities is None else [str(entity) for entity in entities]
        threshold = self.params.get("score_threshold", 0.0)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise self._error("score_threshold", "must be a number")
        if not 0.0 <= threshold <= 1.0:
            raise self._error("score_threshold", "must be between 0 and 1")
        self.score_threshold = float(threshold)
        self.replace_with = self._choice("replace_with", ("tag", "surrogate"), "tag")
        self.key_id = key_id_param(self)

    def required_keys(self) -> tuple[str, ...]:
        return (self.key_id,) if self.replace_with == "surrogate" else ()

    def operate(self, values: pd.Series) -> pd.Series:
        return map_non_null(values, self._redact)

    def writes_text(self) -> bool:
        return True

    def _redact(self, present: pd.Series) -> pd.Series:
        codes, uniques = pd.factorize(present.astype(str).to_numpy(dtype=object))
        originals = list(uniques)
        redacted = redact_batched(originals, self.entities, self.score_threshold)
        if self.replace_with == "surrogate":  # here, not on a worker: the key stays here
            key = pseudonym_key(self.key_id)
            redacted = [
                with_surrogates(original, text, key)
                for original, text in zip(originals, redacted, strict=True)
            ]
        return pd.Series(np.asarray(redacted, dtype=object)[codes], index=present.index)


#: The surrogate kind standing in for each finding type; other types keep their tag.
_SURROGATE_KINDS = {
    "PERSON": "name",
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "LOCATION": "city",
    "CA_POSTAL_CODE": "postal_code",
}


def with_surrogates(original: str, redacted: str, key: bytes) -> str:
    """``redacted`` with each tag that has a surrogate kind replaced by a fake value, in
    the original text's language, chosen by HMAC(key, original text, tag position)."""
    locale = "fr_CA" if detect_language(original) == "fr" else "en_CA"
    seed = hmac.new(key, original.encode("utf-8"), hashlib.sha256).digest()

    def surrogate(match: re.Match[str]) -> str:
        kind = _SURROGATE_KINDS.get(match.group()[1:-1])
        if kind is None:
            return match.group()
        pick = hashlib.sha256(seed + match.start().to_bytes(8, "big")).digest()
        pool = surrogate_pool(kind, locale)
        return pool[pool_index(pick, len(pool))]

    return _TAG.sub(surrogate, redacted)
