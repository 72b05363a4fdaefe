"""Releases of the aggregates: what analysts see, and why it never gives a cell away.

Small-cell and complementary suppression protect one table. Two releases of the same
period can still be subtracted: if a cell grew from 12 to 14, the difference is two
people. So a period is released only once it is *closed* (every row of it is past the
cut-off), and a released period changes only when every cell's change is nothing at
all or at least ``min_cell_size`` new people (late rows, e.g. from a lifted legal hold);
otherwise the earlier release stands and the period is reported as *deferred* until
enough late rows have gathered. Releases are kept in the state database, with their
history; analysts read the newest release of each period.

A rollup may instead be released under differential privacy (``disclosure: {method:
differential_privacy}``): every closed period since the policy's ``since`` is released
once, every cell of its declared domain with its count of people with noise
(`anonymizers.differential_privacy`), as the calendar says and whatever the data holds;
each release of a period spends its epsilon from the budget of the period's calendar
year, and a period the budget cannot pay for is not released. The loss spent is kept in
the state database (`tenure_privacy_loss`) and in the audit log, in the transaction that
records the release. Rows that reach a released period later are not released (see
`PrivateRelease.run`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time
from itertools import product
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Column, Connection, Engine, Table, func, insert, inspect, select

from anonymizers.differential_privacy import NoisyCounts, noisy_counts
from anonymizers.risk_criteria import CRITERIA
from anonymizers.risk_measures import COUNT, RiskMeasures, measure
from anonymizers.suppression import suppressed_cells
from connectors.protocol import Connector, PublishedCell, RollupSink
from connectors.rollups import period_end, period_starts
from connectors.times import wall_instant
from flows.audit import PRIVACY_LOSS, append_on, current_key
from flows.state.tables import privacy_loss, releases, utc
from flows.table_risk import judged, unmet
from retention_rules.model import (
    AggregateThenDeleteAction,
    Dataset,
    DifferentialPrivacy,
    Policy,
    Rollup,
    Suppression,
)

PERIOD = "_period"


@dataclass(frozen=True)
class RollupRelease:
    """One rollup's release in one run: periods released now, periods held back, and the
    risk of everything released so far (the new release included), with the binding's
    requirements it misses (then nothing new was released). Under differential privacy,
    ``privacy`` says what was spent instead of ``measures``, and ``refused`` why nothing
    was released (a budget spent, a value outside the domain)."""

    rollup: str
    measures: RiskMeasures | None
    """With their assessment (``rollup_risk``): each criterion and the verdict."""
    released: list[date] = field(default_factory=list)
    deferred: list[date] = field(default_factory=list)
    unmet: tuple[str, ...] = ()
    privacy: dict[str, Any] | None = None

    @property
    def refused(self) -> str | None:
        """Why a private release released nothing it was due to (its one unmet line)."""
        return self.unmet[0] if self.privacy is not None and self.unmet else None

    def summary(self) -> dict[str, Any]:
        shown = {
            "rollup": self.rollup,
            "released_periods": [d.isoformat() for d in self.released],
            "deferred_periods": [d.isoformat() for d in self.deferred],
            **(self.measures.as_dict() if self.measures is not None else {}),
            "unmet": list(self.unmet),
        }
        if self.privacy is not None:
            shown["differential_privacy"] = self.privacy
        if self.refused is not None:
            shown["refused"] = self.refused
        return shown


def release_rollups(
    state: Engine,
    connector: Connector,
    dataset: Dataset,
    sinks: Sequence[RollupSink],
    cutoff: datetime,
    zone: ZoneInfo,
    run_id: str,
) -> list[RollupRelease]:
    """Release what is due of each rollup of ``dataset``, unless the release would miss
    the binding's risk requirements (then the previous release stands)."""
    done = []
    action = dataset.action
    assert isinstance(action, AggregateThenDeleteAction), "only aggregates are released"
    for sink in sinks:
        rollup = action.rollup(sink.name)
        method = action.disclosure(rollup)
        if isinstance(method, DifferentialPrivacy):
            release = PrivateRelease(state, dataset.name, rollup, method, zone)
            done.append(release.run(connector, sink, cutoff, run_id))
            continue
        previous = released_cells(state, dataset.name, sink.name)
        # One row per cell before they are read (this run's staged chunks folded in, the
        # one pass over them); periods released before stay sealed (late rows join them).
        connector.compact_rollup(dataset.name, sink, sorted(previous), run_id)
        cells = withhold_small_cells(connector.rollup_cells(dataset.name, sink), sink)
        due, deferred = candidate_release(
            cells, previous, cutoff, sink.period, zone, sink.min_cell_size
        )
        measures, missing = rollup_risk({**previous, **due}, sink, dataset)
        if not missing and due:
            store_release(state, dataset.name, sink.name, run_id, due)
            # The released periods sealed: a crash in between leaves sketches that the
            # next run seals above.
            connector.compact_rollup(
                dataset.name, sink, sorted(previous.keys() | due.keys()), run_id
            )
        done.append(
            RollupRelease(
                sink.name,
                measures,
                released=[] if missing else sorted(due),
                deferred=deferred,
                unmet=missing,
            )
        )
    return done


