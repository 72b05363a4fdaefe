"""Keyed sketches of the people a rollup cell counts, built and merged with numpy.

A rollup cell counts its people without keeping who they are. Each (cell, person) pair
becomes a keyed 64-bit hash (`keyed_hashes`): SipHash-2-4 of the identifier under one key,
then AES-256 of the block (cell id, that hash) under another, both keys derived from the
purpose's pseudonym key (`PeopleKey`). Without the key nobody can compute the hash of a
guessed identifier, so a stored sketch answers no membership test; and the same person
hashes to unrelated values in two cells, so a person's cells cannot be linked.

A sketch is bytes, for a binary column:

- sparse: ``b"\\x01"`` and the sorted distinct hashes (little-endian uint64), an exact
  count while a cell has at most `SPARSE_LIMIT` people (the empty sketch is ``b"\\x01"``);
- dense: ``b"\\x02"`` and 4096 HyperLogLog registers (P = 12), beyond that, estimated
  with Ertl's improved estimator (one standard error about 1.6 %).

`build` and `union` take the limit (``limit=None``: never dense, an exact count at any
size, 8 bytes a person: what a differentially private release needs, where one person
must change a count by exactly one). A sparse sketch of any size is read and counted
exactly; one over the limit a `union` is given becomes dense.

`build` and `union` are deterministic: the union of the sketches of any split of the rows
is byte for byte the sketch of all of them (under the same limit), so chunks and nights
merge exactly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from connectors.values import plain

#: A cell keeps its people's hashes (an exact count) up to this many, registers beyond.
SPARSE_LIMIT = 512
#: HyperLogLog precision: 2**P registers, the bucket is a hash's top P bits.
P = 12
REGISTERS = 1 << P
#: The bits left for the rank; a register holds 0 (empty) to Q + 1.
Q = 64 - P
SPARSE = b"\x01"
DENSE = b"\x02"
_SIPHASH_LABEL = b"tenure rollup people: siphash"
_AES_LABEL = b"tenure rollup people: aes"
_CELL_PERSON = b"tenure cell id"  # blake2b personalization, at most 16 bytes
_CELL_SEED = np.uint64(0x7465_6E75_7265_6964)  # "tenureid"
_GOLDEN = np.uint64(0x9E37_79B9_7F4A_7C15)
_HASH_BYTES = 8
_LOW_BITS = np.uint64((1 << Q) - 1)
_ALPHA_INF = 1 / (2 * math.log(2))

Hashes = npt.NDArray[np.uint64]
Codes = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PeopleKey:
    """The two keys people are hashed with; `repr` and `str` never show them."""

    #: The SipHash-2-4 key, 16 ASCII characters, as `pandas.util.hash_array` takes it.
    siphash: str = field(repr=False)
    #: The AES-256 key of the per-cell permutation.
    aes: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not (
            isinstance(self.siphash, str) and len(self.siphash) == 16 and self.siphash.isascii()
        ):
            raise ValueError("PeopleKey.siphash must be 16 ASCII characters")
        if not (isinstance(self.aes, bytes) and len(self.aes) == 32):
            raise ValueError("PeopleKey.aes must be 32 bytes")

    @classmethod
    def from_secret(cls, secret: bytes) -> PeopleKey:
        """Both keys from one secret (a purpose's pseudonym key), each an HMAC-SHA256 of
        its own label, so neither tells anything about the other or the secret."""
        if not isinstance(secret, bytes) or not secret:
            raise ValueError("a people key needs a non-empty secret (bytes)")
        siphash = hmac.new(secret, _SIPHASH_LABEL, hashlib.sha256).digest()
        aes = hmac.new(secret, _AES_LABEL, hashlib.sha256).digest()
        return cls(siphash=base64.urlsafe_b64encode(siphash).decode("ascii")[:16], aes=aes)


def keyed_hashes(values: pd.Series, cells: npt.NDArray[np.uint64], key: PeopleKey) -> Hashes:
    """The keyed hash of each (cell, person): ``values`` the people's identifiers as text
    (no nulls), ``cells`` the `cell_ids` of their cells, one per value.

    The same cell, identifier and key always give the same hash, whatever else is hashed
    with it; the same identifier in two cells gives unrelated hashes.
    """
    texts = values.to_numpy(dtype=object)
    cell = np.asarray(cells)
    if cell.dtype != np.uint64 or cell.shape != texts.shape:
        raise ValueError(
            f"cells must be one uint64 cell id per value ({texts.shape[0]} values; "
            f"got {cell.dtype} of shape {cell.shape})"
        )
    if texts.size == 0:
        return np.empty(0, dtype=np.uint64)
    if pd.api.types.infer_dtype(texts, skipna=False) != "string":
        others = sum(not isinstance(text, str) for text in texts)
        raise ValueError(f"people identifiers must be text: {others} of {texts.size} are not")
    try:  # categorize=False: factorizing first would cost ten times the hashing
        first = pd.util.hash_array(texts, hash_key=key.siphash, categorize=False)
    except UnicodeEncodeError:  # its message would quote the identifier
        raise ValueError("a people identifier is not valid Unicode text") from None
    blocks = np.empty((texts.size, 2), dtype="<u8")
    blocks[:, 0] = cell
    blocks[:, 1] = first
    # Imported here: its binding costs a run that counts no people some 7 MB.
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    # ECB is a keyed pseudo-random permutation of each block here: every block is a
    # distinct input (cell, person) of the function, not part of a message.
    encryptor = Cipher(algorithms.AES(key.aes), modes.ECB()).encryptor()
    cipher = encryptor.update(blocks.tobytes()) + encryptor.finalize()
    hashes: Hashes = np.frombuffer(cipher, dtype="<u8")[0::2].astype(np.uint64)
    return hashes


def cell_ids(keys: Sequence[tuple[object, ...]]) -> npt.NDArray[np.uint64]:
    """A stable 64-bit id per cell key (period start, dimension values).

    Values are compared as the rollup table keeps them: a date or a midnight timestamp
    as its ISO date, a whole number as an integer whether int or float, other values as
    text; None, NaN and NaT alike as missing, which no text is.
    """
    width = max(map(len, keys), default=0)
    columns = [
        pd.Series([key[i] if i < len(key) else None for key in keys], dtype=object)
        for i in range(width)
    ]
    lengths = np.fromiter(map(len, keys), dtype=np.uint64, count=len(keys))
    return column_cell_ids(columns, len(keys), lengths)


def column_cell_ids(
    columns: Sequence[pd.Series | pd.Index],
    cells: int,
    lengths: npt.NDArray[np.uint64] | None = None,
) -> npt.NDArray[np.uint64]:
    """`cell_ids` of cell keys given as columns (one value per cell in each), all
    ``len(columns)`` long unless ``lengths`` says otherwise. Each distinct value of a
    column is hashed once (keyed BLAKE2b of its text); a cell's id mixes its values'
    hashes in column order, then its length, with SplitMix64's bijective finalizer."""
    ids = np.full(cells, _CELL_SEED, dtype=np.uint64)
    for column in columns:
        ids = _mix((ids + _GOLDEN) ^ _value_hashes(np.asarray(column, dtype=object)))
    width = np.uint64(len(columns))
    return _mix(ids ^ (np.full(cells, width, dtype=np.uint64) if lengths is None else lengths))


def _value_hashes(values: npt.NDArray[np.object_]) -> npt.NDArray[np.uint64]:
    """`_value_hash` of each value, computed once per distinct value. A column that
    mixes kinds (``True`` and ``1`` are equal to Python, but not as text) is hashed
    value by value."""
    if pd.api.types.infer_dtype(values, skipna=True).startswith("mixed"):
        return np.fromiter(map(_value_hash, values), dtype=np.uint64, count=len(values))
    codes, uniques = pd.factorize(values)
    hashed = np.fromiter(map(_value_hash, uniques), dtype=np.uint64, count=len(uniques))
    found: npt.NDArray[np.uint64] = np.r_[hashed, _MISSING][codes]  # code -1: missing
    return found


def _value_hash(value: object) -> np.uint64:
    digest = hashlib.blake2b(_part(value), digest_size=8, person=_CELL_PERSON).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finalizer: a bijection of 64-bit words that spreads every bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def build(
    groups: Codes, hashes: Hashes, n_groups: int, limit: int | None = SPARSE_LIMIT
) -> list[bytes]:
    """One sketch per group code 0..n_groups-1 of the rows' hashes (empty when none):
    sparse while it holds at most ``limit`` hashes (None: at any size), else dense."""
    _check_limit(limit)
    codes = _codes(groups, n_groups, "groups")
    values = np.asarray(hashes)
    if values.dtype != np.uint64 or values.shape != codes.shape:
        raise ValueError(
            f"hashes must be one uint64 per group code ({codes.size} codes; "
            f"got {values.dtype} of shape {values.shape})"
        )
    codes, values = _distinct_pairs(codes, values)
    return _sketches(codes, values, n_groups, None, None, limit)


def union(
    sketches: Sequence[bytes | None],
    groups: Codes,
    n_groups: int,
    limit: int | None = SPARSE_LIMIT,
) -> list[bytes]:
    """The union of the sketches of each group code 0..n_groups-1; None is empty.

    Sparse sketches stay sparse while their union holds at most ``limit`` hashes (None:
    at any size); a union with a dense part, or with more hashes, is dense.
    """
    _check_limit(limit)
    codes = _codes(groups, n_groups, "groups")
    if codes.size != len(sketches):
        raise ValueError(f"groups must be one code per sketch ({len(sketches)} sketches)")
    parsed = _parse(sketches)
    sparse_codes, values = _distinct_pairs(codes[parsed.owners], parsed.hashes)
    return _sketches(sparse_codes, values, n_groups, codes[parsed.dense], parsed.registers, limit)


def estimate(sketches: Sequence[bytes | None]) -> Floats:
    """How many distinct people each sketch holds: exact for a sparse sketch (of any
    size), Ertl's improved HyperLogLog estimate for a dense one; None is empty."""
    parsed = _parse(sketches)
    counts: Floats = np.bincount(parsed.owners, minlength=len(sketches)).astype(np.float64)
    if parsed.dense.size:
        counts[parsed.dense] = _ertl(parsed.registers)
    return counts


@dataclass(frozen=True)
class _Parsed:
    """Sketches taken apart: the sparse ones' hashes with the index of their sketch,
    and the dense ones' indexes with their registers (one row each)."""

    owners: npt.NDArray[np.intp]
    hashes: Hashes
    dense: npt.NDArray[np.intp]
    registers: npt.NDArray[np.uint8]


def _parse(sketches: Sequence[bytes | None]) -> _Parsed:
    items = [SPARSE if sketch is None else sketch for sketch in sketches]
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    if (lengths == 0).any():
        raise ValueError(f"sketch {_first(lengths == 0)} is empty bytes, not a sketch")
    heads = np.fromiter((item[0] for item in items), dtype=np.uint8, count=len(items))
    sparse = heads == SPARSE[0]
    dense = heads == DENSE[0]
    if not (sparse | dense).all():
        raise ValueError(
            f"sketch {_first(~(sparse | dense))} has an unknown format "
            "(its first byte is neither 1, sparse, nor 2, dense)"
        )
    payload = lengths - 1
    odd = sparse & (payload % _HASH_BYTES != 0)
    if odd.any():
        raise ValueError(f"sketch {_first(odd)} is sparse but its length is not 1 + 8n")
    if (dense & (payload != REGISTERS)).any():
        raise ValueError(
            f"sketch {_first(dense & (payload != REGISTERS))} is dense but does not hold "
            f"{REGISTERS} registers"
        )
    sparse_at, dense_at = np.flatnonzero(sparse), np.flatnonzero(dense)
    hashes = np.frombuffer(_payloads(items, sparse_at), dtype="<u8").astype(np.uint64)
    owners = np.repeat(sparse_at, payload[sparse_at] // _HASH_BYTES)
    unsorted = (owners[1:] == owners[:-1]) & (hashes[1:] <= hashes[:-1])
    if unsorted.any():
        raise ValueError(
            f"sketch {owners[_first(unsorted)]} is sparse but its hashes are not strictly "
            "increasing"
        )
    registers = np.frombuffer(_payloads(items, dense_at), dtype=np.uint8).reshape(-1, REGISTERS)
    if (registers > Q + 1).any():
        row = _first(np.asarray((registers > Q + 1).any(axis=1)))
        raise ValueError(f"sketch {dense_at[row]} is dense but has a register above {Q + 1}")
    return _Parsed(owners, hashes, dense_at, registers)


def _payloads(items: Sequence[bytes], at: npt.NDArray[np.intp]) -> bytes:
    """The bytes after the format byte of ``items[i]`` for each i in ``at``, end to end."""
    chosen = [items[i] for i in at.tolist()]
    joined = np.frombuffer(b"".join(chosen), dtype=np.uint8)
    if not chosen:
        return b""
    lengths = np.fromiter(map(len, chosen), dtype=np.int64, count=len(chosen))
    keep = np.ones(joined.size, dtype=bool)
    keep[np.r_[0, np.cumsum(lengths[:-1])]] = False  # each item's format byte
    return joined[keep].tobytes()


def _sketches(
    codes: Codes,
    values: Hashes,
    n_groups: int,
    dense_codes: Codes | None,
    dense_registers: npt.NDArray[np.uint8] | None,
    limit: int | None,
) -> list[bytes]:
    """The sketch of each group, from its distinct hashes (``codes`` and ``values``
    sorted by code, then hash) and, for a union, registers of dense sketches: dense
    past ``limit`` hashes (None: never for that)."""
    counts = np.bincount(codes, minlength=n_groups)
    is_dense = counts > (np.iinfo(np.int64).max if limit is None else limit)
    if dense_codes is not None:
        is_dense[dense_codes] = True
    dense_groups = np.flatnonzero(is_dense)
    slot = np.full(n_groups, -1, dtype=np.int64)
    slot[dense_groups] = np.arange(dense_groups.size)
    registers = np.zeros((dense_groups.size, REGISTERS), dtype=np.uint8)
    if dense_groups.size:
        into = is_dense[codes]
        _add_hashes(registers, slot[codes[into]], values[into])
    if dense_codes is not None and dense_registers is not None and dense_codes.size:
        _raise_rows(registers, slot[dense_codes], dense_registers)
    buffer = values.astype("<u8").tobytes()
    bounds = (np.r_[0, np.cumsum(counts)] * _HASH_BYTES).tolist()
    out: list[bytes] = []
    for group, (dense, row) in enumerate(zip(is_dense.tolist(), slot.tolist(), strict=True)):
        if dense:
            out.append(DENSE + registers[row].tobytes())
        else:
            out.append(SPARSE + buffer[bounds[group] : bounds[group + 1]])
    return out


def _raise_rows(
    registers: npt.NDArray[np.uint8], rows: Codes, incoming: npt.NDArray[np.uint8]
) -> None:
    """Raise ``registers[rows[i]]`` to ``incoming[i]`` for each i, a layer at a time: the
    first sketch of each row, then the second, ..., so that no layer names a row twice."""
    order = np.argsort(rows, kind="stable")
    first = _run_starts(rows[order])
    occurrence = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size]))
    layered = order[np.argsort(occurrence, kind="stable")]
    bounds = np.cumsum(np.bincount(occurrence)).tolist()
    for lo, hi in itertools.pairwise([0, *bounds]):
        picked = layered[lo:hi]
        registers[rows[picked]] = np.maximum(registers[rows[picked]], incoming[picked])


