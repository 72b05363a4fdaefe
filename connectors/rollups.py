"""Summarise a chunk's rows into rollup cells, and merge a rollup's cells.

Counts and sums add up exactly across chunks and nights. A distinct count or a median
does not, so those are kept as Apache DataSketches (HyperLogLog, KLL): mergeable,
exact for small cells, and within about 2% for large ones. What is withheld from a
release is decided by the release, not here (`flows.releases.withhold_small_cells`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import datasketches as ds
import numpy as np
import pandas as pd

from connectors.protocol import ChunkWork, PublishedCell, RollupSink
from connectors.times import wall_instants
from connectors.values import plain

#: The rollup column holding the HyperLogLog sketch of a cell's people; no measure's
#: column can be called that (theirs start with dim_, sum_, hll_ or kll_).
SUBJECTS = "subjects_hll"
HLL_LG_K = 12
KLL_K = 200
_FREQUENCIES = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q", "year": "Y"}


def period_starts(
    values: pd.Series, period: str, zone: ZoneInfo, naive_zone: ZoneInfo
) -> pd.Series:
    """The first day of each value's period, counted in the policy's time zone; naive
    values are wall time in ``naive_zone``, read by `wall_instants`' rule."""
    stamps = pd.to_datetime(values)
    if stamps.dt.tz is None:
        stamps = wall_instants(stamps, naive_zone)
    local = stamps.dt.tz_convert(zone).dt.tz_localize(None)
    return local.dt.to_period(_FREQUENCIES[period]).dt.start_time.dt.date


def period_end(start: date, period: str) -> date:
    """The first day after the period that begins on ``start``."""
    last = pd.Period(start, freq=_FREQUENCIES[period]).end_time
    following: date = (last + pd.Timedelta(days=1)).date()
    return following


def rollup_columns(work: ChunkWork) -> list[str]:
    """The columns a chunk's rollups read: the clock, their dimensions and measures."""
    needed = {work.selection.clock_column}
    for sink in work.rollups:
        needed.update(sink.dimensions, sink.sums, sink.distinct, sink.quantiles)
        if sink.subject is not None:
            needed.add(sink.subject)
    return sorted(needed)


def partial_cells(
    frame: pd.DataFrame, sink: RollupSink, periods: pd.Series
) -> list[dict[str, Any]]:
    """One row per (period, dimensions) cell of this chunk, ready to insert.

    Counts and sums are one vectorized group-by; only sketch measures visit the groups.
    """
    data = pd.DataFrame({"period_start": periods.to_numpy()}, index=frame.index)
    for d in sink.dimensions:
        data[f"dim_{d}"] = frame[d]
    for c in sink.sums:
        data[f"sum_{c}"] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    keys = ["period_start", *(f"dim_{d}" for d in sink.dimensions)]
    grouped = data.groupby(keys, dropna=False, sort=True)
    cells = grouped.size().rename("n").to_frame()
    for c in sink.sums:
        cells[f"sum_{c}"] = grouped[f"sum_{c}"].sum()
    if sink.distinct or sink.quantiles or sink.subject:
        members = frame.groupby([data[k] for k in keys], dropna=False, sort=True)
        sketches = [
            {
                **{f"hll_{c}": _hll(group[c]) for c in sink.distinct},
                **{f"kll_{c}": _kll(group[c]) for c in sink.quantiles},
                **({SUBJECTS: _hll(group[sink.subject])} if sink.subject else {}),
            }
            for _, group in members
        ]
    else:
        sketches = [{}] * len(cells)
    records = cells.reset_index().to_dict("records")
    return [
        {key: plain(value) for key, value in {**record, **sketch}.items()}
        for record, sketch in zip(records, sketches, strict=True)
    ]


