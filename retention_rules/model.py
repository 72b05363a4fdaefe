"""The retention policy as typed data: purposes, categories, stores, dataset bindings, holds.

Field-level rules live here (types, shorthands, one model's own invariants); rules that
relate one part of the policy to another live in `references.py`, so that every broken
reference can be reported at once even when other parts of the file fail to parse.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from anonymizers.detection.entities import SCANNED_ENTITIES
from anonymizers.registry import OPERATORS
from anonymizers.risk_criteria import DEFAULT_THRESHOLDS, FLOORS, LOWER_BOUNDED, METRICS
from connectors.protocol import COMPARISONS, ClockFormat, ConditionOp, Period
from connectors.urls import mask_url
from retention_rules.deadlines import COMPLAINT_PERIOD, Jurisdiction
from retention_rules.durations import Duration, PositiveDuration
from retention_rules.interpolation import interpolate_url

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]
CategoryName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
LegalBasis = Literal["consent", "contract", "legal_obligation", "legitimate_interest"]
MeasureFunction = Literal["count", "count_distinct", "sum", "mean", "median"]
ScalarValue = str | int | float | bool | date
#: The entity types the PII scan labels columns with: the scan's catalogue
#: (``anonymizers.detection.entities.CATALOGUE``), every entity its recognizers know.
if TYPE_CHECKING:
    EntityName = str
else:
    EntityName = Literal[SCANNED_ENTITIES]


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt key must never silently switch a rule off."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name such as America/Montreal)"
        ) from None
    return value


class Category(_Strict):
    """A kind of personal information, named by a dotted path such as ``contact.email``."""

    description: str
    identifier: Literal["direct", "quasi", "none"] = Field(
        description="direct: identifies a person alone; quasi: in combination; none: neither"
    )
    entities: list[EntityName] | Literal["any"] | None = Field(
        default=None,
        description=(
            "What the PII scan may find in a column of this category. 'any' for free text. "
            "Unset: nothing for identifier none, not checked otherwise."
        ),
    )
    provided: bool = Field(
        default=False,
        description=(
            "The person provided it (a name, an address, a message they wrote): a "
            "portability request covers it. Derived data (usage statistics) is not provided"
        ),
    )
    disclose: bool = Field(
        default=True,
        description=(
            "Shown to the person in an access package. False for what handing out would "
            "endanger them or others (a password hash can be cracked offline): left out, "
            "and the package names the columns left out and why"
        ),
    )

    def admits(self, entity: str) -> bool:
        """Whether a scan finding ``entity`` in a column of this category is expected."""
        if self.entities == "any":
            return True
        if self.entities is None:
            return self.identifier != "none"
        return entity in self.entities


class Purpose(_Strict):
    """Why information is kept; PIPEDA principle 4.5 asks for a minimum and a maximum."""

    description: str
    legal_basis: LegalBasis
    min_retention: Duration
    max_retention: PositiveDuration
    pseudonym_key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        default="default",
        description=(
            "Key id of the purpose's pseudonyms and surrogates (one key per purpose, so "
            "pseudonyms of two purposes cannot be joined); an operator's key_id overrides it"
        ),
    )

    @field_validator("max_retention")
    @classmethod
    def _max_not_below_min(cls, value: Duration, info: ValidationInfo) -> Duration:
        minimum = info.data.get("min_retention")
        if minimum is not None and value.sort_key() < minimum.sort_key():
            raise ValueError(f"max_retention {value} is shorter than min_retention {minimum}")
        return value


def _interpolated(value: str, info: ValidationInfo) -> str:
    """``value`` with its ``${VAR}`` references read from the loader's environment (the
    validation context's ``environ``, else the process's)."""
    environ: Mapping[str, str] = (info.context or {}).get("environ", os.environ)
    return interpolate_url(value, environ)


def _sqlalchemy_url(url: str) -> str:
    """``url``, refused unless SQLAlchemy can read it. SQLAlchemy's own message repeats
    the URL, or a part of it (a port that is not a number), which may be a password."""
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError("not a valid SQLAlchemy URL (expected dialect+driver://...)") from None
    return url


class Store(_Strict):
    """A data store reached by a SQLAlchemy URL; the URL may hold a password, so it is
    kept out of reprs and dumps and shown only through `display_url`."""

    url: str = Field(repr=False, exclude=True)
    naive_timezone: str = "UTC"
    bookkeeping: str | None = None
    """Where a store without SQL (files, mailboxes) keeps its lock, journal, marks,
    rollups and intents; by default they belong to the store itself (see
    docs/connectors.md), whatever folder a run starts from. An absolute path: a relative
    one would name another folder, with another lock, for each folder a run starts from."""

    @field_validator("bookkeeping")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isabs(value):
            raise ValueError(
                f"{value!r} is a relative path: give an absolute one (a relative folder "
                "would differ, with its own lock, for each folder a run starts from)"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url", mode="before")
    @classmethod
    def _interpolate(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return _sqlalchemy_url(_interpolated(value, info))

    _check_tz = field_validator("naive_timezone")(_check_timezone)

    @property
    def display_url(self) -> str:
        return mask_url(self.url)


class EventJoin(_Strict):
    """How a row reaches the event that starts its clock: ``local`` on the dataset's
    table equals ``event`` on the event table."""

    local: Identifier
    event: Identifier


class NoEventClock(_Strict):
    """What a record with no event row counts from: a column of its own table."""

    column: Identifier
    format: ClockFormat = Field(
        default="timestamp",
        description="How this column's values are read, as for clock.format",
    )


class Clock(_Strict):
    """When a record's retention period starts.

    Either a timestamp column on the row itself, or an event reached through a join
    (the account's ``closed_at``, a consent's ``withdrawn_at``). A record whose event has
    not happened yet (the event's column is NULL) never expires. A record that no event
    row matches at all counts from ``if_no_event`` (a column of its own), or never
    expires (``never``, or unset); either way such rows are counted and shown.
    """

    column: Identifier
    event_table: Identifier | None = None
    join: EventJoin | None = None
    format: ClockFormat = Field(
        default="timestamp",
        description=(
            "timestamp: the column holds timestamps (on SQLite, ISO text as SQLAlchemy "
            "writes it); epoch_seconds: integer seconds since 1970-01-01 UTC. A value in "
            "another form is never expired: it is counted as 'clock unreadable'"
        ),
    )
    if_no_event: NoEventClock | Literal["never"] | None = Field(
        default=None,
        description=(
            "For an event clock: what a record that no event row matches counts from "
            "({column: created_at}, a column of its own table), or never (kept on purpose). "
            "Unset: never, and validate warns when the event table can be cut"
        ),
    )

    @model_validator(mode="after")
    def _join_with_event_table(self) -> Clock:
        if (self.event_table is None) != (self.join is None):
            raise ValueError("event_table and join go together: give both or neither")
        if self.if_no_event is not None and self.event_table is None:
            raise ValueError(
                "if_no_event is for a clock that is another table's event "
                "(event_table and join); this clock is the row's own column"
            )
        return self

    @property
    def fallback(self) -> NoEventClock | None:
        """The record's own column it counts from when it has no event, if any."""
        return self.if_no_event if isinstance(self.if_no_event, NoEventClock) else None

    def describe(self) -> str:
        """The clock's column, qualified by its table when it is another table's event."""
        if self.event_table is None:
            return self.column
        shown = f"{self.event_table}.{self.column}"
        return shown if self.fallback is None else f"{shown}, else {self.fallback.column}"


def _registered_operator(value: Any) -> str:
    """An operator name the registry holds (``anonymizers.registry.OPERATORS``), read
    when the policy is: an operator a project added is accepted, one it removed is not.
    Anything else is refused as pydantic refuses a choice, naming the registry's."""
    if isinstance(value, str) and value in OPERATORS:
        return value
    names = [repr(name) for name in OPERATORS]
    expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    raise PydanticCustomError(
        "literal_error", "Input should be {expected}", {"expected": expected or "an operator"}
    )


OperatorName = Annotated[str, PlainValidator(_registered_operator)]


class ColumnOperator(_Strict):
    """An anonymization operator for one column; shorthand ``email: pseudonym``."""

    operator: OperatorName
    params: dict[str, ScalarValue] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"operator": value}
        if isinstance(value, Mapping) and "operator" in value and "params" not in value:
            params = {k: v for k, v in value.items() if k != "operator"}
            return {"operator": value["operator"], "params": params}
        return value


