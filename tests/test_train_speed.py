"""The trainer's CPU speed-ups change no result beyond a stated tolerance: the LM head at supervised
positions gives the full forward's logits there, and frozen weights in bf16 give the fp32 loss."""

import pytest
import torch

from models.precision import cpu_has_bf16
from trainers.config import TrainConfig
from trainers.data import TrainingStream, collate
from trainers.losses import TARGET_KEYS, sparse_kl_loss, supervised_logits
from trainers.model import load_model, load_tokenizer


def cfg_for(model_dir, **kw) -> TrainConfig:
    base = dict(model=model_dir, method="soft", families=["binomial", "gaussian"], prompts_per_family=2,
                batch_size=4, mix=0.5, replay_pool=8)
    return TrainConfig(**{**base, **kw})


def fixed_batch(cfg: TrainConfig):
    tokenizer = load_tokenizer(cfg.model)
    stream = TrainingStream(cfg, tokenizer, world_size=1)
    return collate(stream.batch(0, 0, 0), tokenizer.pad_token_id)


def test_supervised_logits_equal_the_full_forward_there(tiny_model_dir):
    cfg = cfg_for(tiny_model_dir, precision="fp32")
    batch = fixed_batch(cfg)
    torch.manual_seed(0)
    model = load_model(cfg, tiny_model_dir).eval()
    with torch.no_grad():
        full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        kept, targets = supervised_logits(model, batch)
    columns = batch["target_mask"].any(0).nonzero().squeeze(-1)
    assert kept.shape[1] == len(columns) < full.shape[1]    # the LM head ran on fewer positions
    torch.testing.assert_close(kept, full[:, columns], rtol=1e-5, atol=1e-5)
    assert torch.equal(targets["target_mask"].sum(), batch["target_mask"].sum())   # no target dropped
    full_loss, _ = sparse_kl_loss(full, *(batch[k] for k in TARGET_KEYS))
    kept_loss, _ = sparse_kl_loss(kept, *(targets[k] for k in TARGET_KEYS))
    assert abs(full_loss.item() - kept_loss.item()) < 1e-5


def test_frozen_bf16_loss_agrees_with_fp32(tiny_model_dir):
    """bf16 frozen weights with an fp32 adapter: the loss within 1% of the fp32 model's on a fixed batch,
    and the adapter (what the optimizer steps) stays fp32."""
    cfg = cfg_for(tiny_model_dir, precision="bf16")
    batch = fixed_batch(cfg)
    losses = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(0)   # the same LoRA init
        model = load_model(cfg, tiny_model_dir, dtype=dtype).eval()
        with torch.no_grad():
            logits, targets = supervised_logits(model, batch)
            losses[dtype] = sparse_kl_loss(logits, *(targets[k] for k in TARGET_KEYS))[0].item()
        trainable = {p.dtype for p in model.parameters() if p.requires_grad}
        frozen = {p.dtype for p in model.parameters() if not p.requires_grad}
        assert trainable == {torch.float32} and frozen == {dtype}
    assert losses[torch.bfloat16] == pytest.approx(losses[torch.float32], rel=1e-2)


@pytest.mark.parametrize("update,expected", [
    ({"precision": "bf16"}, True),
    ({"precision": "fp32"}, False),
    ({"precision": "bf16", "lora": False}, False),        # full fine-tuning keeps fp32 master weights
    ({"precision": "bf16", "zero_stage": 3}, False),      # ZeRO-3 partitions all weights in one dtype
    ({"precision": "bf16", "gpus_per_worker": 1}, False),  # GPUs: DeepSpeed's bf16 instead
    ({"precision": "auto"}, None),                        # the CPU decides
])
def test_when_frozen_weights_are_bf16(tiny_model_dir, update, expected):
    cfg = cfg_for(tiny_model_dir, **update)
    assert cfg.frozen_bf16 is (cpu_has_bf16() if expected is None else expected)
