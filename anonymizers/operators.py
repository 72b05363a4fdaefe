"""The operator contract and the registry type: one small class per transformation.

Modelled on Presidio's operators: parameters are checked once, when the operator is
built (``validate``), so a bad policy fails before any data is touched; ``operate`` then
transforms a whole column at a time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import CHAR, NCHAR, ColumnElement, Enum, String

T = TypeVar("T")


class OperatorError(ValueError):
    """Bad operator parameters; the message names the operator and the parameter.

    Messages never quote cell values: they may be personal information.
    """


class Operator(ABC):
    """One transformation of a column; nulls stay null, the index is kept."""

    name: ClassVar[str]
    #: The parameters ``validate`` accepts; anything else is a typo worth failing on.
    allowed_params: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **params: object) -> None:
        self.params: dict[str, object] = dict(params)
        self.validate()

    def __repr__(self) -> str:
        shown = ", ".join(f"{key}={value!r}" for key, value in sorted(self.params.items()))
        return f"{type(self).__name__}({shown})"

    def validate(self) -> None:
        """Reject unknown parameters; subclasses extend this to check and read theirs."""
        unknown = sorted(set(self.params) - self.allowed_params)
        if unknown:
            known = ", ".join(sorted(self.allowed_params)) or "none"
            raise OperatorError(
                f"operator {self.name!r}: unknown parameter {unknown[0]!r} (accepted: {known})"
            )

    @abstractmethod
    def operate(self, values: pd.Series) -> pd.Series:
        """Return the transformed column, with the same index and nulls left null."""

    def required_keys(self) -> tuple[str, ...]:
        """The key ids whose keys ``operate`` will need: looked up before any write, so a
        missing key stops a binding with nothing touched."""
        return ()

    def identifies(self) -> bool:
        """Whether the output still singles out the person (a keyed pseudonym, a
        surrogate, a partial mask): such a column is pseudonymized, not anonymized."""
        return False

    def writes_text(self) -> bool:
        """Whether the output is text whatever the input, so a date or number column
        cannot hold it (the live-schema check says so before any run)."""
        return False

    def sql_expression(self, column: ColumnElement[Any], dialect: str) -> ColumnElement[Any] | None:
        """The operator as an SQLAlchemy expression over ``column``, or None.

        Lets the connector rewrite the column with one ``UPDATE`` inside the database
        instead of reading it out, so the expression must give exactly what ``operate``
        gives for every non-null value, on this dialect and column type; when it cannot,
        None sends the column through pandas. NULL needs no care: the caller keeps it
        NULL. Values go in as bound parameters, never spliced into SQL text.
        """
        return None

    # Parameter helpers shared by the subclasses' ``validate``.

    def _error(self, param: str, problem: str) -> OperatorError:
        return OperatorError(f"operator {self.name!r}: parameter {param!r} {problem}")

    def _param(self, param: str, kind: type[T], default: T) -> T:
        """The parameter's value, checked to be a ``kind`` (a bool is not an int here)."""
        value = self.params.get(param, default)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self._error(param, f"must be of type {kind.__name__}, not {type(value).__name__}")
        return value

    def _choice(self, param: str, choices: Collection[str], default: str | None = None) -> str:
        """A string parameter restricted to ``choices``; required when there is no default."""
        if default is None and param not in self.params:
            raise self._error(param, f"is required (one of: {', '.join(sorted(choices))})")
        value = self._param(param, str, default or "")
        if value not in choices:
            raise self._error(param, f"must be one of: {', '.join(sorted(choices))}")
        return value


class OperatorRegistry(Mapping[str, type[Operator]]):
    """Operator classes by name: the operators a policy may name (Presidio's
    ``OperatorsFactory`` idea). A value: ``anonymizers.registry.default_registry()`` builds
    the built-in one; ``add`` and ``remove`` change what it offers. Listed, iterated and
    read like a mapping, in the order the classes were added."""

    def __init__(self, operators: Iterable[type[Operator]] = ()) -> None:
        self._classes: dict[str, type[Operator]] = {}
        for cls in operators:
            self.add(cls)

    def __getitem__(self, name: str) -> type[Operator]:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._classes)})"

    def add(self, cls: type[Operator]) -> None:
        """Make ``cls`` reachable by its ``name``; adding the same class again does nothing."""
        if self._classes.get(cls.name, cls) is not cls:
            raise ValueError(f"operator name {cls.name!r} is registered twice")
        self._classes[cls.name] = cls

    def remove(self, operator: type[Operator] | str) -> None:
        """Take away the operator of that name, or that class; KeyError when it is not here."""
        name = operator if isinstance(operator, str) else operator.name
        if name not in self._classes or operator not in (name, self._classes[name]):
            raise KeyError(name)
        del self._classes[name]

    def create(self, name: str, params: Mapping[str, object]) -> Operator:
        """Build the operator a policy names, failing early on unknown names or parameters."""
        try:
            cls = self._classes[name]
        except KeyError:
            known = ", ".join(sorted(self._classes)) or "none"
            raise OperatorError(f"unknown operator {name!r} (known: {known})") from None
        return cls(**params)


def map_non_null(values: pd.Series, transform: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply ``transform`` to the non-null cells only; null cells keep their null value.

    The result has object dtype, since a transformation may change the values' type (a
    number masked becomes a string), and its nulls are ``None``, which every database
    driver writes as NULL.
    """
    present = values.notna().to_numpy()
    result = np.full(len(values), None, dtype=object)
    if present.any():
        transformed = transform(values[present]).to_numpy(dtype=object, copy=True)
        transformed[pd.isna(transformed)] = None
        result[present] = transformed
    return pd.Series(result, index=values.index, dtype=object)


def is_plain_text(column: ColumnElement[Any]) -> bool:
    """Whether SQL string functions see the column's values as pandas does.

    ``CHAR(n)`` is left out (pandas sees its padding, PostgreSQL's ``length`` does not),
    and so are enums (a rewritten value is no longer one of their labels).
    """
    kind = column.type
    return isinstance(kind, String) and not isinstance(kind, CHAR | NCHAR | Enum)


def map_unique(values: pd.Series, function: Callable[[Any], Hashable | None]) -> pd.Series:
    """Call ``function`` once per distinct value and map the results back.

    For transformations with no vectorized form (``ipaddress``, a pool lookup): columns
    repeat values, so this is much cheaper than a call per cell. ``values`` must hold no
    nulls (call it inside ``map_non_null``).
    """
    return map_distinct(values, lambda uniques: [function(value) for value in uniques])


def map_distinct(
    values: pd.Series, function: Callable[[np.ndarray], Sequence[Any] | np.ndarray]
) -> pd.Series:
    """``function`` over the array of distinct values at once, mapped back onto ``values``;
    for transformations that work on whole arrays (a batch of HMACs). No nulls, as above."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object))
    results = np.empty(len(uniques), dtype=object)
    results[:] = function(uniques)
    return pd.Series(results[codes], index=values.index, dtype=object)
