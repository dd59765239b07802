"""The tokenized trie of an output space and its exact next-token targets (docs/method.md section 3).

Every support string is tokenized canonically (no special tokens) and followed by the end token: the
token the model's chat turn ends with (cft.prompts.turn_terminator: <end_of_turn> for Gemma-3-it,
<|eot_id|> for Llama-3, <|im_end|> for ChatML models, the tokenizer's EOS for raw prompts); docs/method.md
calls it EOS. At each trie node (a token prefix) the soft target is the exact next-token marginal
q(t | prefix) = mass(prefix + t) / mass(prefix); the end token competes with longer values where one
value is a strict prefix of another.

Targets are stored as dense padded arrays over nodes, so a batch of sampled paths becomes a batch of
sparse targets by numpy indexing alone (no Python loop per token):

    ids, probs, mask = trie.path_targets(value_indices)   # each [batch, max_len + 1, branching]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cft.output_space import OutputSpace
from cft.prompts import ChatOptions, turn_terminator


@dataclass(frozen=True, eq=False)
class TokenTrie:
    value_tokens: tuple[tuple[int, ...], ...]  # canonical tokens of each value, without EOS
    probs: np.ndarray        # [n_values] target probability of each value
    eos_id: int              # the end token of every value (the chat turn's terminator)
    node_ids: np.ndarray     # [n_nodes, K] next-token ids at each node, padded with 0
    node_probs: np.ndarray   # [n_nodes, K] q(token | node), padded with 0
    paths: np.ndarray        # [n_values, max_len + 1] node index before each token of value+EOS, -1 pad

    def path_targets(self, value_indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sparse soft targets along the paths of the given values.

        Returns (ids, probs, mask): ids/probs are [B, P, K] with P = max_len + 1 positions (the last
        real position of each row predicts EOS); mask is [B, P], True where a position is real.
        """
        nodes = self.paths[np.asarray(value_indices)]
        mask = nodes >= 0
        safe = np.where(mask, nodes, 0)
        return self.node_ids[safe], np.where(mask[..., None], self.node_probs[safe], 0.0), mask

    def sequence(self, value_index: int) -> tuple[int, ...]:
        """The completion tokens of a value: its canonical tokens then EOS."""
        return self.value_tokens[value_index] + (self.eos_id,)

    def path_probability(self, value_index: int) -> float:
        """Product of the next-token targets along the value's path (EOS included)."""
        ids, probs, mask = self.path_targets([value_index])
        seq = self.sequence(value_index)
        picked = [probs[0, i][ids[0, i] == tok].sum() for i, tok in enumerate(seq) if mask[0, i]]
        return float(np.prod(picked))


def build_trie(space: OutputSpace, tokenizer, end_id: int | None = None) -> TokenTrie:
    """The trie of a space's values, each ended by `end_id` (default: the turn terminator of the
    tokenizer's chat template with default ChatOptions; pass `turn_terminator(tokenizer, chat)` when
    the run's chat options differ, e.g. use_chat_template=False)."""
    end = turn_terminator(tokenizer, ChatOptions()) if end_id is None else end_id
    encoded = tokenizer(list(space.values), add_special_tokens=False)["input_ids"]
    return trie_from_tokens([tuple(int(t) for t in ids) for ids in encoded], space.probs, int(end))


def trie_from_tokens(value_tokens: Sequence[tuple[int, ...]], probs: np.ndarray, eos_id: int) -> TokenTrie:
    children: list[dict[int, float]] = [{}]  # node -> {next token: mass}
    child_node: dict[tuple[int, int], int] = {}
    paths: list[list[int]] = []
    for tokens, p in zip(value_tokens, probs):
        if eos_id in tokens:
            raise ValueError(f"a value tokenizes to a sequence containing EOS ({eos_id}): {tokens}")
        node, path = 0, []
        for tok in tuple(tokens) + (eos_id,):
            path.append(node)
            children[node][tok] = children[node].get(tok, 0.0) + float(p)
            if tok == eos_id:
                break
            nxt = child_node.get((node, tok))
            if nxt is None:
                nxt = child_node[(node, tok)] = len(children)
                children.append({})
            node = nxt
        paths.append(path)
    return TokenTrie(
        value_tokens=tuple(tuple(t) for t in value_tokens),
        probs=np.asarray(probs, dtype=float),
        eos_id=eos_id,
        **_dense_targets(children),
        paths=_pad(paths, -1),
    )


def _dense_targets(children: list[dict[int, float]]) -> dict[str, np.ndarray]:
    width = max(len(c) for c in children)
    ids = np.zeros((len(children), width), dtype=np.int64)
    probs = np.zeros((len(children), width), dtype=np.float64)
    for n, masses in enumerate(children):
        if not masses:
            continue
        total = sum(masses.values())
        ids[n, : len(masses)] = list(masses)
        probs[n, : len(masses)] = [m / total for m in masses.values()] if total > 0 else 1.0 / len(masses)
    return {"node_ids": ids, "node_probs": probs}


def _pad(rows: list[list[int]], fill: int) -> np.ndarray:
    out = np.full((len(rows), max(len(r) for r in rows)), fill, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
