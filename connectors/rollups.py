"""Summarise a chunk's rows into rollup cells, and merge a rollup's cells.

Counts and sums add up exactly across chunks and nights. A distinct count or a median
does not, so those are kept as mergeable sketches: people and other distinct values as
keyed sketches (`connectors.sketches`: exact up to 512 values, within about 2% above;
the people of an ``exact_people`` sink exact at any size, for differential privacy),
medians as Apache DataSketches KLL. Once a period is released its cells are sealed
(`compacted_rows`): the sketches give way to final figures. What is withheld from a
release is decided by the release, not here (`flows.releases.withhold_small_cells`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import datasketches as ds
import numpy as np
import numpy.typing as npt
import pandas as pd

from connectors import sketches
from connectors.protocol import ChunkWork, PublishedCell, RollupSink
from connectors.times import wall_instants
from connectors.values import canonical_text, plain

#: The rollup column holding the keyed sketch of a cell's people; no measure's column
#: can be called that (theirs start with dim_, sum_, hll_, kll_, count_distinct_ or
#: median_).
SUBJECTS = "subjects_hll"
#: Whether a row holds a released cell's final figures (its sketches destroyed).
SEALED = "sealed"
#: A sealed cell's people.
PEOPLE = "people"
#: Before a sketch column's name in `merged_frame`: its estimate, for every cell at once.
_ESTIMATE = "estimate_"
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


def rollup_columns(work: ChunkWork, *, clock: bool = True) -> list[str]:
    """The columns a chunk's rollups read: the clock (unless the periods are read
    instead), their dimensions and measures."""
    needed = {work.selection.clock_column} if clock else set()
    for sink in work.rollups:
        needed.update(sink.dimensions, sink.sums, sink.distinct, sink.quantiles)
        if sink.subject is not None:
            needed.add(sink.subject)
    return sorted(needed)


def partial_cells(frame: pd.DataFrame, sink: RollupSink, periods: pd.Series) -> pd.DataFrame:
    """One row per (period, dimensions) cell of this chunk, ready to insert.

    Counts and sums are one vectorized group-by; distinct counts (people included) are
    keyed sketches built for all cells at once (`connectors.sketches`); only medians
    visit the cells one by one.
    """
    data = pd.DataFrame({"period_start": periods.to_numpy()}, index=frame.index)
    for d in sink.dimensions:
        data[f"dim_{d}"] = frame[d]
    for c in sink.sums:
        data[f"sum_{c}"] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    keys = cell_keys(sink)
    grouped = data.groupby(keys, dropna=False, sort=True)
    cells = grouped.size().rename("n").to_frame()
    for c in sink.sums:
        cells[f"sum_{c}"] = grouped[f"sum_{c}"].sum()
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    counted = distinct_columns(sink)
    if counted:
        if sink.people_key is None:
            raise ValueError(
                f"rollup {sink.name!r} counts distinct values but no key was given to hash them"
            )
        named = cells.index
        levels = [named.get_level_values(i) for i in range(named.nlevels)]
        ids = sketches.column_cell_ids(levels, len(cells))
        for column, source in counted.items():
            values = frame[source]
            present = values.notna().to_numpy()
            hashes = sketches.keyed_hashes(
                canonical_text(values[present]), ids[codes[present]], sink.people_key
            )
            cells[column] = sketches.build(
                codes[present], hashes, len(cells), sketch_limit(sink, column)
            )
    if sink.quantiles:
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(1, len(cells)))
    for c in sink.quantiles:
        numbers = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float32)
        cells[f"kll_{c}"] = [_kll(part) for part in np.split(numbers[order], bounds)]
    return cells.reset_index()


def cell_keys(sink: RollupSink) -> list[str]:
    """The columns that name a cell: its period and its dimensions."""
    return ["period_start", *(f"dim_{d}" for d in sink.dimensions)]


def distinct_columns(sink: RollupSink) -> dict[str, str]:
    """Each sketch column of the rollup and the source column it counts."""
    found = {f"hll_{c}": c for c in sink.distinct}
    if sink.subject is not None:
        found[SUBJECTS] = sink.subject
    return found


def sketch_limit(sink: RollupSink, column: str) -> int | None:
    """The most values a sketch column's sketch keeps exactly before it turns to
    HyperLogLog registers: none for the people of an ``exact_people`` sink (exact at
    any size), `sketches.SPARSE_LIMIT` otherwise."""
    return None if column == SUBJECTS and sink.exact_people else sketches.SPARSE_LIMIT


def cell_records(cells: pd.DataFrame) -> list[dict[str, Any]]:
    """Cell rows as plain Python values, for a database driver."""
    return [
        {key: plain(value) for key, value in record.items()} for record in cells.to_dict("records")
    ]


def chunk_cells(
    frame: pd.DataFrame,
    work: ChunkWork,
    naive_zone: ZoneInfo,
    periods: Mapping[str, pd.Series] | None = None,
) -> list[tuple[RollupSink, pd.DataFrame]]:
    """Each rollup's cells of a chunk's rows (`partial_cells`), stamped with the run and
    the chunk. Each row's period start comes from ``periods`` (by period, as the store
    computed it) or else from the clock, whose naive values are wall time in
    ``naive_zone``. A row without a clock value (NULL: a selection of `every_row` takes
    it) has no period and goes in no cell; the store reads an unreadable one as NULL."""
    periods = dict(periods or {})
    out = []
    for sink in work.rollups:
        if sink.period not in periods:
            clock = frame[work.selection.clock_column]
            periods[sink.period] = period_starts(
                clock, sink.period, ZoneInfo(work.period_zone), naive_zone
            )
        starts = periods[sink.period]
        placed = starts.notna().to_numpy(dtype=bool)
        cells = partial_cells(frame[placed], sink, starts[placed])
        cells["run_id"], cells["chunk_no"] = work.run_id, work.chunk_no
        out.append((sink, cells))
    return out


def merge_cells(
    rows: pd.DataFrame | Iterable[Mapping[str, Any]], sink: RollupSink
) -> list[PublishedCell]:
    """Merge the rows of each cell, every cell with all its measures: none is withheld
    here (the release decides that)."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    merged = merged_frame(frame, sink)
    cells = [_published(row, sink) for row in merged.to_dict("records")]
    return sorted(cells, key=lambda c: (str(c.period_start), *map(str, c.dimensions.values())))


