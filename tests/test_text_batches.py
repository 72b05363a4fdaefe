"""Text is cut into batches by its length alone, so a cluster's workers see the batches
an in-process run redacts, and the output is the same wherever it runs."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from connectors.workers import IN_PROCESS, current, flattened, text_batches, using

texts = st.lists(st.text(max_size=60), max_size=80)


@given(texts, st.integers(1, 200))
def test_batches_keep_every_text_in_order_and_stay_within_their_size(
    given_texts: list[str], chars: int
) -> None:
    batches = text_batches(given_texts, chars)
    assert flattened(batches) == given_texts
    assert all(batch for batch in batches)
    for batch in batches:  # over the size only when a single text is
        assert sum(len(t) for t in batch) <= chars or len(batch) == 1
    for first, second in itertools.pairwise(batches):  # never cut early
        assert sum(len(t) for t in first) + len(second[0]) > chars


def test_the_installed_workers_are_the_current_ones_until_the_block_ends() -> None:
    class Wide:
        count = 4

        def map(self, fn, items):  # type: ignore[no-untyped-def]
            return [fn(item) for item in items]

        def submit(self, fn, *args):  # type: ignore[no-untyped-def]
            return IN_PROCESS.submit(fn, *args)

    assert current() is IN_PROCESS
    with using(Wide()) as wide:  # type: ignore[arg-type]
        assert current() is wide
    assert current() is IN_PROCESS
