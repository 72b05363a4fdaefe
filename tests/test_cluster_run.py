"""The nightly run on a local Dask cluster of two worker processes (`tenure run --workers 2`)
changes the demo's three stores exactly as the same run in one process does: the same
redacted notes and mail bodies, the same rollups, the same dropped partitions, the same
audit counts. The bindings of different stores run side by side; those of one store in
its foreign-key order."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.run import lifecycle
from flows.run.lifecycle import run_policy
from flows.run.types import RunOptions
from tests.support.cluster import audit_counts, masked_tables, run_ids
from tests.support.demo import DEMO_AS_OF, build_demo, demo_files_environ
from tests.support.paths import SHIPPED_POLICY

pytestmark = pytest.mark.servers  # starts a Dask cluster (and Prefect's temporary API)

runner = CliRunner()


@dataclass(frozen=True)
class Ran:
    root: Path
    state_url: str
    counts: dict[str, tuple[int, int]]  # by binding: expired, processed
    threads: dict[str, set[str]]  # by store: the threads its bindings ran in


def _copy(root: Path, template: Path) -> dict[str, str]:
    root.mkdir()
    build_demo(f"sqlite:///{root / 'crm.sqlite'}")
    shutil.copytree(template, root, dirs_exist_ok=True)
    return {"TENURE_CRM_URL": f"sqlite:///{root / 'crm.sqlite'}", **demo_files_environ(root)}


@pytest.fixture(scope="module")
def both(
    tmp_path_factory: pytest.TempPathFactory,
    demo_files_template: Path,
    pseudonym_keys: dict[str, str],
) -> Iterator[tuple[Ran, Ran]]:
    base = tmp_path_factory.mktemp("cluster-run")
    here_root, cluster_root = base / "here", base / "cluster"
    here_env = _copy(here_root, demo_files_template)
    cluster_env = _copy(cluster_root, demo_files_template)

    threads: dict[str, set[str]] = {}
    process = lifecycle.process_dataset

    def recording(context: Any, plan: Any, progress: Any = None) -> Any:
        store = plan.dataset.store
        threads.setdefault(store, set()).add(threading.current_thread().name)
        return process(context, plan, progress)

    here_state = f"sqlite:///{here_root / 'state.sqlite'}"
    options = RunOptions(now=DEMO_AS_OF, state_url=here_state)  # the gate, as the CLI's
    report = run_policy(SHIPPED_POLICY, options, environ=here_env)
    assert not report.failed, [(o.dataset, o.error) for o in report.outcomes]
    here = Ran(here_root, here_state, _counts(report.outcomes), {})

    cluster_state = f"sqlite:///{cluster_root / 'state.sqlite'}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in cluster_env.items():
            patch.setenv(name, value)
        patch.setattr(lifecycle, "process_dataset", recording)
        patch.setattr("flows.nightly.process_dataset", recording)
        arguments = ["run", str(SHIPPED_POLICY), "--now", DEMO_AS_OF.isoformat()]
        arguments += ["--state", cluster_state, "--workers", "2", "--json"]
        result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.stdout)["datasets"]
    cluster = Ran(cluster_root, cluster_state, _counts(outcomes), threads)
    yield here, cluster


def _counts(outcomes: list[Any]) -> dict[str, tuple[int, int]]:
    def get(o: Any, key: str) -> Any:
        return o[key] if isinstance(o, dict) else getattr(o, key)

    return {get(o, "dataset"): (get(o, "expired"), get(o, "processed")) for o in outcomes}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)).split(":")[0]: path.read_bytes()
        for folder in ("mail", "weblogs")
        for path in sorted((root / folder).rglob("*"))
        if path.is_file() and "bookkeeping" not in path.name
    }


def _bookkeeping(root: Path, ids: set[str]) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """The file stores' journals and marks, masked like the tables."""
    return {
        str(path.relative_to(root)): masked_tables(f"sqlite:///{path}", ids)
        for path in sorted(root.rglob("*.bookkeeping.sqlite"))
    }


