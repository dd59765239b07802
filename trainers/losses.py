"""One vectorised loss for every example kind: KL(q || softmax(logits)) against sparse targets.

With a one-hot q this is exactly next-token cross-entropy, so hard-target and replay examples use it too.
How the positions of a batch are averaged follows the paper's reference (docs/method.md section 3):
- "sequence" (soft target): each sequence's positions averaged, then sequences averaged;
- "token" (hard target): one mean over all target tokens of the batch, as its losses.py does with
  `F.cross_entropy(..., ignore_index=-100)`, so longer values weigh more.
Replay examples are one-hot like hard targets and take the batch's aggregation: in a soft run a replay
solution counts as one sequence, in a hard run each of its tokens counts (SFT on a data mixture).
"""

from __future__ import annotations

import torch

REDUCTIONS = ("sequence", "token")
TARGET_KEYS = ("target_ids", "target_probs", "target_mask")


def supervised_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The model's logits only at the columns where some sequence of the batch has a target, and the
    batch's targets cut to the same columns. The loss reads about 10 of ~70 positions and an LM head
    is a large share of a small model's weights (SmolLM2-135M's is a fifth), so the LM head runs on
    those columns only (transformers' `logits_to_keep` with indices; the hidden states are unchanged)."""
    columns = batch["target_mask"].any(0).nonzero().squeeze(-1)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=columns)
    return out.logits, {k: batch[k][:, columns] for k in TARGET_KEYS}


def reduction_for(method: str) -> str:
    """The paper's aggregation for a training method."""
    return "token" if method == "hard" else "sequence"


def sparse_kl_loss(logits: torch.Tensor, target_ids: torch.Tensor, target_probs: torch.Tensor,
                   target_mask: torch.Tensor, reduction: str = "sequence") -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's KL at its target positions, aggregated by `reduction` ("sequence" or "token").

    logits [B, L, V]; target_ids/target_probs [B, L, K] (probability 0 marks padding); target_mask [B, L].
    Returns (loss, per_sequence [B]), per_sequence being each sequence's mean KL whatever the reduction.
    The log-softmax runs over the full vocabulary, but only at target positions, so memory stays at
    [positions, V] rather than [B, L, V] in fp32.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS} (got {reduction!r})")
    rows, cols = target_mask.nonzero(as_tuple=True)
    logp = torch.log_softmax(logits[rows, cols].float(), dim=-1)        # [N, V]
    q = target_probs[rows, cols].float()                                # [N, K]
    logp_at_targets = logp.gather(-1, target_ids[rows, cols])           # [N, K]
    neg_entropy = torch.where(q > 0, q * torch.log(q.clamp_min(1e-30)), torch.zeros_like(q)).sum(-1)
    kl = neg_entropy - (q * logp_at_targets).sum(-1)                    # [N]
    B = target_mask.shape[0]
    per_seq = torch.zeros(B, dtype=kl.dtype, device=kl.device).index_add(0, rows, kl)
    counts = target_mask.sum(-1)
    per_seq = per_seq / counts.clamp_min(1)
    loss = kl.mean() if reduction == "token" else per_seq[counts > 0].mean()
    return loss, per_seq
