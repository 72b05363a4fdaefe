"""The kinds of personal information the scan used to miss, found through a real scan.

Each test writes a SQLite store the way a data engineer would (neutral column names, no
hint from the name), scans it as ``tenure scan`` does (``SQLConnector`` + ``scan_table``)
and checks the labels: MAC addresses and IBANs (entities Presidio's registry knows but the
scan never asked for), a column mixing e-mail addresses and phone numbers, a column of
French town names, and a three-row table.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from faker import Faker
from hypothesis import given, settings
from hypothesis import strategies as st

from anonymizers.detection import ColumnSample, classify_table
from anonymizers.detection.entities import CATALOGUE, NAME_ONLY_ENTITIES
from anonymizers.detection.text_engine import registry_entities
from connectors.sql.connector import SQLConnector
from flows.scan import TableScan, scan_table

SAMPLE = 1_000
#: Real municipalities of Quebec, written as people write them.
QUEBEC_TOWNS = (
    "Montréal", "Québec", "Laval", "Gatineau", "Longueuil", "Sherbrooke", "Lévis",
    "Saguenay", "Trois-Rivières", "Terrebonne", "Saint-Jean-sur-Richelieu", "Repentigny",
    "Brossard", "Drummondville", "Saint-Jérôme", "Granby", "Blainville", "Mirabel",
    "Châteauguay", "Mascouche", "Rimouski", "Victoriaville", "Shawinigan", "Joliette",
    "Rouyn-Noranda", "Val-d'Or", "Sept-Îles", "Baie-Comeau", "Alma", "Magog", "Sorel-Tracy",
    "St-Hyacinthe", "Boucherville", "Vaudreuil-Dorion", "Saint-Eustache", "Chambly",
    "Rivière-du-Loup", "Matane", "Gaspé", "Dolbeau-Mistassini", "Thetford Mines",
    "Sainte-Julie", "Beloeil", "Candiac", "La Prairie", "Cowansville", "Lachute",
    "Sainte-Thérèse", "Boisbriand", "Amos",
)  # fmt: skip


def _scan(tmp_path: Path, table: str, columns: dict[str, Sequence[Any]]) -> dict[str, set[str]]:
    """Write ``columns`` into an untyped SQLite table, scan it, return each column's labels."""
    path = tmp_path / "store.sqlite"
    rows = list(zip(*columns.values(), strict=True))
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
        db.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows)
    connector = SQLConnector("store", f"sqlite:///{path}")
    try:
        info = connector.table_info(table)
        assert info is not None
        scan: TableScan = scan_table(connector, info, len(rows), SAMPLE, "store")
    finally:
        connector.close()
    return {column.column: set(column.labels()) for column in scan.columns}


def _faker(seed: int, *locales: str) -> Faker:
    fake = Faker(list(locales))
    fake.seed_instance(seed)
    return fake


def test_every_entity_the_registry_knows_is_catalogued_and_looked_for() -> None:
    known = registry_entities()
    assert known == set(CATALOGUE) - NAME_ONLY_ENTITIES
    assert {"MAC_ADDRESS", "IBAN_CODE", "CRYPTO", "UUID", "URL", "NRP"} <= known


def test_a_column_of_mac_addresses_is_found(tmp_path: Path) -> None:
    fake = _faker(1, "en_CA")
    layouts: list[Callable[[str], str]] = [
        lambda mac: mac,
        lambda mac: mac.upper().replace(":", "-"),
        lambda mac: ".".join(mac.replace(":", "")[i : i + 4] for i in (0, 4, 8)),
    ]
    macs = [layouts[i % 3](fake.mac_address()) for i in range(300)]
    labels = _scan(tmp_path, "devices", {"c1": macs, "c2": [f"v{i % 7}" for i in range(300)]})
    assert labels == {"c1": {"MAC_ADDRESS"}, "c2": set()}


def test_a_column_of_ibans_is_found(tmp_path: Path) -> None:
    ibans = []
    for i, locale in enumerate(["fr_FR", "de_DE", "en_GB", "nl_NL", "es_ES"] * 60):
        iban = _faker(i, locale).iban()
        ibans.append(" ".join(iban[j : j + 4] for j in range(0, len(iban), 4)) if i % 2 else iban)
    labels = _scan(tmp_path, "payouts", {"compte": ibans, "montant": list(range(300))})
    assert labels == {"compte": {"IBAN_CODE"}, "montant": set()}


