"""Keyed people sketches (connectors/sketches.py): chunks merge byte for byte, counts are
exact while small and within 5 % when large, and without the key a stored sketch answers
no membership test."""

from __future__ import annotations

import itertools
import math
import re
from datetime import UTC, date, datetime

import datasketches as ds
import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.sketches import (
    DENSE,
    REGISTERS,
    SPARSE,
    SPARSE_LIMIT,
    PeopleKey,
    build,
    cell_ids,
    estimate,
    keyed_hashes,
    union,
)

SECRET_A = b"test-key-0123456789abcdef"
SECRET_B = b"an attacker's best guess at it"
KEY_A = PeopleKey.from_secret(SECRET_A)
KEY_B = PeopleKey.from_secret(SECRET_B)
CELLS = cell_ids([(date(2024, month, 1), "web") for month in range(1, 13)])


def people(count: int, start: int = 0) -> pd.Series:
    """``count`` customer addresses, as a rollup hands them to `keyed_hashes`."""
    return pd.Series([f"customer{i}@example.com" for i in range(start, start + count)])


def rows(seed: int, n_rows: int, n_people: int, n_cells: int) -> tuple[pd.Series, np.ndarray]:
    """Rows of ``n_people`` people (repeated) spread over the first ``n_cells`` cells:
    their identifiers and cell codes."""
    rng = np.random.default_rng(seed)
    who = rng.integers(0, max(n_people, 1), n_rows)
    values = pd.Series([f"person{i}@example.com" for i in who], dtype=object)
    return values, rng.integers(0, n_cells, n_rows).astype(np.int64)


def sketch_of(values: pd.Series, cell: int = 0, key: PeopleKey = KEY_A) -> bytes:
    hashes = keyed_hashes(values, np.full(len(values), CELLS[cell], dtype=np.uint64), key)
    return build(np.zeros(len(values), dtype=np.int64), hashes, 1)[0]


def members(sketch: bytes, hashes: np.ndarray) -> np.ndarray:
    """Which hashes a sketch holds, as anyone who can read the table can tell: exactly
    for a sparse sketch; for a dense one, whether the hash's register is at least its
    rank (true of every member, and of many others)."""
    if sketch[:1] == SPARSE:
        return np.isin(hashes, np.frombuffer(sketch[1:], dtype="<u8"))
    registers = np.frombuffer(sketch[1:], dtype=np.uint8)
    buckets = (hashes >> np.uint64(52)).astype(np.int64)
    low = hashes & np.uint64((1 << 52) - 1)
    ranks = 53 - np.frexp(low.astype(np.float64))[1]
    return registers[buckets] >= ranks


# -- Chunks and nights merge exactly ---------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_people=st.one_of(st.integers(0, 40), st.integers(500, 530), st.integers(900, 3000)),
    n_cells=st.integers(1, 3),
    cuts=st.lists(st.floats(0, 1), max_size=6),
)
@example(seed=1, n_people=512, n_cells=1, cuts=[0.5])
@example(seed=2, n_people=513, n_cells=1, cuts=[0.3, 0.6])
@example(seed=3, n_people=3000, n_cells=2, cuts=[])
@example(seed=4, n_people=3000, n_cells=1, cuts=[0.2, 0.5, 0.7])  # dense chunks merged
def test_union_of_any_split_is_the_sketch_of_all_rows(
    seed: int, n_people: int, n_cells: int, cuts: list[float]
) -> None:
    """However the rows fall into chunks (each hashed and sketched on its own, with its
    own cell codes), the union of the chunks' sketches is byte for byte the sketch of all
    the rows: sparse, dense, and across the limit between them."""
    n_rows = n_people * 2
    values, codes = rows(seed, n_rows, n_people, n_cells)
    hashes = keyed_hashes(values, CELLS[codes], KEY_A)
    whole = build(codes, hashes, n_cells)

    bounds = [0, *sorted(round(cut * n_rows) for cut in cuts), n_rows]
    parts: list[bytes] = []
    part_cells: list[np.ndarray] = []
    for lo, hi in itertools.pairwise(bounds):
        local, cells = pd.factorize(codes[lo:hi], sort=True)  # the chunk's own cells
        chunk = keyed_hashes(values.iloc[lo:hi], CELLS[cells[local]], KEY_A)
        parts += build(local.astype(np.int64), chunk, len(cells))
        part_cells.append(cells)
    merged = union(parts, np.concatenate([np.zeros(0, np.int64), *part_cells]), n_cells)

    assert merged == whole
    distinct = [len(set(values[codes == cell])) for cell in range(n_cells)]
    for sketch, count in zip(whole, distinct, strict=True):
        assert sketch[:1] == (SPARSE if count <= SPARSE_LIMIT else DENSE)


