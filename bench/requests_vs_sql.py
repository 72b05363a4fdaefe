"""One person's access and erasure requests against hand-written SQL, on PostgreSQL.

    .venv/bin/python -m bench.requests_vs_sql [--customers 9000]

The scaled demo (about 1,000,000 rows over its eleven CRM tables at 9,000 customers) is
built once in a throwaway PostgreSQL server, with the demo's Maildir and web log beside
it. For one customer with rows in every table: the access request's read path (`reach`,
`resolve`, `collect`) and the whole `fulfil` against per-table ``SELECT`` statements;
every statement Tenure sends to the CRM store, ``EXPLAIN``-ed, must read the bound
tables through indexes; the erasure (`erase`) against hand-written ``DELETE``s and
``UPDATE``s of the same rows in one transaction. See bench/README.md ("Requests").
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from dateutil.relativedelta import relativedelta
from ruamel.yaml import YAML
from sqlalchemy import Connection, Engine, create_engine, event, text

from bench import harness
from flows.demo.files_and_mail import build_demo_files
from flows.demo.generate import DemoSpec, build_demo_store
from flows.demo.planted import DISPUTE_PARTIES
from flows.rights import access, erasure, fulfil, register
from flows.rights.access import Collected, collect
from flows.rights.people import resolve
from flows.run.types import RunOptions
from flows.state.location import state_location
from flows.stores import opened_stores
from retention_rules.clock import PolicyClock
from retention_rules.loader import load_policy
from retention_rules.planner import plan_rules, table_references
from tests.support.demo import DEMO_AS_OF, TABLES
from tests.support.paths import SHIPPED_POLICY
from tests.support.pg_server import PostgresServer, wait_until_ready

NOW = DEMO_AS_OF
"""Every side evaluates at the instant the demo was generated up to."""
TARGETS = {"access": harness.Target(2.0), "erasure": harness.Target(2.0)}
#: The smallest sizes: about 115,000 CRM rows, one run per side, EXPLAIN with sequential
#: scans priced out (the planner reads a table of a few hundred rows whole whatever its
#: indexes; smaller demos make it prefer whole index scans for ORDER BY as well).
SMOKE = {"customers": 1_000, "repeat": 1, "seqscan": "off"}
TENURE = Path(sys.executable).parent / "tenure"
#: The index dropped to show what a missing one does (`tenure validate` warns of it).
DROPPED_INDEX = "ix_web_clicks_visitor_id"
#: The rows of the person in each CRM table, as hand-written SQL finds them: by the
#: customer number, and by the cookies and e-mail addresses that name the same person.
PERSON_ROWS = {
    "customers": "id = :id",
    "accounts": "customer_id = :id",
    "invoices": "customer_id = :id",
    "payments": "customer_id = :id",
    "login_events": "customer_id = :id",
    "usage_events": "customer_id = :id",
    "web_clicks": "customer_id = :id OR visitor_id = ANY(:cookies)",
    "support_tickets": "customer_id = :id",
    "email_messages": "customer_id = :id",
    "marketing_consents": "customer_id = :id OR address = ANY(:emails)",
    "privacy_requests": "customer_id = :id",
}
#: The shipped policy's legal hold of the 2020 tax year (its `where:`), which a
#: hand-written erasure must respect as Tenure does.
HOLD_2020_INVOICES = "issued_at >= '2020-01-01' AND issued_at < '2021-01-01'"
HOLD_2020_PAYMENTS = "paid_at >= '2020-01-01' AND paid_at < '2021-03-01'"
#: The hand-written erasure, in one transaction, children before parents: a DELETE where
#: the binding deletes (a plain DELETE for the two aggregated tables: the floor, without
#: their rollups), an UPDATE of the anonymized columns where it anonymizes, and for the
#: bindings of a legal obligation only the rows past its minimum retention.
RAW_ERASURE = (
    f"""DELETE FROM payments p USING invoices i
        WHERE p.invoice_id = i.id AND p.customer_id = :id AND i.issued_at < :tax_cutoff
        AND NOT ({HOLD_2020_PAYMENTS})""",
    f"""DELETE FROM invoices WHERE customer_id = :id AND issued_at < :tax_cutoff
        AND NOT ({HOLD_2020_INVOICES})
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.invoice_id = invoices.id)""",
    "DELETE FROM login_events WHERE customer_id = :id",
    "DELETE FROM usage_events WHERE customer_id = :id",
    "DELETE FROM web_clicks WHERE customer_id = :id OR visitor_id = ANY(:cookies)",
    """UPDATE support_tickets SET subject = '<redacted>', notes = '<redacted>'
        WHERE customer_id = :id""",
    "DELETE FROM email_messages WHERE customer_id = :id",
    """DELETE FROM marketing_consents WHERE (customer_id = :id OR address = ANY(:emails))
        AND withdrawn_at < :rights_cutoff""",
    """UPDATE marketing_consents SET address = NULL
        WHERE (customer_id = :id OR address = ANY(:emails)) AND address IS NOT NULL""",
    "DELETE FROM privacy_requests WHERE customer_id = :id AND responded_at < :rights_cutoff",
    """UPDATE accounts SET username = md5(username), password_hash = ''
        WHERE customer_id = :id""",
    """UPDATE customers SET first_name = 'Alex', last_name = 'Martin', email = md5(email),
        phone = NULL, street_address = NULL, postal_code = left(postal_code, 3),
        birth_date = date_trunc('year', birth_date)::date WHERE id = :id""",
)


# ---------------------------------------------------------------------------- timing


@contextmanager
def stopwatch(module: ModuleType, name: str, spent: list[float]) -> Iterator[None]:
    """Add the seconds spent in ``module.name`` (looked up by its callers at each call)
    to ``spent`` while the block runs."""
    original: Callable[..., Any] = getattr(module, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


@dataclass
class Statements:
    """The statements sent to one database (its name), with their parameters."""

    database: str
    sent: list[tuple[str, Any]] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator[None]:
        def before(conn: Any, cursor: Any, statement: str, parameters: Any, *rest: Any) -> None:
            if conn.engine.url.database == self.database:
                self.sent.append((statement, parameters))

        event.listen(Engine, "before_cursor_execute", before)
        try:
            yield
        finally:
            event.remove(Engine, "before_cursor_execute", before)


# ---------------------------------------------------------------------------- the stores


class Stores:
    """A throwaway PostgreSQL server holding the scaled demo (a template database), the
    demo's mail and web log folders, and the two policies: the shipped one (three stores)
    and its CRM bindings alone (``crm_only``), the store the speed goals are about."""

    def __init__(self, workdir: Path, customers: int) -> None:
        self.workdir = workdir
        self.server = PostgresServer.start()
        wait_until_ready(self.server.admin_url)
        self.admin = create_engine(self.server.admin_url, isolation_level="AUTOCOMMIT")
        self._admin("ALTER SYSTEM SET autovacuum = off", "SELECT pg_reload_conf()")
        self.version = self._show("server_version")
        self.seed = "demo_seed"
        self._admin(f"CREATE DATABASE {self.seed}")
        engine = create_engine(self.server.url(self.seed))
        spec = DemoSpec(customers=customers, as_of=DEMO_AS_OF)
        self.rows = build_demo_store(engine, spec)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
        engine.dispose()
        self.files = workdir / "files"
        self.file_counts = build_demo_files(self.files, spec)
        self.shipped = SHIPPED_POLICY
        self.crm_only = workdir / "crm_only.yaml"
        self.crm_only.write_text(crm_only_policy(SHIPPED_POLICY.read_text()))
        self._copies = 0

    def close(self) -> None:
        self.admin.dispose()
        self.server.stop()

    def copy(self, name: str) -> str:
        """A fresh copy of the seed database, checkpointed and read once (warm cache)."""
        self._admin(
            f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
            f"CREATE DATABASE {name} TEMPLATE {self.seed} STRATEGY FILE_COPY",
        )
        url = self.server.url(name)
        with connect(url) as engine, engine.connect() as connection:
            for table in TABLES:
                connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
        self._admin("CHECKPOINT")
        return url

    def files_copy(self, name: str) -> Path:
        """A copy of the mail and web log folders (an erasure changes them)."""
        target = self.workdir / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(self.files, target)
        return target

    def environ(self, url: str, files: Path | None = None) -> dict[str, str]:
        root = files or self.files
        return {
            **os.environ,
            "TENURE_CRM_URL": url,
            "TENURE_MAIL_URL": f"maildir:///{root / 'mail'}?internal_domains=360.agency",
            "TENURE_WEBLOGS_URL": f"files:///{root / 'weblogs'}",
        }

    def state_url(self) -> str:
        self._copies += 1
        return f"sqlite:///{self.workdir / f'state_{self._copies}.sqlite'}"

    def drop(self, name: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def _show(self, setting: str) -> str:
        with self.admin.connect() as connection:
            return str(connection.execute(text(f"SHOW {setting}")).scalar_one())

    def _admin(self, *statements: str) -> None:
        with self.admin.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))


def crm_only_policy(shipped: str) -> str:
    """The shipped policy with its CRM bindings alone: the other stores, their datasets,
    and what names them (``found_in``, holds, scan exemptions) left out; the rest, its
    comments too, as written."""
    document = YAML().load(shipped)
    for store in [name for name in document["stores"] if name != "crm"]:
        del document["stores"][store]
    datasets = document["datasets"]
    for i in reversed(range(len(datasets))):
        if datasets[i]["store"] != "crm":
            del datasets[i]
    kept = {d["name"] for d in datasets}
    found_in = document["subjects"]["found_in"]
    for name in [name for name in found_in if name not in kept]:
        del found_in[name]
    for hold in document.get("holds", []):
        hold["datasets"] = [d for d in hold["datasets"] if d in kept]
    scan = document.get("scan", {})
    exempt = [e for e in scan.get("exempt", []) if e["store"] == "crm"]
    if exempt:
        scan["exempt"] = exempt
    else:
        scan.pop("exempt", None)
    out = io.StringIO()
    writer = YAML()
    writer.width = 4096  # long lines (descriptions) stay on one line, as written
    writer.dump(document, out)
    return out.getvalue()


@contextmanager
def connect(url: str) -> Iterator[Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- the person


@dataclass(frozen=True)
class Person:
    """The customer both sides answer for, and the values hand-written SQL looks up."""

    customer_id: int
    emails: tuple[str, ...]
    cookies: tuple[str, ...]
    rows: dict[str, int]

    @property
    def params(self) -> dict[str, Any]:
        return {"id": self.customer_id, "emails": list(self.emails), "cookies": list(self.cookies)}


def choose_person(url: str, chosen: int | None) -> Person:
    """``chosen``, or the customer with rows in the most tables (then the most rows), not a
    party to the legal hold, with invoices on both sides of the six-year tax minimum (so
    the erasure both deletes and keeps invoices)."""
    tax_cutoff = NOW - relativedelta(years=6)
    with connect(url) as engine, engine.connect() as connection:
        if chosen is None:
            counts = " + ".join(
                f"(EXISTS (SELECT 1 FROM {t} WHERE customer_id = c.id))::int"
                for t in TABLES
                if t != "customers"
            )
            chosen = connection.execute(
                text(
                    f"""SELECT c.id FROM customers c
                    WHERE c.id <> ALL(:parties)
                    AND EXISTS (SELECT 1 FROM invoices i WHERE i.customer_id = c.id
                                AND i.issued_at < :tax AND NOT ({HOLD_2020_INVOICES}))
                    AND EXISTS (SELECT 1 FROM invoices i WHERE i.customer_id = c.id
                                AND i.issued_at >= :tax)
                    ORDER BY {counts} DESC,
                        (SELECT count(*) FROM web_clicks w WHERE w.customer_id = c.id) DESC,
                        c.id
                    LIMIT 1"""
                ),
                {"parties": sorted(DISPUTE_PARTIES), "tax": tax_cutoff},
            ).scalar_one()
        email = connection.execute(
            text("SELECT email FROM customers WHERE id = :id"), {"id": chosen}
        ).scalar_one()
        cookies = connection.execute(
            text("SELECT DISTINCT visitor_id FROM web_clicks WHERE customer_id = :id"),
            {"id": chosen},
        ).scalars()
        person = Person(int(chosen), tuple(sorted({email, email.lower()})), tuple(cookies), {})
        rows = raw_access(connection, person)
    return replace(person, rows={t: len(r) for t, r in rows.items()})


# ---------------------------------------------------------------------------- access


def raw_access(connection: Connection, person: Person) -> dict[str, list[Any]]:
    """The hand-written access: the customer row (its e-mail address), the cookies of
    their clicks, then one ``SELECT *`` per table by the customer number, the cookies or
    the addresses."""
    params = {"id": person.customer_id}
    email = connection.execute(text("SELECT email FROM customers WHERE id = :id"), params)
    emails = sorted({e for (e,) in email for e in (e, e.lower())})
    cookies = connection.execute(
        text("SELECT DISTINCT visitor_id FROM web_clicks WHERE customer_id = :id"), params
    ).scalars()
    values = {**params, "emails": emails, "cookies": list(cookies)}
    return {
        table: list(connection.execute(text(f"SELECT * FROM {table} WHERE {where}"), values))
        for table, where in PERSON_ROWS.items()
    }


def run_raw_access(url: str, person: Person) -> dict[str, int]:
    """A fresh engine and connection, as Tenure opens its own; rows per table."""
    with connect(url) as engine, engine.connect() as connection:
        return {t: len(rows) for t, rows in raw_access(connection, person).items()}


@dataclass
class ReadSplit:
    """Seconds of one run of Tenure's read path, and what it spent redacting."""

    seconds: float
    redaction: float
    rows: dict[str, int]
    stores: dict[str, int]
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds of each step (``collect`` without the redaction)."""


def tenure_read(policy_path: Path, environ: Mapping[str, str], person: Person) -> ReadSplit:
    """Everything `fulfil` reads for an access request: the policy, the stores opened
    read-only, `resolve` (with `reach`), the plans and `collect`; rows per CRM table."""
    redacting: list[float] = []
    phases: dict[str, float] = {}
    started = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        phases[name] = now - last
        last = now

    with stopwatch(access, "_redact_others", redacting):
        loaded = load_policy(policy_path, environ)
        policy = loaded.policy
        clock = PolicyClock.at(policy.timezone, NOW)
        lap("load the policy")
        with opened_stores(policy, read_only=True) as (connectors, issues):
            harness.check(not issues, f"stores not opened: {issues}")
            lap("open the stores")
            given = {"customer_id": [str(person.customer_id)]}
            found_person, found = resolve(policy, connectors, given)
            lap("reach + resolve")
            plans = plan_rules(policy, clock, table_references(policy, connectors))
            lap("plans (with the stores' references)")
            sections = collect(policy, connectors, found_person, found, plans, clock.now)
            lap("collect")
        lap("close the stores")
    seconds = time.perf_counter() - started
    phases["collect"] -= sum(redacting)
    harness.check(not any(s.section.failed for s in sections), "a store failed during access")
    return ReadSplit(seconds, sum(redacting), *per_table(policy, sections), phases)


def per_table(policy: Any, sections: Sequence[Collected]) -> tuple[dict[str, int], dict[str, int]]:
    """Distinct records per CRM table (two bindings of one table count its rows once),
    and records per store."""
    keys: dict[str, set[tuple[Any, ...]]] = {}
    stores: dict[str, int] = {}
    for collected in sections:
        dataset = policy.dataset(collected.section.dataset)
        stores[dataset.store] = stores.get(dataset.store, 0) + len(collected.keys)
        if dataset.store == "crm":
            keys.setdefault(dataset.table, set()).update(collected.keys)
    return {t: len(k) for t, k in keys.items()}, stores


@dataclass
class FulfilSplit:
    seconds: float
    package: float
    redaction: float
    records: int


def tenure_fulfil(
    policy_path: Path, environ: Mapping[str, str], person: Person, state_url: str, out: Path
) -> FulfilSplit:
    """The whole command's work: a verified request opened (not timed), then `fulfil`:
    register, read path, redaction, the package's zip."""
    loaded = load_policy(policy_path, environ)
    engine = state_location(loaded, state_url).open(create=True)
    try:
        opened = register.open_request(
            engine,
            loaded.policy,
            "access",
            PolicyClock.at(loaded.policy.timezone, NOW).today(),
            {"customer_id": [str(person.customer_id)]},
            now=NOW,
        )
        register.verify(engine, opened.request_id, "bench", "bench", NOW)
    finally:
        engine.dispose()
    writing: list[float] = []
    redacting: list[float] = []
    options = RunOptions(now=NOW, state_url=state_url)
    started = time.perf_counter()
    with (
        stopwatch(fulfil, "write_package", writing),
        stopwatch(access, "_redact_others", redacting),
    ):
        done = fulfil.fulfil(policy_path, opened.request_id, options, out=out, environ=environ)
    seconds = time.perf_counter() - started
    harness.check(done.status == "fulfilled", f"fulfil ended {done.status}: {done.failed}")
    records = done.package.counts if done.package else {}
    total = sum(records.values()) if isinstance(records, dict) else 0
    return FulfilSplit(seconds, sum(writing), sum(redacting), total)


