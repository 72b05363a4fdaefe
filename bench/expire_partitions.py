"""Expiring the oldest days of a partitioned log folder: Tenure against ``rm -r``.

    .venv/bin/python -m bench.expire_partitions                  # 365 days, about 1 GB
    .venv/bin/python -m bench.expire_partitions --total-mb 128   # quick check

A seeded web-server log, ``access_log/date=YYYY-MM-DD/part-0.jsonl`` over 365 days, is
written once (into a temporary folder, or ``--dir``, where it is kept and reused). Every
run, Tenure's or the baseline's, works on its own copy made outside the timer (``cp -r``,
or hard links with ``--link``), followed by ``sync``; the files are warm in the page cache
on both sides (dropping the cache needs root).

* **Tenure** goes through the connector protocol as the nightly flow does:
  ``open_connector("logs", "files:///<dir>", ConnectorOptions(read_only=False, ...))``,
  ``count_expiry`` then ``execute_chunk`` in the loop of ``flows.run.lifecycle._work_through``
  (without the ledger), action ``delete``, with a cut-off at which exactly the 30 oldest
  days expire. Timed: (a) the ``execute_chunk`` loop, which drops whole partitions;
  (b) ``count_expiry``, which reads every record; (c) both.
* **Baseline**: one ``rm -r`` of the same 30 folders, as a subprocess.

Each run is checked: the 30 folders are gone and nothing else, the 335 others are still
there, several of them hash as in the source, and the journal's rows equal the lines of
the dropped partitions (counted outside the timer). Times are medians of ``--repeats``
runs; the target is (a) at most 2 times ``rm -r``. ``--profile`` runs (a) once more
under cProfile. See bench/README.md for the results; the figures go to
``bench/results/expire_partitions.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import string
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
from faker import Faker

from bench import harness
from connectors.protocol import ChunkWork, Connector, ConnectorOptions, ExpirySelection
from connectors.registry import open_connector

SEED: Final = 20_261_125
DAYS: Final = 365
EXPIRED_DAYS: Final = 30
LAST_DAY: Final = date(2026, 11, 24)
CHUNK_SIZE: Final = 50_000
TARGET: Final = harness.Target(2.0)
COLLECTION: Final = "access_log"
KEY: Final = ("source_file", "row_number")
HASHED_SURVIVORS: Final = 8
STATUSES: Final = (200, 200, 200, 200, 200, 200, 200, 304, 304, 301, 404, 404, 403, 500, 503)
SMOKE: Final = {"total_mb": 2, "repeats": 1}
PROFILED: Final = "cProfile (a) once more"
KEPT: Final = "generate the data here, and reuse it on the next run of the same size and seed"


# ---------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Dataset:
    """The generated collection and what the checks need to know about it."""

    root: Path
    """The store's folder: ``root/access_log/date=.../part-0.jsonl``."""
    days: list[str]
    lines: dict[str, int]
    """Lines per partition folder name (``date=2025-11-25``)."""
    size: int

    @property
    def partitions(self) -> list[str]:
        return [f"date={day}" for day in self.days]

    @property
    def expired(self) -> list[str]:
        return self.partitions[:EXPIRED_DAYS]

    @property
    def kept(self) -> list[str]:
        return self.partitions[EXPIRED_DAYS:]

    @property
    def expired_lines(self) -> int:
        return sum(self.lines[p] for p in self.expired)

    @property
    def cutoff(self) -> datetime:
        """Midnight UTC of the first kept day: every earlier day, and no other, expires."""
        return datetime.combine(
            date.fromisoformat(self.days[EXPIRED_DAYS]), datetime.min.time(), UTC
        )