def merged_frame(
    rows: pd.DataFrame, sink: RollupSink, *, estimates: bool = True, stored: bool = True
) -> pd.DataFrame:
    """One row per cell from its stored rows: partial rows (sketches, merged) and at most
    one sealed row (final figures, `compacted_rows`), kept apart in the result: ``n``
    and the sums over all; ``n_open`` and the merged sketches of the partial rows;
    ``n_sealed`` and the sealed figures."""
    rows = _with_storage_columns(rows, sink)
    if stored:  # rows from a rollup table may be an earlier Tenure's; staged ones not
        rows = _legacy_sealed(rows, sink)
    keys = cell_keys(sink)
    if rows.empty:
        return rows.assign(n_open=pd.Series(dtype="int64"), n_sealed=pd.Series(dtype="int64"))
    rows = rows.reset_index(drop=True)
    grouped = rows.groupby(keys, dropna=False, sort=True)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    first = np.unique(codes, return_index=True)[1]
    out = rows.loc[first, keys].reset_index(drop=True)
    n = rows["n"].astype("int64").to_numpy()
    sealed = _sealed_flags(rows)
    cells = len(out)
    out["n"] = np.bincount(codes, weights=n, minlength=cells).astype("int64")
    out["n_sealed"] = np.bincount(codes[sealed], weights=n[sealed], minlength=cells).astype("int64")
    out["n_open"] = out["n"] - out["n_sealed"]
    for c in sink.sums:
        values = pd.to_numeric(rows[f"sum_{c}"], errors="coerce").fillna(0.0).to_numpy(float)
        out[f"sum_{c}"] = np.bincount(codes, weights=values, minlength=cells)
    open_rows = ~sealed
    for column in distinct_columns(sink):
        out[column] = sketches.union(
            list(rows[column][open_rows]), codes[open_rows], cells, sketch_limit(sink, column)
        )
        if estimates:  # what a cell publishes (not needed to merge chunks)
            out[_ESTIMATE + column] = sketches.estimate(list(out[column]))
    for column in [PEOPLE, *(f"count_distinct_{c}" for c in sink.distinct)]:
        final = pd.to_numeric(rows[column], errors="coerce").where(sealed)
        out[column] = final.groupby(codes).max().reindex(range(cells)).to_numpy()
    for c in sink.quantiles:
        out[f"kll_{c}"] = _merged_kll(rows[f"kll_{c}"], codes, open_rows, cells)
        final = pd.to_numeric(rows[f"median_{c}"], errors="coerce").where(sealed)
        out[f"median_{c}"] = final.groupby(codes).max().reindex(range(cells)).to_numpy()
    return out