def chunk_cells(
    frame: pd.DataFrame, work: ChunkWork, naive_zone: ZoneInfo
) -> list[tuple[RollupSink, list[dict[str, Any]]]]:
    """Each rollup's cells of a chunk's rows (`partial_cells`), stamped with the run and
    the chunk, ready to insert; naive clock values are wall time in ``naive_zone``."""
    clock = frame[work.selection.clock_column]
    periods: dict[str, pd.Series] = {}
    out = []
    for sink in work.rollups:
        if sink.period not in periods:
            periods[sink.period] = period_starts(
                clock, sink.period, ZoneInfo(work.period_zone), naive_zone
            )
        cells = partial_cells(frame, sink, periods[sink.period])
        for cell in cells:
            cell.update(run_id=work.run_id, chunk_no=work.chunk_no)
        out.append((sink, cells))
    return out


def merge_cells(rows: Iterable[Mapping[str, Any]], sink: RollupSink) -> list[PublishedCell]:
    """Merge the partial rows of each cell, every cell with all its measures: none is
    withheld here (the release decides that)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        key = (row["period_start"], *(row[f"dim_{d}"] for d in sink.dimensions))
        cell = merged.setdefault(
            key, {"n": 0, "sums": {}, "hll": {}, "kll": {}, "subjects": ds.hll_union(HLL_LG_K)}
        )
        cell["n"] += int(row["n"])
        if sink.subject is not None and row.get(SUBJECTS) is not None:
            cell["subjects"].update(ds.hll_sketch.deserialize(row[SUBJECTS]))
        for c in sink.sums:
            cell["sums"][c] = cell["sums"].get(c, 0.0) + float(row[f"sum_{c}"] or 0.0)
        for c in sink.distinct:
            cell["hll"].setdefault(c, ds.hll_union(HLL_LG_K)).update(
                ds.hll_sketch.deserialize(row[f"hll_{c}"])
            )
        for c in sink.quantiles:
            sketch = ds.kll_floats_sketch.deserialize(row[f"kll_{c}"])
            if c in cell["kll"]:
                cell["kll"][c].merge(sketch)
            else:
                cell["kll"][c] = sketch
    return [
        _published(key, cell, sink)
        for key, cell in sorted(merged.items(), key=lambda kv: tuple(map(str, kv[0])))
    ]


def _people(cell: dict[str, Any], sink: RollupSink) -> int:
    """Whom a cell counts: its people when tracked (never more than its rows), else rows."""
    if sink.subject is None:
        return int(cell["n"])
    people = round(float(cell["subjects"].get_result().get_estimate()))
    return min(int(cell["n"]), people)


def _published(key: tuple[Any, ...], cell: dict[str, Any], sink: RollupSink) -> PublishedCell:
    period, *dims = key
    measures: dict[str, float | None] = {}
    for c in sink.sums:
        measures[f"sum_{c}"] = cell["sums"][c]
        measures[f"mean_{c}"] = cell["sums"][c] / cell["n"]
    for c in sink.distinct:
        measures[f"count_distinct_{c}"] = round(cell["hll"][c].get_result().get_estimate())
    for c in sink.quantiles:
        sketch = cell["kll"][c]
        measures[f"median_{c}"] = None if sketch.is_empty() else float(sketch.get_quantile(0.5))
    return PublishedCell(
        period_start=period if isinstance(period, date) else date.fromisoformat(str(period)),
        dimensions=dict(zip(sink.dimensions, dims, strict=True)),
        count=cell["n"],
        measures=measures,
        subjects=None if sink.subject is None else _people(cell, sink),
    )


def _hll(values: pd.Series) -> bytes:
    sketch = ds.hll_sketch(HLL_LG_K)
    for value in values.dropna().astype(str).unique():
        sketch.update(value)
    return bytes(sketch.serialize_compact())


def _kll(values: pd.Series) -> bytes:
    sketch = ds.kll_floats_sketch(KLL_K)
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=np.float32)
    if numbers.size:
        sketch.update(numbers)
    return bytes(sketch.serialize())
