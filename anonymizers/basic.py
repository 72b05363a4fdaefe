"""Operators that need no key and no model: null, redact, replace, mask."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import pandas as pd
from sqlalchemy import ColumnElement, cast, literal, null

from anonymizers.operators import Operator, is_plain_text, map_non_null
from connectors.sql.functions import masked_text, portable


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

    def sql_expression(self, column: ColumnElement[Any], dialect: str) -> ColumnElement[Any] | None:
        value = self.constant()
        # A bare NULL would be typed as text by PostgreSQL, and refused for a number column.
        return cast(null(), column.type) if value is None else literal(value)


class Null(_Constant):
    """Erase the value; the row stays (for counts, joins and foreign keys)."""

    name: ClassVar[str] = "null"

    def constant(self) -> object:
        return None


class Redact(_Constant):
    """Presidio's ``redact``: the value becomes the empty string."""

    name: ClassVar[str] = "redact"

    def constant(self) -> object:
        return ""

    def writes_text(self) -> bool:
        return True


class Replace(_Constant):
    """Presidio's ``replace``: the value becomes ``new_value`` (default ``<REDACTED>``)."""

    name: ClassVar[str] = "replace"
    allowed_params: ClassVar[frozenset[str]] = frozenset({"new_value"})
    new_value: str

    def validate(self) -> None:
        super().validate()
        self.new_value = self._param("new_value", str, "<REDACTED>")

    def writes_text(self) -> bool:
        return True

    def constant(self) -> object:
        return self.new_value


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

    def sql_expression(self, column: ColumnElement[Any], dialect: str) -> ColumnElement[Any] | None:
        """`masked_text` on plain text columns, where the dialect renders it.

        A NUL masking character is never done in SQL (PostgreSQL cannot even bind it,
        though pandas may never write it).
        """
        if not is_plain_text(column) or self.masking_char == "\x00":
            return None
        masked = masked_text(column, self.masking_char, self.chars_to_mask, self.from_end)
        return portable(masked, dialect)

    def writes_text(self) -> bool:
        return True

    def identifies(self) -> bool:
        return self.chars_to_mask is not None  # the unmasked part may still point to one

    def _mask(self, present: pd.Series) -> pd.Series:
        # One comprehension over the cells: pandas' string methods on object columns loop
        # in Python too, once per method, and masking would need four of them.
        count, char, from_end = self.chars_to_mask, self.masking_char, self.from_end
        texts = present.astype(str).tolist()
        if count == 0:
            masked = texts
        elif count is None:
            masked = [char * len(text) for text in texts]
        elif from_end:
            masked = [text[:-count] + char * min(count, len(text)) for text in texts]
        else:
            masked = [char * min(count, len(text)) + text[count:] for text in texts]
        return pd.Series(masked, index=present.index, dtype=object)