def folded(rows: pd.DataFrame, sink: RollupSink) -> pd.DataFrame:
    """Staged partial rows (none sealed, all of this version: chunks' cells) merged into
    one partial row per cell, for all cells at once: counts and sums added, sketches
    united."""
    merged = merged_frame(rows, sink, estimates=False, stored=False)
    kept = [
        *cell_keys(sink),
        "n",
        *(f"sum_{c}" for c in sink.sums),
        *distinct_columns(sink),
        *(f"kll_{c}" for c in sink.quantiles),
    ]
    return merged[kept]


def compacted_rows(
    rows: pd.DataFrame, sink: RollupSink, sealed_periods: Iterable[date], run_id: str
) -> list[dict[str, Any]]:
    """The rows that replace ``rows``: one partial row per cell holding the merged
    sketches, except in ``sealed_periods`` (released), where each cell becomes one
    sealed row of final figures (people, distinct counts, medians) and its sketches,
    which hold keyed hashes of people and raw measure values, are gone. A sealed cell
    that receives rows later (a lifted hold) gets a partial row again; sealing it anew
    counts its people as the larger of the two parts, a lower bound, since the same
    person can no longer be recognised across them."""
    merged = merged_frame(rows, sink)
    closing = {str(p) for p in sealed_periods}
    names, sketched = cell_keys(sink), list(distinct_columns(sink))
    out = []
    for cell in merged.to_dict("records"):
        keys = {k: cell[k] for k in names}
        base = {**keys, "run_id": run_id, "chunk_no": 0}
        if str(period_date(cell["period_start"])) in closing:
            published = _published(cell, sink)
            final: dict[str, Any] = {
                **base,
                "n": cell["n"],
                SEALED: True,
                **{f"sum_{c}": cell[f"sum_{c}"] for c in sink.sums},
                PEOPLE: published.subjects,
                **{
                    f"count_distinct_{c}": published.measures[f"count_distinct_{c}"]
                    for c in sink.distinct
                },
                **{f"median_{c}": published.measures[f"median_{c}"] for c in sink.quantiles},
            }
            out.append(final)
            continue
        if cell["n_sealed"]:
            out.append(_sealed_part(cell, sink, base))
        if cell["n_open"]:
            out.append(
                {
                    **base,
                    "n": cell["n_open"],
                    SEALED: False,
                    **{f"sum_{c}": _open_sum(cell, c) for c in sink.sums},
                    **{column: cell[column] for column in sketched},
                    **{f"kll_{c}": cell[f"kll_{c}"] for c in sink.quantiles},
                }
            )
    columns = ["run_id", "chunk_no", *cell_keys(sink), *storage_columns(sink)]
    return [{c: plain(row.get(c)) for c in columns} for row in out]


def _open_sum(cell: dict[str, Any], c: str) -> Any:
    """A partial row's sum: the cell's, unless a sealed row carries it (`_sealed_part`)."""
    return None if cell["n_sealed"] else cell[f"sum_{c}"]


