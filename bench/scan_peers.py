"""The scan against its peers: every tool on the same store, in one run.

    make bench-peers-env                          # PIICatcher's own environment, once
    .venv/bin/python -m bench.scan_peers          # 2,000 rows a table, sample 1,000
    .venv/bin/python -m bench.scan_peers --baseline DIR   # and Tenure at an earlier commit

The independent evaluation set (``bench.independent_set``) is written to one SQLite file,
and each tool scans every table of it, after a warm-up (models loaded, engines run once):

1. **Tenure** (this working tree): ``SQLConnector`` and ``flows.scan.scan_table`` per table,
   as ``tenure scan`` does. A column is predicted to hold every entity of
   ``ColumnScan.entities`` whose confidence reaches ``LABEL_THRESHOLD``, personal or not.
   Scanned ``--repeat`` times (at least twice): the labels of the runs must be identical.
2. **Tenure at an earlier commit** (``--baseline DIR``, a directory holding ``git archive
   <rev>`` of the repository): the same function, sent as source text to a subprocess of
   the same interpreter with ``cwd`` and ``PYTHONPATH`` set to DIR. It imports only
   ``connectors.sql.connector``, ``flows.scan`` and ``LABEL_THRESHOLD``, which every commit has.
3. **presidio-structured**: ``PandasAnalysisBuilder(analyzer).generate_analysis(frame, n)``
   on each table read with pandas, (a) with ``n`` the sample size and (b) at its defaults
   (every row, English, ``most_common``). The analyzer is ``bench.peers``' offline one
   (the pinned spaCy models), never its default engine, which downloads a model. One
   entity per column, or none.
4. **PIICatcher** 0.21.2, in its own environment (``.venv-piicatcher/``, made by ``make
   bench-peers-env``): ``scan_database`` of a SQLite source, ``scan_type=data`` (its
   column-name detector, then its regular expressions on up to ``--sample`` rows), in a
   subprocess, with its usage statistics disabled and its catalog in a throwaway folder.
   One type per column, mapped to Presidio's names (``PIICATCHER_TYPES``).

Every tool's predictions are scored by ``independent_set.score``. Wall time is the whole
scan of every table (read and classify), timed inside the process that scans; models,
imports and interpreter start are not in it (PIICatcher's process wall time and its start
alone are printed beside it). A tool that cannot run is left out with one line saying why.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import harness, independent_set
from bench.peers import baseline_engines

REPO: Final = harness.BENCH_DIR.parent
PIICATCHER_VENV: Final = REPO / ".venv-piicatcher"
PIICATCHER_VERSION: Final = "0.21.2"
SAMPLE: Final = 1_000
SMOKE: Final = {"rows": 10, "sample": 30}  # every table read whole
#: What ``--peers`` chooses from: Tenure itself always runs.
PEERS: Final = ("baseline", "structured", "piicatcher")
#: Issue 18's speed goals at a sample of 1,000: Tenure against presidio-structured at its
#: defaults, and against Tenure at the commit before the work (``--baseline``).
STRUCTURED_GOAL: Final = harness.Target(5, at_least=True)
EARLIER_GOAL: Final = harness.Target(2, at_least=True)
#: PIICatcher's types (``PiiType.name``) under Presidio's entity names. An address or a
#: PO box is a LOCATION, a zip code the only postal code entity there is; gender, user
#: names and passwords have no Presidio entity and keep a name of their own (never right).
PIICATCHER_TYPES: Final = {
    "Phone": "PHONE_NUMBER",
    "Email": "EMAIL_ADDRESS",
    "Credit Card": "CREDIT_CARD",
    "Address": "LOCATION",
    "PO Box": "LOCATION",
    "Person": "PERSON",
    "Birth Date": "DATE_OF_BIRTH",
    "Nationality": "NRP",
    "SSN": "US_SSN",
    "Zip Code": "CA_POSTAL_CODE",
    "Gender": "GENDER",
    "User Name": "USER_NAME",
    "Password": "PASSWORD",
}

Labels = dict[independent_set.Key, frozenset[str]]


@dataclass
class Tool:
    """One row of the peer table: what was run, what it predicted and how long it took;
    or, for a tool that could not run, why."""

    name: str
    how: str
    labels: Labels | None = None
    seconds: harness.Runs | None = None
    left_out: str | None = None
    notes: list[str] = field(default_factory=list)

    def figures(self, score: independent_set.Score | None) -> dict[str, object]:
        return {
            "tool": self.name,
            "how": self.how,
            "seconds": self.seconds,
            "left_out": self.left_out,
            "notes": self.notes,
            "score": score.figures() if score is not None else None,
        }


# ---------------------------------------------------------------------------- Tenure


def scan_store(url: str, sample: int, warm_up: int, repeat: int) -> dict[str, Any]:
    """Scan every table of ``url`` once at ``warm_up`` values a column (models loaded),
    then ``repeat`` timed times at ``sample``: each run's seconds and labels (``"table\\t
    column"``: entities whose confidence reaches the threshold). Self-contained: it runs
    here for the working tree and, as source text, in a subprocess for ``--baseline``."""
    import time

    from anonymizers.detection import LABEL_THRESHOLD
    from connectors.sql.connector import SQLConnector
    from flows import scan

    def labels_at(size: int) -> dict[str, list[str]]:
        connector = SQLConnector("peers", url)
        try:
            found: dict[str, list[str]] = {}
            for table in connector.table_names():
                info = connector.table_info(table)
                if info is None:
                    continue
                rows = connector.estimate_rows(table)
                for column in scan.scan_table(connector, info, rows, size, "peers").columns:
                    found[f"{table}\t{column.column}"] = sorted(
                        entity
                        for entity, confidence in column.entities.items()
                        if confidence >= LABEL_THRESHOLD
                    )
            return found
        finally:
            connector.close()

    labels_at(warm_up)
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        found = labels_at(sample)
        runs.append({"seconds": time.perf_counter() - started, "labels": found})
    return {"runs": runs, "module": scan.__file__}


#: What the subprocess of ``--baseline`` runs after ``scan_store``'s source: the offline
#: defaults first where the commit has them, the JSON of the runs on the last line.
BASELINE_MAIN: Final = """
import json, sys
print(json.dumps(scan_store(sys.argv[1], *map(int, sys.argv[2:5]))))
"""
BASELINE_PRELUDE: Final = """from __future__ import annotations
try:
    import anonymizers.offline  # noqa: F401  (no network, before the engines load)