# ---------------------------------------------------------------------------- EXPLAIN


@dataclass(frozen=True)
class Scan:
    table: str
    method: str
    index: str | None
    statement: str


def explain(url: str, sent: Sequence[tuple[str, Any]], *, seqscan: bool) -> list[Scan]:
    """Every bound table's access method in the plans of the recorded statements, each
    ``EXPLAIN``-ed with its own parameters (``seqscan=False``: sequential scans priced
    out, for tables too small for the planner to bother with an index). An index scan
    with no condition reads the whole table through the index: ``full Index Scan``."""
    scans: list[Scan] = []
    with connect(url) as engine, engine.connect() as connection:
        if not seqscan:
            connection.exec_driver_sql("SET enable_seqscan = off")
        index_tables: dict[str, str] = dict(
            connection.exec_driver_sql(
                "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'"
            ).all()
        )
        for statement, parameters in sent:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            if not any(re.search(rf"\b{t}\b", statement) for t in TABLES):
                continue  # the catalogue, reflected
            (plan,) = connection.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {statement}", parameters
            ).scalar_one()
            for node in _nodes(plan["Plan"]):
                kind = str(node["Node Type"])
                index = str(node.get("Index Name", ""))
                table = node.get("Relation Name") or index_tables.get(index, "?")
                if kind == "Seq Scan":
                    scans.append(Scan(table, kind, None, statement))
                elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
                    whole = "Index Cond" not in node
                    scans.append(
                        Scan(table, f"full {kind}" if whole else kind, index or None, statement)
                    )
    return [s for s in scans if s.table in TABLES]


