"""``region_of``: free-form locations to a closed set of regions, ambiguity to ``None``."""

from __future__ import annotations

import csv
import unicodedata
from collections import defaultdict
from importlib import resources

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import anonymizers.regions
from anonymizers.regions import MAX_TOKENS, PROVINCES, REGIONS, region_of, region_of_text

# Canadian places that share their name with a foreign city of the lexicon.
FOREIGN_TWINS = frozenset({"london", "paris", "hamilton", "kingston", "cambridge", "perth",
                           "sydney", "dieppe"})  # fmt: skip


def gazetteer_rows() -> list[dict[str, str]]:
    path = resources.files("anonymizers") / "data" / "ca_places.csv"
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def folded(name: str) -> str:
    """The name as the matcher sees it: no accents, no case, separators as spaces."""
    decomposed = unicodedata.normalize("NFKD", name.replace("œ", "oe"))
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join("".join(c if c.isalnum() else " " for c in bare.casefold()).split())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123 rue Principale, Montréal (QC) H2X 1Y4", "Quebec"),
        ("Toronto, Ontario", "Ontario"),
        ("Vancouver BC", "British Columbia"),
        ("Calgary", "Alberta"),
        ("Paris, France", "Outside Canada"),
        ("somewhere", None),
        ("N/A", None),
        ("", None),
        ("   ", None),
        ("MONTREAL", "Quebec"),
        ("montreal", "Quebec"),
        ("Trois-Rivieres", "Quebec"),
        ("trois rivières", "Quebec"),
        ("Lévis", "Quebec"),
        ("St-Jean-sur-Richelieu", "Quebec"),
        ("Saint-Jean-sur-Richelieu, Qc", "Quebec"),
        ("Québec, QC", "Quebec"),
        ("Quebec City", "Quebec"),
        ("Contrecoeur", "Quebec"),
        ("Halifax, N.S.", "Nova Scotia"),
        ("St. John's", "Newfoundland and Labrador"),
        ("Saint John", "New Brunswick"),
        ("Fort St. John", "British Columbia"),
        ("Sault Ste. Marie", "Ontario"),
        ("Grand Falls-Windsor", "Newfoundland and Labrador"),
        ("Portugal Cove-St. Philip's", "Newfoundland and Labrador"),
        ("Fort Saskatchewan", "Alberta"),
        ("Yellowknife", "Northwest Territories"),
        ("Iqaluit", "Nunavut"),
        ("Whitehorse", "Yukon"),
        ("Charlottetown", "Prince Edward Island"),
        ("New York", "Outside Canada"),
        ("Boston, MA", "Outside Canada"),
        ("USA", "Outside Canada"),
        ("États-Unis", "Outside Canada"),
        ("Bruxelles, Belgique", "Outside Canada"),
        ("Toronto, Ontario, Canada", "Ontario"),
        ("Canada", None),
    ],
)
def test_examples(text: str, expected: str | None) -> None:
    assert region_of_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        *[(label, label) for label in sorted(REGIONS)],
        *[(code, label) for code, label in PROVINCES.items()],
        *[(code.lower(), label) for code, label in PROVINCES.items() if code not in ("ON", "NU")],
        ("Québec", "Quebec"),
        ("QUÉBEC", "Quebec"),
        ("Colombie-Britannique", "British Columbia"),
        ("colombie britannique", "British Columbia"),
        ("Terre-Neuve-et-Labrador", "Newfoundland and Labrador"),
        ("Newfoundland", "Newfoundland and Labrador"),
        ("Île-du-Prince-Édouard", "Prince Edward Island"),
        ("Ile du Prince Edouard", "Prince Edward Island"),
        ("Nouvelle-Écosse", "Nova Scotia"),
        ("Nouveau-Brunswick", "New Brunswick"),
        ("Territoires du Nord-Ouest", "Northwest Territories"),
        ("PQ", "Quebec"),
        ("Que.", "Quebec"),
        ("Qué.", "Quebec"),
        ("Ont.", "Ontario"),
        ("B.C.", "British Columbia"),
        ("Alta.", "Alberta"),
        ("Man.", "Manitoba"),
        ("Sask.", "Saskatchewan"),
        ("N.S.", "Nova Scotia"),
        ("N.B.", "New Brunswick"),
        ("Nfld.", "Newfoundland and Labrador"),
        ("P.E.I.", "Prince Edward Island"),
        ("N.W.T.", "Northwest Territories"),
    ],
)
def test_province_names_and_abbreviations(text: str, expected: str) -> None:
    assert region_of_text(text) == expected