def test_a_column_half_emails_half_phones_is_personal_and_names_both(tmp_path: Path) -> None:
    fake = _faker(2, "fr_CA", "en_CA")
    rng = random.Random(2)
    contact = [
        fake.email() if rng.random() < 0.5 else f"514 {rng.randint(200, 999)}-{i % 10000:04d}"
        for i in range(400)
    ]
    channel = [rng.choice(["courriel", "téléphone", "sms"]) for _ in contact]
    labels = _scan(tmp_path, "preferences", {"preferred": contact, "canal": channel})
    assert labels == {"preferred": {"EMAIL_ADDRESS", "PHONE_NUMBER"}, "canal": set()}


def test_a_column_of_french_town_names_is_a_location_not_people(tmp_path: Path) -> None:
    rng = random.Random(3)
    towns = [rng.choice(QUEBEC_TOWNS) for _ in range(500)]
    labels = _scan(tmp_path, "clients", {"c3": towns, "c4": [rng.randint(1, 9) for _ in towns]})
    assert labels == {"c3": {"LOCATION"}, "c4": set()}


def test_a_three_row_table_is_read_whole(tmp_path: Path) -> None:
    labels = _scan(
        tmp_path,
        "team",
        {
            "a": ["marie.tremblay@example.ca", "j.smith@example.com", "gagnon.luc@example.org"],
            "b": ["Marie Tremblay", "John Smith", "Luc Gagnon"],
            "c": ["(514) 555-0142", "418-555-0199", "+1 819 555 0110"],
            "d": ["actif", "inactif", "actif"],
        },
    )
    assert labels == {
        "a": {"EMAIL_ADDRESS"},
        "b": {"PERSON"},
        "c": {"PHONE_NUMBER"},
        "d": set(),
    }


def test_reading_stops_early_when_the_labels_are_settled() -> None:
    fake = _faker(4, "en_CA", "fr_CA")
    columns = [
        ColumnSample("c1", "text", [fake.email() for _ in range(SAMPLE)]),
        ColumnSample("c2", "text", [f"SKU-{i:06d}" for i in range(SAMPLE)]),
    ]
    early = classify_table(columns)
    whole = classify_table(columns, settle_early=False)
    assert [f.labels() for f in early] == [f.labels() for f in whole]
    assert [f.sample_size for f in early] == [40, 40]
    assert [f.sample_size for f in whole] == [SAMPLE, SAMPLE]
    assert any(r.startswith("settled after 40 of ") for r in early[0].reasons)


@pytest.mark.parametrize("family", ["text", "other"])
def test_a_stray_personal_value_in_a_short_sample_is_not_a_label(family: str) -> None:
    """Exact shares are for complete columns only: in a sample, two e-mail addresses among
    three values stay below the Wilson bound, as before."""
    values = ["a@example.org", "b@example.org", "nothing here"]
    (sampled,) = classify_table([ColumnSample("x", family, values)])
    (whole,) = classify_table([ColumnSample("x", family, values, complete=True)])
    assert sampled.labels() == frozenset()
    assert whole.labels() == {"EMAIL_ADDRESS"}


def test_nationalities_and_religions_are_nrp_in_both_languages(tmp_path: Path) -> None:
    rng = random.Random(5)
    nationality = ["Haïtienne", "canadien", "Lebanese", "marocaine", "Canadian", "Vietnamese"]
    religion = ["catholique", "Muslim", "juive", "athée", "Protestant", "hindou"]
    colours = ["rouge", "Green", "bleu", "Noir", "blanc", "Yellow"]
    labels = _scan(
        tmp_path,
        "profil",
        {
            "c5": [rng.choice(nationality) for _ in range(300)],
            "c6": [rng.choice(religion) for _ in range(300)],
            "c7": [rng.choice(colours) for _ in range(300)],
        },
    )
    assert labels == {"c5": {"NRP"}, "c6": {"NRP"}, "c7": set()}


def test_a_sign_in_column_half_emails_half_user_names_is_personal(tmp_path: Path) -> None:
    """User names are no entity, but e-mail addresses are never there by accident: a
    column of which half are e-mail addresses is personal (``UNMISTAKABLE``)."""
    fake = _faker(6, "en_CA", "fr_CA")
    logins = [fake.email() if i % 2 else fake.user_name() for i in range(400)]
    labels = _scan(tmp_path, "accounts", {"login_id2": logins, "c9": [f"T{i}" for i in range(400)]})
    assert labels == {"login_id2": {"EMAIL_ADDRESS"}, "c9": set()}


