"""Where pure work runs: in this process, or on the worker processes of a cluster.

The heavy Python steps of a run (reading free text with spaCy and Presidio, classifying
a table's sampled columns) are pure: values in, values out. They go through `current()`,
which is this process (`IN_PROCESS`) unless a run installed other workers with `using`
(``flows.cluster`` installs a Dask cluster's). Everything that writes (a store, its
journal, the state database) stays in the process that holds the connections: workers
compute, the store commits.

Work is cut into the same batches wherever it runs (`text_batches`), so a cluster's
output is the in-process output, value for value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

#: The characters of text one batch holds: about 235 short support notes or 44 mail
#: bodies, three quarters of a second on one core, against 1.5 ms of a local cluster's
#: scheduling per task (bench/scale_out.py): the overhead stays near 0.2 %.
BATCH_CHARS = 20_000


class Pending(Protocol[R_co]):
    """Work handed to the workers; ``result()`` waits for it (and raises its error)."""

    def result(self) -> R_co: ...


class Workers(Protocol):
    """Something that runs pure functions: `map` keeps the order of its items."""

    @property
    def count(self) -> int:
        """How many tasks can run at once."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...

    def submit(self, fn: Callable[..., R], *args: Any) -> Pending[R]: ...


class _Done:
    def __init__(self, value: Any) -> None:
        self._value = value

    def result(self) -> Any:
        return self._value


class InProcess:
    """This process, one item after another: what runs when no cluster is given."""

    count = 1

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        return [fn(item) for item in items]

    def submit(self, fn: Callable[..., R], *args: Any) -> Pending[R]:
        return _Done(fn(*args))


IN_PROCESS = InProcess()
#: The run's workers, per thread of control: a lane's thread copies its run's context.
_installed: ContextVar[Workers] = ContextVar("tenure_workers", default=IN_PROCESS)


class WorkersLost(Exception):
    """The workers could not finish a piece of work (a cluster that lost it, or went away)."""


def current() -> Workers:
    """The workers of the run in progress."""
    return _installed.get()


@contextmanager
def using(workers: Workers) -> Iterator[Workers]:
    """Run the pure work of this block on ``workers``."""
    token = _installed.set(workers)
    try:
        yield workers
    finally:
        _installed.reset(token)


#: At most this many threads of a run's own process rewrite files at once.
MAX_LOCAL_THREADS = 8


def side_by_side(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``fn`` over ``items`` in this process, in as many threads as the run has workers
    (one after another without a cluster; `MAX_LOCAL_THREADS` at most), results in
    order: for work that must stay here, such as a store's own file writes, and waits on
    I/O. The first error (in the items' order) is raised once every item has finished."""
    width = min(current().count, len(items), MAX_LOCAL_THREADS)
    if width <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(width, thread_name_prefix="tenure-io") as pool:
        futures = [pool.submit(fn, item) for item in items]
    return [future.result() for future in futures]


def text_batches(texts: Sequence[str], chars: int = BATCH_CHARS) -> list[list[str]]:
    """``texts`` cut, in order, into batches of about ``chars`` characters (a longer text
    is a batch of its own). The cut depends on the texts alone."""
    batches: list[list[str]] = []
    batch: list[str] = []
    size = 0
    for text in texts:
        if batch and size + len(text) > chars:
            batches.append(batch)
            batch, size = [], 0
        batch.append(text)
        size += len(text)
    if batch:
        batches.append(batch)
    return batches


def flattened(parts: Iterable[Sequence[T]]) -> list[T]:
    """The batches' results back in one list, in order."""
    return [item for part in parts for item in part]
