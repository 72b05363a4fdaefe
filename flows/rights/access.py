"""What is held on one person, dataset by dataset, and when each record goes.

Each record's date is the policy's own arithmetic, as the nightly run's cut-off reads it:
a record whose clock reads ``t`` is past its cut-off once ``now - retention`` is after
``t``, so on the day of ``t + retention`` (in the policy's time zone; for a date clock,
the day after, since a date is compared with the cut-off's date). An event clock that
has not happened (an account still open) gives no date, and says what it waits for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.errors import StoreError
from connectors.protocol import (
    ColumnInfo,
    Condition,
    Connector,
    ExpirySelection,
    RowFilter,
    TableInfo,
)
from connectors.times import parse_instant
from flows.rights.package import DatasetSection, RecordEntry
from flows.rights.people import LOOKUP_CHUNK, Person, Reach, person_selection
from retention_rules.clock import PolicyClock
from retention_rules.durations import Duration
from retention_rules.model import (
    Dataset,
    Policy,
)
from retention_rules.planner import RulePlan

#: The phrases of the package that Tenure writes, completing "Kept ..." / "Conservé ...".
PHRASES = {
    "en": {
        "after": "{d} after {event}",
        "not_yet": "until {d} after {event}, which has not happened yet",
        "no_record": "until {d} after {event}; there is no such record yet",
        "unreadable": "as long as its date ({event}) cannot be read",
    },
    "fr": {
        "after": "{d} après {event}",
        "not_yet": "jusqu'à {d} après {event}, qui n'a pas encore eu lieu",
        "no_record": "jusqu'à {d} après {event}; aucun tel enregistrement n'existe encore",
        "unreadable": "tant que sa date ({event}) ne peut être lue",
    },
}

DESTRUCTION = {
    "delete": "deleted",
    "anonymize": "anonymized",
    "aggregate_then_delete": "aggregated then deleted",
}

_ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class Collected:
    """One dataset's records of the person, before rendering."""

    section: DatasetSection
    keys: list[tuple[Any, ...]]
    """Each record's primary key, in the section's order (for checks; never rendered
    beyond the values)."""


def collect(
    policy: Policy,
    connectors: Mapping[str, Connector],
    person: Person,
    found: Reach,
    plans: Sequence[RulePlan],
    now: datetime,
    *,
    portability: bool = False,
    language: str = "en",
) -> list[Collected]:
    """Every record of the person in every bound store, with its destruction date. A
    store that cannot be read gives a section saying so; the others are still read."""
    zone = ZoneInfo(policy.timezone)
    by_name = {plan.dataset.name: plan for plan in plans}
    read: list[tuple[Dataset, list[dict[str, Any]], list[tuple[Any, ...]], Any, Any]] = []
    collected = []
    for dataset in policy.datasets:
        if dataset.name in found.failed:
            collected.append(
                Collected(_section(policy, dataset, [], found.failed[dataset.name], language), [])
            )
            continue
        selection = person_selection(dataset, found, person, now)
        if selection is None:
            continue
        info = found.tables[dataset.name]
        connector = connectors[dataset.store]
        try:
            rows, keys = _records(connector, dataset, info, selection)
            events = _events(connector, dataset, rows)
            held = _held(connector, by_name.get(dataset.name), selection, keys)
        except StoreError as exc:
            collected.append(Collected(_section(policy, dataset, [], exc.reason, language), []))
            continue
        if rows:
            read.append((dataset, rows, keys, events, held))
    own = _own_values(policy, person, found, read)
    for dataset, rows, keys, events, held in read:
        info = found.tables[dataset.name]
        texts = _free_text_columns(policy, dataset)
        rows = _without_others(policy, dataset, rows, own, texts)
        entries = []
        for row, key in zip(rows, keys, strict=True):
            on, waiting = destroyed_on(dataset, row, events, info, zone, policy, language)
            shown = _shown(policy, dataset, row, portability)
            entries.append(
                RecordEntry(
                    values=shown,
                    destroyed_on=on,
                    destruction=DESTRUCTION[dataset.action.type],
                    until_event=waiting,
                    held=held.get(key),
                )
            )
        collected.append(Collected(_section(policy, dataset, entries, None, language), keys))
    return collected


def _records(
    connector: Connector, dataset: Dataset, info: TableInfo, selection: ExpirySelection
) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    names = list(info.columns)
    rows = [
        dict(zip(names, row, strict=True))
        for chunk in connector.read_rows(selection, names, LOOKUP_CHUNK)
        for row in chunk
    ]
    keys = [tuple(row[k] for k in dataset.primary_key) for row in rows]
    return rows, keys