class Measure(_Strict):
    """One statistic of a rollup; shorthand ``count`` or ``{median: response_ms}``."""

    function: MeasureFunction
    column: Identifier | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"function": value}
        if isinstance(value, Mapping) and len(value) == 1 and "function" not in value:
            ((function, column),) = value.items()
            return {"function": function, "column": column}
        return value

    @model_validator(mode="after")
    def _column_needed(self) -> Measure:
        if self.function != "count" and self.column is None:
            raise ValueError(f"{self.function} needs a column, e.g. {{{self.function}: amount}}")
        return self

    @property
    def label(self) -> str:
        return self.function if self.column is None else f"{self.function}_{self.column}"


class Suppression(_Strict):
    """Small-cell suppression: a cell counting fewer than ``min_cell_size`` people is
    withheld, and so are the cells its count could be recovered from (totals)."""

    method: Literal["suppression"]
    min_cell_size: int | None = Field(
        default=None,
        ge=2,
        description="The fewest people a shown cell counts (default: the action's)",
    )


class PrivacyBudget(_Strict):
    """The privacy loss all releases of a rollup's periods of one calendar year may spend."""

    epsilon: float = Field(gt=0, allow_inf_nan=False)
    per: Literal["year"] = "year"


class DifferentialPrivacy(_Strict):
    """Differential privacy: every cell of the declared domain is released, its count of
    people with noise (OpenDP's discrete Laplace) calibrated to ``epsilon`` for one
    period's release, a person being the unit of privacy."""

    method: Literal["differential_privacy"]
    epsilon: float = Field(
        gt=0, allow_inf_nan=False, description="Privacy loss of one period's release"
    )
    per: Period | None = Field(
        default=None, description="The period one epsilon pays for: the rollup's own period"
    )
    budget: PrivacyBudget
    since: date = Field(
        description="The first period released: every closed period from the one holding "
        "this day on is released once, empty or not, so that which periods appear says "
        "nothing about the data"
    )


