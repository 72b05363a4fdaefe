"""A run's heavy Python work on a Dask cluster, through Prefect's Dask task runner.

``--dask tcp://scheduler:8786`` connects to a cluster that already runs (on Kubernetes, a
job queue, a cloud provider: docs/scaling.md); ``--workers N`` starts a local cluster of
N worker processes for the run and stops it after. Without either, everything runs in
this process, as it always has.

Only pure work goes to the workers (``connectors.workers``): batches of text to redact
and tables' samples to classify. The stores' connections, their writes, journals and
rollups, the state database, the audit log and the keys stay in this process. A worker
that dies takes only computations with it: Dask's scheduler gives them to another
worker (a local cluster's nanny restarts the dead one), and nothing was written twice
because nothing was written there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from connectors import workers as work
from flows.run.types import first_line

if TYPE_CHECKING:
    from distributed import Client

T = TypeVar("T")
R = TypeVar("R")

#: How long a run waits for a cluster's scheduler to answer before it gives up.
CONNECT_SECONDS = 10


class ClusterError(Exception):
    """The cluster cannot be used: nothing was read or written."""


@dataclass(frozen=True)
class ClusterOptions:
    """Where a run's pure work runs: a scheduler's address, N local workers, or here."""

    dask: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.dask is not None and self.workers is not None:
            raise ClusterError(
                "--dask and --workers exclude each other: a run uses the cluster at an "
                "address, or starts one of N local workers"
            )
        if self.workers is not None and self.workers < 1:
            raise ClusterError(f"--workers must be 1 or more, not {self.workers}")
        if self.dask is not None and not self.dask.strip():
            raise ClusterError("--dask needs a scheduler address, e.g. tcp://scheduler:8786")
        if self.dask is not None and self.dask.startswith("tls://") and not _tls_configured():
            raise ClusterError(
                f"--dask {self.dask}: a tls:// scheduler needs Dask's TLS settings "
                "(distributed.comm.tls.ca-file and client cert/key, or the "
                "DASK_DISTRIBUTED__COMM__TLS__* variables; docs/scaling.md)"
            )

    @property
    def distributed(self) -> bool:
        return self.dask is not None or self.workers is not None

    @property
    def shown(self) -> str:
        if self.dask is not None:
            return f"the Dask cluster at {self.dask}"
        if self.workers is not None:
            return f"a local Dask cluster of {self.workers} worker process(es)"
        return "this process"


class DaskWorkers:
    """A Dask client as `connectors.workers.Workers`: one task per item, results in order.
    Work the cluster could not finish (a task whose workers kept dying, a scheduler gone)
    raises `connectors.workers.WorkersLost`, in one line."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def count(self) -> int:
        info = self.client.scheduler_info()
        return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        with _lost():
            futures = self.client.map(fn, list(items), pure=False)
            return list(self.client.gather(futures))  # type: ignore[no-untyped-call]

    def submit(self, fn: Callable[..., R], *args: Any) -> work.Pending[R]:
        with _lost():
            return _Awaited(self.client.submit(fn, *args, pure=False))


class _Awaited:
    def __init__(self, future: Any) -> None:
        self._future = future

    def result(self) -> Any:
        with _lost():
            return self._future.result()


@contextmanager
def _lost() -> Iterator[None]:
    """Dask's own failures (a task that killed its workers, a lost scheduler, a cancelled
    future) as `WorkersLost`; the work's own errors unchanged."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        yield
    except (KilledWorker, CommClosedError, CancelledError, OSError) as exc:
        raise work.WorkersLost(
            f"the Dask cluster could not finish the work ({type(exc).__name__}: "
            f"{first_line(exc, 200)})"
        ) from None


def task_runner(options: ClusterOptions) -> Any:
    """Prefect's Dask task runner for ``options`` (not started)."""
    from prefect_dask.task_runners import DaskTaskRunner

    if options.dask is not None:
        return DaskTaskRunner(address=options.dask, client_kwargs={"timeout": CONNECT_SECONDS})
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": options.workers,
            "threads_per_worker": 1,  # spaCy and Presidio hold the GIL: processes, not threads
            "processes": True,
            "host": "127.0.0.1",  # the run's own cluster listens on loopback only
            "dashboard_address": None,
            # No dashboard; the scheduler's small HTTP server on a free loopback port
            # (not 8787, which another cluster may hold).
            "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
            "silence_logs": logging.ERROR,
        },
    )


