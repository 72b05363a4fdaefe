"""The PII column classifier: confidence bound, name rules, type-first rules, recognizers.

Every test that classifies runs the shared Presidio engine; the session's network guard
(tests/conftest.py) fails any of them that opens a connection beyond loopback.
"""

from __future__ import annotations

import math
import random
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anonymizers.detection import LABEL_THRESHOLD, classify_column, wilson_lower_bound
from anonymizers.detection.name_rules import match_column_name, tokenize
from anonymizers.detection.recognizers import QuebecHealthNumberRecognizer, missing_recognizers
from anonymizers.detection.text_engine import text_engine
from anonymizers.text_redaction import redact_texts

counts = st.integers(min_value=1, max_value=10**7).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)
Z = 1.96


@given(counts)
def test_wilson_bound_is_a_share_no_larger_than_the_observed_one(hits_n: tuple[int, int]) -> None:
    hits, n = hits_n
    bound = wilson_lower_bound(hits, n)
    assert 0.0 <= bound <= hits / n <= 1.0


@given(counts)
def test_wilson_bound_grows_with_hits(hits_n: tuple[int, int]) -> None:
    hits, n = hits_n
    if hits < n:
        assert wilson_lower_bound(hits, n) < wilson_lower_bound(hits + 1, n)


@given(counts, st.integers(min_value=2, max_value=1000))
def test_wilson_bound_tends_to_the_share(hits_n: tuple[int, int], factor: int) -> None:
    hits, n = hits_n
    share = hits / n
    gap, larger_gap = (
        share - wilson_lower_bound(hits, n),
        share - wilson_lower_bound(hits * factor, n * factor),
    )
    assert larger_gap <= gap + 1e-12
    assert gap <= Z / (2 * math.sqrt(n)) + Z * Z / n


def test_wilson_bound_edge_cases() -> None:
    assert wilson_lower_bound(0, 0) == 0.0
    assert wilson_lower_bound(0, 10) == 0.0
    assert wilson_lower_bound(1, 1_000) < 0.01  # one stray value in a thousand
    assert 0.98 < wilson_lower_bound(1_000, 1_000) < 1.0
    with pytest.raises(ValueError):
        wilson_lower_bound(3, 2)
    with pytest.raises(ValueError):
        wilson_lower_bound(1, 2, z=0)


@pytest.mark.parametrize(
    ("name", "entity"),
    [
        ("email", "EMAIL_ADDRESS"),
        ("courriel", "EMAIL_ADDRESS"),
        ("E-Mail", "EMAIL_ADDRESS"),
        ("customerEmail", "EMAIL_ADDRESS"),
        ("adresse_courriel", "EMAIL_ADDRESS"),
        ("téléphone", "PHONE_NUMBER"),
        ("homePhone2", "PHONE_NUMBER"),
        ("Tel", "PHONE_NUMBER"),
        ("Prénom", "PERSON"),
        ("lastName", "PERSON"),
        ("nom_de_famille", "PERSON"),
        ("adresse", "LOCATION"),
        ("codePostal", "CA_POSTAL_CODE"),
        ("zip", "CA_POSTAL_CODE"),
        ("NAS", "CA_SIN"),
        ("social_insurance_number", "CA_SIN"),
        ("adresseIP", "IP_ADDRESS"),
        ("IPAddress", "IP_ADDRESS"),
        ("numéro_carte", "CREDIT_CARD"),
        ("date_de_naissance", "DATE_OF_BIRTH"),
        ("DOB", "DATE_OF_BIRTH"),
        ("carte_soleil", "CA_QC_HEALTH_NUMBER"),
        ("RAMQ", "CA_QC_HEALTH_NUMBER"),
    ],
)
def test_name_rules(name: str, entity: str) -> None:
    assert [match.entity for match in match_column_name(name)] == [entity]


@pytest.mark.parametrize(
    "name",
    [
        "amount", "c1", "email_verified", "phone_id", "nom_produit", "gift_card", "ip_country",
        "phone_model", "card_design", "ip_range_label", "modele_telephone", "couleur_carte",
    ],
)  # fmt: skip
def test_names_that_suggest_nothing(name: str) -> None:
    assert match_column_name(name) == ()


def test_tokenize_splits_case_and_folds_accents() -> None:
    assert tokenize("numéroDeTéléphone_2") == ("numero", "telephone", "2")
    assert tokenize("IPAddress") == ("ip", "address")