def _events(
    connector: Connector, dataset: Dataset, rows: list[dict[str, Any]]
) -> dict[str, list[Any]]:
    """For an event clock, the event values of each local key (as text)."""
    clock = dataset.clock
    if clock.event_table is None or clock.join is None or not rows:
        return {}
    locals_ = sorted(
        {row[clock.join.local] for row in rows if row[clock.join.local] is not None}, key=str
    )
    if not locals_:
        return {}
    selection = ExpirySelection(
        table=clock.event_table,
        schema=dataset.db_schema,
        clock_column=clock.column,
        cutoff=datetime.now(UTC),
        primary_key=(clock.join.event,),
        only=(RowFilter("event", (Condition(clock.join.event, "in", tuple(locals_)),)),),
        every_row=True,
    )
    found: dict[str, list[Any]] = {}
    for chunk in connector.read_rows(selection, [clock.join.event, clock.column], LOOKUP_CHUNK):
        for key, value in chunk:
            found.setdefault(str(key), []).append(value)
    return found


def _held(
    connector: Connector,
    plan: RulePlan | None,
    selection: ExpirySelection,
    keys: list[tuple[Any, ...]],
) -> dict[tuple[Any, ...], str]:
    """The records (of ``keys``, the person's) an active legal hold keeps, and why: per
    hold, the person's rows it leaves free are read, the others are its."""
    if plan is None or not plan.selection.exclusions or not keys:
        return {}
    columns = list(selection.primary_key)
    everyone = set(keys)
    reasons = plan.hold_reasons
    held: dict[tuple[Any, ...], str] = {}
    for row_filter in plan.selection.exclusions:
        free = replace(selection, exclusions=(row_filter,))
        left = {
            tuple(r) for chunk in connector.read_rows(free, columns, LOOKUP_CHUNK) for r in chunk
        }
        for kept in everyone - left:
            reason = reasons.get(row_filter.name, row_filter.name)
            held[kept] = f"{held[kept]}; {reason}" if kept in held else reason
    return held


def destroyed_on(
    dataset: Dataset,
    row: Mapping[str, Any],
    events: Mapping[str, list[Any]],
    info: TableInfo,
    zone: ZoneInfo,
    policy: Policy,
    language: str = "en",
) -> tuple[date | None, str | None]:
    """The day the record passes its cut-off, or None and what it waits for (a phrase
    of ``language`` completing "Kept ...")."""
    clock = dataset.clock
    naive = ZoneInfo(policy.stores[dataset.store].naive_timezone)
    words = PHRASES["fr" if language == "fr" else "en"]
    said = {"d": dataset.retention.spoken(language), "event": _event(dataset)}
    if clock.event_table is not None and clock.join is not None:
        local = row.get(clock.join.local)
        values = events.get(str(local), []) if local is not None else []
        if not values:
            fallback = clock.fallback
            if fallback is not None and row.get(fallback.column) is not None:
                return _after(
                    row[fallback.column],
                    info.columns.get(fallback.column),
                    dataset.retention,
                    zone,
                    naive,
                    fallback.format,
                ), None
            return None, words["no_record"].format(**said)
        if any(v is None for v in values):
            return None, words["not_yet"].format(**said)
        dates = [_after(v, None, dataset.retention, zone, naive, clock.format) for v in values]
        known = [d for d in dates if d is not None]
        return (max(known), None) if known else (None, words["unreadable"].format(**said))
    value = row.get(clock.column)
    if value is None:
        return None, words["not_yet"].format(**said)
    on = _after(value, info.columns.get(clock.column), dataset.retention, zone, naive, clock.format)
    return (on, None) if on is not None else (None, words["unreadable"].format(**said))


def _after(
    value: Any,
    column: ColumnInfo | None,
    retention: Duration,
    zone: ZoneInfo,
    naive: ZoneInfo,
    form: str,
) -> date | None:
    """The first day by whose end the nightly run's cut-off (`PolicyClock.cutoff`: now
    minus the retention, in the policy's zone) has passed the clock ``value``: found by
    asking the cut-off itself around ``value + retention``, so that month ends (a month
    after 31 January) and leap days fall as the run will judge them."""
    moment: date | datetime
    try:
        if form == "epoch_seconds":
            moment = datetime.fromtimestamp(int(value), UTC)
        elif isinstance(value, (datetime, date)):
            moment = value
        else:
            moment = parse_instant(str(value))
    except (TypeError, ValueError, OverflowError):
        return None
    step = retention.as_relativedelta()
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=naive)
        guess = (aware.astimezone(zone).replace(tzinfo=None) + step).date()

        def past(cutoff: datetime) -> bool:
            return aware < cutoff
    else:
        day_clock = moment
        guess = day_clock + step

        def past(cutoff: datetime) -> bool:  # a date is compared with the cut-off's date
            return day_clock < cutoff.astimezone(zone).date()

    for shift in range(-3, 5):
        day = guess + timedelta(days=shift)
        end = PolicyClock.at(zone.key, datetime.combine(day, time(23, 59, 59)))
        try:
            if past(end.cutoff(retention)):
                return day
        except (OverflowError, ValueError):
            return None
    return None


