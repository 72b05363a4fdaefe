"""Retention periods: parsing, calendar arithmetic and ordering."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention_rules.durations import Duration


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("13 months", (0, 13, 0, 0)),
        ("6 years", (6, 0, 0, 0)),
        ("1 year", (1, 0, 0, 0)),
        ("1 year 6 months", (1, 6, 0, 0)),
        ("2 years, 3 months and 10 days", (2, 3, 0, 10)),
        ("30 jours", (0, 0, 0, 30)),
        ("1 an et 6 mois", (1, 6, 0, 0)),
        ("P6Y", (6, 0, 0, 0)),
        ("p1y6m", (1, 6, 0, 0)),
        ("P2W", (0, 0, 2, 0)),
        ("P1Y2M3W4D", (1, 2, 3, 4)),
        ("0 days", (0, 0, 0, 0)),
    ],
)
def test_parse(text: str, fields: tuple[int, int, int, int]) -> None:
    d = Duration.parse(text)
    assert (d.years, d.months, d.weeks, d.days) == fields
    assert str(d) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("13 mnths", "unknown unit 'mnths'"),
        ("six years", "expected e.g."),
        ("6", "expected e.g."),
        ("6 years ago", "unknown unit 'ago'|expected e.g."),
        ("P", "invalid ISO 8601"),
        ("P6X", "invalid ISO 8601"),
        ("PT5H", "invalid ISO 8601"),
        ("", "expected e.g."),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Duration.parse(text)


def test_calendar_arithmetic_clamps_month_ends() -> None:
    leap_day = datetime(2024, 2, 29, 12, tzinfo=UTC)
    assert Duration.parse("1 year").before(leap_day) == datetime(2023, 2, 28, 12, tzinfo=UTC)
    march_31 = datetime(2026, 3, 31, tzinfo=UTC)
    assert Duration.parse("1 month").before(march_31) == datetime(2026, 2, 28, tzinfo=UTC)


def test_ordering_treats_equal_spans_as_equal() -> None:
    assert Duration.parse("12 months").sort_key() == Duration.parse("1 year").sort_key()
    assert Duration.parse("13 months").sort_key() > Duration.parse("P1Y").sort_key()
    assert Duration.parse("P6Y").sort_key() < Duration.parse("6 years 1 day").sort_key()


units = st.integers(min_value=0, max_value=40)


@given(years=units, months=units, weeks=units, days=units)
def test_phrase_and_iso_forms_agree(years: int, months: int, weeks: int, days: int) -> None:
    phrase = f"{years} years {months} months {weeks} weeks {days} days"
    iso = f"P{years}Y{months}M{weeks}W{days}D"
    assert Duration.parse(phrase).as_relativedelta() == Duration.parse(iso).as_relativedelta()


@given(
    years=units, months=units, days=units, extra=st.integers(min_value=1, max_value=400),
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1)),
)  # fmt: skip
def test_longer_durations_reach_further_back(
    years: int, months: int, days: int, extra: int, moment: datetime
) -> None:
    shorter = Duration(years=years, months=months, days=days)
    longer = Duration(years=years, months=months, days=days + extra)
    assert longer.before(moment) < shorter.before(moment)
    assert longer.sort_key() > shorter.sort_key()