def withhold_small_cells(cells: Iterable[PublishedCell], sink: RollupSink) -> list[PublishedCell]:
    """The rollup's merged cells, those under `min_cell_size` people and those that would
    let them be recovered from totals (`suppressed_cells`) flagged ``withheld``. A
    withheld cell keeps its counts (to compare releases) but none of its measures."""
    keyed = {
        (cell.period_start, *(cell.dimensions[d] for d in sink.dimensions)): cell for cell in cells
    }
    withheld = suppressed_cells(
        {key: _people(cell) for key, cell in keyed.items()}, sink.min_cell_size
    )
    return [
        replace(cell, measures={}, withheld=True) if key in withheld else cell
        for key, cell in keyed.items()
    ]


def shown(cells: Iterable[PublishedCell]) -> list[PublishedCell]:
    """The cells anyone may see: those not withheld."""
    return [cell for cell in cells if not cell.withheld]


def candidate_release(
    cells: Sequence[PublishedCell],
    previous: Mapping[date, list[PublishedCell]],
    closed_before: datetime,
    period: str,
    zone: ZoneInfo,
    k: int | None,
) -> tuple[dict[date, list[PublishedCell]], list[date]]:
    """The periods to release now (with their cells) and the periods deferred (a change
    of fewer than ``k`` people; with ``k`` None every change is released)."""
    by_period: dict[date, list[PublishedCell]] = {}
    for cell in cells:
        by_period.setdefault(cell.period_start, []).append(cell)
    due: dict[date, list[PublishedCell]] = {}
    deferred: list[date] = []
    for start, current in sorted(by_period.items()):
        end = wall_instant(datetime.combine(period_end(start, period), time()), zone)
        if end.astimezone(UTC) > closed_before.astimezone(UTC):  # in UTC: folds compare
            continue  # rows of this period may still be expiring: not final yet
        before = previous.get(start)
        if before is None:
            due[start] = current
            continue
        old, new = _counts(before), _counts(current)
        if old == new:
            continue
        if k is None or _safe_change(old, new, k):
            due[start] = current
        else:
            deferred.append(start)
    return due, deferred


def _counts(cells: Iterable[PublishedCell]) -> dict[str, tuple[int, int]]:
    """Rows and people per cell, keyed by the dimensions as stored (JSON)."""
    return {
        json.dumps(cell.dimensions, sort_keys=True, default=str): (cell.count, _people(cell))
        for cell in cells
    }


def _people(cell: PublishedCell) -> int:
    return cell.count if cell.subjects is None else cell.subjects


def _safe_change(
    old: Mapping[str, tuple[int, int]], new: Mapping[str, tuple[int, int]], k: int
) -> bool:
    """Whether subtracting the releases reveals only groups of at least ``k`` people."""
    for key in old.keys() | new.keys():
        rows_before, people_before = old.get(key, (0, 0))
        rows_now, people_now = new.get(key, (0, 0))
        if rows_now == rows_before and people_now == people_before:
            continue
        if people_now - people_before < k:
            return False
    return True


def released_cells(state: Engine, dataset: str, rollup: str) -> dict[date, list[PublishedCell]]:
    """The newest release of every released period, withheld cells included."""
    return _newest(state, releases, releases.c.cells, dataset, rollup)