def _nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def full_reads(scans: Sequence[Scan]) -> list[Scan]:
    """The scans that read a whole table: sequential, or through an index without a
    condition."""
    return [s for s in scans if s.method == "Seq Scan" or s.method.startswith("full ")]


def methods(scans: Sequence[Scan]) -> dict[str, list[str]]:
    """Table -> each distinct way it was read (``Index Scan ix_...``, ``Seq Scan``)."""
    found: dict[str, list[str]] = {}
    for scan in scans:
        way = scan.method if scan.index is None else f"{scan.method} {scan.index}"
        if way not in found.setdefault(scan.table, []):
            found[scan.table].append(way)
    return dict(sorted(found.items()))


def validate_warnings(policy: Path, environ: Mapping[str, str], state_url: str) -> list[str]:
    """The index warnings of ``tenure validate`` (a subprocess, as a user runs it)."""
    done = subprocess.run(
        [str(TENURE), "validate", str(policy), "--state", state_url],
        env=dict(environ),
        capture_output=True,
        text=True,
        check=False,
    )
    return [
        line.strip()
        for line in done.stderr.splitlines()
        if line.startswith("warning:") and "no index of" in line
    ]


# ---------------------------------------------------------------------------- erasure


@dataclass
class ErasureSplit:
    seconds: float
    proof: float
    redaction: float
    changed: dict[str, int]