def _add_hashes(registers: npt.NDArray[np.uint8], rows: Codes, values: Hashes) -> None:
    """Raise each row's registers to the ranks of its hashes: ``rows`` and ``values``
    sorted by row, then hash, so that a row's buckets (the top bits) come in runs."""
    buckets = (values >> np.uint64(Q)).astype(np.int64)
    # The rank is the number of leading zeros of the low Q bits, plus one: Q + 1 minus
    # their bit length, which frexp gives exactly (Q bits fit a double's mantissa).
    _, bit_length = np.frexp((values & _LOW_BITS).astype(np.float64))
    ranks = (Q + 1 - bit_length).astype(np.uint8)
    cells = rows * REGISTERS + buckets
    first = _run_starts(cells)
    flat = registers.reshape(-1)
    flat[cells[first]] = np.maximum(flat[cells[first]], np.maximum.reduceat(ranks, first))


def _ertl(registers: npt.NDArray[np.uint8]) -> Floats:
    """Ertl's improved estimator (2017, algorithm 6) for each row of registers."""
    rows = registers.shape[0]
    offsets = (np.arange(rows, dtype=np.int64) * (Q + 2))[:, None]
    histogram = np.bincount(
        (registers.astype(np.int64) + offsets).reshape(-1), minlength=rows * (Q + 2)
    ).reshape(rows, Q + 2)
    m = float(REGISTERS)
    z = m * _tau(1 - histogram[:, Q + 1] / m)
    for k in range(Q, 0, -1):
        z = 0.5 * (z + histogram[:, k])
    z = z + m * _sigma(histogram[:, 0] / m)
    with np.errstate(divide="ignore"):
        result: Floats = _ALPHA_INF * m * m / z
    return result


