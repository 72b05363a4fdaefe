"""``age_band``: a birth date becomes the band of ages it falls in, such as ``30-39``.

A birth date is a strong quasi identifier (with a postal code it singles out most
people); an age band keeps what statistics need. Ages are counted on ``as_of`` (a fixed
date makes the result reproducible and is recorded in the anonymization register), and
everyone from ``top`` up shares one open band (``90+``), since the very old are few.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import ClassVar

import numpy as np
import pandas as pd

from anonymizers.operators import Operator, map_non_null

_BAND = re.compile(r"\d{1,3}-\d{1,3}|\d{1,3}\+")


class AgeBand(Operator):
    """Birth dates to ``width``-year age bands on ``as_of`` (default: the day it runs)."""

    name: ClassVar[str] = "age_band"
    allowed_params: ClassVar[frozenset[str]] = frozenset({"width", "top", "as_of"})
    width: int
    top: int
    as_of: date

    def validate(self) -> None:
        super().validate()
        self.width = self._param("width", int, 10)
        if not 1 <= self.width <= 50:
            raise self._error("width", "must be between 1 and 50")
        self.top = self._param("top", int, 90)
        if self.top < self.width or self.top % self.width:
            raise self._error("top", f"must be a multiple of width ({self.width}), at least it")
        as_of = self.params.get("as_of")
        if as_of is None:
            self.as_of = datetime.now(UTC).date()
        elif isinstance(as_of, date) and not isinstance(as_of, datetime):
            self.as_of = as_of
        elif isinstance(as_of, str) and _is_iso_date(as_of):
            self.as_of = date.fromisoformat(as_of)
        else:
            raise self._error("as_of", "must be a date such as 2026-01-01")

    def operate(self, values: pd.Series) -> pd.Series:
        return map_non_null(values, self._bands)

    def writes_text(self) -> bool:
        return True

    def _bands(self, present: pd.Series) -> pd.Series:
        text = present.astype(str)
        done = text.str.fullmatch(_BAND).to_numpy(dtype=bool)  # idempotent on its own output
        births = _as_datetimes(present.where(~done))
        years = self.as_of.year - births.dt.year
        before_birthday = (births.dt.month > self.as_of.month) | (
            (births.dt.month == self.as_of.month) & (births.dt.day > self.as_of.day)
        )
        ages = (years - before_birthday.astype("Int64")).to_numpy(dtype="float64", na_value=np.nan)
        labels = np.full(len(present), None, dtype=object)
        known = ~np.isnan(ages) & (ages >= 0)
        low = (ages[known] // self.width * self.width).astype(int)
        labels[known] = [
            f"{self.top}+" if start >= self.top else f"{start}-{start + self.width - 1}"
            for start in low
        ]
        labels[done] = text.to_numpy(dtype=object)[done]
        return pd.Series(labels, index=present.index, dtype=object)


def _as_datetimes(values: pd.Series) -> pd.Series:
    """Dates, timestamps or ISO strings as naive datetimes; anything else NaT.

    The calendar date as written is the birth date: a time or a zone after it is ignored
    (converting zones could move a birthday by a day).
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_localize(None)
        return stamps
    days = values.astype(str).str.extract(r"^\s*(\d{4}-\d{2}-\d{2})", expand=False)
    return pd.to_datetime(days, errors="coerce", format="%Y-%m-%d")


def _is_iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