def tenure_erase(
    policy_path: Path, environ: Mapping[str, str], person: Person, state_url: str
) -> ErasureSplit:
    """`erase` for the person: the whole run (counts, chunks, journal, ledger, audit) and
    the search afterwards (`remaining`), whose share is measured."""
    proof: list[float] = []
    redacting: list[float] = []
    from anonymizers import text_redaction

    options = RunOptions(now=NOW, state_url=state_url)
    given = {"customer_id": [str(person.customer_id)]}
    started = time.perf_counter()
    with (
        stopwatch(erasure, "remaining", proof),
        stopwatch(text_redaction, "redact_texts", redacting),
    ):
        run = erasure.erase(policy_path, given, options, environ=environ)
    seconds = time.perf_counter() - started
    harness.check(not run.failed, f"the erasure failed: {run.failed}")
    harness.check(run.unexplained == 0, f"rows left for no reason: {run.remaining}")
    return ErasureSplit(seconds, sum(proof), sum(redacting), dict(run.changed))


def run_raw_erasure(url: str, person: Person) -> float:
    """The hand-written erasure in one transaction; its seconds."""
    params = {
        **person.params,
        "tax_cutoff": NOW - relativedelta(years=6),
        "rights_cutoff": NOW - relativedelta(years=1),
    }
    with connect(url) as engine:
        started = time.perf_counter()
        with engine.begin() as connection:
            for statement in RAW_ERASURE:
                connection.execute(text(statement), params)
        return time.perf_counter() - started