def _sigma(x: Floats) -> Floats:
    """Ertl's sigma: x + sum over k >= 1 of x^(2^k) 2^(k-1); infinite at 1."""
    out = np.full(x.shape, np.inf)
    live = x < 1
    power, z, y = x[live], x[live].copy(), 1.0
    while True:
        power = power * power
        previous, z = z, z + power * y
        y += y
        if np.array_equal(z, previous):
            break
    out[live] = z
    return out


def _tau(x: Floats) -> Floats:
    """Ertl's tau: (1 - x - sum over k >= 1 of (1 - x^(2^-k))^2 2^-k) / 3; 0 at 0 and 1."""
    out = np.zeros(x.shape)
    live = (x > 0) & (x < 1)
    root, z, y = x[live], 1 - x[live], 1.0
    while True:
        root = np.sqrt(root)
        y *= 0.5
        previous, z = z, z - (1 - root) ** 2 * y
        if np.array_equal(z, previous):
            break
    out[live] = z / 3
    return out


def _distinct_pairs(codes: Codes, values: Hashes) -> tuple[Codes, Hashes]:
    """The distinct (code, hash) pairs, sorted by code, then hash."""
    order = _by_code_then_value(codes, values)
    codes, values = codes[order], values[order]
    first = _run_starts(codes, values)
    return codes[first], values[first]