def _newest(
    state: Engine, table: Table, cells: Column[str], dataset: str, rollup: str
) -> dict[date, list[PublishedCell]]:
    """The ``cells`` of the newest release of each period in ``table`` (releases, or the
    privacy loss of private ones)."""
    newest = (
        select(table.c.period_start, func.max(table.c.release_no).label("no"))
        .where(table.c.dataset == dataset, table.c.rollup == rollup)
        .group_by(table.c.period_start)
        .subquery()
    )
    statement = select(table.c.period_start, cells).join(
        newest,
        (table.c.period_start == newest.c.period_start)
        & (table.c.release_no == newest.c.no)
        & (table.c.dataset == dataset)
        & (table.c.rollup == rollup),
    )
    with state.connect() as connection:
        rows = connection.execute(statement).all()
    return {
        date.fromisoformat(start): _cells(date.fromisoformat(start), text) for start, text in rows
    }


def published_release(state: Engine, dataset: str, rollup: str) -> list[PublishedCell]:
    """What analysts may read: the released cells that are not withheld, in period order."""
    periods = released_cells(state, dataset, rollup)
    return [cell for start in sorted(periods) for cell in shown(periods[start])]


def store_release(
    state: Engine, dataset: str, rollup: str, run_id: str, due: Mapping[date, list[PublishedCell]]
) -> None:
    """Record the periods released now, each as the next release of that period."""
    if not due:
        return
    with state.begin() as connection:
        for start, cells in due.items():
            _insert_release(connection, dataset, rollup, run_id, start, cells, datetime.now(UTC))


def _insert_release(
    connection: Connection,
    dataset: str,
    rollup: str,
    run_id: str,
    start: date,
    cells: Sequence[PublishedCell],
    now: datetime,
) -> int:
    """Record ``cells`` as the next release of the period ``start``; its number."""
    number = _next_release(connection, dataset, rollup, start)
    connection.execute(
        insert(releases).values(
            dataset=dataset,
            rollup=rollup,
            period_start=start.isoformat(),
            release_no=number,
            run_id=run_id,
            released_at=now,
            cells=json.dumps([_stored(cell) for cell in cells], default=str),
        )
    )
    return number


def release_risk(
    periods: Mapping[date, list[PublishedCell]],
    sink: RollupSink,
    sensitive: Sequence[str],
    population: int | None = None,
) -> RiskMeasures:
    """The shown cells' measures, a cell's people being its records: k (the fewest people
    in a shown cell), the unique share and prosecutor risk; journalist and marketer risk
    against ``population``, each period a draw of its own (a period's cells count people
    of the same population again; the people of a period's cells are added up, which
    counts a person in several cells several times: a larger sampling fraction, a higher
    risk); and l and t over the sensitive dimensions (among cells agreeing on the rest)."""
    rows = [
        {PERIOD: start, **cell.dimensions, COUNT: _people(cell)}
        for start, cells in periods.items()
        for cell in shown(cells)
    ]
    frame = pd.DataFrame(rows, columns=[PERIOD, *sink.dimensions, COUNT])
    finest = measure(frame, [PERIOD, *sink.dimensions], population=population, drawn_by=[PERIOD])
    if not sensitive:
        return finest
    others = [PERIOD, *(d for d in sink.dimensions if d not in sensitive)]
    inferred = measure(frame, others, list(sensitive))
    return replace(finest, l=inferred.l, t=inferred.t)


def rollup_risk(
    periods: Mapping[date, list[PublishedCell]], sink: RollupSink, dataset: Dataset
) -> tuple[RiskMeasures, tuple[str, ...]]:
    """The risk of releasing ``periods``, assessed on the three criteria against the
    binding's thresholds, and the binding's explicit requirements it misses."""
    risk = dataset.risk
    measures = release_risk(periods, sink, risk.sensitive_columns, risk.population)
    draws = "each period a draw of its own"
    return judged(measures, dataset, draws=draws), unmet(risk.require, measures)


def _stored(cell: PublishedCell) -> dict[str, Any]:
    data = asdict(cell)
    data.pop("period_start")
    return data