def person_state(url: str, person: Person) -> dict[str, dict[int, str]]:
    """Each CRM table's rows of the person: id -> a hash of the whole row."""
    with connect(url) as engine, engine.connect() as connection:
        return {
            table: {
                int(i): str(h)
                for i, h in connection.execute(
                    text(f"SELECT id, md5(t::text) FROM {table} t WHERE {where}"), person.params
                )
            }
            for table, where in PERSON_ROWS.items()
        }


def erased(
    before: Mapping[str, Mapping[int, str]], after: Mapping[str, Mapping[int, str]]
) -> dict[str, tuple[frozenset[int], frozenset[int]]]:
    """Per table: the ids deleted, and the ids rewritten."""
    return {
        table: (
            frozenset(set(rows) - set(after[table])),
            frozenset(i for i, h in after[table].items() if rows.get(i) != h),
        )
        for table, rows in before.items()
    }


# ---------------------------------------------------------------------------- the run


@dataclass
class Results:
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    person: dict[str, Any] = field(default_factory=dict)
    access: dict[str, harness.Runs] = field(default_factory=dict)
    access_parts: dict[str, harness.Runs] = field(default_factory=dict)
    erasure: dict[str, harness.Runs] = field(default_factory=dict)
    erasure_parts: dict[str, harness.Runs] = field(default_factory=dict)
    explain: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    full: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """Per EXPLAIN run: the bound tables read whole, and by which statement."""
    statements: int = 0
    version: str = ""

    def ratio(self, side: str, what: str) -> float:
        table = self.access if side == "access" else self.erasure
        return table[what].ratio_to(table["hand-written SQL"])