def _by_code_then_value(codes: Codes, values: Hashes) -> npt.NDArray[np.intp]:
    """The order that sorts the pairs by code, then by value (ties in any order), as
    ``np.lexsort((values, codes))`` but several times faster: values by numpy's vector
    sort, then codes by stable radix passes over their 16-bit digits."""
    order = np.argsort(values)
    top = int(codes.max()) if codes.size else 0
    shift = 0
    while True:
        digits = ((codes[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digits, kind="stable")]
        shift += 16
        if top >> shift == 0:
            return order


def _run_starts(*keys: npt.NDArray[Any]) -> npt.NDArray[np.intp]:
    """Where each run of equal keys starts, in arrays sorted by them."""
    new = np.zeros(keys[0].size, dtype=bool)
    new[:1] = True
    for key in keys:
        new[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(new)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0
    ):
        raise ValueError("limit must be a count of hashes (an integer >= 0) or None")


def _codes(groups: Codes, n_groups: int, name: str) -> Codes:
    codes = np.asarray(groups)
    if not isinstance(n_groups, int | np.integer) or n_groups < 0:
        raise ValueError("n_groups must be a count (an integer >= 0)")
    if codes.ndim != 1 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer group codes")
    if codes.size and (codes.min() < 0 or codes.max() >= n_groups):
        raise ValueError(f"{name} must be codes 0 to n_groups - 1 ({n_groups} groups)")
    return codes.astype(np.int64, copy=False)


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _part(value: object) -> bytes:
    """One value of a cell key: missing as b"\\0", else b"\\1", its UTF-8 length and text."""
    text = _text(plain(value))
    if text is None:
        return b"\x00"
    encoded = text.encode("utf-8", "surrogatepass")
    return b"\x01" + len(encoded).to_bytes(8, "little") + encoded


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        midnight = value.tzinfo is None and value.time() == datetime.min.time()
        return value.date().isoformat() if midnight else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        if value.is_nan():
            return None
        if value.is_finite() and value == value.to_integral_value():
            return str(int(value))
        return str(value.normalize())
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer() and abs(value) < 2**53:  # an integer column with nulls
            return str(int(value))
    return str(value)


#: A missing value's hash (None, NaN, NaT).
_MISSING = _value_hash(None)