@dataclass(frozen=True)
class PrivateRelease:
    """The release of one rollup under differential privacy (see the module)."""

    state: Engine
    dataset: str
    rollup: Rollup
    method: DifferentialPrivacy
    zone: ZoneInfo

    def run(
        self, connector: Connector, sink: RollupSink, cutoff: datetime, run_id: str
    ) -> RollupRelease:
        """Release each closed period since ``since`` that was never released, empty or
        not, as far as each year's budget pays: which periods are released, and when,
        depends on the calendar alone, never on the data. A released period is never
        released again: rows that reach it later (a lifted hold) are counted in
        ``late`` and left out, since a second release would tell that some arrived."""
        previous = exact_released(self.state, self.dataset, self.rollup.name)
        connector.compact_rollup(self.dataset, sink, sorted(previous), run_id)
        cells = connector.rollup_cells(self.dataset, sink)
        spent = budget_spent(self.state, self.dataset, self.rollup.name)
        stray = outside_domain(cells, self.rollup)
        if stray:
            return self._outcome(spent, refused=stray)
        by_period: dict[date, list[PublishedCell]] = {}
        for cell in cells:
            by_period.setdefault(cell.period_start, []).append(cell)
        closed = closed_periods(self.method.since, cutoff, self.rollup.period, self.zone)
        late = [
            start
            for start in sorted(previous)
            if self._people(by_period.get(start, [])) != self._people(previous[start])
        ]
        first = closed[0] if closed else None
        early = sorted(p for p in by_period if first is None or p < first)
        paid, unpaid = self._pay([p for p in closed if p not in previous], spent)
        refused = self._unpaid(unpaid)
        if paid:
            spent = self._store({p: by_period.get(p, []) for p in paid}, spent, run_id)
            sealed = sorted(previous.keys() | set(paid))
            connector.compact_rollup(self.dataset, sink, sealed, run_id)
        return self._outcome(spent, paid, refused, late, early)

    def _people(self, cells: Iterable[PublishedCell]) -> dict[tuple[str | None, ...], int]:
        """People per cell, the only figure a private release publishes."""
        counted = {_domain_key(c.dimensions, self.rollup): _people(c) for c in cells}
        return {key: people for key, people in counted.items() if people}

    def _pay(
        self, due: Sequence[date], spent: Mapping[int, float]
    ) -> tuple[list[date], list[date]]:
        """The due periods each year's budget pays for, oldest first, and the others."""
        budget, epsilon = self.method.budget.epsilon, self.method.epsilon
        used, paid, unpaid = dict(spent), [], []
        for start in sorted(due):
            if used.get(start.year, 0.0) + epsilon <= budget * (1 + 1e-9):
                used[start.year] = used.get(start.year, 0.0) + epsilon
                paid.append(start)
            else:
                unpaid.append(start)
        return paid, unpaid

    def _unpaid(self, unpaid: Sequence[date]) -> str | None:
        if not unpaid:
            return None
        years = sorted({p.year for p in unpaid})
        budget = self.method.budget.epsilon
        listed = ", ".join(p.isoformat() for p in unpaid[:3]) + (", ..." if len(unpaid) > 3 else "")
        return (
            f"rollup {self.rollup.name}: the privacy budget of {', '.join(map(str, years))} "
            f"(epsilon {budget:g} a year, {self.method.epsilon:g} a {self.rollup.period}) is "
            f"spent: {len(unpaid)} {self.rollup.period}(s) not released ({listed})"
        )

    def _store(
        self, due: Mapping[date, list[PublishedCell]], spent: Mapping[int, float], run_id: str
    ) -> dict[int, float]:
        """Each due period's noisy cells, its privacy loss and its audit entry, in one
        transaction of the state database; the loss spent per year, these included."""
        key = current_key()
        sensitivity = self.rollup.cells_per_period
        domain = domain_cells(self.rollup)
        used = dict(spent)
        with self.state.begin() as connection:
            entries = []
            for start, cells in sorted(due.items()):
                noisy, drawn = self._noisy(start, cells, domain)
                now = datetime.now(UTC)
                name = self.rollup.name
                number = _insert_release(connection, self.dataset, name, run_id, start, noisy, now)
                used[start.year] = used.get(start.year, 0.0) + drawn.epsilon
                connection.execute(
                    insert(privacy_loss).values(
                        dataset=self.dataset,
                        rollup=self.rollup.name,
                        period_start=start.isoformat(),
                        release_no=number,
                        year=start.year,
                        epsilon=drawn.epsilon,
                        sensitivity=sensitivity,
                        scale=drawn.scale,
                        run_id=run_id,
                        released_at=now,
                        exact=json.dumps([_stored(c) for c in cells], default=str),
                    )
                )
                entries.append(
                    {
                        "event": PRIVACY_LOSS,
                        "binding": self.dataset,
                        "rollup": self.rollup.name,
                        "period_start": start.isoformat(),
                        "release_no": number,
                        "epsilon": drawn.epsilon,
                        "year": start.year,
                        "sensitivity": sensitivity,
                        "year_spent": round(used[start.year], 9),
                        "budget": self.method.budget.epsilon,
                        "released_by": run_id,
                    }
                )
            append_on(connection, entries, key)
        return used

    def _noisy(
        self, start: date, cells: list[PublishedCell], domain: Sequence[dict[str, Any]]
    ) -> tuple[list[PublishedCell], NoisyCounts]:
        """Every cell of the ``domain`` for the period ``start``, its people with noise,
        and the draw."""
        people = self._people(cells)
        true = [people.get(_domain_key(dims, self.rollup), 0) for dims in domain]
        drawn = noisy_counts(
            true, sensitivity=self.rollup.cells_per_period, epsilon=self.method.epsilon
        )
        released = [
            PublishedCell(
                period_start=start,
                dimensions=dims,
                count=int(count),
                measures={},
                margin=drawn.margin,
            )
            for dims, count in zip(domain, drawn.counts, strict=True)
        ]
        return released, drawn

    def _outcome(
        self,
        spent: Mapping[int, float],
        released: Sequence[date] = (),
        refused: str | None = None,
        late: Sequence[date] = (),
        early: Sequence[date] = (),
    ) -> RollupRelease:
        """What was released, spent (``spent``: per year, this release included) and
        refused; ``late``: released periods whose people changed since (not released
        again); ``early``: periods before ``since`` holding rows (never released)."""
        budget = self.method.budget.epsilon
        privacy = {
            "epsilon": self.method.epsilon,
            "sensitivity": self.rollup.cells_per_period,
            "budget": budget,
            "spent": {str(year): round(value, 9) for year, value in sorted(spent.items())},
            "since": self.method.since.isoformat(),
            "late_periods": [p.isoformat() for p in late],
            "periods_before_since": [p.isoformat() for p in early],
        }
        return RollupRelease(
            self.rollup.name,
            None,
            released=list(released),
            unmet=(refused,) if refused else (),
            privacy=privacy,
        )


