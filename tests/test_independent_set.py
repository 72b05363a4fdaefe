"""The independent evaluation set of the scan: its shape, its checksums, its SQLite file and
its scoring, each checked against an implementation or a published vector of its own."""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import independent_set as s
from bench.independent_set import NOT_PERSONAL, PERSONAL, IndependentSet

ROWS = 60
ORDINARY = ROWS


@pytest.fixture(scope="module")
def data() -> IndependentSet:
    return s.build_independent_set(rows=ROWS, seed=11)


@pytest.fixture(scope="module")
def larger() -> IndependentSet:
    """Enough rows for shares (NULLs, mixed columns, free text) to settle."""
    return s.build_independent_set(rows=800, seed=5)


def _values(data: IndependentSet, entity: str) -> list[object]:
    return [
        value
        for (table, column), truth in data.truth.items()
        if entity in truth
        for value in data.tables[table][column]
        if value is not None
    ]


# ============================================================================ independent checks


def _luhn_valid(number: str) -> bool:
    """The Luhn rule read left to right: every second digit from the right doubled."""
    digits = [int(c) for c in number]
    parity = len(digits) % 2
    total = sum(
        (d * 2 if i % 2 == parity else d) - (9 if i % 2 == parity and d > 4 else 0)
        for i, d in enumerate(digits)
    )
    return total % 10 == 0


def _iban_valid(code: str) -> bool:
    compact = code.replace(" ", "")
    moved = compact[4:] + compact[:4]
    number = "".join(str(ord(c) - 55) if c.isalpha() else c for c in moved)
    return int(number) % 97 == 1


ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + ALPHABET.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _base58check_valid(address: str) -> bool:
    raw = _base58_decode(address)
    payload, checksum = raw[:-4], raw[-4:]
    return (
        len(raw) == 25 and checksum == hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    )


BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_constant(address: str) -> tuple[int, int, bytes]:
    """(polymod of the whole address, witness version, program) by BIP 173's decoder."""
    hrp, _, rest = address.rpartition("1")
    data = [BECH32.index(c) for c in rest]
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data
    chk = 1
    for value in values:
        top = chk >> 25
        chk = ((chk & 0x1FFFFFF) << 5) ^ value
        for i, g in enumerate([0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]):
            if (top >> i) & 1:
                chk ^= g
    bits = "".join(f"{d:05b}" for d in data[1:-6])
    program = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits) - len(bits) % 8, 8))
    return chk, data[0], program


def _segwit_valid(address: str) -> bool:
    constant, version, program = _bech32_constant(address)
    expected = 1 if version == 0 else 0x2BC830A3
    sizes = {20, 32} if version == 0 else {32}
    return address.startswith("bc1") and constant == expected and len(program) in sizes


# ============================================================================ shape


def test_deterministic_for_a_seed(data: IndependentSet) -> None:
    again = s.build_independent_set(rows=ROWS, seed=11)
    assert data.truth == again.truth and data.declared == again.declared
    for table, frame in data.tables.items():
        assert frame.equals(again.tables[table]), table
    other = s.build_independent_set(rows=ROWS, seed=12)
    assert not data.tables["clients"].equals(other.tables["clients"])


def test_every_column_has_its_truth_type_and_description(data: IndependentSet) -> None:
    keys = {(t, c) for t, frame in data.tables.items() for c in frame.columns}
    assert keys == set(data.truth) == set(data.about) == set(data.naming)
    for table, frame in data.tables.items():
        assert list(data.declared[table]) == list(frame.columns)
    for key, truth in data.truth.items():
        assert truth <= PERSONAL | NOT_PERSONAL, key
        assert data.about[key].strip() and "\n" not in data.about[key]
    sizes = {table: len(frame) for table, frame in data.tables.items()}
    assert sorted(sizes.values())[:2] == [3, 30]
    assert all(n == ORDINARY for n in sorted(sizes.values())[2:])