def _sealed_part(cell: dict[str, Any], sink: RollupSink, base: dict[str, Any]) -> dict[str, Any]:
    """A sealed row kept as it was, with the cell's sums (they add up exactly, so the
    whole cell's sums ride on it and the partial row's are None)."""
    return {
        **base,
        "n": cell["n_sealed"],
        SEALED: True,
        **{f"sum_{c}": cell[f"sum_{c}"] for c in sink.sums},
        PEOPLE: cell[PEOPLE],
        **{f"count_distinct_{c}": cell[f"count_distinct_{c}"] for c in sink.distinct},
        **{f"median_{c}": cell[f"median_{c}"] for c in sink.quantiles},
    }


def storage_columns(sink: RollupSink) -> list[str]:
    """Every column of a rollup's rows besides the key, run and chunk."""
    return [
        "n",
        SEALED,
        *(f"sum_{c}" for c in sink.sums),
        *distinct_columns(sink),
        *(f"kll_{c}" for c in sink.quantiles),
        PEOPLE,
        *(f"count_distinct_{c}" for c in sink.distinct),
        *(f"median_{c}" for c in sink.quantiles),
    ]


def _sealed_flags(rows: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Which rows are sealed, however the store returned the flag (a boolean, 1 or 0 in
    MySQL's TINYINT, NaN where staged rows lack it)."""
    flags: npt.NDArray[np.bool_] = (
        pd.to_numeric(rows[SEALED], errors="coerce").fillna(0) != 0
    ).to_numpy(dtype=bool)
    return flags


def _with_storage_columns(rows: pd.DataFrame, sink: RollupSink) -> pd.DataFrame:
    """``rows`` with every column a rollup's rows may have (a table written before a
    column existed lacks it: None)."""
    missing = [c for c in [*cell_keys(sink), *storage_columns(sink)] if c not in rows.columns]
    if not missing:
        return rows
    return rows.assign(**{c: None for c in missing})


#: DataSketches' HLL family id, and its preamble sizes (list, set and HLL modes).
_DATASKETCHES_HLL, _HLL_PREAMBLES = 7, (2, 3, 10)
#: The lg of the register count the rollups' DataSketches HLL sketches used.
_LEGACY_LG_K = 12


def _is_legacy(blob: object) -> bool:
    """A DataSketches HLL sketch, as rollups stored distinct counts and people before
    their sketches were keyed: its preamble size, serial version 1 and family 7. A
    keyed sketch starts with 1 (sparse) or 2 (dense, and exactly 4,097 bytes long)."""
    if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) < 8:
        return False
    head = bytes(blob[:3])
    legacy: bool = head[0] in _HLL_PREAMBLES and head[1:] == bytes([1, _DATASKETCHES_HLL])
    return legacy and len(blob) != 1 + sketches.REGISTERS


def _legacy_sealed(rows: pd.DataFrame, sink: RollupSink) -> pd.DataFrame:
    """``rows`` with those written before sketches were keyed (DataSketches HLL of the
    raw values, which anyone holding a list of identifiers could test) turned into one
    sealed row per cell: people and distinct counts estimated by DataSketches' union of
    them, medians from their KLL sketches, counts and sums added. Their sketches are
    gone from the store at the next compaction. A person in both these rows and later
    ones of the same cell is counted as for any sealed cell: the larger part, a lower
    bound."""
    counted = distinct_columns(sink)
    if rows.empty or not counted:
        return rows
    sealed = _sealed_flags(rows)
    legacy = np.zeros(len(rows), dtype=bool)
    for column in counted:
        legacy |= np.fromiter(map(_is_legacy, rows[column]), dtype=bool, count=len(rows))
    legacy &= ~sealed
    if not legacy.any():
        return rows
    keys = cell_keys(sink)
    out = []
    for key, group in rows[legacy].groupby(keys, dropna=False, sort=False):
        row: dict[str, Any] = dict(
            zip(keys, key if isinstance(key, tuple) else (key,), strict=True)
        )
        row.update({"n": int(group["n"].sum()), SEALED: True})
        for c in sink.sums:
            row[f"sum_{c}"] = float(pd.to_numeric(group[f"sum_{c}"], errors="coerce").sum())
        for column in counted:
            union = ds.hll_union(_LEGACY_LG_K)
            for blob in group[column]:
                if _is_legacy(blob):
                    union.update(ds.hll_sketch.deserialize(bytes(blob)))
            estimate = round(union.get_result().get_estimate())
            row[PEOPLE if column == SUBJECTS else f"count_distinct_{column[4:]}"] = estimate
        for c in sink.quantiles:
            merged = _merged_kll(
                group[f"kll_{c}"],
                np.zeros(len(group), dtype=np.int64),
                np.ones(len(group), dtype=bool),
                1,
            )[0]
            median = None
            if merged is not None:
                sketch = ds.kll_floats_sketch.deserialize(merged)
                median = None if sketch.is_empty() else float(sketch.get_quantile(0.5))
            row[f"median_{c}"] = median
        out.append(row)
    return _with_storage_columns(
        pd.concat([rows[~legacy], pd.DataFrame(out)], ignore_index=True), sink
    )


def _merged_kll(
    column: pd.Series, codes: np.ndarray, open_rows: np.ndarray, cells: int
) -> list[bytes | None]:
    merged: list[Any] = [None] * cells
    for code, blob in zip(codes[open_rows], column[open_rows], strict=True):
        if blob is None:
            continue
        sketch = ds.kll_floats_sketch.deserialize(bytes(blob))
        if merged[code] is None:
            merged[code] = sketch
        else:
            merged[code].merge(sketch)
    return [None if s is None else bytes(s.serialize()) for s in merged]


def _people(cell: Mapping[str, Any], sink: RollupSink) -> int | None:
    """Whom a cell counts: its people when tracked (never more than its rows), else None."""
    if sink.subject is None:
        return None
    return min(int(cell["n"]), _distinct(cell, SUBJECTS, PEOPLE))


def _distinct(cell: Mapping[str, Any], sketch: str, sealed: str) -> int:
    """A distinct count: the partial rows' sketch, or the sealed figure, or the larger."""
    counted = round(float(cell[_ESTIMATE + sketch]))  # an empty sketch counts 0
    final = cell[sealed]
    return counted if final is None or pd.isna(final) else max(counted, int(final))


def _median(cell: Mapping[str, Any], c: str) -> float | None:
    """The partial rows' median, or the sealed one, whichever part holds more rows."""
    blob = cell[f"kll_{c}"]
    live = None
    if blob is not None and cell["n_open"]:
        sketch = ds.kll_floats_sketch.deserialize(bytes(blob))
        live = None if sketch.is_empty() else float(sketch.get_quantile(0.5))
    final = cell[f"median_{c}"]
    final = None if final is None or pd.isna(final) else float(final)
    if live is None or final is None:
        return live if final is None else final
    return live if cell["n_open"] >= cell["n_sealed"] else final


def _published(cell: Mapping[str, Any], sink: RollupSink) -> PublishedCell:
    period = cell["period_start"]
    dims = [cell[f"dim_{d}"] for d in sink.dimensions]
    n = int(cell["n"])
    measures: dict[str, float | None] = {}
    for c in sink.sums:
        measures[f"sum_{c}"] = float(cell[f"sum_{c}"])
        measures[f"mean_{c}"] = float(cell[f"sum_{c}"]) / n
    for c in sink.distinct:
        measures[f"count_distinct_{c}"] = _distinct(cell, f"hll_{c}", f"count_distinct_{c}")
    for c in sink.quantiles:
        measures[f"median_{c}"] = _median(cell, c)
    return PublishedCell(
        period_start=period_date(period),
        dimensions=dict(zip(sink.dimensions, (plain(d) for d in dims), strict=True)),
        count=n,
        measures=measures,
        subjects=_people(cell, sink),
    )


def period_date(period: Any) -> date:
    """A period start as the rollup table keeps it (a date), however it was read."""
    if isinstance(period, datetime):
        return period.date()
    return period if isinstance(period, date) else date.fromisoformat(str(period)[:10])


def _kll(numbers: np.ndarray) -> bytes:
    sketch = ds.kll_floats_sketch(KLL_K)
    numbers = numbers[~np.isnan(numbers)]
    if numbers.size:
        sketch.update(numbers)
    return bytes(sketch.serialize())
