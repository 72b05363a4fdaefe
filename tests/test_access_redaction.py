"""Other people inside a person's records are hidden from their access package; what is
theirs (their address, phone and name) stays, whole and readable."""

from __future__ import annotations

from flows.rights.access import _redact_others


def test_other_people_are_redacted_and_the_persons_own_values_kept() -> None:
    own = {"3", "marie.tremblay@example.ca", "514-555-0142", "Marie", "Tremblay"}
    note = (
        "Marie Tremblay (client 3) called from 514-555-0142 about invoice 3. "
        "Agent William Heath (william.heath@360.agency, 514-360-4128) forwarded it to "
        "Paul Gagnon, paul.gagnon@example.com. Reply to marie.tremblay@example.ca."
    )
    rows = [{"notes": note}]
    _redact_others(rows, ["notes"], own)
    text = rows[0]["notes"]
    for theirs in ("marie.tremblay@example.ca", "514-555-0142", "Marie", "Tremblay"):
        assert theirs in text, text
    for other in ("william.heath", "360.agency", "514-360-4128", "Paul Gagnon", "paul.gagnon"):
        assert other not in text, text
    assert not any("\ue000" <= ch <= "\uf8ff" for ch in text), text  # no mark left behind
    assert "invoice 3" in text  # a customer number is not a value to set aside


def test_a_destruction_day_is_the_first_the_cut_off_passes_at_month_ends() -> None:
    """``t + retention`` promised a day too early where months are short: a month after
    31 January 14:00 is not 29 February (the cut-off that day is 29 January) but 1 March."""
    from datetime import date, datetime
    from zoneinfo import ZoneInfo

    from flows.rights.access import _after
    from retention_rules.clock import PolicyClock
    from retention_rules.durations import Duration

    zone = ZoneInfo("America/Montreal")
    month, six = Duration.parse("1 month"), Duration.parse("6 years")
    january = datetime(2024, 1, 31, 14, tzinfo=zone)
    assert _after(january, None, month, zone, zone, "timestamp") == date(2024, 3, 1)
    leap = datetime(2020, 2, 29, 9, tzinfo=zone)
    assert _after(leap, None, six, zone, zone, "timestamp") == date(2026, 3, 1)
    assert _after(date(2020, 2, 29), None, six, zone, zone, "timestamp") == date(2026, 3, 1)
    # Asked of the planner's own cut-off: not passed by the end of the day before.
    before = PolicyClock.at(zone.key, datetime(2024, 2, 29, 23, 59, 59)).cutoff(month)
    assert not january < before
