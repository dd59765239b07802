"""Static facts the sweep plan (orchestrator.plan) needs and no cluster YAML states: the GPUs of common
AWS and GCP instance types, those GPUs' memory and speed, and the sizes of the paper's models.

Add a row when your instance type or model is missing:
- INSTANCE_TYPES: instance type -> (GPUs, GPU name as Ray labels it, vCPUs). The GPU name must be a key
  of GPUS. A node type in a cluster YAML can also state `resources: {GPU: n, CPU: n,
  "accelerator_type:<GPU name>": 1}` instead.
- MODELS: hub id (lower case) or alias -> ModelShape. Without a row the plan reads a local model
  directory's config.json, else parses the size from the name ("Mistral-7B-Instruct" -> 7B) and borrows
  the layer shapes of the listed model closest in size.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class GPU:
    memory_gib: float
    bf16_tflops: float   # dense tensor-core peak (fp16 where the GPU has no bf16), for the cost model


# Keys are the names Ray gives `accelerator_type` (ray.util.accelerators; EC2's GpuInfo names).
GPUS = {
    "T4": GPU(15.0, 65), "V100": GPU(15.8, 125), "A10G": GPU(22.5, 70), "L4": GPU(22.5, 121),
    "L40S": GPU(45.0, 362), "A100": GPU(40.0, 312), "A100-80G": GPU(80.0, 312), "H100": GPU(79.6, 989),
    "H200": GPU(140.4, 989), "B200": GPU(179.0, 2250),
}
# Usable memory as the driver reports it (a "24 GB" A10G shows 22.5 GiB, a "16 GB" T4 15.0 GiB).


def _family(prefix: str, gpu: str, sizes: dict[str, tuple[int, int]]) -> dict:
    return {f"{prefix}{size}": (gpus, gpu, cpus) for size, (gpus, cpus) in sizes.items()}


_ONE_GPU = {".xlarge": (1, 4), ".2xlarge": (1, 8), ".4xlarge": (1, 16), ".8xlarge": (1, 32), ".16xlarge": (1, 64)}
_G5_MULTI = {".12xlarge": (4, 48), ".24xlarge": (4, 96), ".48xlarge": (8, 192)}

# instance type -> (GPUs, GPU name, vCPUs)
INSTANCE_TYPES: dict[str, tuple[int, str, int]] = {
    # AWS
    **_family("g4dn", "T4", _ONE_GPU | {".12xlarge": (4, 48), ".metal": (8, 96)}),
    **_family("g5", "A10G", _ONE_GPU | _G5_MULTI),
    **_family("g6", "L4", _ONE_GPU | _G5_MULTI),
    **_family("g6e", "L40S", _ONE_GPU | _G5_MULTI),
    "p3.2xlarge": (1, "V100", 8), "p3.8xlarge": (4, "V100", 32), "p3.16xlarge": (8, "V100", 64),
    "p4d.24xlarge": (8, "A100", 96), "p4de.24xlarge": (8, "A100-80G", 96),
    "p5.48xlarge": (8, "H100", 192), "p5e.48xlarge": (8, "H200", 192), "p5en.48xlarge": (8, "H200", 192),
    # GCP (machine types with built-in GPUs)
    **{f"a2-highgpu-{n}g": (n, "A100", 12 * n) for n in (1, 2, 4, 8)}, "a2-megagpu-16g": (16, "A100", 96),
    **{f"a2-ultragpu-{n}g": (n, "A100-80G", 12 * n) for n in (1, 2, 4, 8)},
    "a3-highgpu-8g": (8, "H100", 208), "a3-megagpu-8g": (8, "H100", 208), "a3-ultragpu-8g": (8, "H200", 224),
    "g2-standard-4": (1, "L4", 4), "g2-standard-8": (1, "L4", 8), "g2-standard-12": (1, "L4", 12),
    "g2-standard-16": (1, "L4", 16), "g2-standard-24": (2, "L4", 24), "g2-standard-32": (1, "L4", 32),
    "g2-standard-48": (4, "L4", 48), "g2-standard-96": (8, "L4", 96),
}

# GCP N1 machines take GPUs as guestAccelerators: acceleratorType -> GPU name
GCP_ACCELERATORS = {"nvidia-tesla-t4": "T4", "nvidia-tesla-v100": "V100", "nvidia-l4": "L4",
                    "nvidia-tesla-a100": "A100", "nvidia-a100-80gb": "A100-80G", "nvidia-h100-80gb": "H100"}


@dataclass(frozen=True)
class ModelShape:
    """What the memory and cost estimates need of a model (its HF config.json's numbers)."""
    params_b: float      # parameters, billions (all of them: embeddings, experts, vision tower)
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    source: str = "table"
    active_b: float | None = None   # parameters one token passes through (mixture of experts), billions

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim


# The paper's 12 models and the project's aliases (numbers from each model's config.json and card).
MODELS = {
    "qwen/qwen3-0.6b": ModelShape(0.6, 28, 1024, 16, 8, 128, 151936),
    "qwen/qwen3-1.7b": ModelShape(1.7, 28, 2048, 16, 8, 128, 151936),
    "qwen/qwen3-4b": ModelShape(4.0, 36, 2560, 32, 8, 128, 151936),
    "qwen/qwen3-8b": ModelShape(8.2, 36, 4096, 32, 8, 128, 151936),
    "qwen/qwen3-14b": ModelShape(14.8, 40, 5120, 40, 8, 128, 151936),
    "meta-llama/llama-3.2-1b-instruct": ModelShape(1.24, 16, 2048, 32, 8, 64, 128256),
    "meta-llama/llama-3.2-3b-instruct": ModelShape(3.21, 28, 3072, 24, 8, 128, 128256),
    "google/gemma-3-1b-it": ModelShape(1.0, 26, 1152, 4, 1, 256, 262144),
    "google/gemma-3-4b-it": ModelShape(4.3, 34, 2560, 8, 4, 256, 262208),
    "google/gemma-3-12b-it": ModelShape(12.2, 48, 3840, 16, 8, 256, 262208),
    "google/gemma-3-27b-it": ModelShape(27.4, 62, 5376, 32, 16, 128, 262208),
    "openai/gpt-oss-20b": ModelShape(20.9, 24, 2880, 64, 8, 64, 201088, active_b=3.6),   # mixture of experts
    "smollm2-135m-instruct": ModelShape(0.135, 30, 576, 9, 3, 64, 49152),
    "tiny": ModelShape(0.001, 2, 128, 2, 2, 64, 512),
}

_SIZE_IN_NAME = re.compile(r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)([BbMm])(?![A-Za-z])")


def model_shape(ref: str) -> ModelShape | None:
    """The shape of a model reference: the table, a local directory's config.json, or the size in its
    name with the closest listed model's layer shapes; None when none of these tells."""
    known = MODELS.get(ref.lower())
    if known is not None:
        return known
    path = Path(ref).expanduser()
    if (path / "config.json").is_file():
        return _from_config(path)
    sizes = _SIZE_IN_NAME.findall(Path(ref).name or ref)
    if not sizes:
        return None
    number, unit = sizes[-1]
    params_b = float(number) / (1000 if unit in "Mm" else 1)
    proxy_name, proxy = min(MODELS.items(), key=lambda kv: abs(kv[1].params_b - params_b))
    return replace(proxy, params_b=params_b, active_b=None, source=f"size from the name, layer shapes of {proxy_name}")


def _from_config(path: Path) -> ModelShape:
    config = json.loads((path / "config.json").read_text())
    text = config.get("text_config", config)   # multimodal models (Gemma 3) nest the LM's config
    heads = text.get("num_attention_heads", 1)
    head_dim = text.get("head_dim") or text["hidden_size"] // heads
    dtype_bytes = {"float32": 4}.get(str(config.get("torch_dtype", config.get("dtype", "bfloat16"))), 2)
    weight_bytes = sum(f.stat().st_size for f in path.glob("*.safetensors")) or \
        sum(f.stat().st_size for f in path.glob("*.bin"))
    return ModelShape(weight_bytes / dtype_bytes / 1e9, text["num_hidden_layers"], text["hidden_size"], heads,
                      text.get("num_key_value_heads", heads), head_dim, text.get("vocab_size", 32000),
                      source=f"{path / 'config.json'} and weight files")


# On-demand prices, USD per instance-hour, Linux, AWS us-east-1 / GCP us-central1, from the providers'
# public price pages (aws.amazon.com/ec2/pricing/on-demand, cloud.google.com/compute/gpus-pricing) as
# recorded in 2024 (AWS cut P4/P5 prices in June 2025: check before quoting dollars on those). Prices
# change and differ by region: override a row for yours. A trial's dollars are its held GPU-hours
# (CPU-hours on a node without GPUs) times this price divided by the instance's GPUs (vCPUs).
PRICES_AS_OF = "2024, us-east-1 (AWS) / us-central1 (GCP), on-demand Linux"
ON_DEMAND_USD_PER_HOUR: dict[str, float] = {
    "g4dn.xlarge": 0.526, "g4dn.2xlarge": 0.752, "g4dn.4xlarge": 1.204, "g4dn.8xlarge": 2.176,
    "g4dn.12xlarge": 3.912, "g4dn.16xlarge": 4.352, "g4dn.metal": 7.824,
    "g5.xlarge": 1.006, "g5.2xlarge": 1.212, "g5.4xlarge": 1.624, "g5.8xlarge": 2.448, "g5.12xlarge": 5.672,
    "g5.16xlarge": 4.096, "g5.24xlarge": 8.144, "g5.48xlarge": 16.288,
    "g6.xlarge": 0.8048, "g6.2xlarge": 0.9776, "g6.4xlarge": 1.3232, "g6.8xlarge": 2.0144,
    "g6.12xlarge": 4.6016, "g6.16xlarge": 3.3968, "g6.24xlarge": 6.6752, "g6.48xlarge": 13.3504,
    "p3.2xlarge": 3.06, "p3.8xlarge": 12.24, "p3.16xlarge": 24.48,
    "p4d.24xlarge": 32.7726, "p5.48xlarge": 98.32,
    "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "m5.4xlarge": 0.768, "m5.8xlarge": 1.536,
    "a2-highgpu-1g": 3.6730, "a2-highgpu-8g": 29.3878, "g2-standard-4": 0.7068, "g2-standard-8": 0.8536,
}


def price_per_unit_hour(instance_type: str | None, gpus: int, cpus: float | None) -> tuple[float | None, str]:
    """Dollars per GPU-hour (per vCPU-hour on an instance without GPUs) of `instance_type`, and which of
    the two it is ("gpu" / "cpu"); (None, "") where the instance has no listed price."""
    price = ON_DEMAND_USD_PER_HOUR.get(instance_type or "")
    if price is None:
        return None, ""
    if gpus:
        return price / gpus, "gpu"
    return (price / cpus, "cpu") if cpus else (None, "")
