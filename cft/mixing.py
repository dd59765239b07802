"""The training stream: calibration examples and capability-replay examples at ratio `mix`.

Which slots are replay is drawn i.i.d. (each slot is replay with probability `mix`), so the replay
fraction of any run is `mix` within binomial sampling error. Calibration slots walk the prompts in
family-balanced round-robin order (one prompt of each family in turn, each family's prompts shuffled),
as the paper's training order does. Deterministic by seed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np


@dataclass(frozen=True)
class StreamItem:
    kind: str   # "calib" or "replay"
    index: int  # into the calibration prompts, or the replay pool (take it modulo the pool's size)


def family_round_robin(families: Sequence[str], rng: np.random.Generator) -> Iterator[int]:
    """Endless prompt indices: one per family in turn; each family reshuffled when it is used up."""
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, fam in enumerate(families):
        by_family[fam].append(i)
    order = sorted(by_family)
    queues = {fam: [] for fam in order}
    while True:
        for fam in order:
            if not queues[fam]:
                queues[fam] = list(rng.permutation(by_family[fam]))
            yield int(queues[fam].pop())


def mixed_stream(n_items: int, mix: float, calib_families: Sequence[str], seed: int = 0) -> list[StreamItem]:
    if not 0.0 <= mix < 1.0:
        raise ValueError(f"mix must be in [0, 1) (got {mix})")
    if not calib_families:
        raise ValueError("the calibration prompt list is empty")
    rng = np.random.default_rng(seed)
    is_replay = rng.random(n_items) < mix
    calib = family_round_robin(calib_families, rng)
    replay_count = 0
    items = []
    for replay in is_replay:
        if replay:
            items.append(StreamItem("replay", replay_count))
            replay_count += 1
        else:
            items.append(StreamItem("calib", next(calib)))
    return items
