"""Recognizers Presidio lacks for Quebec: the RAMQ health number, more phones, more cards.

``text_redaction`` already finds North American phone numbers in the usual layouts
(``NanpPhoneRecognizer``) and with libphonenumber; ``CanadianPhoneRecognizer`` adds only
the layouts those miss and, above all, context: Presidio's own context words never
match in the shared engine (its spaCy pipelines run without a lemmatizer), so ours look
for French and English words (``tél.``, ``cellulaire``, ``appelez``, ``RAMQ``...) in the
raw text around a match and raise the score of *every* recognizer's match of their
entity, not just their own. Presidio's card recognizer exists for English only and
misses 2-series Mastercard and 19-digit numbers; ``CardLayoutsRecognizer`` adds those
layouts with the same Luhn validation, in both languages.

The scan passes these as Presidio ad-hoc recognizers (``missing_recognizers``) instead
of adding them to the cached engine's registry, so that ``redact_text`` behaves the same
whether or not a scan ran earlier in the process.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

from presidio_analyzer import Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

from anonymizers.detection.entities import CA_QC_HEALTH_NUMBER, PHONE_NUMBER

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer
    from presidio_analyzer.nlp_engine import NlpArtifacts

#: Presidio's own context boost, and a floor so that a match which is only plausible
#: with a context word (a seven-digit local number) counts once one is there.
CONTEXT_BOOST = 0.35
CONTEXT_FLOOR = 0.6
#: How far (characters) before and after a match a context word may be.
CONTEXT_BEFORE = 40
CONTEXT_AFTER = 20
# Year and month of birth (+50 for women), then day of birth and two administrative digits.
_RAMQ_YEAR_MONTH = r"\d{2}(?:0[1-9]|1[0-2]|5[1-9]|6[0-2])"
_RAMQ_DAY_SEQUENCE = r"(?:0[1-9]|[12]\d|3[01])\d{2}"
_FRENCH_CARD_CONTEXT = ["carte", "credit", "crédit", "visa", "mastercard", "amex", "paiement"]


def _fold(text: str) -> str:
    """Lower case without accents: ``Tél.`` and ``tel.`` are the same context word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


class ContextWordsRecognizer(PatternRecognizer):
    """A pattern recognizer that boosts matches of its entity near one of its words.

    Subclasses set ``PATTERNS``, ``ENTITY`` and ``CONTEXT_WORDS`` (a regular expression
    over folded text, whole words).
    """

    PATTERNS: ClassVar[list[Pattern]]
    ENTITY: ClassVar[str]
    CONTEXT_WORDS: ClassVar[re.Pattern[str]]

    def __init__(self, supported_language: str) -> None:
        super().__init__(
            supported_entity=self.ENTITY,
            name=type(self).__name__,
            supported_language=supported_language,
            patterns=self.PATTERNS,
        )

    def has_context(self, text: str, start: int, end: int) -> bool:
        """Whether a context word is within reach of ``text[start:end]``."""
        before = _fold(text[max(0, start - CONTEXT_BEFORE) : start])
        after = _fold(text[end : end + CONTEXT_AFTER])
        return bool(self.CONTEXT_WORDS.search(before) or self.CONTEXT_WORDS.search(after))

    def enhance_using_context(
        self,
        text: str,
        raw_recognizer_results: list[RecognizerResult],
        other_raw_recognizer_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts | None,
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """Boost, in place, every recognizer's matches of ``ENTITY`` with a context word."""
        for result in (*raw_recognizer_results, *other_raw_recognizer_results):
            metadata = result.recognition_metadata or {}
            if (
                result.entity_type != self.ENTITY
                or result.score <= 0
                or metadata.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY)
                or not self.has_context(text, result.start, result.end)
            ):
                continue
            result.score = min(1.0, max(result.score + CONTEXT_BOOST, CONTEXT_FLOOR))
            metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
            result.recognition_metadata = metadata
        return raw_recognizer_results


