"""What every benchmark shares: timing, ratios to a baseline, memory, profiles, tables, results.

A benchmark script builds its parser, then::

    args = harness.parse_args(parser, argv, smoke={"rows": 2_000, "repeat": 1})
    with harness.Benchmark("nightly_vs_sql", args) as bench:
        ...                              # measure, print Markdown tables
        bench.figures["timings"] = [...]

``--smoke`` gives the smallest sizes (``smoke``; an option given explicitly still
wins), ``--json PATH`` moves the results file from ``bench/results/<name>.json``. The
file is written only when the script gets to its end: a failed check (``check``)
stops it with ``verification failed: ...`` and writes nothing. Every figure is a ratio
to a baseline measured in the same run, never a timed assertion.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.metadata
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from flows.reports.table import markdown_cell

T = TypeVar("T")

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
#: What engines are warmed up on before anything is timed (texts, messages).
WARM_UP = 32
#: Distributions whose versions the results name, when installed.
PACKAGES = (
    "sqlalchemy",
    "psycopg",
    "pandas",
    "numpy",
    "pyarrow",
    "prefect",
    "presidio-analyzer",
    "presidio-anonymizer",
    "presidio-structured",
    "spacy",
    "faker",
)


def check(condition: bool, message: str) -> None:
    """Stop the benchmark when what it measured is not what it claims to measure."""
    if not condition:
        raise SystemExit(f"verification failed: {message}")


# ---------------------------------------------------------------------------- timing


def timed(function: Callable[[], T]) -> tuple[float, T]:
    """Seconds of one call (``time.perf_counter``), and what it returned."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


@dataclass(frozen=True)
class Runs:
    """Seconds of repeated runs of one measurement; its figure is their median."""

    seconds: tuple[float, ...]

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Runs:
        return cls(tuple(seconds))

    @classmethod
    def measure(cls, function: Callable[[], object], repeat: int) -> Runs:
        """``repeat`` timed calls of ``function``."""
        return cls(tuple(timed(function)[0] for _ in range(repeat)))

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median: how far this machine's runs stray."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.median else 0.0

    def ratio_to(self, baseline: Runs) -> float:
        """This median over the baseline's, both measured in the same run."""
        return ratio(self.median, baseline.median)

    def listed(self, digits: int = 2) -> str:
        """Every run, in the order measured: ``1.27, 1.31, 1.29``."""
        return ", ".join(f"{s:.{digits}f}" for s in self.seconds)

    def figures(self) -> dict[str, object]:
        return {
            "median": self.median,
            "min": min(self.seconds),
            "max": max(self.seconds),
            "spread": self.spread,
            "runs": list(self.seconds),
        }


def ratio(value: float, baseline: float) -> float:
    """``value / baseline``; NaN when the baseline is zero (too fast to time)."""
    return value / baseline if baseline else math.nan


@dataclass(frozen=True)
class Target:
    """What a ratio to the same run's baseline should reach: at most ``limit`` (a cost
    against the baseline) or, with ``at_least``, at least ``limit`` (a speed-up)."""

    limit: float
    at_least: bool = False

    def met(self, value: float) -> bool:
        return value >= self.limit if self.at_least else value <= self.limit

    def __str__(self) -> str:
        return f"{'≥' if self.at_least else '≤'} {self.limit:g}x"

    def verdict(self, value: float) -> str:
        return "met" if self.met(value) else "**missed**"


# ---------------------------------------------------------------------------- memory


def status_kb(name: str) -> int:
    """A ``/proc/self/status`` figure in kB: ``VmRSS`` (now) or ``VmHWM`` (the peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    raise KeyError(name)


@dataclass(frozen=True)
class ChildPeak(Generic[T]):
    """What a function returned in a process of its own, and that process's memory."""

    result: T
    imports_mb: float
    """Resident memory after the imports, before the call."""
    peak_mb: float
    """The process's high-water mark (``VmHWM``)."""