class LogWriter:
    """Seeded log lines, built from pools so that 1 GB takes seconds, not minutes: the
    values are Faker's, drawn per line with NumPy."""

    def __init__(self, seed: int) -> None:
        faker = Faker("en_CA")
        faker.seed_instance(seed)
        self.rng = np.random.default_rng(seed)
        # json.dumps once per pooled value: each line is then plain concatenation
        self.ips = [json.dumps(faker.ipv4_public()) for _ in range(20_000)]
        self.agents = [json.dumps(faker.user_agent()) for _ in range(300)]
        paths = [faker.uri_path(deep=int(self.rng.integers(1, 4))) for _ in range(3_000)]
        self.urls = [json.dumps(f"/{p}" + ("?ref=mail" if i % 7 == 0 else "")) for i, p in
                     enumerate(paths)]  # fmt: skip
        # faker.hexify("^" * 16), the same draws from the same generator, without its
        # regular expression per character (a fifth of the time)
        draw, digits = faker.random.choice, string.hexdigits[:-6]
        self.visitors = [
            json.dumps("v-" + "".join([draw(digits) for _ in range(16)])) for _ in range(200_000)
        ]
        self.clock = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60)
                      for s in range(60)]  # fmt: skip

    def day(self, day: str, count: int) -> bytes:
        """``count`` lines of one day, in time order."""
        rng = self.rng
        seconds = np.sort(rng.integers(0, 86_400, count))
        ips = rng.integers(0, len(self.ips), count)
        agents = rng.zipf(1.6, count) % len(self.agents)
        urls = rng.zipf(1.3, count) % len(self.urls)
        statuses = rng.integers(0, len(STATUSES), count)
        sizes = rng.lognormal(8.5, 1.2, count).astype(np.int64)
        visitors = rng.integers(0, len(self.visitors), count)
        lines = [
            f'{{"ts": "{day}T{self.clock[t]}Z", "ip": {self.ips[i]}, "user_agent": '
            f'{self.agents[a]}, "url": {self.urls[u]}, "status": {STATUSES[s]}, '
            f'"bytes": {b}, "visitor_id": {self.visitors[v]}}}\n'
            for t, i, a, u, s, b, v in zip(
                seconds.tolist(), ips.tolist(), agents.tolist(), urls.tolist(),
                statuses.tolist(), sizes.tolist(), visitors.tolist(), strict=True,
            )
        ]  # fmt: skip
        return "".join(lines).encode()


def generate(root: Path, total_mb: int, seed: int) -> Dataset:
    """Write the collection under ``root`` (or reuse it if ``manifest.json`` says it was
    made with the same size and seed)."""
    manifest = root / "manifest.json"
    wanted = {"total_mb": total_mb, "seed": seed, "days": DAYS, "last_day": str(LAST_DAY)}
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found["params"] == wanted:
            return Dataset(root / "store", found["days"], found["lines"], found["size"])
    shutil.rmtree(root / "store", ignore_errors=True)
    writer = LogWriter(seed)
    line_bytes = len(writer.day(str(LAST_DAY), 2_000)) / 2_000
    days = [str(LAST_DAY - timedelta(days=DAYS - 1 - i)) for i in range(DAYS)]
    # more traffic on weekdays, and a little noise, around the same mean
    weights = np.array([1.0 if date.fromisoformat(d).weekday() < 5 else 0.7 for d in days])
    weights *= writer.rng.uniform(0.9, 1.1, DAYS)
    counts = np.rint(weights / weights.sum() * total_mb * 2**20 / line_bytes).astype(int)
    lines: dict[str, int] = {}
    size = 0
    for day, count in zip(days, counts.tolist(), strict=True):
        folder = root / "store" / COLLECTION / f"date={day}"
        folder.mkdir(parents=True)
        data = writer.day(day, count)
        (folder / "part-0.jsonl").write_bytes(data)
        lines[f"date={day}"] = data.count(b"\n")
        size += len(data)
    record = {"params": wanted, "days": days, "lines": lines, "size": size}
    manifest.write_text(json.dumps(record))
    return Dataset(root / "store", days, lines, size)