@pytest.mark.parametrize("text", ["on", "que", "ont", "man", "nu", "us", "I live on Main"])
def test_abbreviations_that_are_words_need_capitals_or_a_dot(text: str) -> None:
    assert region_of_text(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A1C 5M2", "Newfoundland and Labrador"),
        ("B3H 4R2", "Nova Scotia"),
        ("C1A 4P3", "Prince Edward Island"),
        ("E1C 4M3", "New Brunswick"),
        ("G1R 4P5", "Quebec"),
        ("H2X1Y4", "Quebec"),
        ("j4k 2t5", "Quebec"),
        ("K1A 0B1", "Ontario"),
        ("L5B-3C2", "Ontario"),
        ("M5V 3L9", "Ontario"),
        ("N2L 3G1", "Ontario"),
        ("P3E 2C6", "Ontario"),
        ("R3C 4T3", "Manitoba"),
        ("S4P 3Y2", "Saskatchewan"),
        ("T2P 1J9", "Alberta"),
        ("V6B 1A1", "British Columbia"),
        ("X1A 2L9", "Northwest Territories"),
        ("X0E 0P0", "Northwest Territories"),
        ("X0A 0H0", "Nunavut"),
        ("X0B 1J0", "Nunavut"),
        ("X0C 0G0", "Nunavut"),
        ("Y1A 1B2", "Yukon"),
        ("FSA H3Z", "Quebec"),
        ("X0A", "Nunavut"),
        ("D1A 1A1", None),  # no postal code starts with D
        ("H2X 1D4", "Quebec"),  # not a full code, but its FSA stands alone
        ("AH2X1Y4", None),  # glued to a letter: not a postal code
    ],
)
def test_postal_codes(text: str, expected: str | None) -> None:
    assert region_of_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Montréal, QC K1A 0B1", "Ontario"),  # the postal code wins over a province
        ("H2X 1Y4 or K1A 0B1", None),  # two postal codes in different provinces
        ("Toronto, Ontario, Quebec", None),  # two explicit provinces
        ("Ontario, Quebec", None),
        ("Toronto, Montréal", None),  # two cities in different provinces
        ("Waterloo", None),  # Ontario and Quebec
        ("Waterloo, ON", "Ontario"),
        ("Waterloo (Québec)", "Quebec"),
        ("Richmond", None),
        ("Richmond, BC", "British Columbia"),
        ("Windsor", None),
        ("Windsor, Ontario", "Ontario"),
        ("Lloydminster", None),
        ("Lloydminster, SK", "Saskatchewan"),
        ("London", None),  # Ontario or the United Kingdom
        ("London, Ontario", "Ontario"),
        ("London, UK", "Outside Canada"),
        ("London, England", "Outside Canada"),
        ("Paris", None),
        ("Paris, ON", "Ontario"),
        ("Hamilton", None),
        ("Hamilton, Ontario", "Ontario"),
        ("Kingston, Jamaica", "Outside Canada"),
        ("Sydney, NS", "Nova Scotia"),
        ("Sydney, Australia", "Outside Canada"),
        ("Victoria", "British Columbia"),
        ("Sherbrooke", "Quebec"),
        ("Montréal, France", "Outside Canada"),
    ],
)
def test_ambiguity_and_precedence(text: str, expected: str | None) -> None:
    assert region_of_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ontario Street, Montreal", "Quebec"),
        ("123 Ontario St, Montréal", "Quebec"),  # a province before the city does not count
        ("1234 rue Ontario Est, Montréal", "Quebec"),
        ("rue Victoria, Saint-Lambert", "Quebec"),
        ("boulevard de la Victoria, Montréal", "Quebec"),
        ("Victoria Street, Toronto", "Ontario"),
        ("Montréal, avenue Victoria", "Quebec"),  # "Montréal, avenue": a comma apart
        ("Chad Street, Toronto", "Ontario"),
        ("Montreal Road, Ottawa", "Ontario"),
    ],
)
def test_street_names_are_not_places(text: str, expected: str | None) -> None:
    assert region_of_text(text) == expected


