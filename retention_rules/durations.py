"""Retention periods as calendar durations.

Retention law speaks in calendar units ("six years", "13 months"), which a fixed number
of seconds cannot express: six years back from 29 February is not 2,191.5 days. A
`Duration` keeps the calendar units and subtracts them with `relativedelta`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from dateutil.relativedelta import relativedelta
from pydantic import AfterValidator, GetCoreSchemaHandler
from pydantic_core import core_schema

_UNITS = {
    # unit word (English and French, singular and plural) -> field of Duration
    "year": "years", "years": "years", "yr": "years", "yrs": "years", "y": "years",
    "an": "years", "ans": "years", "année": "years", "années": "years",
    "month": "months", "months": "months", "mo": "months", "mois": "months",
    "week": "weeks", "weeks": "weeks", "w": "weeks", "semaine": "weeks", "semaines": "weeks",
    "day": "days", "days": "days", "d": "days", "jour": "days", "jours": "days",
}  # fmt: skip
#: Each unit's words, singular and plural, for `Duration.spoken`.
_WORDS = {
    "en": {"years": ("year", "years"), "months": ("month", "months"),
           "weeks": ("week", "weeks"), "days": ("day", "days")},
    "fr": {"years": ("an", "ans"), "months": ("mois", "mois"),
           "weeks": ("semaine", "semaines"), "days": ("jour", "jours")},
}  # fmt: skip
_PHRASE_PART = re.compile(r"(\d+)\s*([a-zA-Zéû]+)")
_ISO = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
)
#: The longest duration: a cut-off this far back from any instant Tenure runs at is a
#: date, and no retention law speaks of longer.
MAX_YEARS = 1000
# Durations are ordered by where they land from this fixed day, so that "12 months"
# and "1 year" compare equal and "13 months" is longer than "1 year".
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Duration:
    """A calendar duration with the text it was written as (for messages and reports)."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse '13 months', '6 years', '1 year 6 months', '30 jours' or ISO 8601 'P6Y'."""
        raw = text.strip()
        fields = _parse_iso(raw) if raw[:1].upper() == "P" else _parse_phrase(raw)
        duration = cls(**fields, text=raw)
        if duration.approximate_years() > MAX_YEARS:
            raise ValueError(
                f"duration {raw!r} is too long: at most {MAX_YEARS} years, so that its "
                "cut-off is a date"
            )
        return duration

    def approximate_years(self) -> float:
        """The length in years, with a month as 1/12 and a day as 1/365.25 of one."""
        return self.years + self.months / 12 + (self.weeks * 7 + self.days) / 365.25

    @property
    def is_zero(self) -> bool:
        return self.as_relativedelta() == relativedelta()

    def as_relativedelta(self) -> relativedelta:
        return relativedelta(years=self.years, months=self.months, weeks=self.weeks, days=self.days)

    def before(self, moment: datetime) -> datetime:
        """The instant this duration before `moment`, in calendar arithmetic."""
        return moment - self.as_relativedelta()

    def sort_key(self) -> datetime:
        return _REFERENCE + self.as_relativedelta()

    def __str__(self) -> str:
        return self.text or _canonical(self)

    def spoken(self, language: str) -> str:
        """The duration in words of ``language`` (``fr`` or ``en``): "6 years", "6 ans"."""
        words = _WORDS["fr" if language == "fr" else "en"]
        parts = [
            f"{n} {words[unit][0] if n == 1 else words[unit][1]}"
            for unit, n in (("years", self.years), ("months", self.months),
                            ("weeks", self.weeks), ("days", self.days))
            if n
        ]  # fmt: skip
        return " ".join(parts) or f"0 {words['days'][1]}"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validate from a string (or an existing Duration); serialize back to its text."""
        return core_schema.no_info_plain_validator_function(
            _coerce, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


def _coerce(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, str):
        return Duration.parse(value)
    raise ValueError("expected a duration such as '13 months', '6 years' or 'P6Y'")


def positive(duration: Duration) -> Duration:
    """For periods after which data is destroyed: zero would destroy on arrival."""
    if duration.is_zero:
        raise ValueError(f"duration {duration} is zero; it must be positive")
    return duration


PositiveDuration = Annotated[Duration, AfterValidator(positive)]


def _parse_iso(raw: str) -> dict[str, int]:
    match = _ISO.fullmatch(raw.upper())
    if match is None or raw.upper() == "P":
        raise ValueError(f"invalid ISO 8601 duration {raw!r}: expected e.g. P6Y, P13M, P1Y6M, P30D")
    return {unit: int(value) for unit, value in match.groupdict(default="0").items()}


def _parse_phrase(raw: str) -> dict[str, int]:
    fields: dict[str, int] = {}
    consumed = 0
    for part in _PHRASE_PART.finditer(raw):
        gap = raw[consumed : part.start()].strip(" ,")
        if gap not in ("", "and", "et"):
            break
        unit = _UNITS.get(part.group(2).lower())
        if unit is None:
            raise ValueError(
                f"invalid duration {raw!r}: unknown unit {part.group(2)!r} "
                "(use years, months, weeks or days, or ISO 8601 like P6Y)"
            )
        fields[unit] = fields.get(unit, 0) + int(part.group(1))
        consumed = part.end()
    if not fields or raw[consumed:].strip():
        raise ValueError(
            f"invalid duration {raw!r}: expected e.g. '13 months', '6 years', "
            "'1 year 6 months' or ISO 8601 'P6Y'"
        )
    return fields


def _canonical(duration: Duration) -> str:
    parts = [
        f"{value} {unit if value != 1 else unit[:-1]}"
        for unit, value in (
            ("years", duration.years),
            ("months", duration.months),
            ("weeks", duration.weeks),
            ("days", duration.days),
        )
        if value
    ]
    return " ".join(parts)