def domain_cells(rollup: Rollup) -> list[dict[str, Any]]:
    """Every cell of the rollup's declared domain, as dimensions, in declared order."""
    values = [rollup.domain[d] for d in rollup.dimensions]
    return [dict(zip(rollup.dimensions, combo, strict=True)) for combo in product(*values)]


def _domain_key(dimensions: Mapping[str, Any], rollup: Rollup) -> tuple[str | None, ...]:
    return tuple(_domain_value(dimensions.get(d)) for d in rollup.dimensions)


def outside_domain(cells: Iterable[PublishedCell], rollup: Rollup) -> str | None:
    """Why the cells cannot be released under the declared domain: the first dimension
    holding a value the domain does not list, with how many cells do (None: all fit).
    The values are not shown: a rare one may be a person's, and this line reaches the
    audit log and the register."""
    for dimension in rollup.dimensions:
        allowed = {_domain_value(v) for v in rollup.domain[dimension]}
        stray = [
            cell for cell in cells if _domain_value(cell.dimensions.get(dimension)) not in allowed
        ]
        if stray:
            return (
                f"rollup {rollup.name}: column {dimension} holds values outside its declared "
                f"domain in {len(stray)} cell(s): add them to domain.{dimension} (NULL as "
                "null); nothing released"
            )
    return None


def _domain_value(value: Any) -> str | None:
    return None if value is None else str(value)