def test_sparse_up_to_the_limit_dense_beyond() -> None:
    assert build(np.zeros(0, np.int64), np.zeros(0, np.uint64), 2) == [SPARSE, SPARSE]
    at_limit = sketch_of(people(SPARSE_LIMIT))
    assert at_limit[:1] == SPARSE and len(at_limit) == 1 + 8 * SPARSE_LIMIT
    beyond = sketch_of(people(SPARSE_LIMIT + 1))
    assert beyond[:1] == DENSE and len(beyond) == 1 + REGISTERS
    # Two sparse halves whose union passes the limit become dense, as one build would.
    halves = [sketch_of(people(300)), sketch_of(people(300, start=300))]
    assert union(halves, np.zeros(2, np.int64), 1) == [sketch_of(people(600))]


sketch_sizes = st.one_of(st.just(-1), st.integers(0, 20), st.integers(500, 520), st.just(2000))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(sketch_sizes, min_size=3, max_size=3),
    starts=st.lists(st.integers(0, 600), min_size=3, max_size=3),
)
def test_union_is_commutative_associative_and_idempotent(
    sizes: list[int], starts: list[int]
) -> None:
    """Overlapping people, None (-1), empty, sparse and dense sketches alike."""
    a, b, c = (
        None if size < 0 else sketch_of(people(size, start))
        for size, start in zip(sizes, starts, strict=True)
    )

    def u(*sketches: bytes | None) -> bytes:
        return union(list(sketches), np.zeros(len(sketches), np.int64), 1)[0]

    assert u(a, b) == u(b, a)
    assert u(u(a, b), c) == u(a, u(b, c)) == u(a, b, c) == u(c, a, b)
    assert u(a, a) == u(a) == (SPARSE if a is None else a)


def test_union_keeps_groups_apart() -> None:
    one, two = sketch_of(people(10)), sketch_of(people(700, start=50))
    merged = union([one, two, None, one], np.array([1, 0, 2, 1]), 4)
    assert merged == [two, one, SPARSE, SPARSE]


# -- Counts --------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(count=st.integers(0, SPARSE_LIMIT), repeats=st.integers(1, 3))
def test_sparse_counts_are_exact(count: int, repeats: int) -> None:
    values = pd.concat([people(count)] * repeats, ignore_index=True)
    assert estimate([sketch_of(values), None, SPARSE]).tolist() == [count, 0, 0]


@pytest.mark.parametrize("count", [2_000, 20_000, 200_000])
def test_dense_counts_are_within_five_percent(count: int) -> None:
    """3 standard errors at P = 12; Apache DataSketches' HLL of the raw identifiers, with
    the same number of registers, is the yardstick."""
    values = people(count)
    ours = float(estimate([sketch_of(values)])[0])
    theirs = ds.hll_sketch(12)
    for value in values:
        theirs.update(value)
    print(f"n={count}: keyed sketch {ours:.0f}, datasketches {theirs.get_estimate():.0f}")
    assert abs(ours / count - 1) <= 0.05
    assert abs(theirs.get_estimate() / count - 1) <= 0.05


def test_an_all_empty_dense_sketch_counts_nobody() -> None:
    assert estimate([DENSE + bytes(REGISTERS)]).tolist() == [0.0]


# -- Keys ----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(texts=st.lists(st.text(max_size=30), min_size=1, max_size=30), cell=st.integers(0, 11))
def test_same_inputs_and_secret_give_the_same_hashes(texts: list[str], cell: int) -> None:
    """Whatever is hashed with it, in any process: merging chunks and nights relies on it."""
    values = pd.Series(texts, dtype=object)
    cells = np.full(len(texts), CELLS[cell], dtype=np.uint64)
    together = keyed_hashes(values, cells, KEY_A)
    again = keyed_hashes(values, cells, PeopleKey.from_secret(SECRET_A))
    alone = [
        keyed_hashes(values.iloc[i : i + 1], cells[i : i + 1], KEY_A)[0] for i in range(len(texts))
    ]
    assert together.dtype == np.uint64
    assert together.tolist() == again.tolist() == alone