except ImportError:
    pass
"""


def run_tenure(url: str, sample: int, repeat: int) -> tuple[Tool, list[Labels]]:
    scanned = scan_store(url, sample, harness.WARM_UP, repeat)
    runs = [_labels(run["labels"]) for run in scanned["runs"]]
    tool = Tool(
        "Tenure (working tree)",
        f"SQLConnector + flows.scan.scan_table, sample {sample:,}, median of {repeat} scans",
        labels=runs[0],
        seconds=harness.Runs.of(run["seconds"] for run in scanned["runs"]),
    )
    return tool, runs


def run_baseline(directory: Path | None, url: str, sample: int, repeat: int) -> Tool:
    tool = Tool("Tenure (earlier commit)", "")
    if directory is None:
        tool.left_out = "no --baseline DIR given (a directory holding `git archive <rev>`)"
        return tool
    where = directory.resolve()
    if not (where / "flows" / "scan.py").is_file():
        tool.left_out = f"--baseline {directory}: no flows/scan.py there"
        return tool
    program = BASELINE_PRELUDE + inspect.getsource(scan_store) + BASELINE_MAIN
    arguments = [url, str(sample), str(harness.WARM_UP), str(repeat)]
    _, scanned, error = run_program(
        [sys.executable, "-c", program, *arguments],
        cwd=where,
        env={**os.environ, "PYTHONPATH": str(where)},
    )
    if scanned is None:
        tool.left_out = f"the scan at {directory} failed: {error}"
        return tool
    module = Path(scanned["module"]).resolve()
    harness.check(
        module.is_relative_to(where), f"--baseline imported flows.scan from {module}, not {where}"
    )
    tool.how = (
        f"the same scan in a subprocess on {directory} ({_commit_of(where)}), "
        f"median of {repeat} scans"
    )
    tool.labels = _labels(scanned["runs"][0]["labels"])
    tool.seconds = harness.Runs.of(run["seconds"] for run in scanned["runs"])
    return tool


# ---------------------------------------------------------------------------- presidio-structured


def run_structured(url: str, samples: Sequence[int | None]) -> list[Tool]:
    """presidio-structured's column detection, once per sample size (None: its default,
    every row), on every table read with pandas."""
    try:
        from presidio_structured import PandasAnalysisBuilder
    except ImportError:
        reason = "presidio-structured is not installed (`pip install -e '.[bench]'`)"
        return [Tool(_structured_name(n), "", left_out=reason) for n in samples]
    import pandas as pd
    from sqlalchemy import Connection, create_engine, text
    from sqlalchemy import inspect as reflect

    analyzer, _ = baseline_engines()
    builder = PandasAnalysisBuilder(analyzer=analyzer)
    engine = create_engine(url)

    def read(connection: Connection, table: str) -> pd.DataFrame:
        # The stored values as they are (text, numbers, NULL): ``read_sql_table`` would
        # turn declared dates into Timestamps, which its analyzer refuses (not primitive).
        quoted = connection.dialect.identifier_preparer.quote(table)
        return pd.read_sql_query(text(f"SELECT * FROM {quoted}"), connection)

    def scan(n: int | None) -> Labels:
        found: Labels = {}
        with engine.connect() as connection:
            for table in reflect(connection).get_table_names():
                frame = read(connection, table)
                mapping = builder.generate_analysis(frame, n=n).entity_mapping
                for column in frame.columns:
                    entity = mapping.get(column)
                    found[(table, str(column))] = frozenset({entity} if entity else ())
        return found

    with engine.connect() as connection:
        first = reflect(connection).get_table_names()[0]
        builder.generate_analysis(read(connection, first).head(harness.WARM_UP))
    tools = []
    for n in samples:
        seconds, labels = harness.timed(lambda n=n: scan(n))  # type: ignore[misc]
        how = "generate_analysis(frame" + (f", n={n:,})" if n else "): every row, English")
        tools.append(Tool(_structured_name(n), how, labels, harness.Runs.of([seconds])))
    engine.dispose()
    return tools


def _structured_name(n: int | None) -> str:
    return f"presidio-structured, sample {n:,}" if n else "presidio-structured, defaults"


# ---------------------------------------------------------------------------- PIICatcher

#: Run by PIICatcher's interpreter: its catalog and goog-stats' settings in a throwaway
#: HOME, usage statistics disabled before anything could send them, the scan timed after
#: the imports and the catalog's creation.
PIICATCHER_PROGRAM: Final = r"""
import json, os, sys, tempfile, time, warnings
warnings.simplefilter("ignore")
home = tempfile.mkdtemp(prefix="piicatcher-")
os.environ["HOME"] = os.environ["XDG_CONFIG_HOME"] = home
from pathlib import Path
from goog_stats import Stats
from dbcat.api import open_catalog
from piicatcher.api import OutputFormat, ScanTypeEnum, scan_database
Stats(tid="offline").disable_stat()
catalog = open_catalog(app_dir=Path(home), secret="bench-only-secret", path=Path(home) / "c.db")
started = time.perf_counter()
with catalog.managed_session:
    source = catalog.add_source(name="peers", uri=sys.argv[1], source_type="sqlite")
    found = scan_database(catalog, source, scan_type=ScanTypeEnum.data,
                          output_format=OutputFormat.json, list_all=True,
                          sample_size=int(sys.argv[2]))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "found": found}, default=str))