def test_user_agents_hold_software_versions_not_ip_addresses(tmp_path: Path) -> None:
    """Browsers report reduced versions (``Chrome/120.0.0.0``): an IPv4 shape after a
    slash is a version."""
    rng = random.Random(7)
    agents = [
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{rng.randint(100, 130)}.0.0.0 Safari/537.36 Edg/{rng.randint(100, 130)}.0."
        f"{rng.randint(1000, 3000)}.{rng.randint(1, 99)}"
        for _ in range(400)
    ]
    sources = [f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{i % 250 + 1}" for i in range(400)]
    labels = _scan(tmp_path, "hits", {"hdr": agents, "src": sources})
    assert labels == {"hdr": set(), "src": {"IP_ADDRESS"}}


def test_full_addresses_are_places_with_their_postal_codes_not_people(tmp_path: Path) -> None:
    """Streets named after people (``boulevard René-Lévesque``, ``rue Saint-Laurent``) do
    not make an address column a column of names; its postal codes count, the address
    around them being their context."""
    rng = random.Random(8)
    streets = ["boulevard René-Lévesque Ouest", "rue Saint-Laurent", "avenue Laurier Est",
               "King Street West", "rue Sherbrooke", "chemin Sainte-Foy"]  # fmt: skip
    codes = ["H2X 1Y4", "G1R 5M1", "J3A2S4", "M5V 2T6", "H3B 4W8", "G1V 0A6"]
    addresses = [
        f"{rng.randint(1, 9999)} {rng.choice(streets)}, {rng.choice(QUEBEC_TOWNS)} (Québec) "
        f"{rng.choice(codes)}"
        for _ in range(400)
    ]
    labels = _scan(tmp_path, "employes", {"c10": addresses})
    assert labels == {"c10": {"LOCATION", "CA_POSTAL_CODE"}}


def test_given_names_and_surnames_alone_are_people(tmp_path: Path) -> None:
    fake = _faker(9, "fr_CA", "en_US", "es_MX", "vi_VN")
    labels = _scan(
        tmp_path,
        "agents",
        {
            "c11": [fake.first_name() for _ in range(400)],
            "c12": [fake.last_name() for _ in range(400)],
        },
    )
    assert labels == {"c11": {"PERSON"}, "c12": {"PERSON"}}


def test_the_false_positives_the_scan_avoids_stay_avoided(tmp_path: Path) -> None:
    """Judging columns by people must not bring back version strings read as phones,
    product names read as people, order numbers read as phones, or places in user agents."""
    rng = random.Random(10)
    products = ["Chaise de bureau", "Lampe de table", "Galaxy Tab S9", "Surface Pro",
                "Clavier sans fil", "Casque audio", "Apple Watch", "Montre connectée",
                "Écran 27 pouces", "Souris ergonomique"]  # fmt: skip
    agents = [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        f"Gecko) Version/17.{rng.randint(0, 6)} Safari/605.1.15",
        f"Mozilla/5.0 (X11; Linux x86_64; rv:{rng.randint(100, 130)}.0) Gecko/20100101 "
        f"Firefox/{rng.randint(100, 130)}.0",
        f"Dalvik/2.1.0 (Linux; U; Android 14; SM-S918W Build/UP1A.{rng.randint(100000, 999999)})",
    ]
    rows = 600
    labels = _scan(
        tmp_path,
        "catalogue",
        {
            "c1": [
                f"{rng.randint(1, 19)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}"
                for _ in range(rows)
            ],
            "c2": [rng.choice(products) for _ in range(rows)],
            "c3": [str(rng.randint(10**9, 10**10 - 1)) for _ in range(rows)],
            "c4": [f"CMD-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}" for _ in range(rows)],
            "c5": [rng.choice(agents) for _ in range(rows)],
            "c6": [rng.choice(["Montréal", "Toronto", "Paris"]) + " office" for _ in range(rows)],
        },
    )
    assert labels == {"c1": set(), "c2": set(), "c3": set(), "c4": set(), "c5": set(), "c6": set()}


_POOLS: dict[str, Callable[[Faker, int], str]] = {
    "EMAIL_ADDRESS": lambda fake, i: fake.email(),
    "PHONE_NUMBER": lambda fake, i: f"(514) 555-{i % 10000:04d}",
    "": lambda fake, i: f"SKU-{i:06d}-{fake.random_int(0, 9)}",
}


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    personal=st.sampled_from([0.0, 0.1, 0.3, 0.7, 0.9, 1.0]),
    emails=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 1000),
)
def test_stopping_early_gives_the_labels_of_reading_every_value(
    personal: float, emails: float, seed: int
) -> None:
    """A column of e-mail addresses, phone numbers and product codes in any mixture is
    labelled the same whether its reading stops once settled or reads all 1,000 values."""
    fake = _faker(seed, "en_CA")
    rng = random.Random(seed)
    values = []
    for i in range(SAMPLE):
        if rng.random() >= personal:
            kind = ""
        else:
            kind = "EMAIL_ADDRESS" if rng.random() < emails else "PHONE_NUMBER"
        values.append(_POOLS[kind](fake, i))
    column = [ColumnSample("c", "text", values)]
    (early,) = classify_table(column)
    (whole,) = classify_table(column, settle_early=False)
    assert early.labels() == whole.labels()
    assert early.sample_size <= whole.sample_size


