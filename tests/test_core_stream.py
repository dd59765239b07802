"""The training stream (cft/mixing.py): the paper's per-epoch walk over the prompts, plus i.i.d. replay."""

import math
from collections import Counter

import numpy as np
import pytest

from cft.mixing import epoch_order, mixed_stream
from cft.splits import build_split

FAMILIES = ["a"] * 20 + ["b"] * 2 + ["c"] * 5


@pytest.fixture(scope="module")
def train_families():
    return [p.family for p in build_split("train", "full", None)]


@pytest.mark.parametrize("mix", [0.0, 0.3, 0.7])
def test_replay_fraction_is_mix_within_sampling_error(mix):
    n = 5000
    items = mixed_stream(n, mix, ["a"] * 10 + ["b"] * 3, seed=0)
    frac = sum(i.kind == "replay" for i in items) / n
    assert abs(frac - mix) <= 4 * math.sqrt(mix * (1 - mix) / n) + 1e-12
    replay = [i.index for i in items if i.kind == "replay"]
    assert replay == list(range(len(replay)))  # the replay pool is walked in order


def test_stream_is_deterministic_and_checks_mix():
    assert mixed_stream(100, 0.5, ["a", "b"], seed=7) == mixed_stream(100, 0.5, ["a", "b"], seed=7)
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="mix must be in"):
            mixed_stream(10, bad, ["a"])


def test_a_longer_stream_starts_with_the_shorter_one():
    """Each slot depends on (seed, position) only, not on how long a run is planned."""
    short, long = mixed_stream(90, 0.3, FAMILIES, seed=3, copies=2), mixed_stream(400, 0.3, FAMILIES, seed=3, copies=2)
    assert long[:90] == short


@pytest.mark.parametrize("copies", [1, 3])
def test_each_prompt_appears_copies_times_per_epoch(copies):
    per_epoch = len(FAMILIES) * copies
    items = mixed_stream(3 * per_epoch, 0.0, FAMILIES, seed=1, copies=copies)
    for e in range(3):
        epoch = Counter(i.index for i in items[e * per_epoch:(e + 1) * per_epoch])
        assert epoch == {i: copies for i in range(len(FAMILIES))}


def test_epochs_are_reshuffled_and_the_seed_fixes_the_order():
    first, second = epoch_order(FAMILIES, seed=0, epoch=0), epoch_order(FAMILIES, seed=0, epoch=1)
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)
    np.testing.assert_array_equal(first, epoch_order(FAMILIES, seed=0, epoch=0))
    assert not np.array_equal(first, epoch_order(FAMILIES, seed=1, epoch=0))


def test_families_interleave_round_robin_with_a_fresh_family_order_each_round():
    """Round r holds one item of every family that has more than r items, in a shuffled order."""
    orders = set()
    for epoch in range(20):
        fams = [FAMILIES[i] for i in epoch_order(FAMILIES, seed=0, epoch=epoch)]
        pos = 0
        for r in range(20):
            active = {f for f, n in Counter(FAMILIES).items() if n > r}
            chunk = fams[pos:pos + len(active)]
            assert sorted(chunk) == sorted(active), (epoch, r, chunk)
            if len(active) == 3:
                orders.add(tuple(chunk))
            pos += len(active)
        assert pos == len(fams)
    assert len(orders) == 6  # all 3! family orders occur in the three-family rounds


def test_family_shares_are_proportional_to_prompt_counts(train_families):
    """Over two epochs with replay, each family's share of calibration slots is its share of prompts."""
    counts = Counter(train_families)
    n_prompts, mix = len(train_families), 0.3
    items = mixed_stream(math.ceil(2 * n_prompts / (1 - mix)), mix, train_families, seed=0)
    calib = Counter(train_families[i.index] for i in items if i.kind == "calib")
    n_calib = sum(calib.values())
    assert abs(n_calib - 2 * n_prompts) < 4 * math.sqrt(len(items) * mix * (1 - mix))
    for fam, n in counts.items():
        share, paper = calib[fam] / n_calib, n / n_prompts
        assert abs(share - paper) < 4 * math.sqrt(paper * (1 - paper) / n_calib), (fam, share, paper)
    # with no replay, whole epochs hold each family exactly epochs x its prompt count
    exact = Counter(train_families[i.index] for i in mixed_stream(2 * n_prompts, 0.0, train_families, seed=0))
    assert exact == {fam: 2 * n for fam, n in counts.items()}


def test_batches_mix_families_in_many_combinations(train_families):
    items = mixed_stream(len(train_families), 0.0, train_families, seed=0)
    batches = {frozenset(train_families[i.index] for i in items[b:b + 8]) for b in range(0, len(items), 8)}
    assert len(batches) > 100  # a fixed family cycle gave 3 distinct sets
