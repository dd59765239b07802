"""The training stream: calibration examples and capability-replay examples at ratio `mix`.

Calibration slots walk the training prompts epoch by epoch, as the paper's reference does
(docs/method.md section 3, its `_balanced_prompt_order`): every prompt appears exactly `copies` times per
epoch (1 for soft target, `hard_samples_per_prompt` for hard target), so a family's share of the
stream is proportional to its prompt count. Within an epoch each family's items are shuffled and the
families are interleaved round-robin, the order of the still-active families reshuffled every round;
once a small family is used up, the later rounds hold only the larger ones. Each epoch's order is drawn
afresh from (seed, epoch).

Over whole epochs this gives the same family shares as a plain per-epoch permutation; it differs in
where families sit inside an epoch (every family early, the big families at the end), which matters for
runs cut short by `max_steps` and for the learning-rate schedule, so we follow the reference.

Which slots are replay is drawn i.i.d. (each slot is replay with probability `mix`), so the replay
fraction of any run is `mix` within binomial sampling error. The whole stream is a pure function of
(seed, position): a restarted worker group resuming at step s sees what an uninterrupted run sees.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class StreamItem:
    kind: str   # "calib" or "replay"
    index: int  # into the calibration prompts, or the replay pool (take it modulo the pool's size)


def epoch_order(families: Sequence[str], seed: int, epoch: int, copies: int = 1) -> np.ndarray:
    """Prompt indices of one epoch: each prompt `copies` times, families interleaved round-robin.

    Family f's items (its prompts repeated `copies` times, shuffled) fill rounds 0, 1, ... one item per
    round; inside a round the families come in a random order. Drawing an independent uniform key per
    (family, round) and sorting by (round, key) gives exactly a uniform shuffle of each round's active
    families, in one vectorised sort.
    """
    rng = np.random.default_rng([seed, epoch])
    labels = np.asarray(families)
    rounds, keys, items = [], [], []
    for fam in sorted(set(families)):
        mine = np.repeat(np.flatnonzero(labels == fam), copies)
        items.append(rng.permutation(mine))
        rounds.append(np.arange(len(mine)))
        keys.append(rng.random(len(mine)))
    order = np.lexsort((np.concatenate(keys), np.concatenate(rounds)))
    return np.concatenate(items)[order]


def mixed_stream(n_items: int, mix: float, calib_families: Sequence[str], seed: int = 0,
                 copies: int = 1) -> list[StreamItem]:
    """The first `n_items` slots of the stream (calibration epochs as in `epoch_order`, replay i.i.d.)."""
    if not 0.0 <= mix < 1.0:
        raise ValueError(f"mix must be in [0, 1) (got {mix})")
    if not calib_families:
        raise ValueError("the calibration prompt list is empty")
    is_replay = np.random.default_rng(seed).random(n_items) < mix
    n_calib = int(n_items - is_replay.sum())
    per_epoch = len(calib_families) * copies
    epochs = -(-n_calib // per_epoch)
    calib = np.concatenate([epoch_order(calib_families, seed, e, copies) for e in range(epochs)] or [[]])
    calib_order, replay_order = iter(calib), itertools.count()   # each slot takes the next of its kind
    return [StreamItem("replay", next(replay_order)) if replay else StreamItem("calib", int(next(calib_order)))
            for replay in is_replay]