def peak_in_child(
    function: Callable[..., T], *args: object, imports: Sequence[str] = ()
) -> ChildPeak[T]:
    """Call ``function(*args)`` in a spawned process and read its peak RSS (``VmHWM``).

    ``imports`` are imported first and count in ``imports_mb``. Not ``ru_maxrss``:
    Linux carries the maximum RSS across fork and exec, so a spawned child's
    ``ru_maxrss`` (and the parent's ``RUSAGE_CHILDREN``) starts at the parent's peak.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(function, args, tuple(imports), sender))
    process.start()
    sender.close()
    try:
        outcome: tuple[str, Any, int, int] = receiver.recv()
    except EOFError:
        outcome = ("error", "the process ended without an answer", 0, 0)
    process.join()
    kind, result, imports_kb, peak_kb = outcome
    check(kind == "ok" and process.exitcode == 0, f"measuring process: {result}")
    return ChildPeak(result, imports_kb / 1024, peak_kb / 1024)


def _child(
    function: Callable[..., object],
    args: tuple[object, ...],
    imports: Sequence[str],
    conn: Connection,
) -> None:
    try:
        for module in imports:
            importlib.import_module(module)
        baseline = status_kb("VmRSS")
        result = function(*args)
        conn.send(("ok", result, baseline, status_kb("VmHWM")))
    except BaseException:
        conn.send(("error", traceback.format_exc(limit=-3).strip(), 0, 0))
        raise
    finally:
        conn.close()


# ---------------------------------------------------------------------------- profiles


class Profile:
    """cProfile over the blocks run under ``running()``, when enabled."""

    def __init__(self, enabled: bool = True) -> None:
        self.profiler = cProfile.Profile() if enabled else None

    @contextmanager
    def running(self) -> Iterator[None]:
        if self.profiler is None:
            yield
            return
        self.profiler.enable()
        try:
            yield
        finally:
            self.profiler.disable()

    def report(self, top: int = 25, orders: Sequence[str] = ("cumulative", "tottime")) -> str:
        """The ``top`` functions in each order (file paths stripped); empty when disabled."""
        if self.profiler is None:
            return ""
        out = io.StringIO()
        stats = pstats.Stats(self.profiler, stream=out).strip_dirs()
        for order in orders:
            stats.sort_stats(order).print_stats(top)
        return out.getvalue()


# ---------------------------------------------------------------------------- tables


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = ""
) -> str:
    """A Markdown table; ``align`` has a letter per column, ``l`` or ``r`` (default l).

    Cells are escaped as the reports escape theirs (``markdown_cell``): a ``|`` cannot
    split a cell, a line break cannot end a row.
    """
    rule = ["---:" if align[i : i + 1] == "r" else "---" for i in range(len(headers))]
    lines = [_row(headers), "| " + " | ".join(rule) + " |"]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(markdown_cell(str(cell)) for cell in cells) + " |"


# ---------------------------------------------------------------------------- a run


@contextmanager
def work_folder(chosen: Path | None, prefix: str) -> Iterator[Path]:
    """Where a benchmark writes its data: ``chosen`` (``--dir``: created, and kept after
    the run), or a temporary folder removed at the end."""
    if chosen is not None:
        folder = chosen.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        yield Path(temporary)


def parse_args(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    smoke: Mapping[str, object],
    *,
    seed: int | None = None,
    profile: str | None = None,
    work_dir: str | None = None,
) -> argparse.Namespace:
    """The script's options, and the two every benchmark has: ``--smoke`` (the smallest
    sizes, for the test suite) and ``--json PATH`` (where the results go). With ``seed``,
    ``--seed`` (its default); with ``profile``, ``--profile`` (what it profiles); with
    ``work_dir``, ``--dir PATH`` (what is kept there)."""
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed, help="seed of the generated data")
    if profile is not None:
        parser.add_argument("--profile", action="store_true", help=profile)
    if work_dir is not None:
        parser.add_argument("--dir", type=Path, help=work_dir)
    sizes = ", ".join(
        f"--{name.replace('_', '-')}" + ("" if value is True else f" {value}")
        for name, value in smoke.items()
    )
    parser.add_argument("--smoke", action="store_true", help=f"smallest sizes: {sizes}")
    parser.add_argument(
        "--json", type=Path, help="write the results here (default bench/results/<name>.json)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**smoke)
        args = parser.parse_args(argv)
    return args


@dataclass
class Benchmark:
    """One run of a benchmark script: its parameters, the figures it gathers and the
    results file it writes at the end, ``bench/results/<name>.json``:
    ``{"benchmark", "finished_at", "seconds", "parameters", "figures", "machine"}``.
    A run that gathered no figures (``--profile``) writes none."""

    name: str
    args: argparse.Namespace
    figures: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def path(self) -> Path:
        explicit: Path | None = self.args.json
        return explicit or RESULTS_DIR / f"{self.name}.json"

    def __enter__(self) -> Self:
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=True)  # progress shows in logs and pipes
        self.started = time.perf_counter()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None:
            return
        seconds = time.perf_counter() - self.started
        where = ""
        if self.figures:  # a profiling run measures nothing to keep
            self.write(seconds)
            where = f"; results in {shown(self.path)}"
        print(f"\nWhole script: {seconds:.0f} s on {os.cpu_count()} cores{where}.")

    def write(self, seconds: float) -> None:
        parameters = {k: v for k, v in vars(self.args).items() if k != "json"}
        document = {
            "benchmark": self.name,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": seconds,
            "parameters": parameters,
            "figures": self.figures,
            "machine": machine(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=2, ensure_ascii=False, default=_plain)
        self.path.write_text(text + "\n")


def machine() -> dict[str, object]:
    """Where the figures were measured: cores, memory, Python, packages, commit, and
    this process's peak resident memory."""
    return {
        "cpus": os.cpu_count(),
        "memory_mb": _meminfo_mb("MemTotal"),
        "processor": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions(),
        "commit": _commit(),
        "peak_rss_mb": status_kb("VmHWM") / 1024,
    }


def versions() -> dict[str, str]:
    """The installed versions of `PACKAGES`."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _meminfo_mb(name: str) -> float | None:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith(name)), None)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    model = (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return next(model, platform.processor())


def _commit() -> str | None:
    """The checkout's commit, with ``+changes`` when the tree differs from it."""

    def git(*words: str) -> str:
        done = subprocess.run(
            ["git", *words], cwd=BENCH_DIR, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+changes" if changed else head


def _plain(value: object) -> object:
    """JSON for what ``json`` does not know: dataclasses, runs, paths, instants, sets."""
    if isinstance(value, Runs):
        return value.figures()
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: getattr(value, item.name) for item in fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot write {type(value).__name__} to the results")


def shown(path: Path, base: Path | None = None) -> str:
    """``path`` relative to ``base`` (the working directory) when under it, else whole."""
    try:
        return str(path.resolve().relative_to(base or Path.cwd()))
    except ValueError:
        return str(path)