def copy_store(dataset: Dataset, target: Path, *, link: bool) -> Path:
    """A fresh copy of the store, made outside every timer, flushed to disk."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["cp", "-al" if link else "-r", str(dataset.root), str(target)], check=True)
    os.sync()
    return target


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------- the runs


@dataclass
class TenureRun:
    count_s: float
    expire_s: float
    chunks: int
    rows: int
    journal_rows: int
    expired: int
    total: int

    @property
    def both_s(self) -> float:
        return self.count_s + self.expire_s


def selection(dataset: Dataset) -> ExpirySelection:
    return ExpirySelection(
        table=COLLECTION, clock_column="date", cutoff=dataset.cutoff, primary_key=KEY
    )


def open_logs(root: Path, books: Path) -> Connector:
    options = ConnectorOptions(read_only=False, bookkeeping_dir=books)
    return open_connector("logs", f"files:///{root}", options)


def expire_loop(
    connector: Connector, chosen: ExpirySelection, run_id: str, chunk_size: int
) -> tuple[int, int]:
    """``flows.run.lifecycle._work_through`` for one binding, without the ledger and progress:
    chunks until one comes back empty. Returns (chunks, rows)."""
    after = None
    chunks = rows = 0
    while True:
        work = ChunkWork(
            run_id=run_id,
            label=COLLECTION,
            chunk_no=chunks + 1,
            selection=chosen,
            after=after,
            limit=chunk_size,
            action="delete",
            period_zone="UTC",
        )
        result = connector.execute_chunk(work)
        if result.last is None:
            return chunks, rows
        chunks = work.chunk_no
        rows += result.rows
        after = result.last


def run_tenure(dataset: Dataset, root: Path, books: Path, chunk_size: int) -> TenureRun:
    """count_expiry then the chunk loop, on one connector, as the nightly flow does."""
    connector = open_logs(root, books)
    run_id = str(uuid.uuid4())
    chosen = selection(dataset)
    try:
        started = time.perf_counter()
        counts = connector.count_expiry(chosen)
        counted = time.perf_counter()
        chunks, rows = expire_loop(connector, chosen, run_id, chunk_size)
        done = time.perf_counter()
        journal_rows = sum(entry.rows for entry in connector.journal(run_id))
    finally:
        connector.close()
    return TenureRun(
        counted - started, done - counted, chunks, rows, journal_rows, counts.expired, counts.total
    )


def run_rm(dataset: Dataset, root: Path) -> float:
    paths = [str(root / COLLECTION / name) for name in dataset.expired]
    started = time.perf_counter()
    subprocess.run(["rm", "-r", *paths], check=True)
    return time.perf_counter() - started


def verify(dataset: Dataset, root: Path, who: str) -> None:
    """Exactly the expired folders are gone; the rest are there, byte for byte where
    hashed (the first kept day, the last, and a spread between)."""
    left = sorted(os.listdir(root / COLLECTION))
    harness.check(
        left == dataset.kept, f"{who}: {len(left)} entries left, expected {len(dataset.kept)}"
    )
    files = [p for p in (root / COLLECTION).rglob("*") if p.is_file()]
    harness.check(len(files) == len(dataset.kept), f"{who}: {len(files)} files left")
    step = max(1, len(dataset.kept) // (HASHED_SURVIVORS - 1))
    sampled = sorted({*dataset.kept[::step], dataset.kept[-1]})
    for name in sampled:
        relative = Path(COLLECTION) / name / "part-0.jsonl"
        same = file_hash(root / relative) == file_hash(dataset.root / relative)
        harness.check(same, f"{who}: {relative} changed")


def verify_tenure(dataset: Dataset, run: TenureRun) -> None:
    expected = dataset.expired_lines
    harness.check(
        run.expired == expected, f"count_expiry said {run.expired:,}, expected {expected:,}"
    )
    harness.check(run.total == sum(dataset.lines.values()), f"count_expiry total {run.total:,}")
    harness.check(
        run.rows == expected, f"the chunks reported {run.rows:,} rows, expected {expected:,}"
    )
    harness.check(run.journal_rows == expected, f"the journal holds {run.journal_rows:,} rows")


# ---------------------------------------------------------------------------- report


@dataclass
class Results:
    tenure: list[TenureRun]
    rm: list[float]

    def runs(self, field: str) -> harness.Runs:
        """Every run's seconds of one step: ``rm`` or a ``TenureRun`` field."""
        if field == "rm":
            return harness.Runs.of(self.rm)
        return harness.Runs.of(float(getattr(run, field)) for run in self.tenure)

    def median(self, field: str) -> float:
        return self.runs(field).median

    def figures(self, dataset: Dataset, chunk_size: int) -> dict[str, object]:
        rm = self.runs("rm")
        steps = {step: self.runs(step) for step in ("expire_s", "count_s", "both_s")}
        return {
            "partitions": DAYS,
            "megabytes": dataset.size / 2**20,
            "lines": sum(dataset.lines.values()),
            "expired_partitions": EXPIRED_DAYS,
            "expired_lines": dataset.expired_lines,
            "cutoff": dataset.cutoff,
            "chunk_size": chunk_size,
            "chunks": self.tenure[0].chunks,
            "rm_s": rm,
            **steps,
            "expire_ratio": steps["expire_s"].ratio_to(rm),
            "both_ratio": steps["both_s"].ratio_to(rm),
            "target": str(TARGET),
            "met": TARGET.met(steps["expire_s"].ratio_to(rm)),
        }


