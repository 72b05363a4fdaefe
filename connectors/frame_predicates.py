"""The protocol's selections evaluated on pandas frames, for stores without SQL.

The same rules as ``connectors.sql_expressions``, so that a record expires in a folder of
files exactly when it would in a database: a NULL clock never expires, a NULL value
matches only ``is_null``, naive timestamps are wall time in the store's zone, dates are
calendar days in the policy's zone, and an event clock expires a record only when it has
events and every one of them is past the cut-off.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from connectors.protocol import ColumnInfo, Condition, ExpirySelection, RowFilter, Scalar
from connectors.times import TimeContext

_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


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
    """Where ``cond`` holds; never for a NULL value, except with ``is_null``."""
    values = comparable(frame[cond.column], info)
    present: np.ndarray = values.notna().to_numpy(dtype=bool)
    if cond.op == "is_null":
        return ~present
    if cond.op == "not_null":
        return present
    assert cond.value is not None, "the policy model guarantees a value"
    if cond.op in ("in", "not_in"):
        options = cond.value if isinstance(cond.value, tuple) else (cond.value,)
        bound = {_bound(times.bind_value(info, v), info) for v in options}
        inside = values.map(lambda v: v in bound, na_action="ignore").fillna(False)
        found: np.ndarray = inside.to_numpy(dtype=bool)
        wanted: np.ndarray = present & (found if cond.op == "in" else ~found)
        return wanted
    assert not isinstance(cond.value, tuple), "the policy model gives lists only to in/not_in"
    bound_value = _bound(times.bind_value(info, cond.value), info)
    result = np.zeros(len(frame), dtype=bool)
    if present.any():
        chosen = values[present]
        result[present] = np.asarray(_COMPARISONS[cond.op](chosen, bound_value), dtype=bool)
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


def clock_mask(
    frame: pd.DataFrame, selection: ExpirySelection, info: ColumnInfo, times: TimeContext
) -> np.ndarray:
    """Where the record's own clock is set and strictly before the cut-off."""
    values = comparable(frame[selection.clock_column], info)
    bound = _bound(times.bind_instant(info, selection.cutoff), info)
    present = values.notna().to_numpy(dtype=bool)
    result = np.zeros(len(frame), dtype=bool)
    if present.any():
        result[present] = np.asarray(values[present] < bound, dtype=bool)
    return result


def expired_event_keys(
    events: pd.DataFrame,
    event_key: str,
    clock: str,
    info: ColumnInfo,
    cutoff: datetime,
    times: TimeContext,
) -> set[Any]:
    """The event keys whose every event is set and before the cut-off."""
    values = comparable(events[clock], info)
    bound = _bound(times.bind_instant(info, cutoff), info)
    past = values.notna() & (values.where(values.notna(), bound) < bound)
    verdict = pd.Series(past.to_numpy(dtype=bool), index=events.index)
    every = verdict.groupby(events[event_key].to_numpy()).all()
    return set(every.index[every.to_numpy(dtype=bool)])
