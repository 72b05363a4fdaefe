"""Which personal information a column holds, from its type, its name and a sample of values.

The type family decides first what is possible at all (``entities.ENTITIES_BY_FAMILY``):
a number is not a phone number because it has a phone number's length (order numbers,
amounts and ids do); numbers are read for two shapes only, a SIN's (nine digits passing
Luhn) and a *valid* number of a Canadian area code (``shapes.is_canadian_phone_number``:
one random ten-digit number in twenty is, so a column of them stays far from a label).
A date column holds dates (``DATE_TIME``), and birth dates when its name says so or
when its dates lie 14 to 110 years back over at least 25 distinct years, as only births
do (``BIRTH_AGES``, ``BIRTH_YEARS_SPREAD``); a birth date is not also labelled a date
(``entities.SUBSUMES``). Text values are looked for every entity the recognizer registry
knows (``text_engine.registry_entities``), see ``value_scan.detect``; a text column of
dates is read for birth dates the same way.

**Columns are judged by people, not one entity at a time.** A value is *personal* when
it holds any personal entity (``entities.PERSONAL_ENTITIES``); a column is personal when
its personal values are a clear share of its distinct values, and it is then labelled
with every personal entity that holds a meaningful part of them. A "preferred contact"
column, half e-mail addresses and half phone numbers, is personal (nearly every value
is) and labelled both, although neither kind alone is half of it.

Confidences are on one scale, where ``LABEL_THRESHOLD`` (0.5) labels a column:

* a share's confidence is the Wilson lower bound of the share of *distinct* values
  (``confidence.wilson_lower_bound``), so that one stray e-mail address among a thousand
  notes does not read as certainty, and neither do a few repeated values: three browser
  versions that libphonenumber reads as phone numbers, repeated over half the rows, are
  three values, not five hundred (people's identifiers repeat little). When the sample
  is the whole column (``complete``: the store holds no more values than were read, a
  three-row table), no sampling error is left, but a handful of distinct values is still
  thin evidence of what a column holds, so the bound is taken at one standard error
  (``COMPLETE_Z``) once there are two distinct values or more
  (``COMPLETE_MIN_DISTINCT``): three e-mail addresses of three are a label (0.75), one
  browser version of two that libphonenumber reads as a phone number is not (0.21), nor
  is a column whose one value reads as a name;
* an *unmistakable* entity (``entities.UNMISTAKABLE``: a checksum or a form nothing else
  has, an e-mail, IBAN or MAC address) makes a column personal once it surely holds
  ``PART_THRESHOLD`` of the values (the 99 % lower bound, or the exact share of a whole
  column: such values are no misreading): a sign-in
  column of e-mail addresses and user names is personal, whatever the user names are. Its
  confidence is that share over twice ``PART_THRESHOLD`` (capped at 1), so that reaching
  the part is reaching the label;
* a personal entity holding at least ``PART_THRESHOLD`` of the values (by the Wilson
  bound) takes the column's personal confidence; a non-personal one (a URL, a UUID) its
  own;
* a name confidence is the name rule's prior (``name_rules``); a weak rule (``nom``)
  stays below the threshold unless the values have the entity's shape (``shapes``),
  in which case it is the Wilson bound of that shape's share;
* an entity's confidence is the **maximum** of its name's and its values': either may
  label a column (a ``courriel`` column of unreadable values, an e-mail column named
  ``c1``), and agreement adds nothing, since the two are not independent evidence.

**Reading stops when the decision cannot change** (``settle_early``): distinct values
are read in rounds (``ROUNDS``: 40, then 100, 250, 500 in all, then the rest) and a column
is settled once the 99 % Wilson interval of its personal share lies wholly on one side of
``LABEL_THRESHOLD`` and that of every entity on one side of its threshold. A column of
e-mail addresses is settled after 40 values (enough for a Wilson bound above
``VALUES_OVERRULE_AT``), a column of product names too; a column
whose share is near a threshold is read whole. A table's columns are read together, so
that one spaCy batch serves all of a round's names, places and notes.

How the thresholds were chosen: 0.5 is the labelling rule the scan has always had (more
than half the distinct values, with 95 % confidence), now applied to personal values of
any kind. ``PART_THRESHOLD`` (0.2) labels a kind that is at least a fifth of the values:
a mixed column names its kinds, while the one value in twenty that NER misreads (a
surname that is a town's name, a product read as a person) labels nothing. The false
positives the scan avoids stay avoided: browser versions, order numbers, product names and
user agents hold no personal entity in more than a few of their distinct values, so their
personal share stays far below one half (``bench/scan_quality.py`` measures both sets).

No value is ever copied into a finding, a message or an exception: reasons cite rule
phrases, entity types and counts only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Final, cast

from anonymizers.detection.confidence import Z_95, wilson_interval, wilson_lower_bound
from anonymizers.detection.entities import (
    CA_SIN,
    DATE_OF_BIRTH,
    DATE_TIME,
    ENTITIES_BY_FAMILY,
    FAMILIES,
    NAME_ONLY_ENTITIES,
    PHONE_NUMBER,
    SUBSUMES,
    UNMISTAKABLE,
    entry,
)
from anonymizers.detection.name_rules import NameMatch, match_column_name
from anonymizers.detection.shapes import SHAPES, is_canadian_phone_number
from anonymizers.detection.text_engine import (
    BATCH_SIZE,
    DEFAULT_MODELS,
    MODEL_ENV,
    registry_entities,
)
from anonymizers.detection.value_scan import Hits, Request, detect
from connectors.protocol import TypeFamily

#: Changes whenever the same values could be labelled otherwise by this code: cached
#: scans taken under another ``classifier_fingerprint`` are not reused.
CLASSIFIER_VERSION: Final = 2
#: What labels also depend on: the packages whose lists and models the classifier reads,
#: and its own data files.
_FINGERPRINT_PACKAGES: Final = ("presidio-analyzer", "phonenumbers", "faker", "spacy")
_FINGERPRINT_DATA: Final = ("ca_places.csv", "nrp_terms.csv")
LABEL_THRESHOLD: Final = 0.5
#: A personal entity is named on a personal column when it holds this share of its values.
PART_THRESHOLD: Final = 0.2
#: The normal quantile of a whole column's bound: no sampling error, thin evidence...
COMPLETE_Z: Final = 1.0
#: ... as long as it has this many distinct values: one value is too little to say what
#: kind of column it is (a table whose colour is always "Black").
COMPLETE_MIN_DISTINCT: Final = 2
#: The normal quantile of the 99 % interval that settles a column before it is read whole.
SETTLE_Z: Final = 2.576
#: How many distinct values have been read after each round; then all of them.
ROUNDS: Final = (40, 100, 250, 500)
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
#: The type families whose values are read: numbers (for a SIN's and a phone's shape),
#: text, and dates (for a birth date's spread).
NUMBER_FAMILIES: Final = frozenset({"integer", "numeric"})
TEXT_FAMILIES: Final = frozenset({"text", "other"})
DATE_FAMILIES: Final = frozenset({"date", "datetime"})
VALUE_FAMILIES: Final = NUMBER_FAMILIES | TEXT_FAMILIES | DATE_FAMILIES
#: The value shape the analyzer reads from numbers: a SIN (nine digits passing Luhn).
NUMBER_SHAPES: Final = (CA_SIN,)
#: A SIN's digits: a whole number of any other length is no SIN, and needs no analyzer.
SIN_DIGITS: Final = 9
#: Birth dates lie this many years back at least and at most...
BIRTH_AGES: Final = (14, 110)
#: ... and a column of them spreads over this many distinct years at least: event dates
#: (orders, sign-ups, visits) lie in a few recent years.
BIRTH_YEARS_SPREAD: Final = 25
#: The share of a column's dates (Wilson lower bound) that must look like birth dates.
BIRTH_SHARE: Final = 0.9
_TEXT_DATE = re.compile(
    r"\s*(?:(?P<y1>\d{4})[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?P<y2>\d{4}))"
    r"(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?\s*"
)

#: A sampled value; SQL ``NUMERIC`` columns arrive as ``Decimal``.
Value = str | int | float | Decimal | date | datetime | None


@dataclass(frozen=True)
class ColumnFinding:
    """What a column holds: ``entities`` maps each candidate entity to a confidence.

    ``hits`` counts, per entity, the sampled values read that hold it; ``sample_size`` is
    the number of non-empty values read (fewer than sampled when the column settled
    early); ``reasons`` explains each confidence.
    """

    entities: dict[str, float]
    sample_size: int
    hits: dict[str, int]
    free_text: bool
    reasons: tuple[str, ...]

    def labels(self, threshold: float = LABEL_THRESHOLD) -> frozenset[str]:
        """The entities the column is labelled with: confidence at least ``threshold``."""
        return frozenset(e for e, confidence in self.entities.items() if confidence >= threshold)


@dataclass(frozen=True)
class ColumnSample:
    """One column to classify: its name, type family and sampled values. ``complete``:
    the values are every value the column holds (the store had no more to give)."""

    name: str
    family: str
    values: Sequence[Value]
    complete: bool = False


def classifier_fingerprint() -> str:
    """A digest of ``CLASSIFIER_VERSION``, the versions of the packages and spaCy models the
    classifier reads and of its data files: a cached scan taken under another one is
    taken again (``flows.scan.schema_hash``), since the same values could be labelled
    otherwise. Cheap: nothing heavy is imported."""
    return _fingerprint(
        CLASSIFIER_VERSION, *(os.environ.get(name, "") for name in sorted(MODEL_ENV.values()))
    )


@lru_cache(maxsize=8)
def _fingerprint(version: int, *models: str) -> str:
    from importlib import metadata, resources

    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    parts = {
        "version": version,
        "packages": {name: installed(name) for name in _FINGERPRINT_PACKAGES},
        "models": {name: installed(name) for name in (*DEFAULT_MODELS.values(), *models) if name},
        "data": {
            name: hashlib.sha256(
                (resources.files("anonymizers") / "data" / name).read_bytes()
            ).hexdigest()
            for name in _FINGERPRINT_DATA
        },
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def classify_column(
    name: str,
    family: str,
    values: Sequence[Value],
    *,
    batch_size: int = BATCH_SIZE,
    complete: bool = False,
    settle_early: bool = True,
) -> ColumnFinding:
    """Classify one column from its ``name``, type ``family`` and sampled ``values``."""
    sample = ColumnSample(name, family, values, complete)
    return classify_table([sample], batch_size=batch_size, settle_early=settle_early)[0]


def classify_table(
    columns: Sequence[ColumnSample], *, batch_size: int = BATCH_SIZE, settle_early: bool = True
) -> list[ColumnFinding]:
    """Classify a table's columns together (see the module), in their order.

    ``batch_size`` is the number of texts spaCy processes at once; ``settle_early=False``
    reads every sampled value of every column.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for column in columns:
        if column.family not in FAMILIES:
            raise ValueError(
                f"unknown type family {column.family!r}; expected one of {sorted(FAMILIES)}"
            )
    states = [_Column.start(column) for column in columns]
    for limit in (*ROUNDS, math.inf):
        pending = [state for state in states if not state.done]
        if not pending:
            break
        requests = [state.next_request(limit) for state in pending]
        if any(request.texts for request in requests):
            found = detect(requests, batch_size=batch_size)
        else:  # nothing for the analyzer: the engine need not load
            found = [[] for _ in requests]
        for state, entities in zip(pending, found, strict=True):
            state.take(entities)
        for state in pending:
            state.done = state.exhausted or (settle_early and state.settled())
    return [state.finding() for state in states]