class QuebecHealthNumberRecognizer(ContextWordsRecognizer):
    """RAMQ number: 4 letters (name), birth date (month +50 for women), 2 digits.

    ``TREM 8501 0112`` as printed on the card is distinctive; ``TREM85010112`` less so
    (product codes look like that), so it needs a context word to be sure.
    """

    ENTITY = CA_QC_HEALTH_NUMBER
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern(
            "RAMQ, as printed",
            rf"(?-i:\b[A-Z]{{4}} {_RAMQ_YEAR_MONTH} {_RAMQ_DAY_SEQUENCE}\b)",
            0.5,
        ),
        Pattern(
            "RAMQ, compact", rf"(?-i:\b[A-Z]{{4}}{_RAMQ_YEAR_MONTH}{_RAMQ_DAY_SEQUENCE}\b)", 0.3
        ),
    ]
    CONTEXT_WORDS = re.compile(
        r"\b(?:ramq|nam|assurance[ -]maladie|carte[ -]soleil|health (?:card|insurance))\b"
    )


class CanadianPhoneRecognizer(ContextWordsRecognizer):
    """Phone layouts the NANP recognizer misses, and French and English context words.

    ``(514)-555-0123`` and ``514 5550123`` are surely phones; a bare ``555-0123`` only
    next to ``tél.``, ``cellulaire``, ``appelez``...
    """

    ENTITY = PHONE_NUMBER
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("NANP, (area code)-", r"(?<![\w+])\(\d{3}\)-\d{3}[ .-]?\d{4}\b", 0.7),
        Pattern(
            "NANP, area code then seven digits",
            r"(?<![\w+])(?:\+?1[ .-]?)?\(?[2-9]\d{2}\)?[ .-][2-9]\d{6}\b",
            0.5,
        ),
        Pattern("local number", r"(?<![\w+.-])[2-9]\d{2}[ .-]\d{4}\b(?![.-]\d)", 0.1),
    ]
    CONTEXT_WORDS = re.compile(
        r"\b(?:telephone|tel|cellulaire|cell?|portable|mobile|appel\w*|rappel\w*|joindre"
        r"|fax|telecopieur|phone|call\w*|ph)\b"
    )


class CardLayoutsRecognizer(CreditCardRecognizer):
    """Card numbers Presidio's patterns miss, validated (Luhn) like Presidio's own."""

    def __init__(self, supported_language: str) -> None:
        super().__init__(
            supported_language=supported_language,
            patterns=[
                Pattern(
                    "Mastercard 2-series (2221-2720)",
                    r"\b2(?:22[1-9]|2[3-9]\d|[3-6]\d{2}|7[01]\d|720)(?:[- ]?\d{4}){3}\b",
                    0.3,
                ),
                Pattern("19 digits", r"\b[3-6]\d{3}(?:[- ]?\d{4}){3}[- ]?\d{3}\b", 0.3),
            ],
        )


@lru_cache(maxsize=4)
def detection_recognizers(language: str) -> tuple[EntityRecognizer, ...]:
    """Ours for ``language``, and Presidio's card recognizer where Presidio has none."""
    recognizers: list[EntityRecognizer] = [
        QuebecHealthNumberRecognizer(supported_language=language),
        CanadianPhoneRecognizer(supported_language=language),
        CardLayoutsRecognizer(supported_language=language),
    ]
    if language == "fr":  # Presidio ships the card recognizer for en, es, it and pl only
        recognizers.append(
            CreditCardRecognizer(supported_language="fr", context=_FRENCH_CARD_CONTEXT)
        )
    return tuple(recognizers)


def missing_recognizers(analyzer: AnalyzerEngine, language: str) -> list[EntityRecognizer]:
    """Ours that ``analyzer``'s registry does not hold yet: pass as ``ad_hoc_recognizers``."""
    registered = {
        type(recognizer)
        for recognizer in analyzer.registry.get_recognizers(language=language, all_fields=True)
    }
    return [
        recognizer
        for recognizer in detection_recognizers(language)
        if type(recognizer) not in registered
    ]
