"""Run the shared Presidio engine over a column's values and count, per entity, the values hit.

Short values are analysed one by one with the pattern recognizers, without a spaCy
pass, except those shaped like a person's name: the NER pass, asked for ``PERSON``
only, finds about three full names in four out of context (and one product name or
city in ten), where the given-name pattern knows only the names in its lists. Free text
goes through Presidio's ``BatchAnalyzerEngine`` (spaCy ``nlp.pipe``) for every entity.
Texts are grouped by the text engine's cheap language detection; each distinct value
is analysed once and counted as often as it occurs, once per entity however many
matches of it the value holds. Nested findings are settled by the text engine's one rule
(``settle_nested``), the one ``redact_text`` applies, so what the scan counts is what
gets redacted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from anonymizers.detection.entities import PERSON
from anonymizers.detection.shapes import looks_like_person_name
from anonymizers.detection.text_engine import (
    by_language,
    settle_nested,
    split_pieces,
    text_engine,
)

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

#: A match this sure makes its value a hit. Weaker matches (Presidio scores a bare
#: ``H3Z2Y7`` 0.1, waiting for context) count only when they are the whole value:
#: a value that *is* a postal code needs no context word.
HIT_SCORE: Final = 0.5


@dataclass(frozen=True)
class Hits:
    """Per entity, the values holding it: counted per row and per distinct value."""

    rows: Counter[str] = field(default_factory=Counter)
    distinct: Counter[str] = field(default_factory=Counter)


def count_hits(
    texts: Sequence[str],
    entities: Collection[str],
    *,
    free_text: bool,
    batch_size: int,
    whole_value: bool = False,
) -> Hits:
    """How many of ``texts`` hold each of ``entities`` (``whole_value``: *are* one)."""
    if not texts or not entities:
        return Hits()
    occurrences = Counter(texts)
    distinct = list(occurrences)
    wanted = sorted(entities)
    analysed = analyse_texts(distinct, wanted, free_text=free_text, batch_size=batch_size)
    found = [
        entities_hit(text, results, whole_value=whole_value)
        for text, results in zip(distinct, analysed, strict=True)
    ]
    if not free_text and PERSON in wanted:
        named = [i for i, text in enumerate(distinct) if looks_like_person_name(text)]
        names = [distinct[i] for i in named]
        again = analyse_texts(names, [PERSON], free_text=True, batch_size=batch_size)
        for i, results in zip(named, again, strict=True):
            found[i] |= entities_hit(distinct[i], results, whole_value=whole_value)
    hits = Hits()
    for text, entities_found in zip(distinct, found, strict=True):
        for entity in entities_found.intersection(wanted):
            hits.rows[entity] += occurrences[text]
            hits.distinct[entity] += 1
    return hits


def analyse_texts(
    texts: Sequence[str], entities: Sequence[str], *, free_text: bool, batch_size: int
) -> list[list[RecognizerResult]]:
    """Presidio's findings in each text, in the text's language (``detect_language``).

    ``free_text`` runs spaCy over the texts in batches of ``batch_size`` (``nlp.pipe``);
    otherwise only the pattern recognizers run and spaCy is never called. A text longer
    than ``PIECE_CHARS`` is analysed as the pieces of ``split_pieces`` (as ``redact_text``
    redacts it), its findings moved back to the whole text's offsets.
    """
    analyzer = text_engine().analyzer
    pieces: list[str] = []
    owners: list[tuple[int, int]] = []  # (text, offset of the piece in it)
    for owner, text in enumerate(texts):
        offset = 0
        for piece in split_pieces(text):
            pieces.append(piece)
            owners.append((owner, offset))
            offset += len(piece)
    results: list[list[RecognizerResult]] = [[] for _ in texts]
    for language, positions in by_language(pieces).items():
        group = [pieces[i] for i in positions]
        analysed = _analyse(analyzer, group, language, list(entities), free_text, batch_size)
        for i, found in zip(positions, analysed, strict=True):
            owner, offset = owners[i]
            for result in found:
                result.start += offset
                result.end += offset
            results[owner].extend(found)
    return results


def _analyse(
    analyzer: AnalyzerEngine,
    texts: list[str],
    language: str,
    entities: list[str],
    ner: bool,
    batch_size: int,
) -> list[list[RecognizerResult]]:
    from presidio_analyzer import BatchAnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

    if not texts:
        return []
    if ner:
        results: list[list[RecognizerResult]] = BatchAnalyzerEngine(analyzer).analyze_iterator(
            texts, language, batch_size=batch_size, entities=entities
        )
        return results
    # No tokens, no entities: the NER recognizer finds nothing and spaCy never runs.
    no_nlp = NlpArtifacts(
        entities=[],
        tokens=Doc(Vocab(), words=[]),
        tokens_indices=[],
        lemmas=[],
        nlp_engine=analyzer.nlp_engine,
        language=language,
    )
    return [
        analyzer.analyze(text, language, entities=entities, nlp_artifacts=no_nlp) for text in texts
    ]


def entities_hit(
    text: str, results: Sequence[RecognizerResult], *, whole_value: bool = False
) -> set[str]:
    """The entities ``text`` counts as holding, given Presidio's matches in it."""
    return {result.entity_type for result in counted_results(text, results, whole_value)}


def counted_results(
    text: str, results: Sequence[RecognizerResult], whole_value: bool = False
) -> list[RecognizerResult]:
    """The matches that make ``text`` hold their entity.

    Nested matches are settled first (``settle_nested``: of two nested matches of
    different types the surer wins, as in ``redact_text``): the domain of an e-mail
    address is no URL of its own, a card number no phone number. What is left counts
    when it scores above zero and covers the whole (stripped) value, or, unless
    ``whole_value``, when it scores at least ``HIT_SCORE``.
    """
    kept = [result for result in settle_nested(results) if result.score > 0]
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    return [
        result
        for result in kept
        if (result.start <= start and result.end >= end)
        or (not whole_value and result.score >= HIT_SCORE)
    ]
