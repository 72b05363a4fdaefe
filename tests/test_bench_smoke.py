"""Every benchmark of bench/ runs at its smallest size, so a change cannot break one unseen.

Each script's ``main`` runs in this process with ``--smoke`` (the smallest sizes the
script declares) and ``--json`` into a temporary folder: it must come to its end (a
failed check of its own stops it with ``verification failed: ...``) and write its
results file with the figures the script promises. Running them in one process loads
the spaCy models once for all of them; the network guard of conftest.py applies. The
command-line part of ``nightly_vs_sql`` (three ``tenure run`` subprocesses, each
starting Prefect's temporary API server) is not in its smoke size.
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import harness

BENCH = Path(__file__).resolve().parent.parent / "bench"
#: The modules every script may import from bench/; anything else there is a script.
SHARED = {"__init__", "harness", "data", "peers", "independent_set"}
TOP_KEYS = {"benchmark", "finished_at", "seconds", "parameters", "figures", "machine"}
#: Per benchmark: the figures its results file must hold, and whether it starts PostgreSQL.
BENCHMARKS: dict[str, tuple[set[str], bool]] = {
    "nightly_vs_sql": ({"postgresql", "cutoff", "durability", "timings", "memory", "cli"}, True),
    "scan_speed": ({"scan", "text"}, True),
    "scan_quality": ({"entities", "direct_identifiers", "all_entities", "target_met"}, False),
    "long_texts": ({"piece_chars", "lengths"}, False),
    "expire_partitions": ({"rm_s", "expire_s", "count_s", "both_s", "expire_ratio"}, False),
    "anonymize_vs_structured": ({"distinct_values", "structured", "text"}, False),
    "redact_maildir": ({"tenure", "baseline", "ratio", "recall"}, False),
    "requests_vs_sql": ({"rows", "person", "access", "erasure", "ratios", "explain"}, True),
    "release_utility": ({"builds", "cells", "suppression", "differential_privacy", "goal"}, False),
    "scan_peers": ({"store", "tools", "per_entity", "determinism", "goals", "left_out"}, False),
    "scale_out": ({"redaction", "redaction_ratios", "identical_output", "scan", "capacity"}, False),
}


def _scripts() -> set[str]:
    return {path.stem for path in BENCH.glob("*.py")} - SHARED


def test_every_script_has_a_smoke_run() -> None:
    assert _scripts() == set(BENCHMARKS)


@pytest.mark.parametrize("script", sorted(_scripts()))
def test_no_script_imports_another(script: str) -> None:
    from_bench: set[str] = set()
    for node in ast.walk(ast.parse((BENCH / f"{script}.py").read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "bench":
            names = [f"bench.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        from_bench |= {name.split(".")[1] for name in names if name.startswith("bench.")}
    assert from_bench <= SHARED, f"bench/{script}.py imports {from_bench - SHARED}"


@pytest.mark.parametrize("script", sorted(_scripts()))
def test_every_script_explains_its_options(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--help`` prints every option (a ``%`` in a help text once broke it)."""
    module = importlib.import_module(f"bench.{script}")
    with pytest.raises(SystemExit) as stopped:
        module.main(["--help"])
    assert stopped.value.code == 0
    assert "--smoke" in capsys.readouterr().out


