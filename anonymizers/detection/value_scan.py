"""Run the shared Presidio engine over columns' values: which entities each value holds.

``detect`` looks at the values of several columns at once (one ``Request`` each), so that
spaCy's batches are shared across a table's columns:

* every value goes through the pattern recognizers (e-mail, phone, card, IBAN, MAC...),
  without a spaCy pass, and free text through Presidio's ``BatchAnalyzerEngine`` (spaCy
  ``nlp.pipe``) for every entity;
* a value of bare digits is a phone number only when it is a valid Canadian number, as
  in a number column (``shapes.is_canadian_phone_number``): order numbers are not;
* a value shaped like a street address (``shapes.looks_like_street_address``) is a
  ``LOCATION`` and never a ``PERSON`` (streets are named after saints and premiers), with
  its postal code counted at any score, the address being the context it needs;
* other short values go through a gazetteer pass, in this order: nationalities, religions
  and political groups (``shapes.group_kind``: ``NRP``); known places
  (``anonymizers.regions.names_places``: the Canadian municipalities, provinces, states
  and countries of both languages): ``LOCATION``, never ``PERSON`` (the small French
  model reads many towns as people); known given names and surnames
  (``shapes.names_people``: Faker's lists of several locales): ``PERSON``; towns' shapes
  (``shapes.looks_like_city_name``: ``Lac-Mégantic``, ``Pearsonborough``): ``LOCATION``;
* the short values left that are shaped like a name go through the NER pass, asked for
  ``PERSON``, ``LOCATION`` and ``NRP`` only: it finds about three full names in four out
  of context, names of any origin included.

Texts are grouped by the text engine's cheap language detection. A value counts once per
entity however many matches of it it holds. Nested findings are settled by the text
engine's one rule (``settle_nested``), the one ``redact_text`` applies, so what the scan
counts is what gets redacted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from anonymizers.detection.entities import CA_POSTAL_CODE, LOCATION, NRP, PERSON, PHONE_NUMBER
from anonymizers.detection.shapes import (
    group_kind,
    is_canadian_phone_number,
    looks_like_city_name,
    looks_like_person_name,
    looks_like_street_address,
    names_people,
)
from anonymizers.detection.text_engine import (
    by_language,
    settle_nested,
    split_pieces,
    text_engine,
)
from anonymizers.regions import names_places

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, RecognizerResult

#: A match this sure makes its value a hit. Weaker matches (Presidio scores a bare
#: ``H3Z2Y7`` 0.1, waiting for context) count only when they are the whole value:
#: a value that *is* a postal code needs no context word.
HIT_SCORE: Final = 0.5
#: What the NER pass is asked of a short value shaped like a name.
SHORT_NER_ENTITIES: Final = (LOCATION, NRP, PERSON)


@dataclass(frozen=True)
class Request:
    """One column's distinct values to look at, for ``entities``.

    ``free_text``: the NER pass reads every value, for every entity; ``whole_value``: a
    match counts only when it is the whole value (a number that *is* a SIN).
    """

    texts: Sequence[str]
    entities: frozenset[str]
    free_text: bool = False
    whole_value: bool = False


@dataclass(frozen=True)
class Hits:
    """Per entity, the values holding it: counted per row and per distinct value."""

    rows: Counter[str] = field(default_factory=Counter)
    distinct: Counter[str] = field(default_factory=Counter)


def detect(requests: Sequence[Request], *, batch_size: int) -> list[list[frozenset[str]]]:
    """For each request, the entities each of its texts holds (see the module)."""
    found: list[list[set[str]]] = [[set() for _ in r.texts] for r in requests]
    every = sorted({entity for r in requests for entity in r.entities})
    for free_text in (False, True):
        positions = [
            (i, j) for i, r in enumerate(requests) if r.free_text is free_text
            for j in range(len(r.texts))
        ]  # fmt: skip
        texts = [requests[i].texts[j] for i, j in positions]
        analysed = analyse_texts(texts, every, free_text=free_text, batch_size=batch_size)
        for (i, j), text, results in zip(positions, texts, analysed, strict=True):
            request = requests[i]
            found[i][j] = entities_hit(text, results, whole_value=request.whole_value)
            # Bare digits are a number typed as text, read as a number column reads them:
            # a phone when a valid Canadian number (order numbers are not).
            digits = text.strip()
            if digits.isdigit() and not is_canadian_phone_number(digits):
                found[i][j].discard(PHONE_NUMBER)
            if LOCATION in request.entities and looks_like_street_address(text):
                found[i][j] = _address(found[i][j], results)
    named: list[tuple[int, int]] = []
    for i, request in enumerate(requests):
        if request.free_text or not request.entities & {LOCATION, PERSON, NRP}:
            continue
        for j, text in enumerate(request.texts):
            if LOCATION in found[i][j]:
                continue  # a street address, settled above
            group = group_kind(text) if NRP in request.entities else None
            if group == "language":
                continue  # a language or a cuisine: no group, and nothing for NER to read
            if group == "group":
                found[i][j] -= {PERSON, LOCATION}
                found[i][j].add(NRP)
            elif LOCATION in request.entities and names_places(text):
                found[i][j].discard(PERSON)
                found[i][j].add(LOCATION)
            elif PERSON in request.entities and names_people(text):
                found[i][j].add(PERSON)
            elif LOCATION in request.entities and looks_like_city_name(text):
                found[i][j].discard(PERSON)
                found[i][j].add(LOCATION)
            elif looks_like_person_name(text):
                named.append((i, j))
    names = [requests[i].texts[j] for i, j in named]
    again = analyse_texts(names, SHORT_NER_ENTITIES, free_text=True, batch_size=batch_size)
    for (i, j), results in zip(named, again, strict=True):
        found[i][j] |= entities_hit(requests[i].texts[j], results)
    return [
        [frozenset(entities & r.entities) for entities in texts]
        for r, texts in zip(requests, found, strict=True)
    ]


def _address(found: set[str], results: Sequence[RecognizerResult]) -> set[str]:
    """What a street address holds: a place, never a person (``rue Saint-Laurent Ouest``,
    ``boulevard René-Lévesque`` are streets), and its postal code at any score: the
    address around it is the context Presidio's recognizer waits for."""
    postal = any(r.entity_type == CA_POSTAL_CODE and r.score > 0 for r in settle_nested(results))
    return (found - {PERSON}) | {LOCATION} | ({CA_POSTAL_CODE} if postal else set())


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
    request = Request(list(occurrences), frozenset(entities), free_text, whole_value)
    (found,) = detect([request], batch_size=batch_size)
    hits = Hits()
    for text, entities_found in zip(request.texts, found, strict=True):
        for entity in entities_found:
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