def measure_access(stores: Stores, person: Person, repeat: int, results: Results) -> None:
    """Both sides in turns: hand-written SQL, the read path (CRM bindings, then all three
    stores), the whole `fulfil` (CRM bindings, then all three stores)."""
    url = stores.copy("access")
    environ = stores.environ(url)
    # A warm-up of each Tenure path (imports, the text engine's models), not timed.
    tenure_read(stores.shipped, environ, person)
    runs: dict[str, list[float]] = {}
    parts: dict[str, list[float]] = {}
    for attempt in range(repeat):
        runs.setdefault("hand-written SQL", []).append(
            harness.timed(lambda: run_raw_access(url, person))[0]
        )
        for label, policy in (("CRM", stores.crm_only), ("3 stores", stores.shipped)):
            read = tenure_read(policy, environ, person)
            harness.check(
                read.rows == {t: n for t, n in person.rows.items() if n},
                f"Tenure read {read.rows}, hand-written SQL {person.rows}",
            )
            runs.setdefault(f"read path, {label}, without redaction", []).append(
                read.seconds - read.redaction
            )
            parts.setdefault(f"read path, {label}: redaction of others", []).append(read.redaction)
            if label == "CRM":
                for phase, spent in read.phases.items():
                    parts.setdefault(f"read path, CRM: {phase}", []).append(spent)
            out = stores.workdir / "packages" / f"{label.replace(' ', '_')}_{attempt}.zip"
            whole = tenure_fulfil(policy, environ, person, stores.state_url(), out)
            runs.setdefault(f"whole fulfil, {label}", []).append(whole.seconds)
            parts.setdefault(f"whole fulfil, {label}: package writing", []).append(whole.package)
            parts.setdefault(f"whole fulfil, {label}: redaction of others", []).append(
                whole.redaction
            )
            if attempt == 0:
                results.person[f"records, {label}"] = read.stores
        print(
            f"  access run {attempt + 1}: "
            + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in runs.items())
        )
    results.access = {k: harness.Runs.of(v) for k, v in runs.items()}
    results.access_parts = {k: harness.Runs.of(v) for k, v in parts.items()}
    stores.drop("access")


def measure_explain(stores: Stores, person: Person, seqscan: bool, results: Results) -> None:
    """Record what the read path (CRM bindings) sends to the CRM store, EXPLAIN it; then
    again on a copy without `DROPPED_INDEX`, with `tenure validate`'s warnings."""
    url = stores.copy("explained")
    recorded = Statements("explained")
    with recorded.recording():
        tenure_read(stores.crm_only, stores.environ(url), person)
    results.statements = len(recorded.sent)
    scans = explain(url, recorded.sent, seqscan=seqscan)
    results.explain["with the demo's indexes"] = methods(scans)
    results.full["with the demo's indexes"] = [_shown(s) for s in full_reads(scans)]
    state = stores.state_url()
    results.warnings["with the demo's indexes"] = validate_warnings(
        stores.crm_only, stores.environ(url), state
    )
    with connect(url) as engine, engine.begin() as connection:
        connection.execute(text(f"DROP INDEX {DROPPED_INDEX}"))
        connection.execute(text("ANALYZE web_clicks"))
    scans = explain(url, recorded.sent, seqscan=seqscan)
    results.explain[f"without {DROPPED_INDEX}"] = methods(scans)
    results.full[f"without {DROPPED_INDEX}"] = [_shown(s) for s in full_reads(scans)]
    results.warnings[f"without {DROPPED_INDEX}"] = validate_warnings(
        stores.crm_only, stores.environ(url), state
    )
    stores.drop("explained")
    for label, found in results.explain.items():
        print(f"  EXPLAIN, {label}:")
        for table, ways in found.items():
            print(f"    {table}: {'; '.join(ways)}")
        for table, statement in results.full[label]:
            print(f"    read whole: {table}, by {statement}")
        for warning in results.warnings[label]:
            print(f"    {warning}")