def test_the_set_has_the_shape_asked_for(data: IndependentSet) -> None:
    columns = len(data.truth)
    assert 10 <= len(data.tables) <= 14 and 120 <= columns <= 180
    untyped = [t for t, d in data.declared.items() if all(v is None for v in d.values())]
    typed = [t for t, d in data.declared.items() if all(v is not None for v in d.values())]
    assert len(untyped) >= 3 and len(untyped) + len(typed) == len(data.tables)
    # an untyped table holding numbers
    assert any(
        isinstance(v, int) for t in untyped for c in data.tables[t] for v in data.tables[t][c]
    )
    names = Counter(data.naming.values())
    assert names["honest"] <= columns / 4, names
    assert names["misleading"] >= 10 and names["neutral"] > columns / 2
    for (table, column), truth in data.truth.items():  # no honest-looking name that lies
        if column in {"email", "phone", "courriel", "telephone", "name", "nom"}:
            assert truth & PERSONAL, (table, column)
    bigint = {e for k, t in data.truth.items() if data.declared[k[0]][k[1]] == "BIGINT" for e in t}
    assert {"PHONE_NUMBER", "CA_SIN"} <= bigint
    for tiny in ("inscriptions_atelier", "benevoles"):
        held = {e for (t, _), truth in data.truth.items() if t == tiny for e in truth}
        assert {"EMAIL_ADDRESS", "PERSON", "PHONE_NUMBER", "LOCATION"} <= held
        assert any(not truth for (t, _), truth in data.truth.items() if t == tiny)


def test_every_entity_in_two_columns_one_of_them_named_neutrally(data: IndependentSet) -> None:
    for entity in sorted(PERSONAL | NOT_PERSONAL):
        holding = [k for k, truth in data.truth.items() if entity in truth]
        assert len(holding) >= 2, entity
        assert any(data.naming[k] == "neutral" for k in holding), entity
    mixed = [k for k, t in data.truth.items() if {"EMAIL_ADDRESS", "PHONE_NUMBER"} <= t]
    assert mixed, "a column mixing e-mail addresses and phone numbers"


def test_shares_behind_the_labels(larger: IndependentSet) -> None:
    """NULL-heavy columns, mixed columns and free text hold what their truth says."""
    heavy = [
        k
        for k, truth in larger.truth.items()
        if truth & PERSONAL and 0.8 <= larger.tables[k[0]][k[1]].isna().mean() <= 0.95
    ]
    assert len({e for k in heavy for e in larger.truth[k]}) >= 4, heavy

    def share(table: str, column: str, pattern: str) -> float:
        values = [v for v in larger.tables[table][column] if v is not None]
        return sum(bool(re.search(pattern, str(v))) for v in values) / len(values)

    email, phone = r"\S+@\S+\.\w+", r"\d{3}\)?[ .-]?\d{3}[ -.]?\d{4}"
    assert 0.35 <= share("clients", "joindre_par", email) <= 0.65
    assert 0.35 <= share("clients", "joindre_par", phone) <= 0.65
    assert 0.35 <= share("accounts", "login", email) <= 0.65
    assert 0.35 <= share("contacts_marketing", "contact", phone) <= 0.65
    assert share("billets_support", "texte", email) >= 0.2
    assert share("billets_support", "texte", phone) >= 0.2
    assert 0 < share("billets_support", "interne", email) < 0.02
    assert larger.truth[("billets_support", "interne")] == frozenset()


def test_cities_are_real_municipalities(larger: IndependentSet) -> None:
    def plain(name: str) -> str:
        text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
        return text.replace("ste-", "sainte-").replace("st-", "saint-")

    known = {plain(n) for n, _ in s._QC_CITIES} | {plain(n) for n, _, _ in s._CA_CITIES}
    for table, column in (("clients", "ville"), ("import_2019", "c6"), ("benevoles", "d")):
        for value in larger.tables[table][column].dropna():
            assert plain(value) in known, (table, column, value)


# ============================================================================ checksums


def test_published_vectors() -> None:
    assert s.luhn_check_digit("04645428") == "6"  # SIN 046 454 286, the government's example
    assert s.luhn_check_digit("411111111111111") == "1"
    assert s.iban("GB", "WEST12345698765432") == "GB82WEST12345698765432"
    assert s.iban("DE", "370400440532013000") == "DE89370400440532013000"
    assert s.french_rib_key("30006", "00001", "12345678901") == "89"
    assert s.iban("FR", "30006000011234567890189") == "FR7630006000011234567890189"
    hash160 = bytes.fromhex("010966776006953D5567439E5E39F86A0D273BEE")
    assert s.base58check(0, hash160) == "16UwLL9Risc3QfPqBUvKofHmBQ7wMtjvM"
    program = bytes.fromhex("751e76e8199196d454941c45d1b3a323f1433bd6")  # BIP 173
    assert s.segwit_address("bc", 0, program) == "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
    taproot = bytes.fromhex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    assert (  # BIP 350
        s.segwit_address("bc", 1, taproot)
        == "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
    )
    assert s.ramq_number("Tremblay", "Marie", date(1985, 1, 1), True, 12) == "TREM85510112"
    assert s.ramq_number("Li", "Wei", date(2001, 11, 30), False, 7) == "LIXW01113007"


