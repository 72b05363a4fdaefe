"""The protocol's selections evaluated on pandas frames, for stores without SQL.

The same rules as ``connectors.sql.expressions``, so that a record expires in a folder of
files exactly when it would in a database: a NULL clock never expires, a NULL value
matches only ``is_null``, naive timestamps are wall time in the store's zone, dates are
calendar days in the policy's zone, and an event clock expires a record only when it has
events and every one of them is past the cut-off (or, with no event row at all, when its
fallback column is).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from numbers import Integral
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_integer_dtype

from connectors.protocol import (
    COMPARISONS,
    ColumnInfo,
    Condition,
    ExpirySelection,
    RowFilter,
    Scalar,
)
from connectors.times import EPOCH_RANGE, TimeContext, epoch_bound

_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ISO_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_T = TypeVar("_T")


def comparable(values: pd.Series, info: ColumnInfo) -> pd.Series:
    """Values in a form that compares with bound Python values: timestamps as pandas
    datetimes (naive or aware, as the column stores them), dates as ``date`` objects."""
    if info.family == "datetime":
        return pd.to_datetime(values, utc=info.timezone_aware, format="ISO8601")
    if info.family == "date":
        return values.map(_as_date, na_action="ignore")
    return values


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _bound(value: Scalar | datetime | date, info: ColumnInfo) -> Any:
    """A bound value in the form ``comparable`` gives the column."""
    if info.family == "datetime" and isinstance(value, datetime):
        return pd.Timestamp(value)
    return value


def condition_mask(
    frame: pd.DataFrame, cond: Condition, info: ColumnInfo, times: TimeContext
) -> np.ndarray:
    """Where ``cond`` holds; never for a NULL value, except with ``is_null``. The op
    compares as `COMPARISONS` says (as it does in ``connectors.sql.expressions``)."""
    values = comparable(frame[cond.column], info)
    present: np.ndarray = values.notna().to_numpy(dtype=bool)
    how = COMPARISONS[cond.op]
    if how.takes == "nothing":
        return present if how.negated else ~present
    assert cond.value is not None, "the policy model guarantees a value"
    result = np.zeros(len(frame), dtype=bool)
    chosen = values[present]
    if how.takes == "values":
        options = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        bound = {_bound(times.bind_value(info, v), info) for v in options}
        found = np.fromiter((v in bound for v in chosen), dtype=bool, count=len(chosen))
        result[present] = ~found if how.negated else found
        return result
    assert how.compare is not None and not isinstance(cond.value, tuple)
    bound_value = _bound(times.bind_value(info, cond.value), info)
    if present.any():
        result[present] = np.asarray(how.compare(chosen, bound_value), dtype=bool)
    return result


def filter_mask(
    frame: pd.DataFrame, row_filter: RowFilter, fields: Mapping[str, ColumnInfo], times: TimeContext
) -> np.ndarray:
    """Where every condition of the filter holds."""
    mask = np.ones(len(frame), dtype=bool)
    for cond in row_filter.conditions:
        mask &= condition_mask(frame, cond, fields[cond.column], times)
    return mask


def held_masks(
    frame: pd.DataFrame,
    filters: tuple[RowFilter, ...],
    fields: Mapping[str, ColumnInfo],
    times: TimeContext,
) -> list[np.ndarray]:
    """One mask per exclusion filter (a legal hold), in order."""
    return [filter_mask(frame, row_filter, fields, times) for row_filter in filters]


def clock_judgement(
    values: pd.Series, info: ColumnInfo, selection: ExpirySelection, times: TimeContext
) -> tuple[np.ndarray, np.ndarray]:
    """Where a clock value is readable, and where it is readable and strictly before the
    cut-off, as ``connectors.sql.clocks`` judges SQL stores. Readable is a timestamp (or a
    day, for a date field), or ISO 8601 text naming a real day and time (``YYYY-MM-DD``,
    then optionally ``T`` or a space, the time, an offset: the form files and logs
    write; SQLite's form is a part of it); with ``epoch_seconds``, an integer of
    seconds. NULL is neither."""
    present: np.ndarray = values.notna().to_numpy(dtype=bool)
    before = np.zeros(len(values), dtype=bool)
    if selection.clock_format == "epoch_seconds":
        low, high = EPOCH_RANGE
        if is_integer_dtype(values.dtype) and not is_bool_dtype(values.dtype):
            numbers = values.astype("Float64")
            ok = present & ((numbers >= low) & (numbers <= high)).fillna(False).to_numpy(bool)
        else:
            ok = present & values.map(lambda v: _is_epoch(v, low, high)).to_numpy(dtype=bool)
        if ok.any():
            seconds = values[ok].astype("int64").to_numpy()
            before[ok] = seconds < epoch_bound(selection.cutoff)
        return ok, before
    bound = times.bind_cutoff(info, selection.cutoff)
    if info.family == "datetime" and is_datetime64_any_dtype(values.dtype):
        if present.any():
            stamps = comparable(values[present], info)
            before[present] = np.asarray(stamps < _bound(bound, info), dtype=bool)
        return present, before
    zone = UTC if info.timezone_aware else times.naive_zone
    read = _day if info.family == "date" else _instant
    parsed = [read(v, zone) if p else None for v, p in zip(values, present, strict=True)]
    ok = np.array([v is not None for v in parsed], dtype=bool)
    for i, moment in enumerate(parsed):
        if moment is not None:
            before[i] = moment < bound
    return ok, before


def _is_epoch(value: Any, low: int, high: int) -> bool:
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer):
        return False
    return low <= int(value) <= high


def _instant(value: Any, zone: tzinfo) -> datetime | None:
    """A timestamp value as a Python datetime: in UTC for an aware field (naive values
    are UTC), else naive wall time in the store's zone (``zone``)."""
    if isinstance(value, str):
        moment = _parsed(value, _ISO_TIMESTAMP, datetime.fromisoformat)
    elif isinstance(value, pd.Timestamp | np.datetime64):
        moment = pd.Timestamp(value).to_pydatetime()
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time())
    else:
        return None
    if moment is None:
        return None
    if zone is UTC:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.astimezone(zone).replace(tzinfo=None) if moment.tzinfo is not None else moment