@dataclass
class _Column:
    """A column being read: its distinct values in sample order, and what was found."""

    sample: ColumnSample
    names: list[NameMatch]
    reasons: list[str]
    texts: list[str]
    occurrences: Counter[str]
    distinct: list[str]
    wanted: frozenset[str]
    free_text: bool
    numbers: bool
    years: list[int]
    read: int = 0
    asked: list[int] = field(default_factory=list)
    shaped: dict[int, frozenset[str]] = field(default_factory=dict)
    hits: Hits = field(default_factory=Hits)
    personal: int = 0
    done: bool = False

    @classmethod
    def start(cls, sample: ColumnSample) -> _Column:
        family = sample.family
        possible = ENTITIES_BY_FAMILY[cast(TypeFamily, family)]
        present = [value for value in sample.values if not _missing(value)]
        reasons: list[str] = []
        names = _name_matches(sample.name, family, possible, reasons)
        texts: list[str] = []
        wanted: frozenset[str] = frozenset()
        free_text = numbers = False
        years: list[int] = []
        if family in NUMBER_FAMILIES:
            numbers = True
            texts = [_integral_text(value) or str(value) for value in present]
            wanted = frozenset({*NUMBER_SHAPES, PHONE_NUMBER})
            reasons.append(
                f"{family} column: only a SIN's and a valid Canadian phone number's shapes are read"
            )
        elif family in TEXT_FAMILIES:
            texts = [str(value) for value in present]
            free_text = _is_free_text(texts)
            if free_text:
                reasons.append("free text: NER for names, places and groups, batched")
            # Every entity the registry knows, those outside the catalogue too (``entry``).
            wanted = registry_entities() - NAME_ONLY_ENTITIES if texts else frozenset()
            years = [year for year in map(_text_year, texts) if year is not None]
            if len(years) < len(texts):
                years = []  # not a column of dates
        elif family in DATE_FAMILIES:
            years = [value.year for value in present if isinstance(value, date)]
            reasons.append(f"{family} column: DATE_TIME by its type, birth dates by spread")
        else:
            reasons.append(f"{family} column: values not inspected, only a name can label it")
        occurrences = Counter(texts)
        return cls(
            sample=sample,
            names=names,
            reasons=reasons,
            texts=texts,
            occurrences=occurrences,
            distinct=list(occurrences),
            wanted=wanted,
            free_text=free_text,
            numbers=numbers,
            years=years,
            done=not occurrences or not wanted,
        )

    @property
    def exhausted(self) -> bool:
        return self.read >= len(self.distinct)

    def next_request(self, limit: float) -> Request:
        """The next distinct values to look at, up to ``limit`` read in all."""
        end = int(min(limit, len(self.distinct)))
        chunk = range(self.read, end)
        self.read = end
        if not self.numbers:
            self.asked = list(chunk)
            texts = [self.distinct[i] for i in self.asked]
            return Request(texts, self.wanted, free_text=self.free_text)
        # Of numbers, only nine digits can be a SIN (the analyzer checks them); a valid
        # Canadian phone number is checked here; any other number needs nothing.
        self.asked = [i for i in chunk if _sin_digits(self.distinct[i])]
        self.shaped = {
            i: frozenset({PHONE_NUMBER})
            for i in chunk
            if is_canadian_phone_number(self.distinct[i])
        }
        texts = [self.distinct[i] for i in self.asked]
        return Request(texts, frozenset(NUMBER_SHAPES), whole_value=True)

    def take(self, found: Sequence[frozenset[str]]) -> None:
        values = dict(self.shaped)
        for i, entities in zip(self.asked, found, strict=True):
            values[i] = values.get(i, frozenset()) | entities
        for i, entities in values.items():
            for entity in entities:
                self.hits.rows[entity] += self.occurrences[self.distinct[i]]
                self.hits.distinct[entity] += 1
            self.personal += any(entry(entity).personal for entity in entities)
        self.shaped = {}

    @property
    def exact(self) -> bool:
        """Shares are exact: every value of the column has been read."""
        return self.sample.complete and self.exhausted

    def confidence(self, hits: int) -> float:
        """The confidence a share of ``hits`` distinct values read gives (see module)."""
        relaxed = self.exact and self.read >= COMPLETE_MIN_DISTINCT
        return wilson_lower_bound(hits, self.read, COMPLETE_Z if relaxed else Z_95)

    def clear_share(self, hits: int) -> float:
        """The share of values an unmistakable entity surely holds: the exact share of a
        whole column, else the lower bound of the 99 % interval (a handful of values
        proves little)."""
        if self.exact:
            return hits / self.read if self.read else 0.0
        return wilson_interval(hits, self.read, SETTLE_Z)[0]

    def settled(self) -> bool:
        """Whether reading more values could not change the labels (see module)."""

        def undecided(hits: int, threshold: float) -> bool:
            lower, upper = wilson_interval(hits, self.read, SETTLE_Z)
            return lower < threshold <= upper

        unmistakable = [e for e in self.wanted if e in UNMISTAKABLE]
        if any(undecided(self.hits.distinct[e], PART_THRESHOLD) for e in unmistakable):
            return False
        personal = any(
            wilson_interval(self.hits.distinct[e], self.read, SETTLE_Z)[0] >= PART_THRESHOLD
            for e in unmistakable
        )
        if not personal:
            if undecided(self.personal, LABEL_THRESHOLD):
                return False
            personal = wilson_interval(self.personal, self.read, SETTLE_Z)[0] >= LABEL_THRESHOLD
        for entity in self.wanted:
            if entry(entity).personal:
                if personal and undecided(self.hits.distinct[entity], PART_THRESHOLD):
                    return False
            elif undecided(self.hits.distinct[entity], LABEL_THRESHOLD):
                return False
        # A name rule is overruled by values that are surely another entity and none its
        # own (see ``_combine``): one of its own further on, or a share near
        # ``VALUES_OVERRULE_AT``, would decide otherwise, so such a column is read whole.
        return not any(
            self.hits.distinct[match.entity] == 0
            and wilson_interval(
                max(self.personal, *self.hits.distinct.values(), 0), self.read, SETTLE_Z
            )[1]
            >= VALUES_OVERRULE_AT
            for match in self.names
        )

    def finding(self) -> ColumnFinding:
        rows_read = sum(self.occurrences[text] for text in self.distinct[: self.read])
        rows_read = rows_read or len(self.years)  # a date column's values, read whole
        if self.read < len(self.distinct):
            self.reasons.append(
                f"settled after {self.read} of {len(self.distinct)} distinct values "
                f"({rows_read} of {len(self.texts)} values)"
            )
        entities = self._combine(rows_read)
        return ColumnFinding(
            entities=entities,
            sample_size=rows_read,
            hits=dict(sorted(self.hits.rows.items())),
            free_text=self.free_text,
            reasons=tuple(self.reasons),
        )

    def _combine(self, rows_read: int) -> dict[str, float]:
        """Each entity's confidence: the maximum of its name's and its values' (see module)."""
        reasons = self.reasons
        hits = self.hits
        how = "Wilson lower bound" + (
            " at one standard error, every value read" if self.exact else ""
        )
        column = self.confidence(self.personal)
        if self.personal:
            reasons.append(
                f"personal: {self.personal} of {self.read} distinct values hold personal "
                f"information ({how} {column:.3f})"
            )
        for entity in sorted(UNMISTAKABLE & set(hits.distinct)):
            clear = min(1.0, self.clear_share(hits.distinct[entity]) / (2 * PART_THRESHOLD))
            if clear > column:
                column = clear
                reasons.append(
                    f"personal: {entity} is unmistakable and holds a fifth of the values or "
                    f"more (confidence {clear:.3f})"
                )
        confidences: dict[str, float] = {}
        for entity, count in sorted(hits.distinct.items()):
            own = self.confidence(count)
            part = entry(entity).personal and (
                own >= PART_THRESHOLD
                or (entity in UNMISTAKABLE and self.clear_share(count) >= PART_THRESHOLD)
            )
            confidences[entity] = column if part and column >= LABEL_THRESHOLD else own
            reasons.append(
                f"{entity}: {hits.rows[entity]} of {rows_read} values, {count} of {self.read} "
                f"distinct ({how} {own:.3f}"
                + (", a part of the personal values)" if confidences[entity] > own else ")")
            )
        if self.sample.family in DATE_FAMILIES and self.years:
            confidences[DATE_TIME] = 1.0
        birth = self._birth_dates()
        if birth:
            confidences[DATE_OF_BIRTH] = birth
        texts = self.texts if not self.numbers else []
        for match in self.names:
            prior = match.prior
            shape = SHAPES.get(match.entity)
            if prior < LABEL_THRESHOLD and shape is not None and texts:
                shaped = sum(map(shape, texts))
                bound = wilson_lower_bound(shaped, len(texts))
                confirmed = bound >= SHAPE_CONFIRMS_AT
                reasons.append(
                    f"{match.entity}: {shaped} of {len(texts)} values have its shape "
                    f"(Wilson lower bound {bound:.3f}), "
                    + ("confirming" if confirmed else "not confirming")
                    + f" the weak name rule {match.rule!r}"
                )
                prior = bound if confirmed else prior
            other = _surest_other(confidences, match.entity)
            if texts and hits.rows[match.entity] == 0 and other is not None:
                reasons.append(
                    f"{match.entity}: name rule {match.rule!r} overruled, the values are "
                    f"{other} ({how} {confidences[other]:.3f}) and none {match.entity}"
                )
                prior = min(prior, LABEL_THRESHOLD / 2)
            confidences[match.entity] = max(confidences.get(match.entity, 0.0), prior)
        for specific, general in SUBSUMES.items():
            if confidences.get(specific, 0.0) >= LABEL_THRESHOLD and general in confidences:
                reasons.append(f"{general}: the values are {specific}")
                del confidences[general]
        return {e: confidences[e] for e in sorted(confidences) if confidences[e] > 0}

    def _birth_dates(self) -> float:
        """The confidence that the column's dates are birth dates by their spread alone
        (``BIRTH_AGES``, ``BIRTH_YEARS_SPREAD``, ``BIRTH_SHARE``), else 0."""
        if not self.years:
            return 0.0
        this_year = date.today().year
        youngest, oldest = BIRTH_AGES
        born = [y for y in self.years if this_year - oldest <= y <= this_year - youngest]
        share = wilson_lower_bound(len(born), len(self.years))
        spread = len(set(born))
        if spread < BIRTH_YEARS_SPREAD or share < BIRTH_SHARE:
            return 0.0
        self.reasons.append(
            f"{DATE_OF_BIRTH}: {len(born)} of {len(self.years)} dates lie {youngest} to "
            f"{oldest} years back, over {spread} distinct years (Wilson lower bound "
            f"{share:.3f})"
        )
        return share


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


def _text_year(text: str) -> int | None:
    """The year of a text that is one date (``1985-03-14``, ``14/03/1985``), else ``None``."""
    match = _TEXT_DATE.fullmatch(text)
    return None if match is None else int(match["y1"] or match["y2"])


def _sin_digits(text: str) -> bool:
    return len(text) == SIN_DIGITS and text.isdigit()


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
    """Another entity the values hold at ``VALUES_OVERRULE_AT`` or more, if any; not the
    general one ``entity`` is a case of (dates do not overrule a birth date)."""
    others = [
        (c, e)
        for e, c in confidences.items()
        if e not in (entity, SUBSUMES.get(entity)) and c >= VALUES_OVERRULE_AT
    ]
    return max(others)[1] if others else None
