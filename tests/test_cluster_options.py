"""A cluster is used only when it is the one named and its workers would do what this
process does; otherwise one line, and nothing is started or opened."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster

from flows.cluster import ClusterError, ClusterOptions, cluster_workers, reach

pytestmark = pytest.mark.servers  # starts a Dask cluster


@pytest.mark.parametrize(
    ("dask", "workers", "says"),
    [
        ("tcp://127.0.0.1:8786", 2, "exclude each other"),
        (None, 0, "1 or more"),
        (" ", None, "needs a scheduler address"),
        ("tls://127.0.0.1:8786", None, "TLS settings"),
    ],
)
def test_contradictory_or_incomplete_options_are_one_line(
    dask: str | None, workers: int | None, says: str
) -> None:
    with pytest.raises(ClusterError, match=says) as raised:
        ClusterOptions(dask, workers)
    assert "\n" not in str(raised.value)


def test_workers_with_another_classifier_are_refused() -> None:
    """A worker whose spaCy model setting differs would label and redact otherwise."""
    with LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env={"TENURE_SPACY_EN_MODEL": "en_core_web_lg"},
    ) as cluster:
        options = ClusterOptions(dask=cluster.scheduler_address)
        reach(options)  # it answers
        with pytest.raises(ClusterError, match="other versions"), cluster_workers(options):
            pass


def test_a_dask_client_the_process_already_has_is_never_used_instead() -> None:
    """prefect-dask prefers a client it finds in the process to the address it is given."""
    notebook = LocalCluster(
        n_workers=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    )
    named = ClusterOptions(dask="tcp://127.0.0.1:9")
    with (
        notebook,
        Client(notebook),  # the default client of, say, a notebook
        pytest.raises(ClusterError, match="already has a Dask client"),
        cluster_workers(named),
    ):
        pass


def test_a_local_clusters_workers_start_without_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing a worker does is keyed or written: the audit and pseudonym keys stay here."""
    import os

    from flows.cluster import DaskWorkers

    monkeypatch.setenv("TENURE_AUDIT_KEY", "audit-key-for-this-test")
    monkeypatch.setenv("TENURE_PSEUDONYM_KEY_ACCOUNTS", "pseudonym-key-for-this-test")
    with cluster_workers(ClusterOptions(workers=1)) as workers:
        assert isinstance(workers, DaskWorkers)
        seen = workers.client.run(
            lambda: [
                os.environ.get(k) for k in ("TENURE_AUDIT_KEY", "TENURE_PSEUDONYM_KEY_ACCOUNTS")
            ]
        )
        assert os.environ["TENURE_AUDIT_KEY"] == "audit-key-for-this-test"  # put back
    assert list(seen.values()) == [[None, None]]
