"""The access and portability package a person receives (issue 16, point 3): package.json
valid against the published schema, one CSV per dataset, the page in French and English,
every value escaped, formulas neutralised, the same bytes for the same package, portability
restricted to what the person provided, and a store that could not be read said so."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pickle
import stat
import subprocess
import sys
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from flows.rights.package import (
    FATE_COLUMNS,
    FORMULA_STARTS,
    LABELS,
    AccessPackage,
    DatasetSection,
    PackageError,
    RecordEntry,
    csv_cell,
    format_date,
    json_value,
    render_html,
    write_package,
)
from tests.support.pages import parse
from tests.support.paths import REPO

SCHEMA = REPO / "flows" / "schemas" / "access_package.schema.json"
GENERATED = datetime(2026, 1, 5, 14, 30, tzinfo=timezone(timedelta(hours=-5)))


def customers(**changes: Any) -> DatasetSection:
    section = DatasetSection(
        dataset="customers",
        description="Customer accounts",
        store="crm",
        source="crm: customers",
        purpose="manage_account",
        purpose_description="To open and manage your account",
        legal_basis="contract",
        retention="2 years after the account is closed",
        categories={
            "email": ["contact.email"],
            "full_name": ["identity.name"],
            "phone": ["contact.phone"],
            "lifetime_value": ["billing.statistic"],
        },
        provided={"email": True, "full_name": True, "phone": True, "lifetime_value": False},
        records=[
            RecordEntry(
                values={
                    "id": 17,
                    "email": "zoe.tremblay@example.ca",
                    "full_name": "Zoé Tremblay",
                    "phone": "+1 514 555 0100",
                    "lifetime_value": Decimal("-12.50"),
                    "created_at": datetime(2019, 4, 2, 9, 15, 3),
                },
                destroyed_on=None,
                destruction="deleted",
                until_event="while the account is open",
            )
        ],
    )
    return replace(section, **changes)


def invoices() -> DatasetSection:
    return DatasetSection(
        dataset="invoices",
        description="Invoices",
        store="crm",
        source="crm: invoices",
        purpose="legal_obligations",
        purpose_description="To keep the records tax law requires",
        legal_basis="legal_obligation",
        retention="6 years",
        categories={"billing_name": ["identity.name"], "amount": ["billing.transaction"]},
        provided={"billing_name": True, "amount": False},
        records=[
            RecordEntry(
                values={
                    "id": 901,
                    "billing_name": "Zoé Tremblay",
                    "amount": Decimal("114.98"),
                    "issued_at": date(2021, 3, 1),
                },
                destroyed_on=date(2027, 3, 1),
                destruction="deleted",
                until_event=None,
            ),
            RecordEntry(
                values={
                    "id": 902,
                    "billing_name": "Zoé Tremblay",
                    "amount": Decimal("57.49"),
                    "issued_at": date(2020, 1, 1),
                },
                destroyed_on=date(2026, 1, 1),
                destruction="deleted",
                until_event=None,
                held="Litigation file 2025-044, until it is closed",
            ),
        ],
    )


def web_clicks() -> DatasetSection:
    """Usage the organisation derived: nothing in it was provided by the person."""
    return DatasetSection(
        dataset="web_clicks",
        description="Pages visited on our website",
        store="crm",
        source="crm: web_clicks",
        purpose="website_analytics",
        purpose_description="To understand how the website is used",
        legal_basis="legitimate_interest",
        retention="13 months",
        categories={"feature": ["usage.feature"], "clicked_at": ["usage.timestamp"]},
        provided={"feature": False, "clicked_at": False},
        records=[
            RecordEntry(
                values={"feature": "pricing", "clicked_at": datetime(2025, 6, 1, 12, tzinfo=UTC)},
                destroyed_on=date(2026, 7, 1),
                destruction="aggregated then deleted",
                until_event=None,
            )
        ]
        * 3,
    )


def mailbox() -> DatasetSection:
    return DatasetSection(
        dataset="support_mail",
        description="E-mail with our support team",
        store="mail",
        source="mail: INBOX",
        purpose="customer_support",
        purpose_description="To answer your questions",
        legal_basis="contract",
        retention="3 years",
        categories={"body": ["communication.content"]},
        provided={"body": True},
        records=[],
        failed="the mail server did not answer (connection refused)",
    )


def package(**changes: Any) -> AccessPackage:
    base = AccessPackage(
        request_id="req-2026-0007",
        kind="access",
        generated_at=GENERATED,
        language="fr",
        organisation="Logiciels Exemple inc.",
        person={"customer_id": ["17"], "email": ["zoe.tremblay@example.ca"]},
        sections=[customers(), invoices(), web_clicks(), mailbox()],
    )
    return replace(base, **changes)


def unzip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def text_of(html: str) -> str:
    return parse(html).words()


# --- package.json -----------------------------------------------------------------------------


def test_package_json_validates_against_the_published_schema(tmp_path: Path) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    written = write_package(package(), tmp_path / "req.zip")
    content = json.loads(unzip(written.path)["package.json"])

    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    assert sorted(e.message for e in validator.iter_errors(content)) == []
    assert content["format"] == "tenure-access-package"
    assert content["generated_at"] == "2026-01-05T14:30:00-05:00"
    assert [d["dataset"] for d in content["datasets"]] == [
        "customers",
        "invoices",
        "web_clicks",
        "support_mail",
    ]
    record = content["datasets"][0]["records"][0]
    assert record["values"]["lifetime_value"] == "-12.50"  # exact, as text
    assert record["values"]["created_at"] == "2019-04-02T09:15:03"
    assert record["destroyed_on"] is None
    assert record["until_event"] == "while the account is open"
    held = content["datasets"][1]["records"][1]
    assert held["destroyed_on"] == "2026-01-01"
    assert held["held"] == "Litigation file 2025-044, until it is closed"
    assert written.counts == {"customers": 1, "invoices": 2, "web_clicks": 3, "support_mail": 0}


def test_a_record_without_date_or_event_is_refused_and_nothing_written(tmp_path: Path) -> None:
    """The schema is checked before writing: a record saying neither when it will be
    destroyed nor what it waits for is a bug of the caller, not a package."""
    silent = RecordEntry({"id": 1}, destroyed_on=None, destruction="deleted", until_event=None)
    broken = package(sections=[customers(records=[silent])])
    out = tmp_path / "req.zip"
    with pytest.raises(PackageError, match="until_event"):
        write_package(broken, out)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"generated_at": datetime(2026, 1, 5, 14, 30)}, "needs a time zone"),
        ({"sections": [customers(dataset="../etc")]}, "cannot name a file"),
        ({"sections": [customers(), customers()]}, "given twice: customers"),
    ],
)
def test_a_package_that_cannot_be_written_says_why(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(PackageError, match=message):
        write_package(package(**changes), tmp_path / "req.zip")
    assert list(tmp_path.iterdir()) == []


def test_values_become_json_as_the_schema_says() -> None:
    assert json_value(date(2024, 2, 29)) == "2024-02-29"
    assert json_value(datetime(2024, 2, 29, 23, 5, tzinfo=UTC)) == "2024-02-29T23:05:00+00:00"
    assert json_value(Decimal("0.10")) == "0.10"
    assert json_value(b"\x00\xff") == {"base64": "AP8="}
    assert json_value(np.int64(7)) == 7
    assert json_value(pd.Timestamp("2024-01-01 10:00")) == "2024-01-01T10:00:00"
    assert json_value(float("nan")) is None
    assert json_value(pd.NaT) is None
    assert json_value(float("inf")) == "inf"
    assert json_value({"tags": ["a", Decimal("1.5")]}) == {"tags": ["a", "1.5"]}


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.text(),
    st.binary(),
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(UTC)),
)


@settings(max_examples=200, deadline=None)
@given(st.recursive(_SCALARS, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner)))
def test_every_value_becomes_strict_json(value: Any) -> None:
    """Whatever a store holds, package.json is strict JSON (no NaN, no Infinity)."""
    json.dumps(json_value(value), allow_nan=False)


# --- CSV --------------------------------------------------------------------------------------


def test_one_csv_per_dataset_with_a_header_and_the_destruction_columns(tmp_path: Path) -> None:
    files = unzip(write_package(package(), tmp_path / "req.zip").path)

    assert sorted(name for name in files if name.endswith(".csv")) == [
        "customers.csv",
        "invoices.csv",
        "support_mail.csv",
        "web_clicks.csv",
    ]
    header, *rows = csv_rows(files["invoices.csv"])
    assert header == ["id", "billing_name", "amount", "issued_at", *FATE_COLUMNS]
    assert rows == [
        ["901", "Zoé Tremblay", "114.98", "2021-03-01", "2027-03-01", "deleted", "", ""],
        [
            "902",
            "Zoé Tremblay",
            "57.49",
            "2020-01-01",
            "2026-01-01",
            "deleted",
            "",
            "Litigation file 2025-044, until it is closed",
        ],
    ]
    header, *rows = csv_rows(files["customers.csv"])
    assert header[-4:] == list(FATE_COLUMNS)
    assert dict(zip(header, rows[0], strict=True))["until_event"] == "while the account is open"
    assert len(csv_rows(files["web_clicks.csv"])) == 1 + 3
    assert files["customers.csv"].decode("utf-8").startswith("id,")  # no byte-order mark


def test_csv_cells_that_would_start_a_formula_are_neutralised(tmp_path: Path) -> None:
    hostile = {
        "id": 17,
        "email": '=HYPERLINK("http://evil.invalid","x")',
        "full_name": "@SUM(A1:A9)",
        "phone": "+1 514 555 0100",
        "note": "-2+3",
        "tabbed": "\t=1",
        "lifetime_value": Decimal("-12.50"),
        "balance": -3,
    }
    record = RecordEntry(hostile, destroyed_on=date(2027, 1, 1), destruction="deleted",
                         until_event=None)  # fmt: skip
    written = write_package(package(sections=[customers(records=[record])]), tmp_path / "r.zip")
    files = unzip(written.path)
    header, row = csv_rows(files["customers.csv"])
    cells = dict(zip(header, row, strict=True))

    assert cells["email"] == '\'=HYPERLINK("http://evil.invalid","x")'
    assert cells["full_name"] == "'@SUM(A1:A9)"
    assert cells["phone"] == "'+1 514 555 0100"
    assert cells["note"] == "'-2+3"
    assert cells["tabbed"] == "'\t=1"
    assert cells["lifetime_value"] == "-12.50"  # a number stays a number
    assert cells["balance"] == "-3"
    values = json.loads(files["package.json"])["datasets"][0]["records"][0]["values"]
    assert values["email"] == hostile["email"]  # package.json keeps the exact value
    page = text_of(files["index.html"].decode())
    assert "précédé d'une apostrophe (') afin qu'un tableur ne l'exécute pas" in page


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_no_text_cell_starts_a_formula(text: str) -> None:
    cell = csv_cell(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert cell in (text, "'" + text)


# --- the page ---------------------------------------------------------------------------------


def test_the_french_page_says_what_why_and_until_when(tmp_path: Path) -> None:
    files = unzip(write_package(package(language="fr"), tmp_path / "req.zip").path)
    html = files["index.html"].decode("utf-8")
    page = text_of(html)

    assert '<html lang="fr">' in html
    assert "Vos renseignements personnels" in page
    assert "Produit le 5 janvier 2026 à 14 h 30 (UTC\u221205:00)" in page
    assert "Finalité To keep the records tax law requires (legal_obligations)" in page
    assert "Fondement juridique Obligation légale" in page
    assert "Catégories de renseignements" in page
    assert "Source crm: invoices" in page
    assert "Conservé jusqu'au 1er mars 2027, puis supprimé." in page
    assert "Conservé while the account is open, puis supprimé." in page
    assert "Conservé au-delà de cette date en raison d'une suspension légale" in page
    assert "Litigation file 2025-044, until it is closed." in page
    assert "intégré à des statistiques anonymes, puis supprimé" in page
    assert "2 avril 2019 à 9 h 15 min 03 s" in page  # a value's timestamp
    assert "Enregistrement 2 sur 2" in page
    for english in ("Kept until", "Legal basis", "Record 1 of", "Generated on", "Purpose"):
        assert english not in page


def test_the_english_page_says_the_same_in_english(tmp_path: Path) -> None:
    files = unzip(write_package(package(language="en"), tmp_path / "req.zip").path)
    html = files["index.html"].decode("utf-8")
    page = text_of(html)

    assert '<html lang="en">' in html
    assert "Your personal information" in page
    assert "Generated on January 5, 2026 at 14:30 (UTC\u221205:00)" in page
    assert "Legal basis Legal obligation" in page
    assert "Kept until March 1, 2027, then deleted." in page
    assert "Kept while the account is open, then deleted." in page
    assert "Kept past that date under a legal hold: Litigation file 2025-044" in page
    assert "added to anonymous statistics, then deleted" in page
    for french in ("Conservé", "Fondement", "Enregistrement", "Produit le", "Finalité"):
        assert french not in page


def test_both_languages_have_every_label() -> None:
    assert set(LABELS["fr"]) == set(LABELS["en"])
    for key in LABELS["fr"]:
        placeholders = [LABELS[lang][key].count("{") for lang in ("fr", "en")]
        assert placeholders[0] == placeholders[1], key


@pytest.mark.parametrize(
    ("day", "fr", "en"),
    [
        (date(2027, 3, 1), "1er mars 2027", "March 1, 2027"),
        (date(2024, 2, 29), "29 février 2024", "February 29, 2024"),
        (date(2025, 8, 15), "15 août 2025", "August 15, 2025"),
        (date(2025, 12, 31), "31 décembre 2025", "December 31, 2025"),
    ],
)
def test_dates_are_written_for_the_language(day: date, fr: str, en: str) -> None:
    assert format_date(day, "fr") == fr
    assert format_date(day, "en") == en


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    html = unzip(write_package(package(), tmp_path / "req.zip").path)["index.html"].decode()
    page = parse(html)

    assert not set(page.tags) & {"script", "link", "img", "iframe", "object", "embed", "form"}
    for tag, name, value in page.attributes:
        if name in ("src", "href", "action", "srcset"):
            assert value is not None and value.startswith("#"), (tag, name, value)
    assert "url(" not in html and "@import" not in html and "http://" not in html
    csp = [
        v
        for t, n, v in page.attributes
        if t == "meta" and n == "content" and "default-src" in (v or "")
    ]
    assert csp == [
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; "
        "form-action 'none'; base-uri 'none'"
    ]


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;"\''


def test_every_value_on_the_page_is_escaped(tmp_path: Path) -> None:
    """A value, a description, an identifier, a reason: none can add markup to the page."""
    record = RecordEntry(
        {"id": 1, "email": HOSTILE, "full_name": "Zoé"},
        destroyed_on=None,
        destruction="anonymized",
        until_event=HOSTILE,
        held=HOSTILE,
    )
    hostile = package(
        organisation=HOSTILE,
        request_id=HOSTILE,
        person={HOSTILE: [HOSTILE]},
        sections=[
            customers(records=[record], description=HOSTILE, source=HOSTILE, retention=HOSTILE),
            replace(mailbox(), failed=HOSTILE, purpose_description=HOSTILE),
        ],
    )
    benign = package(
        person={"email": ["x"]},
        sections=[customers(records=[replace(record, held="x")]), mailbox()],
    )
    html = unzip(write_package(hostile, tmp_path / "h.zip").path)["index.html"].decode()
    calm = unzip(write_package(benign, tmp_path / "b.zip").path)["index.html"].decode()

    assert parse(html).tags == parse(calm).tags  # no element added
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert HOSTILE in " ".join(parse(html).text)  # shown as text, whole


@settings(max_examples=100, deadline=None)
@given(
    st.text(st.characters(codec="utf-8"))
    | st.text(alphabet="<>/&;#=\"' abgimprstx")  # markup's own characters, often
)
def test_any_value_is_shown_as_text(value: str) -> None:
    record = RecordEntry({"email": value}, destroyed_on=date(2027, 1, 1), destruction="deleted",
                         until_event=None)  # fmt: skip
    calm = RecordEntry({"email": "x"}, destroyed_on=date(2027, 1, 1), destruction="deleted",
                       until_event=None)  # fmt: skip
    html = render_html(package(sections=[customers(records=[record])]))
    assert (
        parse(html).tags == parse(render_html(package(sections=[customers(records=[calm])]))).tags
    )
    if value.strip():
        assert value in "".join(parse(html).text)


# --- the same package, the same bytes ---------------------------------------------------------


def test_the_same_package_gives_the_same_bytes_and_hash(tmp_path: Path) -> None:
    first = write_package(package(), tmp_path / "a" / "req.zip")
    second = write_package(package(), tmp_path / "b" / "req.zip")

    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    with zipfile.ZipFile(first.path) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos][:2] == ["package.json", "index.html"]
    assert {info.date_time for info in infos} == {(2026, 1, 5, 19, 30, 0)}  # generated_at, UTC
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600  # personal information
    assert [p.name for p in first.path.parent.iterdir()] == ["req.zip"]  # no temporary left


def test_another_process_gives_the_same_hash(tmp_path: Path) -> None:
    """Nothing depends on the process (hash seed, clock, working directory)."""
    here = write_package(package(), tmp_path / "here.zip")
    (tmp_path / "package.pickle").write_bytes(pickle.dumps(package()))
    script = (
        "import pickle, sys; from pathlib import Path;"
        "from flows.rights.package import write_package;"
        "given = pickle.loads(Path(sys.argv[1]).read_bytes());"
        "print(write_package(given, Path(sys.argv[2])).sha256)"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345", "TZ": "Asia/Tokyo"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "package.pickle"), str(tmp_path / "x.zip")],
        capture_output=True, text=True, check=True, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert result.stdout.strip() == here.sha256


def test_a_changed_value_changes_the_hash(tmp_path: Path) -> None:
    before = write_package(package(), tmp_path / "a.zip")
    changed = customers(
        records=[replace(customers().records[0], values={"id": 17, "email": "z@example.ca"})]
    )
    after = write_package(package(sections=[changed]), tmp_path / "b.zip")
    assert before.sha256 != after.sha256


# --- portability ------------------------------------------------------------------------------


def test_portability_holds_only_what_the_person_provided(tmp_path: Path) -> None:
    """The engine may hand over every column: the package keeps the provided ones only,
    names the others, and lists the datasets holding nothing provided."""
    written = write_package(package(kind="portability"), tmp_path / "req.zip")
    files = unzip(written.path)
    content = json.loads(files["package.json"])

    assert content["derived_data_included"] is False
    by_name = {d["dataset"]: d for d in content["datasets"]}
    assert list(by_name) == ["customers", "invoices", "support_mail"]
    assert by_name["customers"]["columns"] == ["email", "full_name", "phone"]
    assert by_name["customers"]["withheld_columns"] == ["id", "lifetime_value", "created_at"]
    assert set(by_name["customers"]["records"][0]["values"]) == {"email", "full_name", "phone"}
    assert by_name["customers"]["provided"] == {"email": True, "full_name": True, "phone": True}
    assert "lifetime_value" not in by_name["customers"]["categories"]
    assert by_name["invoices"]["columns"] == ["billing_name"]
    assert content["not_included"] == [
        {"dataset": "web_clicks", "description": "Pages visited on our website", "records": 3}
    ]
    assert "web_clicks.csv" not in files
    header, _row = csv_rows(files["customers.csv"])
    assert header == ["email", "full_name", "phone", *FATE_COLUMNS]
    assert written.counts == {"customers": 1, "invoices": 2, "support_mail": 0}
    assert b"-12.50" not in b"".join(files.values())  # the derived value is nowhere

    page = text_of(files["index.html"].decode())
    assert "Les données dérivées (statistiques d'utilisation, calculs, déductions) ne sont " \
        "pas incluses." in page  # fmt: skip
    assert "Non inclus, car vous ne les avez pas fournis (3) : id, lifetime_value, " \
        "created_at." in page  # fmt: skip
    assert "Ensembles non inclus dans la copie portable" in page
    assert "Pages visited on our website (web_clicks) 3 enregistrement(s) non inclus" in page
    assert "Demande de portabilité" in page


def test_an_access_package_holds_every_column(tmp_path: Path) -> None:
    content = json.loads(unzip(write_package(package(), tmp_path / "r.zip").path)["package.json"])
    assert content["derived_data_included"] is True
    assert content["not_included"] == []
    assert content["datasets"][0]["columns"] == [
        "id", "email", "full_name", "phone", "lifetime_value", "created_at",
    ]  # fmt: skip
    assert content["datasets"][0]["withheld_columns"] == []


# --- a store that could not be read -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["access", "portability"])
def test_a_store_that_could_not_be_read_is_said_so(tmp_path: Path, kind: str) -> None:
    written = write_package(package(kind=kind), tmp_path / "req.zip")
    files = unzip(written.path)
    content = json.loads(files["package.json"])
    mail = next(d for d in content["datasets"] if d["dataset"] == "support_mail")

    assert mail["failed"] == "the mail server did not answer (connection refused)"
    assert mail["record_count"] == 0 and mail["records"] == []
    assert csv_rows(files["support_mail.csv"]) == [["body", *FATE_COLUMNS]]
    assert written.counts["support_mail"] == 0
    page = text_of(files["index.html"].decode())
    assert "E-mail with our support team mail: INBOX n'a pas pu être lu" in page  # contents
    assert (
        "Cette source n'a pas pu être lue : ses renseignements ne figurent pas dans ce dossier, "
        "et la demande reste ouverte pour elle. Motif : the mail server did not answer "
        "(connection refused)"
    ) in page
    assert "Aucun enregistrement vous concernant." not in page


def test_a_dataset_without_records_says_so(tmp_path: Path) -> None:
    empty = customers(records=[])
    page = text_of(render_html(package(sections=[empty], language="en")))
    assert "No record about you." in page
