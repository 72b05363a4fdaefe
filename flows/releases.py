"""Releases of the aggregates: what analysts see, and why it never gives a cell away.

Small-cell and complementary suppression protect one table. Two releases of the same
period can still be subtracted: if a cell grew from 12 to 14, the difference is two
people. So a period is released only once it is *closed* (every row of it is past the
cut-off), and a released period changes only when every cell's change is nothing at
all or at least ``min_cell_size`` new people (late rows, e.g. from a lifted legal hold);
otherwise the earlier release stands and the period is reported as *deferred* until
enough late rows have gathered. Releases are kept in the state database, with their
history; analysts read the newest release of each period.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, func, insert, select

from anonymizers.risk_measures import COUNT, RiskMeasures, measure
from anonymizers.suppression import suppressed_cells
from connectors.protocol import Connector, PublishedCell, RollupSink
from connectors.rollups import period_end
from connectors.times import wall_instant
from flows.state.tables import releases
from flows.table_risk import judged, unmet
from retention_rules.model import Dataset

PERIOD = "_period"


@dataclass(frozen=True)
class RollupRelease:
    """One rollup's release in one run: periods released now, periods held back, and the
    risk of everything released so far (the new release included), with the binding's
    requirements it misses (then nothing new was released)."""

    rollup: str
    measures: RiskMeasures
    """With their assessment (``rollup_risk``): each criterion and the verdict."""
    released: list[date] = field(default_factory=list)
    deferred: list[date] = field(default_factory=list)
    unmet: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "rollup": self.rollup,
            "released_periods": [d.isoformat() for d in self.released],
            "deferred_periods": [d.isoformat() for d in self.deferred],
            **self.measures.as_dict(),
            "unmet": list(self.unmet),
        }


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
    for sink in sinks:
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
    k: int,
) -> tuple[dict[date, list[PublishedCell]], list[date]]:
    """The periods to release now (with their cells) and the periods deferred."""
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
        if _safe_change(old, new, k):
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
    newest = (
        select(releases.c.period_start, func.max(releases.c.release_no).label("no"))
        .where(releases.c.dataset == dataset, releases.c.rollup == rollup)
        .group_by(releases.c.period_start)
        .subquery()
    )
    statement = select(releases.c.period_start, releases.c.cells).join(
        newest,
        (releases.c.period_start == newest.c.period_start)
        & (releases.c.release_no == newest.c.no)
        & (releases.c.dataset == dataset)
        & (releases.c.rollup == rollup),
    )
    with state.connect() as connection:
        rows = connection.execute(statement).all()
    periods: dict[date, list[PublishedCell]] = {}
    for text_start, text in rows:
        start = date.fromisoformat(text_start)
        periods[start] = [PublishedCell(period_start=start, **item) for item in json.loads(text)]
    return periods


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
            number = connection.execute(
                select(func.coalesce(func.max(releases.c.release_no), 0)).where(
                    releases.c.dataset == dataset,
                    releases.c.rollup == rollup,
                    releases.c.period_start == start.isoformat(),
                )
            ).scalar_one()
            connection.execute(
                insert(releases).values(
                    dataset=dataset,
                    rollup=rollup,
                    period_start=start.isoformat(),
                    release_no=int(number) + 1,
                    run_id=run_id,
                    released_at=datetime.now(UTC),
                    cells=json.dumps([_stored(cell) for cell in cells], default=str),
                )
            )


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
