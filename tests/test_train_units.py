"""Fast checks of the training layer without Ray: config validation, CLI errors, data stream, loss."""

import math
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from trainers.config import TrainConfig
from trainers.data import TrainingStream, collate, plan_steps
from trainers.deepspeed_config import build_deepspeed_config
from trainers.losses import reduction_for, sparse_kl_loss
from trainers.train import main


def cfg_for(model_dir, **kw) -> TrainConfig:
    base = dict(model=model_dir, method="soft", families=["binomial", "gaussian"], prompts_per_family=2,
                batch_size=4)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("field,value,needle", [
    ("method", "medium", "method"),
    ("lr", 0.0, "lr"),
    ("lr", -1e-4, "lr"),
    ("mix", 1.0, "mix"),
    ("mix", -0.1, "mix"),
    ("model", "/no/such/model", "model"),
    ("zero_stage", 4, "zero_stage"),
    ("batch_size", 0, "batch_size"),
])
def test_validate_names_the_bad_field(tiny_model_dir, field, value, needle):
    with pytest.raises(ValueError, match=needle):
        cfg_for(tiny_model_dir, **{field: value})


def test_valid_config_passes_and_roundtrips(tiny_model_dir):
    cfg = cfg_for(tiny_model_dir, mix=0.3, zero_stage=3)
    assert TrainConfig.model_validate(cfg.model_dump()) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg   # what Ray Train hands each worker