def render(results: Results, dataset: Dataset, chunk_size: int) -> str:
    rm = results.runs("rm")
    expire, count, both = (results.runs(f) for f in ("expire_s", "count_s", "both_s"))
    first = results.tenure[0]
    expire_ratio, both_ratio = expire.ratio_to(rm), both.ratio_to(rm)
    rows = [
        [
            "(a) expiry: `execute_chunk` loop",
            f"{expire.median:.3f}",
            f"{rm.median:.4f}",
            f"{expire_ratio:,.0f}x",
            f"{TARGET} {TARGET.verdict(expire_ratio)}",
            expire.listed(3),
        ],
        [
            "(b) `count_expiry` (reads every record)",
            f"{count.median:.3f}",
            "-",
            "-",
            "-",
            count.listed(3),
        ],
        [
            "(c) both",
            f"{both.median:.3f}",
            f"{rm.median:.4f}",
            f"{both_ratio:,.0f}x",
            "-",
            both.listed(3),
        ],
        [
            f"baseline: one `rm -r` of the {EXPIRED_DAYS} folders",
            "-",
            f"{rm.median:.4f}",
            "1x",
            "-",
            rm.listed(3),
        ],
    ]
    lines = [
        f"{DAYS} partitions, {dataset.size / 2**20:,.0f} MB, {sum(dataset.lines.values()):,}"
        f" lines; {EXPIRED_DAYS} oldest expire ({dataset.expired_lines:,} lines,"
        f" cut-off {dataset.cutoff.isoformat()}); chunk {chunk_size:,}:"
        f" {first.chunks} chunks; median of {len(results.rm)} runs, {os.cpu_count()} CPUs",
        "",
        harness.markdown_table(
            ["Step", "Tenure s", "`rm -r` s", "Ratio", "Target", "Runs (s)"], rows, "lrrrrl"
        ),
    ]
    return "\n".join(lines)


def profile(dataset: Dataset, work: Path, chunk_size: int, link: bool, top: int) -> None:
    """The chunk loop once under cProfile (count_expiry first, outside the profiler, as
    the flow would have run it)."""
    root = copy_store(dataset, work / "profiled", link=link)
    books = Path(tempfile.mkdtemp(dir=work, prefix="books-"))
    connector = open_logs(root, books)
    chosen = selection(dataset)
    connector.count_expiry(chosen)
    profiler = harness.Profile()
    with profiler.running():
        seconds, (chunks, rows) = harness.timed(
            lambda: expire_loop(connector, chosen, str(uuid.uuid4()), chunk_size)
        )
    connector.close()
    verify(dataset, root, "profiled")
    print(f"\n== (a) under cProfile: {seconds:.3f} s, {chunks} chunks, {rows:,} rows")
    print(profiler.report(top))
    shutil.rmtree(root)
    shutil.rmtree(books)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--total-mb", type=int, default=1024, help="size of the 365 days")
    parser.add_argument("--repeats", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE)
    parser.add_argument("--link", action="store_true", help="copy with hard links (cp -al)")
    args = harness.parse_args(parser, argv, SMOKE, seed=SEED, profile=PROFILED, work_dir=KEPT)
    with (
        harness.Benchmark("expire_partitions", args) as bench,
        harness.work_folder(args.dir, "tenure-expire-") as base,
    ):
        dataset = generate(base, args.total_mb, args.seed)
        print(f"data ready in {time.perf_counter() - bench.started:.1f} s: {base}")
        work = Path(tempfile.mkdtemp(dir=base, prefix="runs-"))  # same filesystem: hard links
        try:
            results = Results([], [])
            for attempt in range(1, args.repeats + 1):
                root = copy_store(dataset, work / "rm", link=args.link)
                results.rm.append(run_rm(dataset, root))
                verify(dataset, root, "rm -r")
                shutil.rmtree(root)
                root = copy_store(dataset, work / "tenure", link=args.link)
                books = Path(tempfile.mkdtemp(dir=work, prefix="books-"))
                run = run_tenure(dataset, root, books, args.chunk_size)
                verify(dataset, root, "Tenure")
                verify_tenure(dataset, run)
                results.tenure.append(run)
                shutil.rmtree(root)
                shutil.rmtree(books)
                print(
                    f"run {attempt}: rm -r {results.rm[-1]:.4f} s; Tenure count_expiry"
                    f" {run.count_s:.3f} s, expiry {run.expire_s:.3f} s ({run.chunks} chunks,"
                    f" {run.rows:,} rows)"
                )
            print()
            print(render(results, dataset, args.chunk_size))
            bench.figures.update(results.figures(dataset, args.chunk_size))
            if args.profile:
                profile(dataset, work, args.chunk_size, args.link, top=25)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