def _day(value: Any, zone: tzinfo) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return _parsed(value, _ISO_DAY, date.fromisoformat) if isinstance(value, str) else None


def _parsed(text: str, shape: re.Pattern[str], parse: Callable[[str], _T]) -> _T | None:
    if shape.fullmatch(text) is None:
        return None
    try:
        return parse(text)
    except ValueError:
        return None


def clock_mask(
    frame: pd.DataFrame, selection: ExpirySelection, info: ColumnInfo, times: TimeContext
) -> np.ndarray:
    """Where the record's own clock is set, readable and strictly before the cut-off."""
    _, before = clock_judgement(frame[selection.clock_column], info, selection, times)
    return before


def unreadable_mask(
    frame: pd.DataFrame, selection: ExpirySelection, info: ColumnInfo, times: TimeContext
) -> np.ndarray:
    """Where the record's own clock is set but cannot be read: never expired."""
    values = frame[selection.clock_column]
    readable, _ = clock_judgement(values, info, selection, times)
    unreadable: np.ndarray = values.notna().to_numpy(dtype=bool) & ~readable
    return unreadable


@dataclass(frozen=True)
class EventKeys:
    """An event table as its join keys: those whose every event is set, readable and
    before the cut-off; those with an event that is set but unreadable; and every key
    that has an event row at all."""

    expired: set[Any]
    unreadable: set[Any]
    present: set[Any]


def event_keys(
    events: pd.DataFrame,
    event_key: str,
    clock: str,
    info: ColumnInfo,
    selection: ExpirySelection,
    times: TimeContext,
) -> EventKeys:
    """The event table's keys, judged (`EventKeys`)."""
    readable, past = clock_judgement(events[clock], info, selection, times)
    keys = events[event_key].to_numpy()
    verdict = pd.Series(past, index=events.index)
    every = verdict.groupby(keys).all()
    unreadable = events[clock].notna().to_numpy(dtype=bool) & ~readable
    return EventKeys(
        set(every.index[every.to_numpy(dtype=bool)]),
        set(keys[unreadable]),
        set(events[event_key].dropna()),
    )


def event_masks(
    frame: pd.DataFrame,
    selection: ExpirySelection,
    fields: Mapping[str, ColumnInfo],
    times: TimeContext,
    keys: EventKeys,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each record's event clock is expired, where it cannot be read, and where
    the record has no event row (a NULL join key matches none) and no value in the
    clock's fallback column: it never expires. A record with no event is judged by its
    fallback column, when the clock has one."""
    assert selection.event is not None
    local = frame[selection.event.local_key]
    linked = local.notna().to_numpy(dtype=bool)
    due = linked & local.isin(keys.expired).to_numpy(dtype=bool)
    unread = linked & local.isin(keys.unreadable).to_numpy(dtype=bool)
    missing = ~(linked & local.isin(keys.present).to_numpy(dtype=bool))
    own = selection.by_fallback()
    if own is not None:
        info = fields[own.clock_column]
        due |= missing & clock_mask(frame, own, info, times)
        unread |= missing & unreadable_mask(frame, own, info, times)
        missing &= frame[own.clock_column].isna().to_numpy(dtype=bool)
    return due, unread, missing