@pytest.mark.bench
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.servers] if servers else [])
        for name, (_, servers) in BENCHMARKS.items()
    ],
)
def test_benchmark_smoke(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / f"{name}.json"
    module = importlib.import_module(f"bench.{name}")
    module.main(["--smoke", "--json", str(results)])
    printed = capsys.readouterr().out
    assert "Whole script:" in printed
    document: dict[str, Any] = json.loads(results.read_text())
    assert set(document) == TOP_KEYS
    assert document["benchmark"] == name
    assert document["parameters"]["smoke"] is True
    expected, _ = BENCHMARKS[name]
    assert expected <= set(document["figures"]), expected - set(document["figures"])
    machine = document["machine"]
    assert machine["cpus"] >= 1 and machine["peak_rss_mb"] > 0
    assert "pandas" in machine["packages"]
    if name in CHECKS:
        CHECKS[name](printed, document)


def _requests_vs_sql(printed: str, document: dict[str, Any]) -> None:
    """Both comparisons are printed with their goal, the missing index shows its Seq Scan
    and `tenure validate`'s warning, and with the demo's indexes no bound table is read
    whole (the script exits non-zero otherwise)."""
    for label in ("read path, CRM, without redaction", "whole fulfil, CRM", "erase, CRM"):
        row = rf"\| {re.escape(label)} \| [\d.]+ \| \d+% \| [\d.]+x \| ≤ 2x"
        assert re.search(row, printed), (label, printed[-3000:])
    assert "without ix_web_clicks_visitor_id" in printed
    assert re.search(r"read whole: web_clicks, by SELECT", printed)
    assert "no index of web_clicks begins with visitor_id" in printed
    assert "EXPLAIN check passed" in printed
    figures = document["figures"]
    assert figures["read_whole"]["with the demo's indexes"] == []
    assert set(figures["ratios"]) == {"access", "erasure"}


def _release_utility(printed: str, document: dict[str, Any]) -> None:
    """Every rollup is measured under both methods with figures that can be true:
    suppression publishes exact cells, at most those with data, none under its size;
    differential privacy publishes the whole domain, its errors stay within the 95%
    margin about 95% of the time (more where zero clips the noise) and shrink as
    epsilon grows; the goal at epsilon 1 is stated per rollup."""
    assert "| Customers | Rollup | Method |" in printed
    assert "Goal at ε = 1: every cell of the domain published" in printed
    figures = document["figures"]
    (build,) = figures["builds"]
    rollups = {c["rollup"] for c in figures["cells"]}
    assert {"monthly_active_customers_by_feature", "page_views_by_feature"} <= rollups
    for cells in figures["cells"]:
        assert cells["rows"] == build["rows"][cells["dataset"]]  # every row in one cell
        assert 0 < cells["with_data"] <= cells["periods"] * cells["cells_per_period"]
    for s in figures["suppression"]:
        assert 0 < s["published"] <= s["cells_with_data"] <= s["cells_of_domain"]
        assert s["published_of_domain"] <= s["published_of_data"] <= 1
        assert s["large_published"] <= s["large_cells"]
        assert s["median_relative_error"] == 0 and 0 <= s["people_withheld_share"] < 1
    private = figures["differential_privacy"]
    assert {(p["rollup"], p["epsilon"]) for p in private} == {
        (r, e) for r in rollups for e in (0.5, 1.0, 2.0)
    }
    measured = 0
    for rollup in rollups:
        by_epsilon = {p["epsilon"]: p for p in private if p["rollup"] == rollup}
        low, high = by_epsilon[0.5], by_epsilon[2.0]
        assert low["margin95"] > by_epsilon[1.0]["margin95"] > high["margin95"] > 0
        for p in by_epsilon.values():
            assert p["published_of_domain"] == 1 and p["epsilon_spent"] <= p["epsilon"]
            assert 0.93 <= p["within_margin"]["median"] <= 1, p
        if low["median_relative_error"] is not None:
            measured += 1
            assert high["median_relative_error"]["median"] < low["median_relative_error"]["median"]
    assert measured, "no rollup has a cell of 20 people at the smoke size"
    assert {g["rollup"] for g in figures["goal"]} == rollups


def _scan_peers(printed: str, document: dict[str, Any]) -> None:
    """Tenure and presidio-structured are scored side by side; a tool that did not run
    (no ``--baseline`` at the smoke size, PIICatcher without its environment) is left out
    with one line saying why, never silently; Tenure's two scans give the same labels (the
    smoke sample reads every table whole, so only the order of the values differs)."""
    assert "| Tool | Precision (personal columns) |" in printed
    assert re.search(r"\| Tenure \(working tree\) \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", printed)
    assert "| presidio-structured, defaults |" in printed
    assert "Tenure (earlier commit): left out, no --baseline DIR given" in printed
    figures = document["figures"]
    for tool in figures["tools"]:
        assert (tool["score"] is None) == (tool["left_out"] is not None), tool
        if tool["left_out"]:
            assert f"- {tool['tool']}: left out, {tool['left_out']}." in printed
    assert figures["determinism"] == {"runs": 2, "identical": True, "differing": []}


def _scale_out(printed: str, document: dict[str, Any]) -> None:
    """In-process, one worker and two workers redact every note and message alike (the
    script stops otherwise), each worker's memory is read twice, both scans read every
    table, and the capacity table says which figures are extrapolated and what bounds them."""
    figures = document["figures"]
    runs = figures["redaction"]
    assert [run["workers"] for run in runs] == [0, 1, 2]
    assert "The three configurations left the same text in every note and message." in printed
    assert figures["identical_output"] == {"notes": 200, "messages": 50}
    memory = [m for run in runs for m in run["memory"]]
    assert len(memory) == 3 and all(m["peak_end_mb"] >= m["peak_half_mb"] > 0 for m in memory)
    assert [scan["workers"] for scan in figures["scan"]] == [1, 2]
    assert all(scan["tables"] == 10 for scan in figures["scan"])
    assert "Capacity, extrapolated (not measured)" in printed
    assert {row["limited_by"] for row in figures["capacity"]} <= {"workers", "store", "scheduler"}
    assert len(figures["capacity"]) == 6


#: What a script's smoke run must also show, beyond the figures every script writes.
CHECKS = {
    "requests_vs_sql": _requests_vs_sql,
    "release_utility": _release_utility,
    "scan_peers": _scan_peers,
    "scale_out": _scale_out,
}


def test_runs_median_spread_and_ratio() -> None:
    runs = harness.Runs.of([3.0, 1.0, 2.0])
    assert runs.median == 2.0
    assert runs.spread == 1.0
    assert runs.listed(1) == "3.0, 1.0, 2.0"
    assert runs.ratio_to(harness.Runs.of([4.0])) == 0.5
    assert math.isnan(harness.ratio(1.0, 0.0))


def test_targets_read_both_ways() -> None:
    cost, speed_up = harness.Target(1.5), harness.Target(20, at_least=True)
    assert cost.met(1.5) and not cost.met(1.6) and str(cost) == "≤ 1.5x"
    assert speed_up.met(20) and not speed_up.met(19.9) and str(speed_up) == "≥ 20x"
    assert cost.verdict(2.0) == "**missed**"


def test_smoke_sizes_yield_to_explicit_options() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = harness.parse_args(parser, ["--smoke", "--rows", "7"], {"rows": 2, "repeat": 1})
    assert (args.rows, args.repeat, args.smoke) == (7, 1, True)
    args = harness.parse_args(argparse.ArgumentParser(), [], {})
    assert args.smoke is False and args.json is None


def test_a_failed_check_writes_no_results(tmp_path: Path) -> None:
    import argparse

    args = argparse.Namespace(json=tmp_path / "x.json", smoke=True)
    with pytest.raises(SystemExit, match="verification failed: rows differ"):  # noqa: SIM117
        with harness.Benchmark("x", args) as bench:
            bench.figures["rows"] = 1
            harness.check(False, "rows differ")
    assert not (tmp_path / "x.json").exists()


def test_results_file_holds_each_run_and_the_machine(tmp_path: Path) -> None:
    import argparse
    from dataclasses import dataclass

    @dataclass
    class Step:
        name: str
        seconds: harness.Runs

    args = argparse.Namespace(json=tmp_path / "x.json", smoke=False, rows=5)
    with harness.Benchmark("x", args) as bench:
        bench.figures["steps"] = [Step("scan", harness.Runs.of([2.0, 1.0, 3.0]))]
    document = json.loads((tmp_path / "x.json").read_text())
    assert document["parameters"] == {"smoke": False, "rows": 5}
    (step,) = document["figures"]["steps"]
    assert step["name"] == "scan"
    assert step["seconds"]["median"] == 2.0 and step["seconds"]["runs"] == [2.0, 1.0, 3.0]
    assert set(document["machine"]) >= {"cpus", "python", "packages", "commit", "peak_rss_mb"}


def test_markdown_cells_with_pipes_and_newlines() -> None:
    table = harness.markdown_table(["type", "n"], [["int64 | string", "1\n2"]], "lr")
    assert table.splitlines() == [
        "| type | n |",
        "| --- | ---: |",
        "| int64 \\| string | 1<br>2 |",
    ]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.text(max_size=12), min_size=3, max_size=3), max_size=5))
