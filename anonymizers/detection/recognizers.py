"""Tenure's recognizers, one class each, and the one function that builds the registry.

``recognizer_registry`` is the text engine's registry, which the scan and ``redact_text``
both analyse with: Presidio's predefined recognizers, its phone recognizer for two
regions instead of eight, its Canadian SIN and postal code recognizers, and Tenure's
(``tenure_recognizers``), which find what Presidio misses:

* ``NanpPhoneRecognizer``: North American phone numbers in every common layout, valid or
  not (libphonenumber finds the valid ones); ``CanadianPhoneRecognizer`` adds the layouts
  both miss and, above all, context: Presidio's own context words never match in the
  shared engine (its spaCy pipelines run without a lemmatizer), so ours look for French
  and English words (``tél.``, ``cellulaire``, ``appelez``, ``RAMQ``...) in the raw text
  around a match and raise the score of *every* recognizer's match of their entity, not
  just their own;
* ``LooseEmailRecognizer``: e-mail addresses of any shape;
* ``GivenNameRecognizer``: a known given name and capitalised words, for the person names
  the small spaCy models miss;
* ``QuebecHealthNumberRecognizer``: the RAMQ health number;
* ``CardLayoutsRecognizer``: Presidio's card recognizer exists for English only and misses
  2-series Mastercard and 19-digit numbers; this one adds those layouts with the same Luhn
  validation, in both languages (and Presidio's is added for French);
* ``IpAddressRecognizer``: Presidio's IP recognizer without software versions
  (``Chrome/120.0.0.0`` is no address).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

from presidio_analyzer import Pattern, PatternRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.predefined_recognizers import (
    CaPostalCodeRecognizer,
    CaSinRecognizer,
    CreditCardRecognizer,
    IpRecognizer,
    PhoneRecognizer,
)

from anonymizers.detection.entities import CA_QC_HEALTH_NUMBER, EMAIL_ADDRESS, PERSON, PHONE_NUMBER
from anonymizers.detection.shapes import fold, given_names

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

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
#: The regions Presidio's phone recognizer tries: the matcher runs once per region.
PHONE_REGIONS = ("CA", "FR")
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


class NamedPatternRecognizer(PatternRecognizer):
    """A pattern recognizer for one language, named after its class.

    Subclasses set ``ENTITY`` and ``PATTERNS`` (or override ``pattern_list`` where the
    patterns are costly to build).
    """

    ENTITY: ClassVar[str]
    PATTERNS: ClassVar[list[Pattern]]

    def __init__(self, supported_language: str) -> None:
        super().__init__(
            supported_entity=self.ENTITY,
            name=type(self).__name__,
            supported_language=supported_language,
            patterns=self.pattern_list(),
        )

    def pattern_list(self) -> list[Pattern]:
        """The patterns to match."""
        return self.PATTERNS


class NanpPhoneRecognizer(NamedPatternRecognizer):
    """North American phone numbers in every common layout, valid or not: surer than the
    NER, which sometimes calls "(514) 555" a place."""

    ENTITY = PHONE_NUMBER
    PATTERNS: ClassVar[list[Pattern]] = [
        Pattern("NANP phone, separated", _NANP_PHONE, 0.9),
        Pattern("NANP phone, digits only", _NANP_PHONE_DIGITS, 0.5),
    ]


class LooseEmailRecognizer(NamedPatternRecognizer):
    """E-mail addresses of any RFC 5322 local part and any domain shape."""

    ENTITY = EMAIL_ADDRESS
    PATTERNS: ClassVar[list[Pattern]] = [Pattern("anything@domain.tld", _LOOSE_EMAIL, 0.8)]


class GivenNameRecognizer(NamedPatternRecognizer):
    """A known given name followed by capitalised words (``given_name_pattern``), for the
    person names the small models miss."""

    ENTITY = PERSON

    def pattern_list(self) -> list[Pattern]:
        return [Pattern("given name + capitalised words", given_name_pattern(), 0.9)]


@lru_cache(maxsize=1)
def given_name_pattern() -> str:
    """A known given name (Faker's en/fr lists) followed by one to three capitalised words.

    Case-sensitive whatever flags Presidio passes, so that "will be" is not "Will Smith".
    """
    names = given_names()
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return (
        rf"(?-i:\b(?:{alternatives})(?:-[{_UPPER}]{_NAME_TAIL})?"
        rf"(?:[ \t]+[{_UPPER}]{_NAME_TAIL}){{1,3}}\b)"
    )


class ContextWordsRecognizer(NamedPatternRecognizer):
    """A pattern recognizer that boosts matches of its entity near one of its words.

    Subclasses set ``PATTERNS``, ``ENTITY`` and ``CONTEXT_WORDS`` (a regular expression
    over folded text, whole words).
    """

    CONTEXT_WORDS: ClassVar[re.Pattern[str]]

    def has_context(self, text: str, start: int, end: int) -> bool:
        """Whether a context word is within reach of ``text[start:end]``."""
        before = fold(text[max(0, start - CONTEXT_BEFORE) : start])
        after = fold(text[end : end + CONTEXT_AFTER])
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


class IpAddressRecognizer(IpRecognizer):
    """Presidio's IP recognizer, without the version numbers of software: an IPv4 shape
    right after ``/`` or a word, or followed by more dotted digits (``Chrome/120.0.0.0``,
    ``Version/17.4.1.2``, ``10.0.19045.3803``), is a version, not an address."""

    def __init__(self, supported_language: str) -> None:
        patterns = [
            Pattern(
                pattern.name,
                rf"(?<![/\w.]){pattern.regex}(?!\.\d)" if pattern.name == "IPv4" else pattern.regex,
                pattern.score,
            )
            for pattern in IpRecognizer.PATTERNS
        ]
        super().__init__(patterns=patterns, supported_language=supported_language)


@lru_cache(maxsize=4)
def tenure_recognizers(language: str) -> tuple[EntityRecognizer, ...]:
    """The recognizers the registry adds to Presidio's predefined ones for ``language``."""
    recognizers: list[EntityRecognizer] = [
        PhoneRecognizer(supported_language=language, supported_regions=PHONE_REGIONS),
        IpAddressRecognizer(supported_language=language),
        NanpPhoneRecognizer(supported_language=language),
        LooseEmailRecognizer(supported_language=language),
        GivenNameRecognizer(supported_language=language),
        CaSinRecognizer(supported_language=language),
        CaPostalCodeRecognizer(supported_language=language),
        QuebecHealthNumberRecognizer(supported_language=language),
        CanadianPhoneRecognizer(supported_language=language),
        CardLayoutsRecognizer(supported_language=language),
    ]
    if language == "fr":  # Presidio ships the card recognizer for en, es, it and pl only
        recognizers.append(
            CreditCardRecognizer(supported_language="fr", context=_FRENCH_CARD_CONTEXT)
        )
    return tuple(recognizers)


def recognizer_registry(nlp_engine: NlpEngine, languages: Sequence[str]) -> RecognizerRegistry:
    """The one registry of the text engine, for ``languages``: Presidio's predefined
    recognizers (with its phone recognizer replaced by one for `PHONE_REGIONS`, its IP
    recognizer by `IpAddressRecognizer`) and `tenure_recognizers`."""
    registry = RecognizerRegistry(supported_languages=list(languages))
    registry.load_predefined_recognizers(
        languages=list(languages), nlp_engine=nlp_engine, countries=["ca"]
    )
    registry.remove_recognizer("PhoneRecognizer")  # replaced by ours, with fewer regions
    registry.remove_recognizer("IpRecognizer")  # replaced by ours, without versions
    for language in languages:
        for recognizer in tenure_recognizers(language):
            registry.add_recognizer(recognizer)
    return registry


def missing_recognizers(analyzer: AnalyzerEngine, language: str) -> list[EntityRecognizer]:
    """Tenure's recognizers for ``language`` that ``analyzer``'s registry lacks (none for
    the text engine's): pass them as ``ad_hoc_recognizers`` to another analyzer."""
    registered = {
        type(recognizer)
        for recognizer in analyzer.registry.get_recognizers(language=language, all_fields=True)
    }
    return [
        recognizer
        for recognizer in tenure_recognizers(language)
        if type(recognizer) not in registered
    ]