def reach(options: ClusterOptions) -> None:
    """Check that the cluster at ``options.dask`` answers (`ClusterError` if not), before
    a command creates or opens anything; a local cluster is started by the run itself."""
    if options.dask is None:
        return
    from distributed import Client

    try:
        client = Client(  # type: ignore[no-untyped-call]
            options.dask, timeout=CONNECT_SECONDS, set_as_default=False
        )
        client.close()  # type: ignore[no-untyped-call]
    except Exception as exc:  # refused, timed out, TLS settings missing: all one line
        raise _unreachable(options, exc) from None


def _unreachable(options: ClusterOptions, exc: BaseException) -> ClusterError:
    return ClusterError(
        f"the Dask scheduler at {options.dask} could not be reached within "
        f"{CONNECT_SECONDS} s ({type(exc).__name__}: {first_line(exc, 200)}): "
        "nothing was opened or written"
    )


def _tls_configured() -> bool:
    import dask.config

    return bool(dask.config.get("distributed.comm.tls.ca-file", None))


@contextmanager
def cluster_workers(options: ClusterOptions) -> Iterator[work.Workers]:
    """The run's workers for the block: connect to (or start) the cluster first, so a
    scheduler that cannot be reached stops the run before the policy's stores are opened
    (`ClusterError`, one line), as do workers that would classify or redact differently
    from this process (another Tenure, other models or packages)."""
    if not options.distributed:
        yield work.current()
        return
    _no_other_client()
    runner = task_runner(options)
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))  # a cluster's start and stop are no news
    try:
        with runner:
            try:
                with _worker_environment(options):
                    client = runner.client
            except Exception as exc:  # refused, timed out, TLS settings missing: all one line
                if options.dask is None:
                    raise ClusterError(
                        f"{options.shown} could not be started ({type(exc).__name__}: "
                        f"{first_line(exc, 200)})"
                    ) from None
                raise _unreachable(options, exc) from None
            _same_classifier(options, client)
            with work.using(DaskWorkers(client)) as workers:
                yield workers
    finally:
        quiet.setLevel(level)


def _no_other_client() -> None:
    """Prefect's Dask task runner would use a Dask client this process already has (a
    notebook's, a worker's) instead of the cluster named: refuse, rather than send the
    stores' values to a cluster nobody named."""
    from distributed import get_client

    try:
        get_client()
    except ValueError:
        return
    raise ClusterError(
        "this process already has a Dask client: Tenure uses only the cluster --dask or "
        "--workers names; close that client first"
    )


#: Environment variables a local cluster's worker processes are started without: the
#: audit, pseudonym and state database's keys and URLs of Tenure's own naming. (A worker
#: needs none: nothing it does writes or is keyed.)
_SECRET_PREFIXES = ("TENURE_AUDIT_KEY", "TENURE_PSEUDONYM_KEY", "TENURE_STATE_URL")


_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@contextmanager
def _worker_environment(options: ClusterOptions) -> Iterator[None]:
    """While a local cluster's processes start (they inherit this process's environment,
    and a restarted worker its nanny's): the keys set aside, then put back; and the
    workers' environment as fast as this process's."""
    if options.workers is None:
        yield
        return
    import os

    import dask.config

    kept = {k: v for k, v in os.environ.items() if k.startswith(_SECRET_PREFIXES)}
    for name in kept:
        del os.environ[name]
    try:
        # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which slows
        # spaCy and Presidio by a fifth (bench/scale_out.py): glibc's default instead.
        with dask.config.set({_MALLOC_TRIM: None}):
            yield
    finally:
        os.environ.update(kept)


def _same_classifier(options: ClusterOptions, client: Client) -> None:
    """Every worker must classify and redact as this process would: the same classifier
    fingerprint (Tenure's classifier, Presidio, spaCy and its models, the data files)."""
    from anonymizers.detection.classify import classifier_fingerprint

    here = classifier_fingerprint()
    try:
        there = client.run(classifier_fingerprint)
    except Exception as exc:  # a worker without Tenure cannot even say
        raise ClusterError(
            f"the workers of {options.shown} cannot run Tenure ({type(exc).__name__}: "
            f"{first_line(exc, 200)}): install the same Tenure there (docs/scaling.md)"
        ) from None
    different = sorted(address for address, value in there.items() if value != here)
    if different:
        raise ClusterError(
            f"{len(different)} worker(s) of {options.shown} ({', '.join(different[:3])}) "
            "classify with other versions of Tenure, Presidio, spaCy or the models than "
            "this process: install the same ones there (docs/scaling.md)"
        )
