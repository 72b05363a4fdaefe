"""Operators that need no key and no model: null, redact, replace, mask."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import pandas as pd

from anonymizers.operators import Operator, map_non_null, register


class _Constant(Operator):
    """Every non-null cell becomes the same value, so SQL can do it in one UPDATE."""

    @abstractmethod
    def constant(self) -> object:
        """The value every non-null cell becomes."""

    def operate(self, values: pd.Series) -> pd.Series:
        value = self.constant()
        return map_non_null(
            values, lambda present: pd.Series(value, index=present.index, dtype=object)
        )

    def sql_constant(self) -> tuple[bool, object]:
        return True, self.constant()


@register
class Null(_Constant):
    """Erase the value; the row stays (for counts, joins and foreign keys)."""

    name: ClassVar[str] = "null"

    def constant(self) -> object:
        return None


@register
class Redact(_Constant):
    """Presidio's ``redact``: the value becomes the empty string."""

    name: ClassVar[str] = "redact"

    def constant(self) -> object:
        return ""


@register
class Replace(_Constant):
    """Presidio's ``replace``: the value becomes ``new_value`` (default ``<REDACTED>``)."""

    name: ClassVar[str] = "replace"
    allowed_params: ClassVar[frozenset[str]] = frozenset({"new_value"})
    new_value: str

    def validate(self) -> None:
        super().validate()
        self.new_value = self._param("new_value", str, "<REDACTED>")

    def constant(self) -> object:
        return self.new_value


@register
class Mask(Operator):
    """Presidio's ``mask``: hide ``chars_to_mask`` characters (all by default).

    Masking starts at the beginning, or at the end with ``from_end``, so that e.g. the
    last four digits of a number can stay readable.
    """

    name: ClassVar[str] = "mask"
    allowed_params: ClassVar[frozenset[str]] = frozenset(
        {"masking_char", "chars_to_mask", "from_end"}
    )
    masking_char: str
    chars_to_mask: int | None
    from_end: bool

    def validate(self) -> None:
        super().validate()
        self.masking_char = self._param("masking_char", str, "*")
        if len(self.masking_char) != 1:
            raise self._error("masking_char", "must be exactly one character")
        count = self.params.get("chars_to_mask")
        self.chars_to_mask = None if count is None else self._param("chars_to_mask", int, 0)
        if self.chars_to_mask is not None and self.chars_to_mask < 0:
            raise self._error("chars_to_mask", "must be zero or more")
        self.from_end = self._param("from_end", bool, False)

    def operate(self, values: pd.Series) -> pd.Series:
        return map_non_null(values, self._mask)

    def _mask(self, present: pd.Series) -> pd.Series:
        text = present.astype(str)
        count = self.chars_to_mask
        if count == 0:
            return text
        if count is None:
            return self._hide(text)
        if self.from_end:
            kept, hidden = text.str.slice(0, -count), text.str.slice(-count)
            return kept + self._hide(hidden)
        hidden, kept = text.str.slice(0, count), text.str.slice(count)
        return self._hide(hidden) + kept

    def _hide(self, text: pd.Series) -> pd.Series:
        # Backslash is the only special character in a replacement (Python re and RE2).
        return text.str.replace(r"(?s).", self.masking_char.replace("\\", "\\\\"), regex=True)