@given(st.text("0123456789", min_size=1, max_size=18))
def test_luhn_completes_any_number(body: str) -> None:
    assert _luhn_valid(body + s.luhn_check_digit(body))


@given(
    st.sampled_from(["FR", "DE", "GB", "BE", "CH", "NL"]),
    st.text("0123456789ABCDEFGHJK", min_size=8, max_size=28),
)
def test_iban_check_digits_for_any_bban(country: str, bban: str) -> None:
    assert _iban_valid(s.iban(country, bban))


@given(st.sampled_from([0, 5]), st.binary(min_size=20, max_size=20))
def test_base58check_for_any_hash(version: int, payload: bytes) -> None:
    address = s.base58check(version, payload)
    assert _base58check_valid(address)
    assert _base58_decode(address)[0] == version and _base58_decode(address)[1:21] == payload


@given(st.sampled_from([(0, 20), (0, 32), (1, 32)]), st.data())
def test_segwit_for_any_program(kind: tuple[int, int], draw: st.DataObject) -> None:
    version, size = kind
    program = draw.draw(st.binary(min_size=size, max_size=size))
    address = s.segwit_address("bc", version, program)
    assert _segwit_valid(address) and _bech32_constant(address)[2] == program


def test_every_identifier_in_the_set_verifies(larger: IndependentSet) -> None:
    sins = [re.sub(r"\D", "", str(v)) for v in _values(larger, "CA_SIN")]
    assert sins and all(len(n) == 9 and n[0] in "12345679" and _luhn_valid(n) for n in sins)
    cards = [re.sub(r"\D", "", str(v)) for v in _values(larger, "CREDIT_CARD")]
    assert cards and all(len(n) in (15, 16) and _luhn_valid(n) for n in cards)
    assert {n[0] for n in cards} >= {"2", "3", "4", "5", "6"}  # several brands
    ibans = [str(v) for v in _values(larger, "IBAN_CODE")]
    assert ibans and all(_iban_valid(code) for code in ibans)
    assert {code[:2] for code in ibans} >= {"FR", "DE", "GB"}
    assert any(" " in code for code in ibans) and any(" " not in code for code in ibans)
    for code in ibans:  # the national keys hold too
        compact = code.replace(" ", "")
        if compact.startswith("FR"):
            bank, branch, account, key = compact[4:9], compact[9:14], compact[14:25], compact[25:]
            assert (89 * int(bank) + 15 * int(branch) + 3 * int(account) + int(key)) % 97 == 0
    wallets = [str(v) for v in _values(larger, "CRYPTO")]
    assert {w[:3] for w in wallets} >= {"bc1"} and {w[0] for w in wallets} >= {"1", "3", "b"}
    for wallet in wallets:
        assert _segwit_valid(wallet) if wallet.startswith("bc1") else _base58check_valid(wallet)


def test_ramq_numbers_belong_to_their_patients(larger: IndependentSet) -> None:
    frame = larger.tables["dossiers"]
    checked = 0
    for patient, printed, born in zip(
        frame["patient"], frame["no_carte"], frame["ddn"], strict=True
    ):
        if printed is None:
            continue
        assert re.fullmatch(r"[A-Z]{4} \d{4} \d{4}", printed), printed
        number = printed.replace(" ", "")
        day, month, year = (int(x) for x in born.split("/"))
        assert number[4:6] == f"{year % 100:02d}" and number[8:10] == f"{day:02d}"
        assert int(number[6:8]) in (month, month + 50)
        initial = unicodedata.normalize("NFKD", patient).encode("ascii", "ignore").decode()[0]
        assert number[3] == initial.upper()
        checked += 1
    assert checked > 500
    compact = [v for v in larger.tables["import_2019"]["c13"] if v is not None]
    assert all(re.fullmatch(r"[A-Z]{4}\d{8}", v) for v in compact)


# ============================================================================ SQLite


def test_write_sqlite_round_trips(data: IndependentSet, tmp_path: Path) -> None:
    path = tmp_path / "set.sqlite"
    url = s.write_sqlite(data, path)
    assert url == f"sqlite:///{path}"
    s.write_sqlite(data, path)  # again: the tables are replaced, not appended to
    with sqlite3.connect(path) as conn:
        for table, frame in data.tables.items():
            info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            assert [row[1] for row in info] == list(frame.columns)
            declared = data.declared[table]
            assert [row[2] for row in info] == [declared[c] or "" for c in frame.columns]
            stored = conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
            assert len(stored) == len(frame)
            for position, column in enumerate(frame.columns):
                read = READ_BACK.get(declared[column] or "", _unchanged)
                values = [None if row[position] is None else read(row[position]) for row in stored]
                assert values == list(frame[column]), (table, column)
        kinds = dict(
            conn.execute(
                'SELECT DISTINCT typeof(c5), 1 FROM "import_2019" WHERE c5 IS NOT NULL'
            ).fetchall()
        )
        assert set(kinds) == {"integer"}  # ints stay ints without declared types
        assert conn.execute(
            'SELECT typeof(c3) FROM "import_2019" WHERE c3 IS NOT NULL'
        ).fetchone() == ("text",)