def test_every_unambiguous_gazetteer_name_gives_its_province() -> None:
    provinces_by_name: dict[str, set[str]] = defaultdict(set)
    for row in gazetteer_rows():
        provinces_by_name[folded(row["name"])].add(row["province"])
    for row in gazetteer_rows():
        codes = provinces_by_name[folded(row["name"])]
        ambiguous = len(codes) > 1 or folded(row["name"]) in FOREIGN_TWINS
        expected = None if ambiguous else PROVINCES[row["province"]]
        assert region_of_text(row["name"]) == expected, row["name"]


def test_gazetteer_is_well_formed() -> None:
    rows = gazetteer_rows()
    assert len(rows) >= 300
    assert all(set(row) == {"name", "province"} for row in rows)
    assert {row["province"] for row in rows} == set(PROVINCES)
    pairs = [(folded(row["name"]), row["province"]) for row in rows]
    assert len(pairs) == len(set(pairs)), "duplicated (name, province) rows"
    assert all(name and name == name.strip() for name, _ in pairs)
    assert all(len(name.split()) <= MAX_TOKENS for name, _ in pairs)
    assert ("montreal", "QC") in pairs
    assert ("levis", "QC") in pairs


def test_series_keeps_index_and_gives_objects() -> None:
    values = pd.Series(
        ["Calgary", "H2X 1Y4", "nowhere", "Calgary", 42, 3.5], index=[10, 3, 7, -1, 99, 5]
    )
    result = region_of(values)
    assert result.index.equals(values.index)
    assert result.dtype == object
    assert result.tolist() == ["Alberta", "Quebec", None, "Alberta", None, None]


def test_empty_series() -> None:
    result = region_of(pd.Series([], dtype=object))
    assert result.empty
    assert result.dtype == object


def test_computed_once_per_distinct_value(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def counting(text: str) -> str | None:
        seen.append(text)
        return region_of_text(text)

    monkeypatch.setattr(anonymizers.regions, "region_of_text", counting)
    values = pd.Series(["Laval", "Gatineau", "Laval", "Gatineau", "Laval"] * 1000)
    assert region_of(values).value_counts().to_dict() == {"Quebec": 5000}
    assert sorted(seen) == ["Gatineau", "Laval"]


# Hypothesis: free text, and text assembled from names the matcher knows.
VOCABULARY = [
    *REGIONS,
    *PROVINCES,
    *(row["name"] for row in gazetteer_rows()[::7]),
    "QC", "Qc", "Ont.", "H2X 1Y4", "X0A", "rue", "Street", "London", "Paris", "France", "USA",
    "Canada", "on", "que", "St.", "Ste-", "123", "N/A",
]  # fmt: skip
SEPARATORS = st.sampled_from([" ", ", ", "-", "'", ".", " (", ") ", "\n", ""])
LOCATIONS = st.one_of(
    st.text(max_size=60),
    st.lists(
        st.tuples(st.sampled_from(VOCABULARY) | st.text(max_size=8), SEPARATORS), max_size=6
    ).map(lambda parts: "".join(word + separator for word, separator in parts)),
)


@settings(max_examples=300, deadline=None)
@given(LOCATIONS)
def test_output_is_a_closed_set_and_never_the_input(text: str) -> None:
    result = region_of_text(text)
    assert result is None or result in REGIONS
    if text not in REGIONS:
        assert result != text


@settings(max_examples=200, deadline=None)
@given(LOCATIONS, st.from_regex(r"[A-Za-z0-9]{12}", fullmatch=True))
def test_free_text_never_leaks(text: str, secret: str) -> None:
    result = region_of(pd.Series([f"{text} {secret} Montréal", f"{secret}, {text}"]))
    assert all(value is None or (value in REGIONS and secret not in value) for value in result)


@settings(max_examples=300, deadline=None)
@given(LOCATIONS)
def test_idempotent_and_deterministic(text: str) -> None:
    result = region_of_text(text)
    assert region_of_text(text) == result
    if result is not None:
        assert region_of_text(result) == result


@settings(max_examples=100, deadline=None)
@given(st.lists(LOCATIONS, max_size=30))
def test_series_matches_cell_by_cell(texts: list[str]) -> None:
    index = pd.Index([f"row{n}" for n in range(len(texts))][::-1])
    result = region_of(pd.Series(texts, index=index, dtype=object))
    assert result.index.equals(index)
    assert result.tolist() == [region_of_text(text) for text in texts]
    assert region_of(result.dropna()).tolist() == result.dropna().tolist()