def test_the_cluster_run_changes_the_stores_exactly_as_the_run_in_one_process(
    both: tuple[Ran, Ran],
) -> None:
    here, cluster = both
    here_tables = masked_tables(f"sqlite:///{here.root / 'crm.sqlite'}", run_ids(here.state_url))
    cluster_tables = masked_tables(
        f"sqlite:///{cluster.root / 'crm.sqlite'}", run_ids(cluster.state_url)
    )
    assert here_tables.keys() == cluster_tables.keys()
    for table in here_tables:
        assert here_tables[table] == cluster_tables[table], table
    here_files, cluster_files = _files(here.root), _files(cluster.root)
    assert here_files.keys() == cluster_files.keys()
    changed = [name for name in here_files if here_files[name] != cluster_files[name]]
    assert not changed
    here_books = _bookkeeping(here.root, run_ids(here.state_url))
    assert len(here_books) == 2
    assert here_books == _bookkeeping(cluster.root, run_ids(cluster.state_url))


def test_the_cluster_run_redacted_what_the_run_in_one_process_redacted(
    both: tuple[Ran, Ran],
) -> None:
    """Not vacuous: both runs rewrote notes and mail bodies, and released rollups."""
    here, cluster = both
    assert here.counts == cluster.counts
    for binding in ("support_tickets", "billing_email", "web_access_log"):
        expired, processed = cluster.counts[binding]
        assert processed == expired > 0, binding


def test_the_audit_counts_are_the_same(both: tuple[Ran, Ran]) -> None:
    here, cluster = both
    assert audit_counts(here.state_url) == audit_counts(cluster.state_url)


def test_bindings_of_different_stores_ran_side_by_side_each_store_in_one_lane(
    both: tuple[Ran, Ran],
) -> None:
    _, cluster = both
    assert set(cluster.threads) == {"crm", "mail", "weblogs"}
    lanes = {store: names for store, names in cluster.threads.items()}
    for store, names in lanes.items():
        assert len(names) == 1, (store, names)  # one lane per store, in its order
    assert len({name for names in lanes.values() for name in names}) == 3


def test_each_worker_builds_the_text_engine_once_for_all_its_batches() -> None:
    """The spaCy models are a per-worker singleton: many batches, one build per worker."""
    from anonymizers.detection.text_engine import text_engine
    from anonymizers.text_redaction import redact_batched
    from connectors.workers import BATCH_CHARS, text_batches
    from flows.cluster import ClusterOptions, DaskWorkers, cluster_workers

    notes = [f"Marie Tremblay ({i}) a appelé du 514-555-{i % 10_000:04d}." for i in range(2_000)]
    assert len(text_batches(notes)) >= 4  # more batches than workers
    with cluster_workers(ClusterOptions(workers=2)) as workers:
        assert isinstance(workers, DaskWorkers)
        redacted = redact_batched(notes)
        built = workers.client.run(lambda: text_engine.cache_info().misses)
        used = workers.client.run(lambda: text_engine.cache_info().hits)
    assert len(built) == 2 and set(built.values()) == {1}, built
    assert sum(used.values()) >= len(text_batches(notes)) - 2, used
    assert sum(len(n) for n in notes) > 4 * BATCH_CHARS
    assert all("<PERSON>" in text and "<PHONE_NUMBER>" in text for text in redacted[:50])