def test_another_secret_shares_no_hash() -> None:
    values = people(20_000)
    cells = np.full(len(values), CELLS[0], dtype=np.uint64)
    mine = set(keyed_hashes(values, cells, KEY_A).tolist())
    assert len(mine) == len(values)
    assert not mine & set(keyed_hashes(values, cells, KEY_B).tolist())


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(st.text(max_size=20), min_size=1, max_size=20, unique=True))
def test_the_same_person_hashes_unrelated_in_two_cells(texts: list[str]) -> None:
    """Or the table would link a person's cells into a pseudonymous trail."""
    values = pd.Series(texts, dtype=object)
    january = keyed_hashes(values, np.full(len(texts), CELLS[0], np.uint64), KEY_A)
    february = keyed_hashes(values, np.full(len(texts), CELLS[1], np.uint64), KEY_A)
    assert not set(january.tolist()) & set(february.tolist())


def test_keys_never_show() -> None:
    shown = [repr(KEY_A), str(KEY_A), f"{KEY_A}", f"{KEY_A!r}", repr([KEY_A])]
    secrets = [SECRET_A.decode(), KEY_A.siphash, KEY_A.aes.hex(), repr(KEY_A.aes)]
    assert not [text for text in shown for secret in secrets if secret in text]
    with pytest.raises(ValueError) as raised:
        keyed_hashes(people(2), np.zeros(3, np.uint64), KEY_A)
    assert not [secret for secret in secrets if secret in str(raised.value)]


@pytest.mark.parametrize("secret", [b"", "a text secret"])
def test_a_people_key_needs_secret_bytes(secret: bytes) -> None:
    with pytest.raises(ValueError, match="non-empty secret"):
        PeopleKey.from_secret(secret)