Disclosure = Annotated[Suppression | DifferentialPrivacy, Field(discriminator="method")]


class Rollup(_Strict):
    """A statistic kept after the rows are gone: measures by dimensions per period."""

    name: Name
    description: str = Field(default="", description="What the statistic is, for its readers")
    period: Period
    dimensions: list[Identifier] = Field(default_factory=list)
    measures: list[Measure] = Field(min_length=1)
    disclosure: Disclosure | None = Field(
        default=None, description="How cells are protected (default: suppression)"
    )
    domain: dict[Identifier, list[ScalarValue | None]] = Field(
        default_factory=dict,
        description="Each dimension's possible values: with differential privacy, every "
        "cell of the domain is released, and a value outside it refuses the release",
    )

    @model_validator(mode="after")
    def _disclosure_fits(self) -> Rollup:
        stray = [d for d in self.domain if d not in self.dimensions]
        if stray:
            raise ValueError(f"domain: {', '.join(stray)} is not a dimension of the rollup")
        for dimension, values in self.domain.items():
            if not values:
                raise ValueError(f"domain: {dimension} lists no value")
            if len(set(map(str, values))) != len(values):
                raise ValueError(f"domain: {dimension} lists a value twice")
        dp = self.disclosure
        if not isinstance(dp, DifferentialPrivacy):
            return self
        undeclared = [d for d in self.dimensions if d not in self.domain]
        if undeclared:
            raise ValueError(
                "differential privacy releases every cell of the domain: declare "
                f"domain: {{{undeclared[0]}: [...]}} for {', '.join(undeclared)}"
            )
        if dp.per is not None and dp.per != self.period:
            raise ValueError(
                f"disclosure.per is {dp.per} but the rollup's period is {self.period}: "
                "epsilon is spent on each period's release"
            )
        if dp.budget.epsilon < dp.epsilon:
            raise ValueError(
                f"disclosure.budget.epsilon {dp.budget.epsilon:g} is less than one "
                f"release's epsilon {dp.epsilon:g}: nothing could ever be released"
            )
        return self

    @property
    def cells_per_period(self) -> int:
        """How many cells one period's release has under a declared domain."""
        return math.prod(len(self.domain[d]) for d in self.dimensions)


