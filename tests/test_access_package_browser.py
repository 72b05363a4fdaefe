"""The access package's page, as a person's browser shows it: loaded from disk into a real
headless Chromium with every network path closed, its rendered text read back (the DOM
after the page has run), in French and in English. A value holding a script shows as text
and runs nothing. Skipped, saying why, when Chromium is not installed (`make
server-binaries` installs Debian's)."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from flows.rights.package import AccessPackage, DatasetSection, RecordEntry, write_package
from tests.support.browser import dump_dom
from tests.support.pages import Page, parse

pytestmark = pytest.mark.servers  # starts a browser

#: Sets a mark on the page if it ever runs: in an element, an attribute or an event handler.
INJECTED = (
    "<script>document.title='RAN';document.documentElement.setAttribute('data-ran','1')"
    "</script><img src=x onerror=\"document.documentElement.setAttribute('data-ran','1')\">"
)


def package(language: str) -> AccessPackage:
    invoices = DatasetSection(
        dataset="invoices",
        description="Factures",
        store="crm",
        source="crm: invoices",
        purpose="legal_obligations",
        purpose_description="Conserver les registres qu'exige la loi fiscale",
        legal_basis="legal_obligation",
        retention="6 ans",
        categories={"billing_name": ["identity.name"], "amount": ["billing.transaction"]},
        provided={"billing_name": True, "amount": False},
        records=[
            RecordEntry(
                values={"id": 901, "billing_name": "Zoé Tremblay", "amount": Decimal("114.98")},
                destroyed_on=date(2027, 3, 1),
                destruction="deleted",
                until_event=None,
            )
        ],
    )
    notes = DatasetSection(
        dataset="support_notes",
        description="Notes de soutien",
        store="crm",
        source="crm: support_notes",
        purpose="customer_support",
        purpose_description="Répondre à vos questions",
        legal_basis="contract",
        retention="3 ans après la fermeture du compte",
        categories={"note": ["communication.content"]},
        provided={"note": True},
        records=[
            RecordEntry(
                values={"id": 5, "note": INJECTED},
                destroyed_on=None,
                destruction="anonymized",
                until_event="tant que le compte est ouvert",
            )
        ],
    )
    return AccessPackage(
        request_id="req-2026-0007",
        kind="access",
        generated_at=datetime(2026, 1, 5, 19, 30, tzinfo=UTC),
        language="fr" if language == "fr" else "en",
        organisation="Logiciels Exemple inc.",
        person={"customer_id": ["17"]},
        sections=[invoices, notes],
    )


def open_in_browser(tmp_path: Path, language: str) -> tuple[Page, str]:
    written = write_package(package(language), tmp_path / "package.zip")
    with zipfile.ZipFile(written.path) as archive:
        archive.extract("index.html", tmp_path / "unzipped")
    dom = dump_dom(tmp_path / "unzipped" / "index.html", tmp_path / "profile")
    return parse(dom), dom


def test_the_french_page_renders_and_an_injected_script_does_not_run(tmp_path: Path) -> None:
    page, dom = open_in_browser(tmp_path, "fr")
    text = page.words()

    assert page.attribute("html", "lang") == "fr"
    assert "Conservé jusqu'au 1er mars 2027, puis supprimé." in text
    assert "Conservé tant que le compte est ouvert, puis anonymisé." in text
    assert "Zoé Tremblay" in text and "114.98" in text
    assert "Fondement juridique Obligation légale" in text
    assert "Produit le 5 janvier 2026 à 19 h 30 UTC" in text
    # The value is on the page as text, whole, and nothing of it ran.
    assert INJECTED in " ".join(page.text)
    assert "script" not in page.tags and "img" not in page.tags
    assert page.attribute("html", "data-ran") is None
    assert page.title == "Vos renseignements personnels · Logiciels Exemple inc."
    assert "RAN" not in page.title
    assert "<script" not in dom.lower()


def test_the_english_page_renders(tmp_path: Path) -> None:
    page, _ = open_in_browser(tmp_path, "en")
    text = page.words()

    assert page.attribute("html", "lang") == "en"
    assert "Kept until March 1, 2027, then deleted." in text
    assert "Legal basis Legal obligation" in text
    assert "Generated on January 5, 2026 at 19:30 UTC" in text
    assert "Zoé Tremblay" in text
    assert page.attribute("html", "data-ran") is None