def test_a_people_key_checks_its_parts() -> None:
    with pytest.raises(ValueError, match="16 ASCII characters"):
        PeopleKey(siphash="short", aes=bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        PeopleKey(siphash="0123456789abcdef", aes=bytes(16))


# -- Membership without the key ----------------------------------------------------


@pytest.mark.parametrize("visitors", [86, 3_000])
def test_a_membership_test_needs_the_key(visitors: int) -> None:
    """A month's cell of ``visitors`` out of 5,000 customer addresses, tested with every
    address: with the key, every visitor is found (and, in a sparse cell, nobody else);
    with a guessed key or an unkeyed hash, visitors look just like everybody else."""
    customers = people(5_000)
    sketch = sketch_of(customers.iloc[:visitors], cell=3, key=KEY_A)
    cells = np.full(len(customers), CELLS[3], dtype=np.uint64)  # cell ids are public
    visited = np.arange(len(customers)) < visitors

    found = members(sketch, keyed_hashes(customers, cells, KEY_A))
    assert found[visited].all()
    if sketch[:1] == SPARSE:
        assert not found[~visited].any()

    guesses = {
        "guessed key": keyed_hashes(customers, cells, KEY_B),
        "unkeyed SipHash": pd.util.hash_array(customers.to_numpy(object)),
        "unkeyed hash of cell and person": pd.util.hash_array(
            (str(CELLS[3]) + "\0" + customers).to_numpy(object)
        ),
    }
    for guess, hashes in guesses.items():
        found = members(sketch, hashes)
        if sketch[:1] == SPARSE:
            assert not found.any(), guess
        else:  # as many hits among visitors as among the others: no better than chance
            assert abs(found[visited].mean() - found[~visited].mean()) < 0.05, guess


# -- Cell ids ------------------------------------------------------------------------


def test_a_cell_id_is_stable_across_versions() -> None:
    """Stored sketches were hashed with it: another id for the same cell would count a
    person twice, once per release of Tenure."""
    assert cell_ids([(date(2024, 1, 1), "web")]).tolist() == [8788537906312484076]


def test_cell_ids_read_values_as_the_table_keeps_them() -> None:
    same = [
        [(date(2024, 1, 1), "web"), (pd.Timestamp("2024-01-01"), "web"), ("2024-01-01", "web")],
        [(date(2024, 1, 1), None), (date(2024, 1, 1), math.nan), (date(2024, 1, 1), pd.NaT)],
        [(date(2024, 1, 1), 3), (date(2024, 1, 1), 3.0), (date(2024, 1, 1), np.int64(3))],
    ]
    for keys in same:
        assert len(set(cell_ids(keys).tolist())) == 1, keys
    apart = [
        ("a|b",), ("a", "b"), ("ab",), ("a", "b", None), (None,), ("None",), ("",), ("nan",),
        (date(2024, 1, 1), 3.5), (date(2024, 1, 1), "3"), (date(2024, 1, 1),),
        (datetime(2024, 1, 1, 12, tzinfo=UTC),), (True,), (1,),
    ]  # fmt: skip
    ids = cell_ids(apart)
    assert ids.dtype == np.uint64
    assert len(set(ids.tolist())) == len(apart)
    assert cell_ids([]).tolist() == []


@settings(max_examples=100)
@given(st.lists(st.tuples(*[st.one_of(st.none(), st.text(max_size=5))] * 2), unique=True))
def test_distinct_cell_keys_get_distinct_ids(keys: list[tuple[str | None, str | None]]) -> None:
    assert len(set(cell_ids(keys).tolist())) == len(keys)


# -- Malformed input ------------------------------------------------------------------

_PAYLOAD = bytes(range(40, 56))


@pytest.mark.parametrize(
    ("sketch", "problem"),
    [
        (b"", "empty bytes"),
        (b"\x03" + _PAYLOAD, "unknown format"),
        (SPARSE + _PAYLOAD[:7], "not 1 + 8n"),
        # Any number of hashes is a sparse sketch (an exact one, `limit=None`), but
        # still strictly increasing ones.
        (SPARSE + bytes(8 * (SPARSE_LIMIT + 1)), "not strictly increasing"),
        (SPARSE + _PAYLOAD[8:] + _PAYLOAD[:8], "not strictly increasing"),
        (SPARSE + _PAYLOAD[:8] * 2, "not strictly increasing"),
        (DENSE + _PAYLOAD, "4096 registers"),
        (DENSE + bytes(REGISTERS - 1) + b"\x36", "register above 53"),
    ],
)
def test_malformed_sketches_are_refused_without_their_bytes(sketch: bytes, problem: str) -> None:
    for call in (
        lambda: estimate([SPARSE, sketch]),
        lambda: union([sketch], np.zeros(1, np.int64), 1),
    ):
        with pytest.raises(ValueError, match=re.escape(problem)) as raised:
            call()
        message = str(raised.value)
        assert "sketch 1 " in message or "sketch 0 " in message
        assert repr(_PAYLOAD[:4])[2:-1] not in message and _PAYLOAD[:4].hex() not in message


def test_identifiers_that_are_not_text_are_refused_without_them() -> None:
    values = pd.Series(["ada@example.com", 12345678, None], dtype=object)
    with pytest.raises(ValueError, match="2 of 3 are not") as raised:
        keyed_hashes(values, np.zeros(3, np.uint64), KEY_A)
    assert "12345678" not in str(raised.value)
    surrogate = pd.Series(["grace\ud800hopper@example.com"], dtype=object)
    with pytest.raises(ValueError, match="not valid Unicode") as raised:
        keyed_hashes(surrogate, np.zeros(1, np.uint64), KEY_A)
    assert "hopper" not in str(raised.value) and raised.value.__cause__ is None


@pytest.mark.parametrize(
    ("groups", "hashes", "n_groups", "problem"),
    [
        (np.array([0, 2]), np.zeros(2, np.uint64), 2, "codes 0 to n_groups - 1"),
        (np.array([0, -1]), np.zeros(2, np.uint64), 2, "codes 0 to n_groups - 1"),
        (np.array([0.0, 1.0]), np.zeros(2, np.uint64), 2, "integer group codes"),
        (np.array([0, 1]), np.zeros(2, np.int64), 2, "uint64"),
        (np.array([0, 1]), np.zeros(3, np.uint64), 2, "uint64"),
        (np.array([0]), np.zeros(1, np.uint64), -1, "n_groups"),
    ],
)
def test_build_refuses_inconsistent_input(
    groups: np.ndarray, hashes: np.ndarray, n_groups: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        build(groups, hashes, n_groups)


def test_union_needs_one_code_per_sketch() -> None:
    with pytest.raises(ValueError, match="one code per sketch"):
        union([SPARSE, SPARSE], np.zeros(1, np.int64), 1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 65_535, 65_536, 70_000, 2**32 + 5, 2**40]),
            st.integers(0, 2**64 - 1),
        ),
        max_size=60,
    )
)
def test_pairs_sort_by_code_then_value_as_lexsort_does(pairs: list[tuple[int, int]]) -> None:
    """The radix passes over the codes' 16-bit digits sort as ``np.lexsort`` would, for
    codes of one, two or three digits."""
    from connectors import sketches

    codes = np.array([c for c, _ in pairs], dtype=np.int64)
    values = np.array([v for _, v in pairs], dtype=np.uint64)
    order = sketches._by_code_then_value(codes, values)
    expected = np.lexsort((values, codes))
    assert codes[order].tolist() == codes[expected].tolist()
    assert values[order].tolist() == values[expected].tolist()