def test_markdown_rows_keep_their_cells(rows: list[list[str]]) -> None:
    """Whatever the cells hold, each row is one line with as many cells as the header."""
    lines = harness.markdown_table(["a", "b", "c"], rows).split("\n")
    assert len(lines) == len(rows) + 2
    for line in lines:
        unescaped = line.replace("\\\\", "").replace("\\|", "")
        assert unescaped.count("|") == 4


@pytest.mark.servers
def test_postgres_server_durability_is_an_option() -> None:
    """A throwaway server skips fsync by default; ``durable=True`` runs as production does."""
    from sqlalchemy import create_engine, text

    from tests.support.pg_server import DURABILITY_SETTINGS, PostgresServer, wait_until_ready

    names = DURABILITY_SETTINGS
    for kwargs, expected in (({}, "off"), ({"durable": True}, "on")):
        server = PostgresServer.start(**kwargs)
        try:
            wait_until_ready(server.admin_url)
            engine = create_engine(server.admin_url)
            with engine.connect() as connection:
                shown = {s: connection.execute(text(f"SHOW {s}")).scalar_one() for s in names}
            engine.dispose()
        finally:
            server.stop()
        assert shown == dict.fromkeys(names, expected)


def test_nightly_durability_option_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import nightly_vs_sql

    with pytest.raises(SystemExit):
        nightly_vs_sql.main(["--durability", "off,sometimes"])
    assert "unknown durability 'sometimes'" in capsys.readouterr().err


