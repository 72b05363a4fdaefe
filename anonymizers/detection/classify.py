"""Which personal information a column holds, from its type, its name and a sample of values.

The type family decides first what is possible at all (``entities.ENTITIES_BY_FAMILY``):
a number is never a phone number *because* its digits look like one (order numbers,
amounts and ids do), only because the column is named so, and the one value shape
checked on numbers is a SIN's (nine digits passing Luhn). A date is a birth date when
its name says so, else nothing. Text values go through Presidio.

Confidences are on one scale, where ``LABEL_THRESHOLD`` (0.5) labels a column:

* a value confidence is the Wilson lower bound of the share of *distinct* values holding
  the entity (``confidence.wilson_lower_bound``), so that one stray e-mail address among
  a thousand notes, or three e-mails in a three-row table, does not read as certainty,
  and neither do a few repeated values: three browser versions that libphonenumber
  reads as phone numbers, repeated over half the rows, are three values, not five
  hundred (people's identifiers repeat little);
* a name confidence is the name rule's prior (``name_rules``); a weak rule (``nom``)
  stays below the threshold unless the values have the entity's shape (``shapes``),
  in which case it is the Wilson bound of that shape's share;
* a column's confidence is the **maximum** of the two: either source alone may label
  a column (a ``courriel`` column of unreadable values, an e-mail column named ``c1``),
  and agreement adds nothing, since the two are not independent evidence.

No value is ever copied into a finding, a message or an exception: reasons cite rule
phrases, entity types and counts only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final, cast

from anonymizers.detection.confidence import wilson_lower_bound
from anonymizers.detection.entities import CA_SIN, ENTITIES_BY_FAMILY, FAMILIES, TEXT_ENTITIES
from anonymizers.detection.name_rules import NameMatch, match_column_name
from anonymizers.detection.shapes import SHAPES
from anonymizers.detection.text_engine import BATCH_SIZE
from anonymizers.detection.value_scan import Hits, count_hits
from connectors.protocol import TypeFamily

LABEL_THRESHOLD: Final = 0.5
#: Free text: long, varied values made of words, worth a (slower) NER pass for names and
#: places. Words matter: user agents and URLs are long and varied too, and the small
#: models find "places" in every ``(Macintosh; Intel Mac OS X)``.
FREE_TEXT_MIN_MEAN_LENGTH: Final = 40
FREE_TEXT_MIN_DISTINCT_SHARE: Final = 0.5
FREE_TEXT_MIN_WORD_SHARE: Final = 0.5
_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*[.,;:!?]?")
#: A weak name rule counts once the Wilson bound of its shape's share reaches this.
SHAPE_CONFIRMS_AT: Final = 0.8
#: A name rule is overruled when the values are this surely another entity and none of
#: them its own (``from_address`` is "address" by name, e-mail addresses by value).
VALUES_OVERRULE_AT: Final = 0.9
#: The type families whose values are read: numbers (for a SIN's shape) and text.
NUMBER_FAMILIES: Final = frozenset({"integer", "numeric"})
TEXT_FAMILIES: Final = frozenset({"text", "other"})
VALUE_FAMILIES: Final = NUMBER_FAMILIES | TEXT_FAMILIES
#: The one value shape read from numbers: a SIN (nine digits passing Luhn).
NUMBER_SHAPES: Final = (CA_SIN,)
#: A SIN's digits: a whole number of any other length is no SIN, and needs no analyzer.
SIN_DIGITS: Final = 9

#: A sampled value; SQL ``NUMERIC`` columns arrive as ``Decimal``.
Value = str | int | float | Decimal | date | datetime | None


@dataclass(frozen=True)
class ColumnFinding:
    """What a column holds: ``entities`` maps each candidate entity to a confidence.

    ``hits`` counts, per entity, the sampled values that hold it; ``sample_size`` is the
    number of non-empty values looked at; ``reasons`` explains each confidence.
    """

    entities: dict[str, float]
    sample_size: int
    hits: dict[str, int]
    free_text: bool
    reasons: tuple[str, ...]

    def labels(self, threshold: float = LABEL_THRESHOLD) -> frozenset[str]:
        """The entities the column is labelled with: confidence at least ``threshold``."""
        return frozenset(e for e, confidence in self.entities.items() if confidence >= threshold)


def classify_column(
    name: str, family: str, values: Sequence[Value], *, batch_size: int = BATCH_SIZE
) -> ColumnFinding:
    """Classify one column from its ``name``, type ``family`` and sampled ``values``.

    ``batch_size`` is the number of texts spaCy processes at once for free text.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown type family {family!r}; expected one of {sorted(FAMILIES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    possible = ENTITIES_BY_FAMILY[cast(TypeFamily, family)]
    present = [value for value in values if not _missing(value)]
    reasons: list[str] = []
    names = _name_matches(name, family, possible, reasons)
    hits = Hits()
    free_text = False
    texts: list[str] = []
    if family in NUMBER_FAMILIES:
        numbers = [
            text
            for text in map(_integral_text, present)
            if text is not None and len(text) == SIN_DIGITS
        ]
        hits = count_hits(
            numbers, NUMBER_SHAPES, free_text=False, batch_size=batch_size, whole_value=True
        )
        reasons.append(f"{family} column: digit patterns ignored, SIN shape checked")
    elif family in TEXT_FAMILIES:
        texts = [str(value) for value in present]
        free_text = _is_free_text(texts)
        if free_text:
            reasons.append("free text: NER for PERSON and LOCATION, batched")
        wanted = [entity for entity in TEXT_ENTITIES if entity in possible]
        hits = count_hits(texts, wanted, free_text=free_text, batch_size=batch_size)
    else:
        reasons.append(f"{family} column: values not inspected, only a name can label it")
    distinct_values = len({str(value) for value in present})
    entities = _combine(names, hits, texts, (len(present), distinct_values), reasons)
    return ColumnFinding(
        entities=entities,
        sample_size=len(present),
        hits=dict(sorted(hits.rows.items())),
        free_text=free_text,
        reasons=tuple(reasons),
    )


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def _integral_text(value: object) -> str | None:
    """A whole number's digits (SINs stored as numbers), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return str(int(value))
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    return None


def _is_free_text(texts: Sequence[str]) -> bool:
    if not texts:
        return False
    mean_length = sum(map(len, texts)) / len(texts)
    distinct_share = len(set(texts)) / len(texts)
    return (
        mean_length > FREE_TEXT_MIN_MEAN_LENGTH
        and distinct_share > FREE_TEXT_MIN_DISTINCT_SHARE
        and sum(map(_word_share, texts)) / len(texts) >= FREE_TEXT_MIN_WORD_SHARE
    )


def _word_share(text: str) -> float:
    """The share of a text's space-separated tokens that are words."""
    tokens = text.split()
    return sum(_WORD.fullmatch(token) is not None for token in tokens) / len(tokens)


def _name_matches(
    name: str, family: str, possible: frozenset[str], reasons: list[str]
) -> list[NameMatch]:
    matches = []
    for match in match_column_name(name):
        if match.entity in possible:
            matches.append(match)
            reasons.append(f"name rule {match.rule!r}: {match.entity} (prior {match.prior:.2f})")
        else:
            reasons.append(
                f"name rule {match.rule!r}: {match.entity} impossible in a {family} column"
            )
    return matches


def _surest_other(confidences: dict[str, float], entity: str) -> str | None:
    """Another entity the values hold at ``VALUES_OVERRULE_AT`` or more, if any."""
    others = [(c, e) for e, c in confidences.items() if e != entity and c >= VALUES_OVERRULE_AT]
    return max(others)[1] if others else None


def _combine(
    names: Sequence[NameMatch],
    hits: Hits,
    texts: Sequence[str],
    sizes: tuple[int, int],
    reasons: list[str],
) -> dict[str, float]:
    """Each entity's confidence: the maximum of its name's and its values' (see module)."""
    sample_size, distinct_values = sizes
    confidences = {
        entity: wilson_lower_bound(count, distinct_values)
        for entity, count in hits.distinct.items()
    }
    for entity, count in sorted(hits.rows.items()):
        reasons.append(
            f"{entity}: {count} of {sample_size} values, {hits.distinct[entity]} of "
            f"{distinct_values} distinct (Wilson lower bound {confidences[entity]:.3f})"
        )
    for match in names:
        prior = match.prior
        shape = SHAPES.get(match.entity)
        if prior < LABEL_THRESHOLD and shape is not None and texts:
            shaped = sum(map(shape, texts))
            bound = wilson_lower_bound(shaped, sample_size)
            confirmed = bound >= SHAPE_CONFIRMS_AT
            reasons.append(
                f"{match.entity}: {shaped} of {sample_size} values have its shape "
                f"(Wilson lower bound {bound:.3f}), "
                + ("confirming" if confirmed else "not confirming")
                + f" the weak name rule {match.rule!r}"
            )
            prior = bound if confirmed else prior
        other = _surest_other(confidences, match.entity)
        if texts and hits.rows[match.entity] == 0 and other is not None:
            reasons.append(
                f"{match.entity}: name rule {match.rule!r} overruled, the values are "
                f"{other} (Wilson lower bound {confidences[other]:.3f}) and none {match.entity}"
            )
            prior = min(prior, LABEL_THRESHOLD / 2)
        confidences[match.entity] = max(confidences.get(match.entity, 0.0), prior)
    return {
        entity: confidences[entity] for entity in sorted(confidences) if confidences[entity] > 0
    }