class DeleteAction(_Strict):
    type: Literal["delete"]


class AnonymizeAction(_Strict):
    type: Literal["anonymize"]
    columns: dict[Identifier, ColumnOperator] = Field(min_length=1)
    kept_for: str = Field(
        default="Records kept past their purpose with their identifiers anonymized",
        min_length=1,
        description="Why the anonymized rows are kept (the anonymization register says it)",
    )


class AggregateThenDeleteAction(_Strict):
    type: Literal["aggregate_then_delete"]
    rollups: list[Rollup] = Field(min_length=1)
    min_cell_size: int = Field(
        default=10, ge=2, description="The fewest people a shown cell counts"
    )
    people: Identifier | None = Field(
        default=None,
        description=(
            "The column naming the person a row is about, whose distinct values a cell's "
            "size is counted in (default: the subject key); rows where it is NULL count "
            "as nobody, which only withholds more"
        ),
    )
    kept_for: str = Field(
        default="Aggregate statistics",
        min_length=1,
        description="Why the statistics are kept (the anonymization register says it)",
    )

    def disclosure(self, rollup: Rollup) -> Suppression | DifferentialPrivacy:
        """How ``rollup``'s cells are protected: its own ``disclosure``, else suppression
        at the action's ``min_cell_size``."""
        chosen = rollup.disclosure
        if isinstance(chosen, DifferentialPrivacy):
            return chosen
        size = self.min_cell_size if chosen is None else chosen.min_cell_size
        return Suppression(method="suppression", min_cell_size=size or self.min_cell_size)

    def rollup(self, name: str) -> Rollup:
        return next(r for r in self.rollups if r.name == name)


_NUMBER = r"[0-9]*\.?[0-9]+"
_REQUIREMENT = re.compile(
    rf"^\s*({'|'.join(METRICS)})\s*(>=|<=|>|<)\s*({_NUMBER})\s*(?:/\s*({_NUMBER})\s*)?$"
)


class RiskRequirement(_Strict):
    """A threshold on one risk measure, written ``k >= 11`` or ``journalist_max <= 1/11``.

    Individualization: ``k`` (the fewest records, people for aggregates, sharing one
    combination of quasi identifiers), ``unique_share`` (records alone in theirs),
    ``prosecutor_max`` and ``prosecutor_avg`` (the chance of re-identifying a record known
    to be in the table: 1/k, and on average). Correlation: ``journalist_max`` and
    ``marketer`` (the chance of re-identifying a person of the population, and the share
    of records a linkage of the whole table re-identifies), ``population_unique_share``
    (records estimated unique in the population). Inference: ``l`` (the fewest distinct
    sensitive values in a class) and ``t`` (t-closeness: how far a class's distribution of
    a sensitive value strays from the table's, 0 to 1).
    """

    metric: str
    op: Literal[">=", ">", "<=", "<"]
    value: float
    written: str = Field(default="", repr=False)
    """The threshold as the policy wrote it (``1/11`` stays ``1/11`` in reports)."""

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        match = _REQUIREMENT.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a requirement such as 'k >= 11', 'l >= 2', "
                "'unique_share <= 0.01' or 'journalist_max <= 1/11' (measures: "
                f"{', '.join(METRICS)})"
            )
        metric, op, number, divisor = match.groups()
        if divisor is not None and float(divisor) == 0:
            raise ValueError(f"{value!r} divides by zero")
        amount = float(number) / float(divisor) if divisor is not None else float(number)
        written = f"{number}/{divisor}" if divisor is not None else number
        return {"metric": metric, "op": op, "value": amount, "written": written}

    @model_validator(mode="after")
    def _direction(self) -> RiskRequirement:
        if self.metric not in METRICS:
            raise ValueError(f"unknown measure {self.metric!r} (measures: {', '.join(METRICS)})")
        lower = self.metric in LOWER_BOUNDED
        if self.op not in ((">=", ">") if lower else ("<=", "<")):
            wanted = ">= or >" if lower else "<= or <"
            raise ValueError(f"{self.metric} is bounded with {wanted}, not {self.op}")
        floor = FLOORS.get(self.metric)
        if floor is not None:
            loosest = math.floor(self.value) + 1 if self.op == ">" else self.value
            if (loosest < floor) if lower else (self.value > floor):
                bound = f">= {floor:g}" if lower else f"<= {floor:g}"
                raise ValueError(
                    f"{self} is looser than {self.metric} {bound}, the floor under which "
                    "no output is called anonymized"
                )
        return self

    def met_by(self, measured: float | None) -> bool:
        """Whether ``measured`` meets the threshold; nothing measured (no records) does."""
        if measured is None:
            return True
        return {
            ">=": measured >= self.value,
            ">": measured > self.value,
            "<=": measured <= self.value,
            "<": measured < self.value,
        }[self.op]

    def __str__(self) -> str:
        shown = self.written or (
            str(int(self.value)) if self.value.is_integer() else f"{self.value:g}"
        )
        return f"{self.metric} {self.op} {shown}"


