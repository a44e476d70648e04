"""The key index and the pair index against plain Python models of them."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st_

from detector.features import state as st

keys_ = st_.lists(st_.integers(min_value=0, max_value=10**15), max_size=60)


@settings(max_examples=60, deadline=None)
@given(st_.lists(keys_, min_size=1, max_size=8), keys_)
def test_key_index_gives_slots_in_order_of_arrival_like_a_dict(batches, probes):
    index, model = st.KeyIndex(), {}
    for b in batches:
        arr = np.array(b, np.int64)
        for k in sorted(set(b) - set(model)):   # a call's new keys ascending
            model[k] = len(model)
        slots, added = index.lookup_or_add(arr)
        assert slots.tolist() == [model[k] for k in b]
    assert index.keys_by_slot.tolist() == list(model)
    assert index.lookup(np.array(probes, np.int64)).tolist() == [model.get(k, -1) for k in probes]


def test_key_index_grows_past_its_table_and_keeps_every_key():
    index = st.KeyIndex()
    keys = np.random.default_rng(3).permutation(50_000).astype(np.int64) * 7919
    for part in np.array_split(keys, 9):
        index.lookup_or_add(part)
    slots = index.lookup(keys)
    assert (index.keys_by_slot[slots] == keys).all() and len(np.unique(slots)) == len(keys)
    assert (index.lookup(keys + 1) == -1).all()


pairs_ = st_.lists(st_.tuples(st_.integers(0, 40), st_.integers(0, 30)), max_size=80)


@settings(max_examples=60, deadline=None)
@given(st_.lists(pairs_, min_size=1, max_size=6), st_.lists(st_.integers(0, 40), max_size=10),
       st_.sets(st_.integers(0, 30), max_size=10))
def test_pair_index_answers_as_a_scan_of_its_valid_pairs(batches, asked, gone):
    """A pair is valid while its SIM is not ``gone``; queries see every valid pair added,
    through merges that drop the others."""
    truth = set()
    index = st.PairIndex(lambda k, s: ~np.isin(s, list(gone)))
    for b in batches:
        truth |= set(b)
        index.add(np.array([k for k, _ in b], np.int64), np.array([s for _, s in b], np.int64))
        index._merge() if len(b) % 2 else None     # merged or still in the buffer, alike
        want = sorted({s for k, s in truth if k in asked and s not in gone})
        assert index.of_keys(np.array(asked, np.int64)).tolist() == want
        lo, hi = np.array([5, 20]), np.array([9, 22])
        want = sorted({s for k, s in truth if (5 <= k <= 9 or 20 <= k <= 22) and s not in gone})
        assert index.in_ranges(lo, hi).tolist() == want