@pytest.mark.parametrize("args,needle", [
    (["--method", "medium"], "method: Input should be 'soft' or 'hard'"),
    (["--lr", "0"], "lr"),
    (["--mix", "1.5"], "mix"),
    (["--model", "/no/such/model"], "/no/such/model"),
])
def test_cli_rejects_bad_arguments_before_starting_ray(tiny_model_dir, tmp_path, capsys, args, needle):
    base = {"--model": tiny_model_dir, "--method": "soft", "--lr": "1e-3", "--mix": "0.2"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = [x for kv in base.items() for x in kv] + ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_module_exits_nonzero_on_bad_method(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainers.train", "--model", str(tmp_path), "--method", "x",
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "method" in proc.stderr


def test_deepspeed_config_follows_settings(tiny_model_dir):
    ds = build_deepspeed_config(cfg_for(tiny_model_dir, zero_stage=3, batch_size=4, grad_accum=2), world_size=2)
    assert ds["train_batch_size"] == 16 and ds["gradient_accumulation_steps"] == 2
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] is False
    assert build_deepspeed_config(cfg_for(tiny_model_dir, gpus_per_worker=1), 1)["bf16"]["enabled"] is True


def test_plan_covers_epochs_plus_replay(tiny_model_dir):
    plan = plan_steps(cfg_for(tiny_model_dir, method="hard", epochs=2, mix=0.5, hard_samples_per_prompt=4),
                      n_prompts=10, world_size=2)
    # 2 epochs x 10 prompts x 4 samples = 80 calibration examples; mix 0.5 doubles that; 8 per step
    assert plan.items_per_epoch == 40 and plan.total_steps == 20
    capped = plan_steps(cfg_for(tiny_model_dir, epochs=10, max_steps=3), n_prompts=10, world_size=2)
    assert capped.total_steps == 3


def test_workers_see_disjoint_positions_and_data_is_deterministic(tiny_model_dir, tiny_tokenizer):
    cfg = cfg_for(tiny_model_dir, mix=0.3, grad_accum=2, epochs=3)
    a, b = TrainingStream(cfg, tiny_tokenizer, 2), TrainingStream(cfg, tiny_tokenizer, 2)
    seen = [p for s in range(a.plan.total_steps) for m in range(2) for r in range(2) for p in a.positions(s, m, r)]
    assert sorted(seen) == list(range(a.plan.n_items))
    for pos in (0, 5, 17):
        ea, eb = a.example(pos), b.example(pos)
        assert ea.input_ids == eb.input_ids and np.array_equal(ea.target_probs, eb.target_probs)


def test_replay_fraction_matches_mix_within_sampling_error(tiny_model_dir, tiny_tokenizer):
    cfg = cfg_for(tiny_model_dir, mix=0.3, epochs=2000)  # 8,000 calibration examples
    stream = TrainingStream(cfg, tiny_tokenizer, 1)
    n = stream.plan.n_items
    frac = sum(item.kind == "replay" for item in stream.items) / n
    assert abs(frac - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n)
    replay = next(p for p, item in enumerate(stream.items) if item.kind == "replay")
    ex = stream.example(replay)
    assert ex.kind == "replay" and "The answer is" in tiny_tokenizer.decode(ex.input_ids[ex.start + 1:])


def test_soft_example_carries_trie_marginals_along_the_path(tiny_model_dir, tiny_tokenizer):
    stream = TrainingStream(cfg_for(tiny_model_dir, families=["binomial"], prompts_per_family=1), tiny_tokenizer, 1)
    trie, space = stream.trie(0), stream.space(0)
    value = 2
    ex = stream.calib_example(0, value)
    completion = list(trie.sequence(value))
    assert ex.input_ids[ex.start + 1:] == completion[:-1]  # inputs stop before EOS
    assert ex.target_ids.shape[0] == len(completion)
    # the product over positions of q(actual next token) is the value's target probability
    picked = [ex.target_probs[i][ex.target_ids[i] == tok].sum() for i, tok in enumerate(completion)]
    assert np.prod(picked) == pytest.approx(space.probs[value], rel=1e-9)
    np.testing.assert_allclose(ex.target_probs.sum(-1), 1.0)


def test_hard_example_is_one_hot_with_prompt_masked(tiny_model_dir, tiny_tokenizer):
    stream = TrainingStream(cfg_for(tiny_model_dir, method="hard"), tiny_tokenizer, 1)
    ex = stream.example(0)
    batch = collate([ex, stream.example(1)], tiny_tokenizer.pad_token_id)
    # values end with the tiny chat template's turn terminator <|end|>, not the tokenizer's EOS </s>
    assert stream.end_id == tiny_tokenizer.convert_tokens_to_ids("<|end|>") != tiny_tokenizer.eos_token_id
    assert ex.target_ids.shape[1] == 1 and ex.target_ids[-1, 0] == stream.end_id
    assert batch["target_mask"][0].sum() == ex.target_ids.shape[0]
    assert not batch["target_mask"][0, : ex.start].any()  # no loss on the prompt


def test_sparse_kl_equals_dense_kl_and_cross_entropy():
    torch.manual_seed(0)
    B, L, V, K = 3, 6, 11, 4
    logits = torch.randn(B, L, V)
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[0, 1:4] = mask[1, 2:6] = mask[2, 0:2] = True
    ids = torch.stack([torch.randperm(V)[:K] for _ in range(B * L)]).view(B, L, K)
    probs = torch.rand(B, L, K)
    probs[..., -1] = 0  # a padded slot
    probs = probs / probs.sum(-1, keepdim=True)
    loss, per_seq = sparse_kl_loss(logits, ids, probs, mask)
    q = torch.zeros(B, L, V).scatter_add(-1, ids, probs)
    logp = torch.log_softmax(logits, -1)
    dense = (torch.where(q > 0, q * q.clamp_min(1e-30).log(), 0) - q * logp).sum(-1)
    expected = torch.stack([dense[b][mask[b]].mean() for b in range(B)])
    torch.testing.assert_close(per_seq, expected)
    torch.testing.assert_close(loss, expected.mean())
    # one-hot targets: the loss is next-token cross-entropy
    hard_ids = ids[..., :1]
    ce, _ = sparse_kl_loss(logits, hard_ids, torch.ones_like(hard_ids, dtype=torch.float), mask)
    per_row = [torch.nn.functional.cross_entropy(logits[b][mask[b]], hard_ids[b, :, 0][mask[b]]) for b in range(B)]
    torch.testing.assert_close(ce, torch.stack(per_row).mean())
    # the token reduction averages every target position of the batch at once
    token, per_seq_again = sparse_kl_loss(logits, ids, probs, mask, reduction="token")
    torch.testing.assert_close(token, dense[mask].mean())
    torch.testing.assert_close(per_seq_again, expected)
    with pytest.raises(ValueError, match="reduction"):
        sparse_kl_loss(logits, ids, probs, mask, reduction="batch")


def test_sparse_kl_is_zero_at_the_target():
    q = torch.tensor([[[0.5, 0.3, 0.2]]])
    ids = torch.tensor([[[2, 5, 7]]])
    logits = torch.full((1, 1, 9), -1e4)
    logits[0, 0, ids[0, 0]] = q[0, 0].log()
    loss, _ = sparse_kl_loss(logits, ids, q, torch.ones(1, 1, dtype=torch.bool))
    assert abs(loss.item()) < 1e-6


def test_hard_target_loss_is_the_token_mean_cross_entropy_of_the_batch(tiny_model_dir, tiny_tokenizer):
    """As the reference's losses.py: F.cross_entropy over all completion tokens of the batch, prompt masked."""
    from transformers import AutoModelForCausalLM

    stream = TrainingStream(cfg_for(tiny_model_dir, method="hard", mix=0.3, batch_size=8), tiny_tokenizer, 1)
    examples = stream.batch(0, 0, 0)
    assert {e.kind for e in examples} == {"calib", "replay"}
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    batch = collate(examples, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss, per_seq = sparse_kl_loss(logits, batch["target_ids"], batch["target_probs"], batch["target_mask"],
                                   reduction_for("hard"))
    # independently: full sequences (prompt + completion with its end token), labels -100 on the prompt
    full = [e.input_ids + [int(e.target_ids[-1, 0])] for e in examples]
    width = max(map(len, full))
    ids = torch.full((len(full), width), tiny_tokenizer.pad_token_id)
    labels = torch.full((len(full), width), -100)
    for row, (e, seq) in enumerate(zip(examples, full)):
        ids[row, :len(seq)] = torch.tensor(seq)
        labels[row, e.start + 1:len(seq)] = torch.tensor(seq[e.start + 1:])
    attention = (torch.arange(width)[None] < torch.tensor([len(seq) for seq in full])[:, None]).long()
    with torch.no_grad():
        ref_logits = model(input_ids=ids, attention_mask=attention).logits
    expected = torch.nn.functional.cross_entropy(ref_logits[:, :-1].reshape(-1, ref_logits.shape[-1]),
                                                 labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)
    # sequences of different lengths: the per-sequence mean (the soft-target reduction) differs
    assert len({len(e.target_ids) for e in examples}) > 1
    assert abs(per_seq.mean().item() - loss.item()) > 1e-3


@pytest.mark.parametrize("preset", [None, "/elsewhere/ext"])
def test_deepspeed_op_cache_is_this_environments_own_unless_set(preset):
    """Importing `trainers` points DeepSpeed's JIT op cache at this environment (where setup prebuilds
    it), so two checkouts' environments never rebuild each other's ops; a user's own setting stays."""
    env = {k: v for k, v in os.environ.items() if k != "TORCH_EXTENSIONS_DIR"}
    if preset:
        env["TORCH_EXTENSIONS_DIR"] = preset
    out = subprocess.run([sys.executable, "-c", "import os, sys, trainers; print(os.environ['TORCH_EXTENSIONS_DIR'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == (preset or os.path.join(sys.prefix, "torch_extensions"))
