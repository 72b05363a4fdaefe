"""When a person's request is due: each law's rule, and the strictest of several."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention_rules.deadlines import (
    RULES,
    Jurisdiction,
    RequestKind,
    deadline,
)
from retention_rules.durations import Duration

Q, P, G = Jurisdiction.QUEBEC, Jurisdiction.PIPEDA, Jurisdiction.GDPR


def test_quebec_gives_30_calendar_days_and_no_extension() -> None:
    found = deadline(RequestKind.ACCESS, date(2026, 1, 10), [Q])
    assert found.due == date(2026, 2, 9)
    assert found.extended_due is None and found.notice_due is None
    assert found.governing == (RULES[Q],)
    assert "s. 32" in RULES[Q].provision and "refusal" in RULES[Q].silence
    assert "Commission d'accès à l'information" in RULES[Q].recourse


def test_pipeda_allows_30_more_days_with_a_notice_within_the_first_30() -> None:
    found = deadline(RequestKind.ACCESS, date(2026, 1, 10), [P])
    assert found.due == date(2026, 2, 9)
    assert found.extended_due == date(2026, 3, 11)
    assert found.notice_due == date(2026, 2, 9)


def test_gdpr_counts_a_month_to_the_same_date_or_the_months_last_day() -> None:
    found = deadline(RequestKind.ERASURE, date(2026, 1, 31), [G])
    assert found.due == date(2026, 2, 28)  # no 31 February
    # Two more months from the first due date: the stricter reading (not 30 April).
    assert found.extended_due == date(2026, 4, 28)
    assert found.notice_due == date(2026, 2, 28)
    leap = deadline(RequestKind.ERASURE, date(2028, 1, 31), [G])
    assert leap.due == date(2028, 2, 29)


def test_the_strictest_rule_governs_and_quebec_forbids_any_extension() -> None:
    # 1 February 2026: a month ends on 1 March, 30 days on 3 March.
    found = deadline(RequestKind.ACCESS, date(2026, 2, 1), [Q, P, G])
    assert found.due == date(2026, 3, 1) and found.governing == (RULES[G],)
    assert found.extended_due is None  # Quebec's law allows none
    both = deadline(RequestKind.ACCESS, date(2026, 1, 31), [P, G])
    assert both.due == date(2026, 2, 28)  # GDPR's month, before PIPEDA's 2 March
    assert both.extended_due == date(2026, 4, 1)  # PIPEDA's 60 days, before 30 April
    assert both.notice_due == date(2026, 2, 28)


def test_rules_that_agree_on_the_day_all_govern() -> None:
    found = deadline(RequestKind.ACCESS, date(2026, 3, 10), [Q, P])
    assert found.governing == (RULES[Q], RULES[P])


def test_a_complaint_is_due_by_the_policys_promise() -> None:
    found = deadline(RequestKind.COMPLAINT, date(2026, 1, 10), [Q, G])
    assert found.due == date(2026, 2, 9) and found.extended_due is None
    assert found.governing[0].jurisdiction is None
    shorter = deadline(
        RequestKind.COMPLAINT, date(2026, 1, 10), [Q], complaint_period=Duration.parse("15 days")
    )
    assert shorter.due == date(2026, 1, 25)


def test_a_request_falls_under_some_law() -> None:
    with pytest.raises(ValueError, match="at least one jurisdiction"):
        deadline(RequestKind.ACCESS, date(2026, 1, 10), [])


@given(
    received=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    laws=st.sets(st.sampled_from(list(Jurisdiction)), min_size=1),
    kind=st.sampled_from([RequestKind.ACCESS, RequestKind.CORRECTION, RequestKind.ERASURE]),
)
def test_the_due_date_is_never_later_than_any_applicable_rules(
    received: date, laws: set[Jurisdiction], kind: RequestKind
) -> None:
    found = deadline(kind, received, laws)
    covering = [RULES[law] for law in laws if kind in RULES[law].kinds]
    if covering:
        assert found.due == min(rule.due(received) for rule in covering)
        assert set(found.applicable) == set(covering)
    else:  # PIPEDA alone times no correction or erasure: the policy's promise does
        assert found.due == received + timedelta(days=30)
        assert found.governing[0].jurisdiction is None
    assert found.due > received
    assert all(rule.due(received) == found.due for rule in found.governing)
    extendable = bool(covering) and all(rule.extension is not None for rule in covering)
    assert (found.extended_due is not None) == extendable
    if found.extended_due is not None:
        assert found.notice_due is not None
        assert received < found.notice_due <= found.due < found.extended_due
        for rule in covering:
            extended = rule.extended_due(received)
            assert extended is not None and found.extended_due <= extended
    assert found.days_left(found.due) == 0
    assert found.days_left(found.due + timedelta(days=1)) == -1


def test_pipeda_times_access_only_and_the_policy_times_the_rest() -> None:
    found = deadline(RequestKind.ERASURE, date(2026, 1, 10), [P])
    assert found.due == date(2026, 2, 9) and found.extended_due is None
    assert found.governing[0].jurisdiction is None
    assert "Privacy Commissioner" in found.governing[0].recourse


def test_a_withdrawal_of_consent_is_due_the_day_it_is_received() -> None:
    found = deadline(RequestKind.CONSENT_WITHDRAWAL, date(2026, 1, 10), [Q, P, G])
    assert found.due == date(2026, 1, 10) and found.extended_due is None
    assert found.days_left(date(2026, 1, 11)) == -1


def test_a_complaints_recourse_is_that_of_the_laws_that_apply() -> None:
    gdpr_only = deadline(RequestKind.COMPLAINT, date(2026, 1, 10), [G])
    assert "supervisory authority" in gdpr_only.governing[0].recourse
    assert "Commission" not in gdpr_only.governing[0].recourse


def test_days_left_count_to_the_extended_date_once_extended() -> None:
    found = deadline(RequestKind.ACCESS, date(2026, 1, 10), [P])
    assert found.days_left(date(2026, 2, 1)) == 8
    assert found.days_left(date(2026, 2, 1), extended=True) == 38
    quebec = deadline(RequestKind.ACCESS, date(2026, 1, 10), [Q])
    assert quebec.days_left(date(2026, 2, 1), extended=True) == 8  # no extension to take


def test_a_request_received_on_a_weekend_or_holiday_counts_calendar_days() -> None:
    # Christmas Day 2026 is a Friday, a statutory holiday in Quebec; 26 December a Saturday.
    christmas = deadline(RequestKind.ACCESS, date(2026, 12, 25), [Q, P])
    assert christmas.due == date(2027, 1, 24)  # a Sunday: not moved to the Monday
    assert christmas.due.weekday() == 6
    saturday = deadline(RequestKind.ERASURE, date(2026, 12, 26), [Q])
    assert saturday.due == date(2027, 1, 25)
    # Across a month end and a year end alike: 30 days from 2 December is 1 January.
    assert deadline(RequestKind.ACCESS, date(2026, 12, 2), [Q]).due == date(2027, 1, 1)