class RiskSettings(_Strict):
    """What the re-identification risk analysis looks at, and what it must find.

    Quasi identifiers default to the columns bound to ``identifier: quasi`` categories
    (for an aggregate: its dimensions). Sensitive columns must be named: until they are
    (``sensitive: []`` says none is kept), inference cannot be assessed and the output is
    at best de-identified. ``require`` stops a run whose output would miss it;
    ``thresholds`` only judge the verdict. Either replaces, measure by measure, Tenure's
    defaults (``anonymizers.risk_criteria.DEFAULT_THRESHOLDS``).
    """

    quasi_identifiers: list[Identifier] | None = None
    sensitive: list[Identifier] | None = None
    population: int | None = Field(
        default=None,
        ge=1,
        description=(
            "How many people the records are drawn from (those an attacker's list of "
            "names could cover); correlation is measured against it. Unset: the table is "
            "taken as the whole population, the worst case"
        ),
    )
    require: list[RiskRequirement] = Field(default_factory=list)
    thresholds: list[RiskRequirement] = Field(default_factory=list)

    @property
    def sensitive_columns(self) -> list[str]:
        return list(self.sensitive or [])

    @property
    def verdict_thresholds(self) -> list[RiskRequirement]:
        """What the output is judged by: for each measure, the thresholds the binding
        states (``require`` and ``thresholds``), else Tenure's default."""
        stated = [*self.require, *self.thresholds]
        named = {t.metric for t in stated}
        defaults = (RiskRequirement.model_validate(text) for text in DEFAULT_THRESHOLDS)
        return [*stated, *(t for t in defaults if t.metric not in named)]


Action = Annotated[
    DeleteAction | AnonymizeAction | AggregateThenDeleteAction, Field(discriminator="type")
]


class Reference(_Strict):
    """Rows of the binding's table refer to rows of another bound dataset's table, where
    the schema declares no foreign key: ``{dataset: orders, columns: {order_id: id}}``
    (each column of this table, and the column of the other it equals). The run treats
    it as a foreign key: children first, a parent a kept child refers to kept, a hold on
    a parent followed to its children."""

    dataset: Name
    columns: dict[Identifier, Identifier] = Field(min_length=1)