"""
PIICATCHER_START: Final = "import goog_stats, dbcat.api, piicatcher.api"


def run_piicatcher(venv: Path, database: Path, sample: int) -> Tool:
    tool = Tool(f"PIICatcher {PIICATCHER_VERSION}", "")
    python = venv / "bin" / "python"
    if not python.exists():
        tool.left_out = f"no {harness.shown(venv, REPO)} (make bench-peers-env creates it)"
        return tool
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('piicatcher'))"],
        capture_output=True,
        text=True,
    )
    if version.returncode != 0 or version.stdout.strip() != PIICATCHER_VERSION:
        found = version.stdout.strip() or _last_line(version.stderr)
        tool.left_out = (
            f"{harness.shown(venv, REPO)} has no piicatcher {PIICATCHER_VERSION} ({found})"
        )
        return tool
    wall, scanned, error = run_program(
        [str(python), "-c", PIICATCHER_PROGRAM, str(database), str(sample)]
    )
    if scanned is None:
        tool.left_out = f"its scan failed: {error}"
        return tool
    start = harness.Runs.measure(
        lambda: subprocess.run([str(python), "-W", "ignore", "-c", PIICATCHER_START], check=True),
        repeat=2,
    )
    tool.how = (
        f"scan_database(scan_type=data, sample_size={sample:,}) in {harness.shown(venv, REPO)}"
    )
    tool.labels = piicatcher_labels(scanned["found"])
    tool.seconds = harness.Runs.of([scanned["seconds"]])
    tool.notes.append(
        f"process wall time {wall:.2f} s; its interpreter start and imports alone take "
        f"{min(start.seconds):.2f} s (timed apart, fastest of 2); the table's figure is the "
        "scan alone"
    )
    return tool


def piicatcher_labels(found: Mapping[str, Any]) -> Labels:
    """PIICatcher's JSON output (``list_all``) as labels under Presidio's names."""
    labels: Labels = {}
    for schema in found["schemata"]:
        for table in schema["tables"]:
            for column in table["columns"]:
                kind = column["pii_type"]
                entity = PIICATCHER_TYPES.get(kind, str(kind).upper()) if kind else None
                labels[(table["name"], column["name"])] = frozenset({entity} if entity else ())
    return labels


# ---------------------------------------------------------------------------- scores


def _entity_recall(score: independent_set.Score, entity: str) -> float | None:
    found = score.per_entity.get(entity)
    return None if found is None else found.recall


def print_peer_table(
    tools: Sequence[Tool], scores: Mapping[str, independent_set.Score], tenure: Tool
) -> None:
    assert tenure.seconds is not None
    rows = []
    for tool in tools:
        if tool.labels is None or tool.seconds is None:
            continue
        score = scores[tool.name]
        ratio = tool.seconds.ratio_to(tenure.seconds)
        rows.append(
            [
                tool.name,
                _figure(score.personal_precision),
                _figure(score.personal_recall),
                _figure(score.type_accuracy),
                _figure(score.precision),
                _figure(score.recall),
                len(score.errors),
                f"{tool.seconds.median:.2f}",
                f"{ratio:.2f}x",
            ]
        )
    headers = [
        "Tool",
        "Precision (personal columns)",
        "Recall (personal columns)",
        "Type accuracy",
        "Entity precision",
        "Entity recall",
        "Columns labelled wrong",
        "Wall s",
        "Time / Tenure's",
    ]
    print(harness.markdown_table(headers, rows, "l" + "r" * (len(headers) - 1)))
    print()


def print_per_entity(
    tools: Sequence[Tool],
    scores: Mapping[str, independent_set.Score],
    truth: Mapping[independent_set.Key, frozenset[str]],
) -> dict[str, dict[str, float | None]]:
    scored = [tool for tool in tools if tool.name in scores]
    entities = sorted({entity for true in truth.values() for entity in true})
    columns = {e: sum(e in true for true in truth.values()) for e in entities}
    table: dict[str, dict[str, float | None]] = {}
    rows = []
    for entity in entities:
        recalls = {tool.name: _entity_recall(scores[tool.name], entity) for tool in scored}
        table[entity] = recalls
        rows.append([entity, columns[entity], *(_figure(r) for r in recalls.values())])
    headers = ["Entity", "Columns", *(tool.name for tool in scored)]
    print("Recall per entity (columns holding it that the tool labelled with it):\n")
    print(harness.markdown_table(headers, rows, "l" + "r" * (len(headers) - 1)))
    print()
    return table


def print_errors(name: str, score: independent_set.Score) -> None:
    """The columns a tool labels wrong: truth and prediction side by side."""
    if not score.errors:
        print(f"{name}: no column labelled wrong.\n")
        return
    rows = [[f"{t}.{c}", _named(true), _named(said)] for (t, c), true, said in score.errors]
    print(f"Columns {name} labels wrong:\n")
    print(harness.markdown_table(["Column", "Truth", "Predicted"], rows))
    print()


def _figure(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def differing(first: Labels, second: Labels) -> list[str]:
    """The columns whose labels differ between two scans, as ``table.column: a / b``."""
    keys = sorted(set(first) | set(second))
    return [
        f"{t}.{c}: {_named(first.get((t, c)))} / {_named(second.get((t, c)))}"
        for t, c in keys
        if first.get((t, c), frozenset()) != second.get((t, c), frozenset())
    ]


def _named(entities: Iterable[str] | None) -> str:
    return ", ".join(sorted(entities or ())) or "nothing"


# ---------------------------------------------------------------------------- helpers


def _peers(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = set(chosen) - set(PEERS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peer {sorted(unknown)[0]!r} (known: {PEERS})")
    return chosen


def _not_chosen(peer: str, sample: int) -> list[Tool]:
    names = {
        "baseline": ["Tenure (earlier commit)"],
        "structured": [_structured_name(sample), _structured_name(None)],
        "piicatcher": [f"PIICatcher {PIICATCHER_VERSION}"],
    }[peer]
    return [Tool(name, "", left_out=f"not in --peers ({peer})") for name in names]


def _progress(tool: Tool) -> None:
    """One line as each tool is done: a whole run takes minutes."""
    done = f"{tool.seconds.median:.2f} s" if tool.seconds else f"left out ({tool.left_out})"
    print(f"  {tool.name}: {done}")


def _labels(found: Mapping[str, Sequence[str]]) -> Labels:
    labels: Labels = {}
    for key, entities in found.items():
        table, column = key.split("\t", 1)
        labels[(table, column)] = frozenset(entities)
    return labels


def run_program(
    command: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[float, Any, str]:
    """Run a program that prints JSON on its last line: its wall seconds, that JSON (None
    when it failed) and the last line it wrote to stderr (why it failed)."""
    wall, done = harness.timed(
        lambda: subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    )
    lines = done.stdout.strip().splitlines()
    try:
        found = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    except json.JSONDecodeError:
        found = None
    return wall, found, _last_line(done.stderr)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _commit_of(directory: Path) -> str:
    """``git archive`` writes the commit into the archive's pax header, not into a file;
    a ``COMMIT`` file beside the tree names it when present."""
    named = directory / "COMMIT"
    return named.read_text().strip()[:12] if named.is_file() else "commit not recorded"


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scan_peers", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=2_000, help="rows of each table")
    parser.add_argument(
        "--sample", type=int, default=SAMPLE, help="values sampled per column (each tool)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="Tenure's timed scans (median; at least 2)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a directory holding `git archive <rev>` of the repository: Tenure at that "
        "commit, on the same scan (default: none, the row is left out)",
    )
    parser.add_argument(
        "--peers",
        type=_peers,
        default=PEERS,
        help=f"the peers run beside Tenure, comma-separated (default {','.join(PEERS)}); "
        "the others are left out, saying so",
    )
    parser.add_argument(
        "--piicatcher-venv",
        type=Path,
        default=PIICATCHER_VENV,
        help="PIICatcher's virtual environment (default .venv-piicatcher, made by "
        "`make bench-peers-env`)",
    )
    args = harness.parse_args(parser, argv, SMOKE, seed=7, work_dir="keep the SQLite store here")
    if args.repeat < 2:
        parser.error("--repeat must be at least 2 (the labels of two scans are compared)")
    with (
        harness.Benchmark("scan_peers", args) as bench,
        harness.work_folder(args.dir, "scan-peers-") as folder,
    ):
        built, data = harness.timed(
            lambda: independent_set.build_independent_set(args.rows, args.seed)
        )
        database = folder / "independent.sqlite"
        database.unlink(missing_ok=True)
        url = independent_set.write_sqlite(data, database)
        columns = sum(len(frame.columns) for frame in data.tables.values())
        personal = sum(bool(true & independent_set.PERSONAL) for true in data.truth.values())
        print(
            f"Store: {len(data.tables)} tables, {columns} columns ({personal} personal), "
            f"{args.rows:,} rows a table, one SQLite file (built in {built:.1f} s). "
            f"Sample: {args.sample:,} values a column.\n"
        )
        tenure, runs = run_tenure(url, args.sample, args.repeat)
        changed = [line for run in runs[1:] for line in differing(runs[0], run)]
        tools = [tenure]
        _progress(tenure)
        peers: dict[str, Callable[[], list[Tool]]] = {
            "baseline": lambda: [run_baseline(args.baseline, url, args.sample, args.repeat)],
            "structured": lambda: run_structured(url, [args.sample, None]),
            "piicatcher": lambda: [run_piicatcher(args.piicatcher_venv, database, args.sample)],
        }
        for name, peer in peers.items():
            for tool in peer() if name in args.peers else _not_chosen(name, args.sample):
                tools.append(tool)
                _progress(tool)
        print()
        scores = {
            tool.name: independent_set.score(tool.labels, data.truth)
            for tool in tools
            if tool.labels is not None
        }
        print_peer_table(tools, scores, tenure)
        for tool in tools:
            if tool.left_out is not None:
                print(f"- {tool.name}: left out, {tool.left_out}.")
            else:
                print(f"- {tool.name}: {tool.how}" + "".join(f"; {n}" for n in tool.notes) + ".")
        print()
        goals = print_goals(tools, tenure)
        verdict = "identical" if not changed else f"**differ** in {len(changed)} column(s)"
        print(f"Tenure's labels over {args.repeat} scans at sample {args.sample:,}: {verdict}.")
        for line in changed:
            print(f"  - {line}")
        print()
        per_entity = print_per_entity(tools, scores, data.truth)
        print_errors(tenure.name, scores[tenure.name])
        bench.figures.update(
            store={"tables": len(data.tables), "columns": columns, "personal": personal},
            tools=[tool.figures(scores.get(tool.name)) for tool in tools],
            per_entity=per_entity,
            determinism={"runs": args.repeat, "identical": not changed, "differing": changed},
            goals=goals,
            left_out={tool.name: tool.left_out for tool in tools if tool.left_out},
        )


def print_goals(tools: Sequence[Tool], tenure: Tool) -> list[dict[str, object]]:
    """Issue 18's two speed goals, measured in this run, with the labels each pair agrees on."""
    assert tenure.seconds is not None and tenure.labels is not None
    goals: list[dict[str, object]] = []
    named = {tool.name: tool for tool in tools}
    for name, target in (
        ("presidio-structured, defaults", STRUCTURED_GOAL),
        ("Tenure (earlier commit)", EARLIER_GOAL),
    ):
        other = named[name]
        if other.seconds is None or other.labels is None:
            print(f"Goal against {name} ({target}): not measured, the row is left out.")
            continue
        ratio = other.seconds.ratio_to(tenure.seconds)
        changed = differing(other.labels, tenure.labels)
        print(
            f"Goal against {name}: Tenure {ratio:.2f}x faster (target {target}, "
            f"{target.verdict(ratio)}); labels differ in {len(changed)} column(s)."
        )
        goals.append({"against": name, "ratio": ratio, "met": target.met(ratio)})
    print()
    return goals


if __name__ == "__main__":
    main()