#: How a declared type's stored SQLite value reads back as the value written.
READ_BACK: dict[str, Callable[[Any], object]] = {
    "TIMESTAMP": datetime.fromisoformat,
    "DATE": date.fromisoformat,
    "BOOLEAN": bool,
}


def _unchanged(value: object) -> object:
    return value


# ============================================================================ scoring


def test_score_counts_by_hand() -> None:
    truth = {
        ("t", "a"): frozenset({"EMAIL_ADDRESS"}),
        ("t", "b"): frozenset({"EMAIL_ADDRESS", "PHONE_NUMBER"}),
        ("t", "c"): frozenset(),
        ("t", "d"): frozenset({"PERSON"}),
        ("t", "e"): frozenset({"URL"}),
        ("t", "f"): frozenset({"LOCATION"}),
    }
    predicted = {
        ("t", "a"): ["EMAIL_ADDRESS"],  # right
        ("t", "b"): {"EMAIL_ADDRESS"},  # personal, one type missing
        ("t", "c"): ("PHONE_NUMBER",),  # a false personal column
        ("t", "d"): ["PERSON", "DATE_TIME"],  # personal types right, one extra non-personal
        ("u", "z"): ["EMAIL_ADDRESS"],  # a column the truth does not know
    }  # e and f missing: predicted empty
    result = s.score(predicted, truth)
    assert result.columns == 6
    assert (result.personal_tp, result.personal_fp, result.personal_fn) == (3, 1, 1)
    assert result.personal_precision == 0.75 and result.personal_recall == 0.75
    assert (result.typed_right, result.typed_both) == (2, 3)
    assert result.type_accuracy == pytest.approx(2 / 3)
    assert (result.tp, result.fp, result.fn) == (3, 2, 3)
    assert result.precision == 0.6 and result.recall == 0.5
    e = result.per_entity
    assert (e["EMAIL_ADDRESS"].tp, e["EMAIL_ADDRESS"].fp, e["EMAIL_ADDRESS"].fn) == (2, 0, 0)
    assert (e["PHONE_NUMBER"].tp, e["PHONE_NUMBER"].fp, e["PHONE_NUMBER"].fn) == (0, 1, 1)
    assert e["PHONE_NUMBER"].precision == 0 and e["PHONE_NUMBER"].recall == 0
    assert e["DATE_TIME"].fp == 1 and math.isnan(e["DATE_TIME"].recall)
    assert e["URL"].fn == 1 and math.isnan(e["URL"].precision)
    assert e["PERSON"].precision == 1 and e["LOCATION"].recall == 0
    assert math.isnan(e["CRYPTO"].precision) and math.isnan(e["CRYPTO"].recall)
    assert [k for k, _, _ in result.errors] == [
        ("t", "b"),
        ("t", "c"),
        ("t", "d"),
        ("t", "e"),
        ("t", "f"),
    ]
    assert result.unscored == [("u", "z")]
    text = result.markdown()
    assert "| 6 | 0.750 | 0.750 | 0.667 (2/3) | 0.600 | 0.500 |" in text
    assert "| PHONE_NUMBER | yes | 1 | 0 | 1 | 1 | 0.000 | 0.000 |" in text
    assert "| t.c | (none) | PHONE_NUMBER |" in text and "u.z" in text
    figures = result.figures()
    assert figures["personal_precision"] == 0.75 and len(figures["errors"]) == 5  # type: ignore[arg-type]


def test_the_truth_scores_perfectly(data: IndependentSet) -> None:
    result = s.score(data.truth, data.truth)
    assert result.personal_precision == result.personal_recall == result.type_accuracy == 1
    assert not result.errors


def test_describe_lists_every_column(data: IndependentSet) -> None:
    text = s.describe(data)
    for table, frame in data.tables.items():
        assert f"**{table}**" in text
        for column in frame.columns:
            assert f"`{column}`" in text
    assert "no declared types" in text and "CA_QC_HEALTH_NUMBER" in text