def _section(
    policy: Policy,
    dataset: Dataset,
    records: list[RecordEntry],
    failed: str | None = None,
    language: str = "en",
) -> DatasetSection:
    purpose = policy.purposes[dataset.purpose]
    return DatasetSection(
        dataset=dataset.name,
        description=dataset.description,
        store=dataset.store,
        source=f"{dataset.store}: {dataset.table}",
        purpose=dataset.purpose,
        purpose_description=purpose.description,
        legal_basis=purpose.legal_basis,
        retention=PHRASES["fr" if language == "fr" else "en"]["after"].format(
            d=dataset.retention.spoken(language), event=_event(dataset)
        ),
        categories={c: list(cats) for c, cats in dataset.columns.items()},
        provided={
            c: all(policy.categories[cat].provided for cat in cats)
            for c, cats in dataset.columns.items()
        },
        records=records,
        failed=failed,
        undisclosed=tuple(
            c
            for c, cats in dataset.columns.items()
            if not all(policy.categories[cat].disclose for cat in cats)
        ),
    )


def _event(dataset: Dataset) -> str:
    """What the record's clock reads, as the policy names it."""
    clock = dataset.clock
    if clock.event_table is not None:
        return f"{clock.event_table}.{clock.column}"
    return clock.column


def _shown(
    policy: Policy, dataset: Dataset, row: Mapping[str, Any], portability: bool
) -> dict[str, Any]:
    """The record's values, without those the policy never discloses; for portability
    only what the person provided."""
    hidden = {
        column
        for column, cats in dataset.columns.items()
        if not all(policy.categories[c].disclose for c in cats)
    }
    if not portability:
        return {column: value for column, value in row.items() if column not in hidden}
    return {
        column: row[column]
        for column, cats in dataset.columns.items()
        if column in row and all(policy.categories[c].provided for c in cats)
    }


def _free_text_columns(policy: Policy, dataset: Dataset) -> list[str]:
    return [
        column
        for column, cats in dataset.columns.items()
        if any(policy.categories[c].entities == "any" for c in cats)
    ]


def _own_values(
    policy: Policy,
    person: Person,
    found: Reach,
    read: Sequence[tuple[Dataset, list[dict[str, Any]], Any, Any, Any]],
) -> set[str]:
    """What is the person's own to see inside free text: their identifiers, and the
    names their own record holds (the dataset whose key is the person's: customers)."""
    values = {value for values in person.identifiers.values() for value in values}
    subjects = policy.subjects
    for dataset, rows, _keys, _events, _held in read:
        names = found.columns.get(dataset.name, ())
        own_record = subjects is not None and any(
            c.identifier == subjects.person and [c.column] == dataset.primary_key and not c.through
            for c in names
        )
        if not own_record:
            continue
        for column, cats in dataset.columns.items():
            entities = [policy.categories[c].entities for c in cats]
            if any(isinstance(e, list) and "PERSON" in e for e in entities):
                values |= {str(row[column]) for row in rows if row.get(column)}
    return values


def _without_others(
    policy: Policy,
    dataset: Dataset,
    rows: list[dict[str, Any]],
    own: set[str],
    texts: Iterable[str],
) -> list[dict[str, Any]]:
    """Other people's information inside the person's records hidden: free text through
    the text engine (the person's own identifiers kept), other addresses in lists of
    addresses replaced by their type."""
    text_columns = list(texts)
    lowered = {v.lower() for v in own}
    address_columns = [
        column
        for column, cats in dataset.columns.items()
        if column not in text_columns
        and any("EMAIL_ADDRESS" in (policy.categories[c].entities or []) for c in cats)
    ]
    out = [dict(row) for row in rows]
    for row in out:
        for column in address_columns:
            value = row.get(column)
            if isinstance(value, str):
                row[column] = _ADDRESS.sub(
                    lambda m: m.group(0) if m.group(0).lower() in lowered else "<EMAIL_ADDRESS>",
                    value,
                )
    if text_columns and any(isinstance(row.get(c), str) for row in out for c in text_columns):
        _redact_others(out, text_columns, own)
    return out


def _redact_others(rows: list[dict[str, Any]], columns: list[str], own: set[str]) -> None:
    """Redact free text in place, the person's own values set aside first and put back
    after (they are theirs to see)."""
    from anonymizers.text_redaction import redact_batched

    # Each value set aside whole (not inside a longer word or address), as a mark of
    # private-use characters only: no digit or letter a later value could match.
    kept = [v for v in own if len(v) >= 3 and not v.isdigit()]  # not a customer number "3"
    marks = {
        value: f"\ue000{chr(0xE100 + i)}\ue001"
        for i, value in enumerate(sorted(kept, key=len, reverse=True))
    }
    places = [(row, c) for row in rows for c in columns if isinstance(row.get(c), str)]
    texts = []
    for row, column in places:
        text = row[column]
        for value, mark in marks.items():
            whole = rf"(?<![\w@.+-]){re.escape(value)}(?![\w@-])"
            text = re.sub(whole, mark, text, flags=re.IGNORECASE)
        texts.append(text)
    redacted = redact_batched(texts)
    for (row, column), text in zip(places, redacted, strict=True):
        for value, mark in marks.items():
            text = text.replace(mark, value)
        row[column] = text
