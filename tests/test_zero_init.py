"""ZeRO-3 runs load their model partitioned (trainers.model.load_model): no rank ever holds the full
weights, and the partitioned model computes what the plain one does. Real DeepSpeed on CPU (gloo), one
rank, in this process."""

import pytest
import torch

from trainers.config import TrainConfig
from trainers.model import load_model

pytestmark = pytest.mark.integration


@pytest.fixture
def one_rank_group(monkeypatch):
    import torch.distributed as dist

    from trainers.ray_local import free_port

    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                        "WORLD_SIZE": "1", "LOCAL_RANK": "0", "DS_ACCELERATOR": "cpu"}.items():
        monkeypatch.setenv(name, value)
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_zero3_model_is_loaded_partitioned_and_computes_as_the_plain_model(one_rank_group, tiny_model_dir):
    from transformers import AutoModelForCausalLM
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    from trainers.worker import make_engine

    ids = torch.tensor([[1, 5, 9, 13, 17]])
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = plain(input_ids=ids).logits   # a fresh LoRA adapter (B = 0) changes nothing
    cfg = TrainConfig(model=tiny_model_dir, zero_stage=3, lora=True, batch_size=2, lora_dropout=0.0)
    try:
        model = load_model(cfg, tiny_model_dir)
        base = [p for n, p in model.named_parameters() if "lora_" not in n]
        # partitioned at load: every base weight is a ZeRO-3 parameter whose local tensor is a placeholder
        assert base and all(hasattr(p, "ds_id") and p.numel() == 0 and p.ds_numel > 0 for p in base)
        engine = make_engine(cfg, model, world=1, total_steps=2)
        engine.eval()
        with torch.no_grad():
            partitioned = engine(input_ids=ids).logits
    finally:
        unset_hf_deepspeed_config()   # transformers' process-wide switch, set by load_model
    torch.testing.assert_close(partitioned, expected, atol=1e-5, rtol=1e-4)


def test_other_stages_load_the_full_model(tiny_model_dir):
    model = load_model(TrainConfig(model=tiny_model_dir, zero_stage=2, lora=False), tiny_model_dir)
    assert all(p.numel() > 0 and not hasattr(p, "ds_id") for p in model.parameters())