def test_a_small_table_of_browser_versions_holds_no_phone_numbers(tmp_path: Path) -> None:
    """Read whole, a table is still judged on its distinct values: libphonenumber reads one
    of these two versions as a phone number, which makes half of them, not a label (what
    the demo's login table was left with after a nightly run)."""
    versions = ["131.0.6778.205"] * 40 + ["138.0.3351.95"] * 120 + [None] * 10
    labels = _scan(tmp_path, "login_events", {"browser_version": versions})
    assert labels == {"browser_version": set()}


def test_a_note_that_mentions_an_address_still_names_its_person() -> None:
    notes = [
        f"{name} a déménagé au {100 + i} rue Fullum, le colis doit partir à la nouvelle adresse."
        for i, name in enumerate(["Marie Tremblay", "Luc Gagnon", "Sophie Côté", "Jean Roy"] * 25)
    ]
    (finding,) = classify_table([ColumnSample("c13", "text", notes)])
    assert finding.free_text
    assert "PERSON" in finding.labels()


def test_everyday_words_that_are_also_names_or_nationalities_are_not_people(
    tmp_path: Path,
) -> None:
    """Colours and trades that are surnames, cuisines and languages that are nationalities,
    and a table whose one value is a province, label nothing."""
    rng = random.Random(11)
    colours = ["Black", "White", "Gray", "Brown"]
    trades = ["Baker", "Carpenter", "Mason", "Miller", "Fisher", "Cook", "Taylor", "Porter"]
    cuisines = ["Italian", "Chinese", "Japanese", "Mexican", "Greek", "Indian"]
    languages = ["français", "English", "espagnol", "italien"]
    labels = _scan(
        tmp_path,
        "preferences",
        {
            "colour": [rng.choice(colours) for _ in range(300)],
            "trade": [rng.choice(trades) for _ in range(300)],
            "cuisine": [rng.choice(cuisines) for _ in range(300)],
            "langue": [rng.choice(languages) for _ in range(300)],
            "prov": ["QC"] * 300,
        },
    )
    assert labels == {
        "colour": set(),
        "trade": set(),
        "cuisine": set(),
        "langue": set(),
        "prov": set(),
    }


def test_four_part_versions_are_no_ip_address_column() -> None:
    """Browsers' reduced versions (``120.0.0.0``) have an IPv4 address's shape: a quarter
    of them does not make a column personal, as a quarter of e-mail addresses would."""
    rng = random.Random(12)
    versions = [
        f"{rng.randint(100, 130)}.0.{rng.randint(0, 255)}.{rng.randint(0, 255)}"
        if i % 4 == 0
        else f"{rng.randint(1, 30)}.{i}"
        for i in range(800)
    ]
    (finding,) = classify_table([ColumnSample("c14", "text", versions)])
    assert finding.labels() == frozenset()


def test_a_whole_sign_in_column_with_a_third_of_emails_is_labelled_email() -> None:
    values = ["ana@example.org", "bo@example.org", "cy@example.org"] + [
        f"user_{i}" for i in range(7)
    ]
    (finding,) = classify_table([ColumnSample("c15", "text", values, complete=True)])
    assert finding.labels() == {"EMAIL_ADDRESS"}


def test_a_name_overruled_by_its_values_is_overruled_however_far_it_reads() -> None:
    """``contact_address`` is a place by name and phone numbers by value: with one
    unreadable value among the first forty, stopping early must not keep the place."""
    values = ["n/a"] + [f"(514) 555-{i:04d}" for i in range(999)]
    column = [ColumnSample("contact_address", "text", values)]
    (early,) = classify_table(column)
    (whole,) = classify_table(column, settle_early=False)
    assert early.labels() == whole.labels() == {"PHONE_NUMBER"}