def test_rollup_cells_compare_counts_sums_and_people() -> None:
    from datetime import date

    from bench.nightly_vs_sql import Cell, CellKey, compare_cells

    key: CellKey = (date(2025, 1, 1), "home", "CA")
    small: CellKey = (date(2025, 1, 1), "home", None)
    raw = {key: Cell(900, 100.0, 800), small: Cell(40, 7.0, 30)}
    assert compare_cells({key: Cell(900, 100.0, 812), small: Cell(40, 7.0, 30)}, raw) == []
    tenure: dict[CellKey, Cell] = {
        key: Cell(901, 100.0, 800),
        small: Cell(40, 7.0, 31),
        (date(2025, 2, 1), "x", "y"): Cell(1, 1.0, 1),
    }
    problems = compare_cells(tenure, raw)
    assert len(problems) == 3, problems
    assert any("only in Tenure" in p for p in problems)
    assert any("rows 901" in p for p in problems)
    assert any("people 31" in p and "count(DISTINCT) 30" in p for p in problems)
    # a rollup that does not count people is not the baseline's equal
    assert compare_cells({key: Cell(900, 100.0, None), small: Cell(40, 7.0, 30)}, raw)


@given(st.integers(min_value=1, max_value=10_000_000), st.integers(-10_000, 10_000))
def test_people_tolerance_exact_under_500_else_two_percent(people: int, off: int) -> None:
    """A cell of fewer than 500 people must count them exactly; a larger one within 2 %
    of count(DISTINCT) (never less than one person)."""
    from bench.nightly_vs_sql import people_within

    estimate = max(people + off, 0)
    allowed = 0.0 if people < 500 else max(1.0, 0.02 * people)
    assert people_within(estimate, people) == (abs(estimate - people) <= allowed)