def _shown(scan: Scan) -> tuple[str, str]:
    """A whole-table read: its table and statement (on one line, shortened)."""
    return scan.table, " ".join(scan.statement.split())[:400]


def measure_erasure(stores: Stores, person: Person, repeat: int, results: Results) -> None:
    """Both sides in turns, each run on a fresh copy of the seed database (the same
    person, the same rows): hand-written SQL, then `erase` with the CRM bindings. The
    rows each side deleted and rewrote must be the same."""
    before = person_state(stores.server.url(stores.seed), person)
    runs: dict[str, list[float]] = {}
    parts: dict[str, list[float]] = {}
    changed: dict[str, int] = {}
    for attempt in range(repeat):
        raw_url = stores.copy("raw")
        runs.setdefault("hand-written SQL", []).append(run_raw_erasure(raw_url, person))
        raw_done = erased(before, person_state(raw_url, person))
        stores.drop("raw")
        url = stores.copy("tenure")
        run = tenure_erase(stores.crm_only, stores.environ(url), person, stores.state_url())
        tenure_done = erased(before, person_state(url, person))
        stores.drop("tenure")
        harness.check(
            tenure_done == raw_done,
            "the two erasures differ: "
            + "; ".join(
                f"{t}: Tenure deleted {len(tenure_done[t][0])} rewrote {len(tenure_done[t][1])},"
                f" SQL deleted {len(raw_done[t][0])} rewrote {len(raw_done[t][1])}"
                for t in raw_done
                if tenure_done[t] != raw_done[t]
            ),
        )
        runs.setdefault("erase, CRM", []).append(run.seconds)
        parts.setdefault("erase, CRM: the search afterwards", []).append(run.proof)
        parts.setdefault("erase, CRM: text redaction (support tickets)", []).append(run.redaction)
        changed = run.changed
        print(
            f"  erasure run {attempt + 1}: hand-written SQL {runs['hand-written SQL'][-1]:.3f} s,"
            f" erase {run.seconds:.3f} s (search afterwards {run.proof:.3f} s)"
        )
    results.person["erased"] = {
        t: {"deleted": len(d), "rewritten": len(r)} for t, (d, r) in raw_done.items()
    }
    results.person["tenure changed"] = changed
    results.erasure = {k: harness.Runs.of(v) for k, v in runs.items()}
    results.erasure_parts = {k: harness.Runs.of(v) for k, v in parts.items()}


def profile(stores: Stores, person: Person, top: int = 25) -> None:
    """cProfile one read path and one erasure (CRM bindings), after a warm-up."""
    url = stores.copy("profiled")
    environ = stores.environ(url)
    tenure_read(stores.crm_only, environ, person)
    for name, work in (
        ("read path", lambda: tenure_read(stores.crm_only, environ, person)),
        ("erase", lambda: tenure_erase(stores.crm_only, environ, person, stores.state_url())),
    ):
        recorded = Statements("profiled")
        profiler = harness.Profile()
        with recorded.recording(), profiler.running():
            seconds, _ = harness.timed(work)
        print(f"\n== {name}, CRM bindings: {seconds:.3f} s under cProfile,"
              f" {len(recorded.sent)} statements sent to the CRM store")  # fmt: skip
        print(profiler.report(top, ("cumulative", "tottime")))
    stores.drop("profiled")