def test_numbers_are_phones_only_when_valid_canadian_numbers() -> None:
    """Ten-digit ids and order numbers are not phones because of their length: a number
    column is one when most of its values are valid numbers of Canadian area codes (one
    random ten-digit number in twenty is)."""
    rng = random.Random(8)
    orders = [rng.randint(10**9, 10**10 - 1) for _ in range(500)]
    ids = [1_000_000_000 + i for i in range(500)]
    area_codes = (514, 438, 450, 418, 819, 613, 416, 604)
    phones = [rng.choice(area_codes) * 10**7 + rng.randint(2_000_000, 9_999_999) for _ in ids]
    assert classify_column("c1", "integer", orders).labels() == frozenset()
    assert classify_column("c1", "integer", ids).entities == {}
    assert classify_column("c1", "integer", phones).labels() == {"PHONE_NUMBER"}
    as_text = classify_column("c1", "text", [str(phone) for phone in phones])
    assert as_text.labels() == {"PHONE_NUMBER"}  # the same digits, typed as text
    assert classify_column("amount", "numeric", [1234567.89, 5145550123.5, None]).entities == {}


def _luhn_valid(number: int) -> bool:
    digits = [int(d) for d in str(number)][::-1]
    total = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(digits)
    )
    return total % 10 == 0


def test_numbers_are_labelled_by_name_and_by_sin_shape() -> None:
    distinct = [n for n in range(130_692_544, 130_693_544) if _luhn_valid(n)][:50]
    sins = distinct * 2  # valid SINs (Luhn), each twice
    assert classify_column("nas", "integer", [1, 2, 3]).labels() == {"CA_SIN"}
    unnamed = classify_column("c4", "integer", sins)
    assert unnamed.labels() == {"CA_SIN"}
    assert unnamed.hits == {"CA_SIN": 80}, "settled after 40 distinct values, each twice"
    assert classify_column("c4", "integer", sins, settle_early=False).hits == {"CA_SIN": 100}
    assert classify_column("cell", "integer", [5145550123]).labels() == {"PHONE_NUMBER"}


def test_dates_are_birth_dates_by_name_or_by_spread() -> None:
    """A date column holds dates (DATE_TIME, not personal); birth dates when its name says
    so, or when its dates lie 14 to 110 years back over decades, as only births do."""
    days = [date(1985, 1, 2), date(1990, 3, 4)]
    assert classify_column("date_naissance", "date", days).labels() == {"DATE_OF_BIRTH"}
    assert classify_column("courriel", "date", days).labels() == {"DATE_TIME"}
    assert classify_column("created_on", "date", days).labels() == {"DATE_TIME"}
    assert classify_column("email", "boolean", [True, False]).entities == {}
    rng = random.Random(9)
    this_year = date.today().year
    births = [date(this_year - rng.randint(18, 90), rng.randint(1, 12), 1) for _ in range(300)]
    assert classify_column("d1", "date", births).labels() == {"DATE_OF_BIRTH"}
    as_text = [f"{d.day:02d}/{d.month:02d}/{d.year}" for d in births]
    assert classify_column("d1", "text", as_text).labels() == {"DATE_OF_BIRTH"}
    # An old archive's events span a few years, not a lifetime.
    archive = [date(this_year - rng.randint(16, 30), 6, 1) for _ in range(300)]
    assert classify_column("d1", "date", archive).labels() == {"DATE_TIME"}


def test_one_stray_email_among_a_thousand_notes_is_no_email_column() -> None:
    notes = [
        f"Order {i} shipped on schedule to the regional warehouse this week." for i in range(999)
    ]
    notes.insert(500, "Please write to the depot manager at depot.manager@example.org today.")
    assert "EMAIL_ADDRESS" not in classify_column("notes", "text", notes).labels()
    finding = classify_column("notes", "text", notes, settle_early=False)
    assert finding.free_text
    assert finding.hits["EMAIL_ADDRESS"] == 1
    assert finding.entities["EMAIL_ADDRESS"] < 0.01
    assert "EMAIL_ADDRESS" not in finding.labels()


def test_french_notes_get_person() -> None:
    people = [
        "Jean-François Gagnon", "Nathalie Bouchard", "Mathieu Lavoie", "Sophie Côté",
        "Étienne Pelletier", "Isabelle Girard", "Olivier Dubé", "Geneviève Caron",
    ]  # fmt: skip
    templates = [
        "Appelez {} au sujet de la facture impayée, elle attend un retour cette semaine.",
        "Rencontre avec {} pour revoir le contrat de service et les délais de livraison.",
        "{} a signalé un bris lors de la livraison; une pièce de remplacement est envoyée.",
    ]
    notes = [template.format(person) for template in templates for person in people]
    finding = classify_column("commentaires", "text", notes)
    assert finding.free_text
    assert "PERSON" in finding.labels()


def test_weak_names_need_values_of_the_right_shape() -> None:
    surnames = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin", "Lavoie"]
    assert classify_column("nom", "text", surnames * 10).labels() == {"PERSON"}
    products = ["Chaise de bureau", "Lampe de table", "Clavier sans fil", "Casque audio"]
    assert classify_column("nom", "text", products * 10).labels() == set()