def test_a_cluster_scan_finds_what_the_scan_in_one_process_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table's large notes column is classified on a worker of its own, the rest of the
    table on another: from the same samples, the same findings as in one process. And
    `tenure scan --workers 2` (its own random samples) finds the same labels and gaps."""
    from flows.cluster import ClusterOptions, cluster_workers
    from flows.reports.inventory import inventory_json
    from flows.scan import LARGE_TEXT_CHARS, classify_sampled, joined, sample_table, table_parts
    from flows.scan_runner import run_scan
    from flows.stores import opened_stores
    from retention_rules.loader import load_policy
    from tests.support.cluster import notes_environ, notes_stores

    notes_stores(tmp_path, 1_500)
    for name, value in notes_environ(tmp_path).items():
        monkeypatch.setenv(name, value)
    policy = tmp_path / "policy.yaml"
    loaded = load_policy(policy)
    with opened_stores(loaded.policy) as (connectors, _):
        desk = connectors["desk"]
        info = desk.table_info("tickets", None)
        assert info is not None
        sampled = sample_table(desk, info, 1_500, loaded.policy.scan.sample_size, "desk")
    notes = next(s for s in sampled.samples if s.name == "notes")
    assert sum(len(str(v)) for v in notes.values) > LARGE_TEXT_CHARS
    parts = table_parts(sampled)
    assert [[s.name for s in p.samples] for p in parts] == [
        ["notes"],
        ["id", "customer_id", "closed_at"],
    ]
    with cluster_workers(ClusterOptions(workers=2)) as workers:
        there = joined(sampled, [workers.submit(classify_sampled, p).result() for p in parts])
    here = classify_sampled(sampled)
    assert there.columns == here.columns
    assert {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER"} <= set(here.columns[-1].labels())

    alone, _ = run_scan(policy, full=True, state_url=f"sqlite:///{tmp_path / 'here.sqlite'}")
    arguments = ["scan", str(policy), "--full", "--json", "--workers", "2"]
    arguments += ["--state", f"sqlite:///{tmp_path / 'cluster.sqlite'}"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output

    def labels(inventory: dict[str, Any]) -> list[Any]:
        return [
            (
                t["store"],
                t["table"],
                [(c["column"], set(c["labels"]) - {"DATE_TIME"}) for c in t["columns"]],
            )
            for t in inventory["tables"]
        ]  # a random sample's share of dates sits near the threshold: not compared

    shown, expected = json.loads(result.stdout), inventory_json(alone)
    assert labels(shown) == labels(expected)
    assert shown["coverage"] == expected["coverage"]


def test_an_access_package_redacted_on_a_cluster_is_the_one_redacted_here(
    tmp_path: Path, demo_files_template: Path, pseudonym_keys: dict[str, str]
) -> None:
    """`tenure request fulfil … --workers 2`: the other people in the person's free text
    are redacted on the workers, and the package holds what the in-process one holds."""
    import re
    import zipfile

    root = tmp_path / "demo"
    environ = {**_copy(root, demo_files_template), **pseudonym_keys}
    policy, state = str(SHIPPED_POLICY), root / "state.sqlite"
    common = ["--state", f"sqlite:///{state}"]
    opened = runner.invoke(
        app,
        ["request", "open", policy, "--kind", "access", "--id", "customer_id=17", *common],
        env=environ,
    )
    request_id = re.search(r"request (\d{4}-\d{4}) opened", opened.output)
    assert opened.exit_code == 0 and request_id, opened.output
    verify = ["request", "verify", policy, request_id.group(1), "--method", "signed form"]
    verified = runner.invoke(app, [*verify, "--by", "officer", *common], env=environ)
    assert verified.exit_code == 0, verified.output
    shutil.copy(state, root / "state-cluster.sqlite")

    def fulfilled(state_file: Path, out: Path, *extra: str) -> dict[str, Any]:
        arguments = ["request", "fulfil", policy, request_id.group(1), "--out", str(out)]
        arguments += ["--state", f"sqlite:///{state_file}", "--now", DEMO_AS_OF.isoformat()]
        result = runner.invoke(app, [*arguments, "--json", *extra], env=environ)
        assert result.exit_code == 0, result.output
        with zipfile.ZipFile(json.loads(result.stdout)["package"]["path"]) as bundle:
            package: dict[str, Any] = json.loads(bundle.read("package.json"))
        return package

    here = fulfilled(state, tmp_path / "here")
    there = fulfilled(root / "state-cluster.sqlite", tmp_path / "there", "--workers", "2")
    assert there["datasets"] == here["datasets"]
    texts = json.dumps(here["datasets"])
    assert "<PERSON>" in texts or "<EMAIL_ADDRESS>" in texts  # not vacuous: text was redacted