class Dataset(_Strict):
    """A binding of one table to one purpose, with the clock and action on expiry."""

    name: Name
    description: str = ""
    store: Name
    db_schema: Identifier | None = Field(default=None, alias="schema")
    table: Identifier
    purpose: Name
    primary_key: list[Identifier] = Field(min_length=1)
    subject_key: Identifier
    columns: dict[Identifier, list[CategoryName]] = Field(min_length=1)
    clock: Clock
    retention: PositiveDuration
    action: Action
    risk: RiskSettings = Field(default_factory=RiskSettings)
    references: list[Reference] = Field(
        default_factory=list,
        description="Relations to other bindings' tables that the schema does not declare",
    )

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_key(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("columns", mode="before")
    @classmethod
    def _one_category(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("action", mode="before")
    @classmethod
    def _action_shorthand(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _private_rollups_count_people(self) -> Dataset:
        """A rollup under differential privacy releases the number of people per cell
        (a person adds one to a cell at most): any other measure would need bounds on
        each person's rows that the sketches cannot enforce."""
        action = self.action
        if not isinstance(action, AggregateThenDeleteAction):
            return self
        people = action.people or self.subject_key
        for rollup in action.rollups:
            if not isinstance(rollup.disclosure, DifferentialPrivacy):
                continue
            other = [
                m.label
                for m in rollup.measures
                if m != Measure(function="count_distinct", column=people)
            ]
            if other:
                raise ValueError(
                    f"rollup {rollup.name}: differential privacy releases only the number of "
                    f"people per cell ({{count_distinct: {people}}}); {', '.join(other)} "
                    "cannot be bounded per person: remove it or use suppression"
                )
        return self


class Condition(_Strict):
    """A column test in a hold predicate; values are bound parameters, never SQL text."""

    column: Identifier
    op: ConditionOp = "eq"
    value: ScalarValue | list[ScalarValue] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        takes = COMPARISONS[self.op].takes
        takes_list, takes_none = takes == "values", takes == "nothing"
        if takes_none and self.value is not None:
            raise ValueError(f"op {self.op} takes no value")
        if not takes_none and (self.value is None or isinstance(self.value, list) != takes_list):
            kind = "a list" if takes_list else "a single value"
            raise ValueError(f"op {self.op} needs {kind}")
        if takes_list and not self.value:
            raise ValueError(
                f"op {self.op} with an empty list: a hold must name the values it protects"
            )
        return self


class Hold(_Strict):
    """A legal hold: matching rows are never deleted or anonymized until it expires."""

    name: Name
    reason: str = Field(min_length=1)
    expires: date
    datasets: list[Name] | Literal["all"] = "all"
    subject_keys: list[str | int] | None = Field(default=None, min_length=1)
    where: list[Condition] | None = Field(default=None, min_length=1)

    @field_validator("datasets")
    @classmethod
    def _some_dataset(cls, value: list[str] | Literal["all"]) -> list[str] | Literal["all"]:
        if not value:
            raise ValueError("a hold on no dataset protects nothing (omit datasets for all)")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> Hold:
        if (self.subject_keys is None) == (self.where is None):
            raise ValueError("a hold selects rows by exactly one of subject_keys or where")
        return self

    def covers(self, dataset: str) -> bool:
        return self.datasets == "all" or dataset in self.datasets

    def active_on(self, day: date) -> bool:
        return day <= self.expires


class Exemption(_Strict):
    """A table or column the coverage gate leaves alone, and why (the report shows it)."""

    store: Name
    db_schema: Identifier | None = Field(default=None, alias="schema")
    table: Identifier
    column: Identifier | None = None
    reason: str = Field(min_length=1)

    def covers(self, store: str, schema: str | None, table: str, column: str) -> bool:
        return (self.store, self.db_schema, self.table) == (
            store,
            schema,
            table,
        ) and self.column in (None, column)


class ScanSettings(_Strict):
    """How the PII scan samples and what the coverage gate does when it finds a gap."""

    on_coverage_gap: Literal["block", "warn"] = Field(
        default="block",
        description="block: the nightly run refuses destructive steps; warn: it logs and runs",
    )
    sample_size: int = Field(default=1_000, ge=50, le=100_000)
    exempt: list[Exemption] = Field(default_factory=list)


class RegisterSettings(_Strict):
    """The anonymization register: how soon each risk analysis must be redone."""

    review_every: PositiveDuration = Field(
        default_factory=lambda: Duration.parse("1 year"),
        description="An anonymization's risk analysis is redone within this period",
    )


class SubjectIdentifier(_Strict):
    """A kind of value that names a person (a customer number, an e-mail address, a
    website cookie), with the category of the columns that hold it."""

    category: CategoryName
    description: str = ""


class Subjects(_Strict):
    """Who a person is across stores: the identifiers that name a person, and where
    each dataset holds them. A dataset with no ``found_in`` entry is reached through a
    foreign key (the store's, or the policy's ``references:``) to one that has one."""

    person: Name
    """The identifier that tells people apart (customer_id): a request whose identifiers
    lead to two values of it is refused, never merged."""
    identifiers: dict[Name, SubjectIdentifier] = Field(min_length=1)
    found_in: dict[Name, dict[Identifier, Name]] = Field(default_factory=dict)
    """Per dataset name: its columns that name the person, and which identifier each holds
    ({id: customer_id, email: email} for customers; {correspondent: email} for a mailbox;
    {customer_id: customer_id, visitor_id: visitor_id} for web_clicks). A row holding two
    identifiers links them: it says they name the same person."""


def _default_jurisdictions() -> list[Jurisdiction]:
    return [Jurisdiction.QUEBEC, Jurisdiction.PIPEDA]


class RequestSettings(_Strict):
    """How requests from people (access, correction, erasure, withdrawal, complaints)
    are answered: the laws whose deadlines apply (the strictest governs), the policy's
    own promise for complaints, and the register's purpose and language."""

    jurisdictions: list[Jurisdiction] = Field(default_factory=_default_jurisdictions, min_length=1)
    complaint_period: PositiveDuration = COMPLAINT_PERIOD
    purpose: Name | None = Field(
        default=None, description="The purpose the register's own records are kept for"
    )
    language: Literal["fr", "en"] = Field(
        default="fr", description="Default language of letters and access packages"
    )


class Publish(_Strict):
    """Where the released rollups are written after each run: a SQL store (``sql:`` a
    SQLAlchemy URL, ``${VAR}`` as in store URLs, with an optional ``schema`` and table
    ``prefix``) or a folder of Parquet files (``parquet:`` a path relative to the policy
    file, or any fsspec URL)."""

    sql: str | None = Field(default=None, repr=False, exclude=True)
    parquet: str | None = Field(default=None, repr=False, exclude=True)
    db_schema: Identifier | None = Field(default=None, alias="schema")
    prefix: Annotated[str, Field(pattern=r"^[a-z0-9_]*$", max_length=30)] = ""

    model_config = ConfigDict(populate_by_name=True)

    @field_validator("sql", mode="before")
    @classmethod
    def _interpolate(cls, value: Any, info: ValidationInfo) -> Any:
        return Store._interpolate(value, info)

    @field_validator("parquet", mode="before")
    @classmethod
    def _interpolate_folder(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        folder = _interpolated(value, info).strip()  # an fsspec URL may hold a secret
        if not folder:
            raise ValueError("empty: give a folder or an fsspec URL")
        return folder

    @model_validator(mode="after")
    def _one_destination(self) -> Publish:
        if (self.sql is None) == (self.parquet is None):
            raise ValueError("give one destination: sql: URL or parquet: folder")
        if self.parquet is not None and (self.db_schema or self.prefix):
            raise ValueError("schema and prefix are for a sql: destination")
        return self


class Policy(_Strict):
    """A whole retention policy file."""

    version: Literal[1]
    name: Name
    description: str = ""
    timezone: str = "America/Montreal"
    categories: dict[CategoryName, Category] = Field(min_length=1)
    purposes: dict[Name, Purpose] = Field(min_length=1)
    stores: dict[Name, Store] = Field(min_length=1)
    datasets: list[Dataset] = Field(min_length=1)
    holds: list[Hold] = Field(default_factory=list)
    scan: ScanSettings = Field(default_factory=ScanSettings)
    anonymization_register: RegisterSettings = Field(
        default_factory=RegisterSettings, alias="register"
    )
    subjects: Subjects | None = None
    requests: RequestSettings = Field(default_factory=RequestSettings)
    publish: Publish | None = None
    language: Literal["fr", "en"] | None = Field(
        default=None, description="Language of the report (default: that of requests)"
    )
    state: str | None = Field(default=None, repr=False, exclude=True)
    """The state database (ledger, lock, audit log, scan cache, register): a SQLAlchemy
    URL (``${VAR}`` as in store URLs; it may hold a password, so it is kept out of reprs
    and dumps) or a path relative to the policy file. Resolved by
    ``flows.state.location.state_location``."""

    model_config = ConfigDict(populate_by_name=True)

    _check_tz = field_validator("timezone")(_check_timezone)

    @field_validator("state", mode="before")
    @classmethod
    def _interpolate_state(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        state = _interpolated(value, info).strip()
        if not state:
            raise ValueError("empty: give a SQLAlchemy URL or a path")
        return _sqlalchemy_url(state) if "://" in state else state

    def dataset(self, name: str) -> Dataset:
        return next(d for d in self.datasets if d.name == name)