def render(results: Results, repeat: int) -> str:
    def table(
        title: str, side: str, runs: Mapping[str, harness.Runs], parts: Mapping[str, harness.Runs]
    ) -> list[str]:
        rows = []
        for label, measured in runs.items():
            baseline = label == "hand-written SQL"
            value = results.ratio(side, label)
            verdict = "" if baseline else f"{TARGETS[side]} {TARGETS[side].verdict(value)}"
            rows.append(
                [
                    label,
                    f"{measured.median:.3f}",
                    f"{measured.spread:.0%}",
                    "1.00x" if baseline else f"{value:.2f}x",
                    verdict,
                ]
            )
        for label, measured in parts.items():
            rows.append([f"- {label}", f"{measured.median:.3f}", f"{measured.spread:.0%}", "", ""])
        return [
            "",
            f"{title} (median of {repeat}; spread = (slowest - fastest) / median)",
            "",
            harness.markdown_table(["Side", "Seconds", "Spread", "Ratio", "Goal"], rows, "lrrrl"),
        ]

    lines = [
        f"One person's requests on PostgreSQL {results.version}, {os.cpu_count()} CPUs:"
        f" {sum(results.rows.values()):,} CRM rows, customer {results.person['customer_id']}",
    ]
    lines += table("Access", "access", results.access, results.access_parts)
    lines += table("Erasure", "erasure", results.erasure, results.erasure_parts)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    given = ["--smoke" if a == "--quick" else a for a in (sys.argv[1:] if argv is None else argv)]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--customers",
        type=int,
        default=9_000,
        help="customers of the scaled demo (9,000: about 1,000,000 CRM rows)",
    )
    parser.add_argument(
        "--person", type=int, help="the customer to answer for (default: chosen, see README)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each side, taken in turns (medians)"
    )
    parser.add_argument(
        "--seqscan",
        choices=["on", "off"],
        default="on",
        help="EXPLAIN as the planner chooses (on), or with sequential scans priced out"
        " (off: for tables too small to need an index)",
    )
    parser.add_argument("--quick", action="store_true", help="the same as --smoke")
    args = harness.parse_args(
        parser, given, SMOKE, profile="cProfile one read path and one erasure instead"
    )
    os.environ.setdefault("TENURE_PSEUDONYM_KEY_ACCOUNTS", "bench-only-accounts-key-2026")
    results = Results()
    with (
        harness.Benchmark("requests_vs_sql", args) as run,
        harness.work_folder(None, "tenure-bench-requests-") as workdir,
    ):
        started = time.perf_counter()
        stores = Stores(workdir, args.customers)
        try:
            results.version = stores.version
            results.rows = stores.rows
            results.files = stores.file_counts
            print(
                f"built the demo in {time.perf_counter() - started:.0f} s:"
                f" {sum(stores.rows.values()):,} CRM rows ("
                + ", ".join(f"{t} {n:,}" for t, n in stores.rows.items())
                + "); "
                + ", ".join(f"{k} {v:,}" for k, v in stores.file_counts.items())
            )
            person = choose_person(stores.server.url(stores.seed), args.person)
            results.person = {"customer_id": person.customer_id, "rows": person.rows}
            print(f"customer {person.customer_id}: " + ", ".join(
                f"{t} {n}" for t, n in person.rows.items()))  # fmt: skip
            if args.profile:
                profile(stores, person)
                return
            print("access:")
            measure_access(stores, person, args.repeat, results)
            print("EXPLAIN of what the read path sends to the CRM store:")
            measure_explain(stores, person, args.seqscan == "on", results)
            print(f"  {results.statements} statements sent to the CRM store by one read path")
            print("erasure:")
            measure_erasure(stores, person, args.repeat, results)
        finally:
            stores.close()
        print()
        print(render(results, args.repeat))
        whole = sorted({t for t, _ in results.full["with the demo's indexes"]})
        harness.check(not whole, f"a bound table is read whole: {', '.join(whole)}")
        dropped = results.explain[f"without {DROPPED_INDEX}"].get("web_clicks", [])
        harness.check(
            "web_clicks" in {t for t, _ in results.full[f"without {DROPPED_INDEX}"]},
            f"without {DROPPED_INDEX} web_clicks is still read by {dropped}",
        )
        harness.check(
            any(DROPPED_INDEX.removeprefix("ix_web_clicks_") in w for w in
                results.warnings[f"without {DROPPED_INDEX}"]),
            "tenure validate did not warn of the missing index",
        )  # fmt: skip
        run.figures.update(
            {
                "postgresql": results.version,
                "now": NOW,
                "rows": results.rows,
                "files": results.files,
                "person": results.person,
                "access": results.access,
                "access_parts": results.access_parts,
                "erasure": results.erasure,
                "erasure_parts": results.erasure_parts,
                "ratios": {
                    side: {
                        label: results.ratio(side, label)
                        for label in (results.access if side == "access" else results.erasure)
                    }
                    for side in ("access", "erasure")
                },
                "explain": results.explain,
                "read_whole": results.full,
                "validate_warnings": results.warnings,
                "statements": results.statements,
                "explain_seqscan": args.seqscan,
            }
        )
        print(
            f"\nEXPLAIN check passed: {results.statements} statements sent to the CRM store,"
            " no bound table read whole"
        )


if __name__ == "__main__":
    main()
