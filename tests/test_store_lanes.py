"""What may run side by side with a cluster: the bindings of unrelated stores (each store's
own in its order), and the file partitions a chunk rewrites."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.files.connector import FilesStore
from connectors.protocol import ChunkWork, ColumnRewrite, ConnectorOptions, ExpirySelection
from connectors.registry import open_connector
from flows.cluster import ClusterOptions, cluster_workers
from retention_rules.planner import store_lanes

STORES = ("crm", "mail", "logs", "billing")


@st.composite
def plans_and_policy(draw: st.DrawFn) -> tuple[Any, list[Any]]:
    count = draw(st.integers(1, 9))
    stores = [draw(st.sampled_from(STORES)) for _ in range(count)]
    names = [f"d{i}" for i in range(count)]
    datasets = []
    for i, store in enumerate(stores):
        refers = draw(st.lists(st.sampled_from(names), max_size=2))
        references = [SimpleNamespace(dataset=name) for name in refers]
        datasets.append(SimpleNamespace(name=names[i], store=store, references=references))
    order = draw(st.permutations(range(count)))
    plans = [SimpleNamespace(dataset=datasets[i]) for i in order]
    return SimpleNamespace(datasets=datasets), plans


@given(plans_and_policy())
@settings(max_examples=200, deadline=None)
def test_lanes_split_the_plans_by_store_keeping_their_order(drawn: tuple[Any, list[Any]]) -> None:
    policy, plans = drawn
    lanes = store_lanes(policy, plans)
    positions = sorted(p for lane in lanes for p in lane)
    assert positions == list(range(len(plans)))  # every plan once
    for lane in lanes:
        assert lane == sorted(lane)  # each lane in the plans' order
    lane_of = {
        plans[p].dataset.store: i for i, lane in enumerate(lanes) for p in lane
    }  # one lane per store
    assert all(lane_of[plans[p].dataset.store] == i for i, lane in enumerate(lanes) for p in lane)
    by_name = {d.name: d for d in policy.datasets}
    for dataset in policy.datasets:  # a reference across stores puts both in one lane
        for reference in dataset.references:
            parent = by_name[reference.dataset]
            if dataset.store in lane_of and parent.store in lane_of:
                assert lane_of[dataset.store] == lane_of[parent.store]
    if not any(d.references for d in policy.datasets):
        assert len(lanes) == len({p.dataset.store for p in plans})  # unrelated: apart


DAYS = 8
START = datetime(2024, 5, 1, tzinfo=UTC)


def _log(root: Path) -> None:
    for day in range(DAYS):
        folder = root / "access_log" / f"date={(date(2024, 5, 1) + timedelta(day)).isoformat()}"
        folder.mkdir(parents=True)
        with (folder / "part-0.jsonl").open("w") as out:
            for minute in range(30):
                at = START + timedelta(days=day, minutes=minute)
                out.write(json.dumps({"ts": at.isoformat(), "ip": f"10.0.{day}.{minute}"}) + "\n")


def _anonymize_all(root: Path, books: Path) -> int:
    connector = open_connector(
        "logs", f"files:///{root}", ConnectorOptions(read_only=False, bookkeeping_dir=books)
    )
    selection = ExpirySelection(
        "access_log",
        "ts",
        datetime(2025, 1, 1, tzinfo=UTC),
        primary_key=("source_file", "row_number"),
        skip_marked="ips",
    )
    mask = ColumnRewrite("ip", transform=lambda s: s.map(lambda v: v.rsplit(".", 1)[0] + ".0"))
    work = ChunkWork("run-1", "ips", 1, selection, None, 10_000, "anonymize", rewrites=(mask,))
    result = connector.execute_chunk(work)
    connector.close()
    return result.rows


def _contents(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): p.read_text()
        for p in sorted((root / "access_log").rglob("*.jsonl"))
    }


def test_a_chunk_rewrites_its_partitions_side_by_side_on_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(tmp_path / "here")
    _log(tmp_path / "cluster")
    assert _anonymize_all(tmp_path / "here", tmp_path / "books-here") == DAYS * 30

    threads: set[str] = set()
    rewrite = FilesStore._rewrite

    def recording(self: FilesStore, *args: Any) -> int:
        threads.add(threading.current_thread().name)
        return rewrite(self, *args)

    monkeypatch.setattr(FilesStore, "_rewrite", recording)
    with cluster_workers(ClusterOptions(workers=2)):
        assert _anonymize_all(tmp_path / "cluster", tmp_path / "books-cluster") == DAYS * 30
    assert len(threads) == 2, threads  # two partitions at a time, in this process
    here, cluster = _contents(tmp_path / "here"), _contents(tmp_path / "cluster")
    assert here == cluster
    assert all('.0"' in text for text in here.values())


def test_when_the_run_is_interrupted_every_lane_stops_before_its_next_binding() -> None:
    """An interrupt (here: a lane's failure reaching the waiting thread) stops the other
    lanes before their next binding, instead of letting them work to the end."""
    import time

    from flows.run.lifecycle import each_binding

    datasets = [SimpleNamespace(name=f"d{i}", store="a" if i == 0 else "b", references=[])
                for i in range(20)]  # fmt: skip
    plans = [SimpleNamespace(dataset=d) for d in datasets]
    context = SimpleNamespace(
        plans=plans, policy=SimpleNamespace(datasets=datasets), stopping=threading.Event()
    )
    done: list[str] = []

    def process(plan: Any) -> Any:
        if plan.dataset.store == "a":
            time.sleep(0.2)
            raise KeyboardInterrupt
        time.sleep(0.05)
        done.append(plan.dataset.name)
        return plan.dataset.name

    with pytest.raises(KeyboardInterrupt):
        each_binding(context, process, concurrently=True)  # type: ignore[arg-type]
    assert context.stopping.is_set()
    assert 0 < len(done) < 19, done  # lane b had begun, and stopped well before its end