def _analyze(text: str) -> dict[str, float]:
    analyzer = text_engine().analyzer
    results = analyzer.analyze(text, "fr", ad_hoc_recognizers=missing_recognizers(analyzer, "fr"))
    return {result.entity_type: result.score for result in results}


def test_quebec_health_number_recognizer() -> None:
    assert _analyze("TREM 8501 0112").get("CA_QC_HEALTH_NUMBER", 0) >= 0.5
    assert _analyze("TREM 8551 3112").get("CA_QC_HEALTH_NUMBER", 0) >= 0.5  # a woman's
    assert "CA_QC_HEALTH_NUMBER" not in _analyze("TREM 8513 0112")  # no 13th month
    assert "CA_QC_HEALTH_NUMBER" not in _analyze("trem 8501 0112")
    bare, in_context = _analyze("TREM85010112"), _analyze("Carte RAMQ : TREM85010112")
    assert bare["CA_QC_HEALTH_NUMBER"] < 0.5 <= in_context["CA_QC_HEALTH_NUMBER"]
    numbers = [
        f"{name} {50 + i:02d}{1 + i % 12:02d} {1 + i:02d}{i:02d}"
        for i, name in enumerate(
            ["TREM", "GAGM", "ROYJ", "BOUC", "LAVP", "COTE", "NGUY", "PELD"] * 2
        )
    ]
    ramq = classify_column("ref", "text", numbers)
    assert ramq.labels() == {"CA_QC_HEALTH_NUMBER"}


def test_french_phone_context() -> None:
    assert _analyze("Référence 555-0123").get("PHONE_NUMBER", 0) < 0.5
    assert _analyze("Tél. : 555-0123").get("PHONE_NUMBER", 0) >= 0.5
    assert _analyze("cellulaire (514)-555-0123").get("PHONE_NUMBER", 0) >= 0.5


def test_scan_and_redaction_share_one_set_of_recognizers() -> None:
    """The scan's Quebec recognizers are registered once in the shared engine, so what the
    scan finds is what redact_text removes, and no scan adds them a second time."""
    classify_column("ramq", "text", ["TREM 8501 0112"])
    engine = text_engine()
    kinds = [type(r) for r in engine.analyzer.registry.recognizers]
    for language in ("en", "fr"):
        assert missing_recognizers(engine.analyzer, language) == []
    assert kinds.count(QuebecHealthNumberRecognizer) == 2  # one per language
    assert redact_texts(["Carte RAMQ TREM 8501 0112"]) == ["Carte RAMQ <CA_QC_HEALTH_NUMBER>"]


CANARY = "zqcanary.7731@example.org"
CANARY_DIGITS = "4385557731"


@pytest.mark.parametrize(
    ("family", "values"),
    [
        ("text", [CANARY, f"Appelez Zq Canary au {CANARY_DIGITS}", "x"]),
        ("text", [f"Note {i}: écrire à {CANARY} ou appeler au {CANARY_DIGITS}." for i in range(9)]),
        ("integer", [int(CANARY_DIGITS), 130692544]),
        ("other", [CANARY]),
    ],
)
def test_no_value_leaks_into_a_finding(family: str, values: list[str | int]) -> None:
    finding = classify_column("contact", family, values)
    for text in (repr(finding), *finding.reasons):
        assert "zqcanary" not in text.lower()
        assert CANARY_DIGITS not in text and "7731" not in text


def test_bad_arguments_are_refused_without_values() -> None:
    with pytest.raises(ValueError, match="unknown type family") as refused:
        classify_column("x", "json", [CANARY])
    assert "zqcanary" not in str(refused.value)
    with pytest.raises(ValueError, match="batch_size"):
        classify_column("x", "text", [CANARY], batch_size=0)
    assert LABEL_THRESHOLD == 0.5


def test_a_few_repeated_values_are_a_few_values_not_a_share_of_rows() -> None:
    """libphonenumber reads some browser versions as phone numbers; repeated over half
    the rows they are still three values of a column of eight versions."""
    versions = ["138.0.7204.157", "131.0.6778.205", "131.0.2903.112"] * 200
    versions += ["17.4.1", "18.1", "121.0", "16.6", "128.0"] * 80
    finding = classify_column("browser_version", "text", versions)
    assert finding.hits.get("PHONE_NUMBER") == 600, "the rows are still counted as hit"
    assert "PHONE_NUMBER" not in finding.labels()
    # The same share over distinct values is a phone column.
    phones = [f"514-555-{i:04d}" for i in range(600)] + [f"note {i}" for i in range(400)]
    assert "PHONE_NUMBER" in classify_column("c7", "text", phones).labels()