def closed_periods(since: date, cutoff: datetime, period: str, zone: ZoneInfo) -> list[date]:
    """The first day of every period from the one holding ``since`` whose every row is
    past ``cutoff`` (it ends, in ``zone``, at or before it): the calendar's, not the
    data's."""
    utc = ZoneInfo("UTC")
    start = period_starts(pd.Series([pd.Timestamp(since)]), period, utc, utc).iloc[0]
    closed: list[date] = []
    while True:
        following = period_end(start, period)
        end = wall_instant(datetime.combine(following, time()), zone)
        if end.astimezone(UTC) > cutoff.astimezone(UTC):
            return closed
        closed.append(start)
        start = following


def budget_spent(state: Engine, dataset: str, rollup: str) -> dict[int, float]:
    """The privacy loss spent by the releases of a rollup, per calendar year of their
    periods (none in a state database made before releases spent any, opened to read)."""
    if not inspect(state).has_table(privacy_loss.name):
        return {}
    statement = (
        select(privacy_loss.c.year, func.sum(privacy_loss.c.epsilon))
        .where(privacy_loss.c.dataset == dataset, privacy_loss.c.rollup == rollup)
        .group_by(privacy_loss.c.year)
    )
    with state.connect() as connection:
        return {int(year): float(total) for year, total in connection.execute(statement)}


def exact_released(state: Engine, dataset: str, rollup: str) -> dict[date, list[PublishedCell]]:
    """The true cells behind the newest private release of each period (to tell whether
    a period changed since): never shown."""
    return _newest(state, privacy_loss, privacy_loss.c.exact, dataset, rollup)


def _cells(start: date, text: str) -> list[PublishedCell]:
    return [PublishedCell(period_start=start, **item) for item in json.loads(text)]


def _next_release(connection: Connection, dataset: str, rollup: str, start: date) -> int:
    number = connection.execute(
        select(func.coalesce(func.max(releases.c.release_no), 0)).where(
            releases.c.dataset == dataset,
            releases.c.rollup == rollup,
            releases.c.period_start == start.isoformat(),
        )
    ).scalar_one()
    return int(number) + 1


def private_risk(
    state: Engine,
    dataset: str,
    rollup: str,
    method: DifferentialPrivacy,
    periods: Mapping[date, list[PublishedCell]],
) -> dict[str, Any]:
    """What `tenure risk` says of a rollup released under differential privacy: the
    guarantee stands in for k, uniqueness and linkage (every cell of the domain is
    released with noise, whatever the data), so each criterion is met by it, and the
    loss spent per year is shown against the budget."""
    spent = budget_spent(state, dataset, rollup)
    years = ", ".join(f"{year}: {value:g}" for year, value in sorted(spent.items())) or "none"
    note = (
        f"differential privacy: epsilon {method.epsilon:g} per period, budget "
        f"{method.budget.epsilon:g} per year; spent {years}"
    )
    criterion = {"status": "met", "measures": {}, "thresholds": [], "failed": [], "note": note}
    cells = sum(len(cells) for cells in periods.values())
    return {
        "records": cells,
        "classes": cells,
        "k": None,
        "l": None,
        "unique_share": 0.0,
        "criteria": {name: dict(criterion) for name in CRITERIA},
        "verdict": "anonymized",
        "differential_privacy": {
            "epsilon": method.epsilon,
            "budget": method.budget.epsilon,
            "spent": {str(year): value for year, value in sorted(spent.items())},
        },
    }


#: The published columns of a rollup under differential privacy.
PEOPLE_COLUMN, MARGIN_COLUMN = "people", "people_margin95"
_MEASURE_WORDS = {
    "count": "rows (events) in the cell",
    "count_distinct": "distinct values of {column} in the cell",
    "sum": "sum of {column} over the cell's rows",
    "mean": "mean of {column} over the cell's rows",
    "median": "median of {column} over the cell's rows",
}


@dataclass(frozen=True)
class ReleasedTable:
    """A rollup as analysts read it: one row per published cell, typed columns (counts
    as integers), the columns' descriptions and how the cells are protected."""

    dataset: str
    rollup: str
    period: str
    frame: pd.DataFrame
    description: str
    columns: dict[str, str]
    disclosure: dict[str, Any]
    released_at: datetime | None


