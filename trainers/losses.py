"""One vectorised loss for every example kind: KL(q || softmax(logits)) against sparse targets.

With a one-hot q this is exactly next-token cross-entropy, so hard-target and replay examples use it too.
"""

from __future__ import annotations

import torch


def sparse_kl_loss(logits: torch.Tensor, target_ids: torch.Tensor, target_probs: torch.Tensor,
                   target_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over sequences of the per-sequence mean KL at its target positions.

    logits [B, L, V]; target_ids/target_probs [B, L, K] (probability 0 marks padding); target_mask [B, L].
    Returns (loss, per_sequence [B]). The log-softmax runs over the full vocabulary, but only at target
    positions, so memory stays at [positions, V] rather than [B, L, V] in fp32.
    """
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
    return per_seq[counts > 0].mean(), per_seq