def release_tables(state: Engine, policy: Policy) -> list[ReleasedTable]:
    """Every rollup of every aggregating binding, as released so far (an empty frame,
    with its columns, when nothing is)."""
    return [
        released_table(state, policy, dataset, rollup)
        for dataset in policy.datasets
        if isinstance(dataset.action, AggregateThenDeleteAction)
        for rollup in dataset.action.rollups
    ]


def released_table(
    state: Engine, policy: Policy, dataset: Dataset, rollup: Rollup
) -> ReleasedTable:
    action = dataset.action
    assert isinstance(action, AggregateThenDeleteAction)
    method = action.disclosure(rollup)
    periods = released_cells(state, dataset.name, rollup.name)
    columns = {
        "period": f"first day of the {rollup.period}, in the policy's time zone ({policy.timezone})"
    }
    for dimension in rollup.dimensions:
        categories = dataset.columns.get(dimension, [])
        described = "; ".join(
            policy.categories[c].description for c in categories if c in policy.categories
        )
        columns[dimension] = described or dimension
    if isinstance(method, DifferentialPrivacy):  # not a period released before, otherwise
        periods = {p: cells for p, cells in periods.items() if all(c.margin for c in cells)}
    rows = [
        {"period": start, **cell.dimensions, **_values(cell, rollup, method)}
        for start in sorted(periods)
        for cell in shown(periods[start])
    ]
    if isinstance(method, DifferentialPrivacy):
        people = action.people or dataset.subject_key
        columns[PEOPLE_COLUMN] = (
            f"people (distinct {people}) in the cell, with differential privacy noise; "
            "never below zero"
        )
        columns[MARGIN_COLUMN] = f"the noise in {PEOPLE_COLUMN} is within ± this, 95% of the time"
        spent = budget_spent(state, dataset.name, rollup.name)
        disclosure: dict[str, Any] = {
            "method": method.method,
            "epsilon": method.epsilon,
            "per": rollup.period,
            "budget": {"epsilon": method.budget.epsilon, "per": method.budget.per},
            "sensitivity": rollup.cells_per_period,
            "spent": {str(y): round(v, 9) for y, v in sorted(spent.items())},
            "left": {
                str(y): round(max(method.budget.epsilon - v, 0.0), 9)
                for y, v in sorted(spent.items())
            },
        }
        dtypes = {PEOPLE_COLUMN: "Int64", MARGIN_COLUMN: "Int64"}
    else:
        for stat in rollup.measures:
            columns[stat.label] = _MEASURE_WORDS[stat.function].format(column=stat.column)
        withheld = sum(cell.withheld for cells in periods.values() for cell in cells)
        disclosure = {
            "method": method.method,
            "min_cell_size": method.min_cell_size,
            "withheld_cells": withheld,
        }
        dtypes = {
            m.label: "Int64" if m.function in ("count", "count_distinct") else "float64"
            for m in rollup.measures
        }
    frame = pd.DataFrame(rows, columns=list(columns))
    frame = frame.astype({name: kind for name, kind in dtypes.items()})
    return ReleasedTable(
        dataset=dataset.name,
        rollup=rollup.name,
        period=rollup.period,
        frame=frame,
        description=rollup.description or dataset.description,
        columns=columns,
        disclosure=disclosure,
        released_at=_released_at(state, dataset.name, rollup.name),
    )


def _values(
    cell: PublishedCell, rollup: Rollup, method: Suppression | DifferentialPrivacy
) -> dict[str, Any]:
    """A published cell's measures, by the column names of its table."""
    if isinstance(method, DifferentialPrivacy):
        return {PEOPLE_COLUMN: cell.count, MARGIN_COLUMN: cell.margin}
    values: dict[str, Any] = {}
    for stat in rollup.measures:
        value = cell.count if stat.function == "count" else cell.measures.get(stat.label)
        if stat.function == "count_distinct" and value is not None:
            value = round(value)
        values[stat.label] = value
    return values


def _released_at(state: Engine, dataset: str, rollup: str) -> datetime | None:
    statement = select(func.max(releases.c.released_at)).where(
        releases.c.dataset == dataset, releases.c.rollup == rollup
    )
    with state.connect() as connection:
        moment = connection.execute(statement).scalar()
    return utc(moment) if isinstance(moment, datetime) else None
