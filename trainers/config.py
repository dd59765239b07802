"""The settings of one training run: the only place each training setting is declared.

The sweep spec embeds this model as its `training:` section (per-model and per-method overrides are
merged by pydantic), a trial fills in model/method/lr/mix/seed/chat with `model_copy(update=...)`, Ray
Train hands the model itself to every worker, and `python -m trainers.train` builds its flags from the
fields (cft.cli). Field constraints are the only validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cft.families import FamilyNames
from cft.prompts import ChatOptions
from cft.splits import SPLITS
from models.precision import cpu_has_bf16
from models.resolve import looks_like_path

Method = Literal["soft", "hard"]


class TrainConfig(BaseModel):
    """Training settings (trainers.config.TrainConfig)."""
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # What to train: set per trial by the sweep (from models, methods, the search and the seed).
    model: str = Field("", max_length=4096, description="HF id, alias (tiny, smollm2-135m-instruct) or local path")
    method: Method = Field("soft", description="soft (trie KL targets) or hard (sampled completions)")
    lr: float = Field(2e-4, gt=0, le=1.0, description="peak learning rate (AdamW, cosine schedule)")
    mix: float = Field(0.0, ge=0, lt=1, description="fraction of the training stream that is replay data")
    seed: int = Field(0, ge=0, lt=2**32, description="seed of the data order, sampling and LoRA init")
    chat: ChatOptions = Field(ChatOptions(), description="chat template options (cft.prompts.ChatOptions)")

    # Schedule and optimiser.
    epochs: float = Field(1.0, gt=0, le=100_000, description="passes over the calibration prompts")
    # the paper's longest run is ~3,000 optimizer steps; 10^7 is days on any GPU
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="cap on optimizer steps")
    batch_size: int = Field(8, ge=1, le=4096, description="examples per worker per micro-step")
    grad_accum: int = Field(1, ge=1, le=1024, description="micro-steps per optimizer step")
    global_batch_size: int | None = Field(
        None, ge=1, le=1_000_000, description="examples per optimizer step the run must have: when set, "
        "batch_size x workers_per_trial x grad_accum must equal it (the paper's 8 whatever the worker count)")
    grad_clip: float | None = Field(1.0, ge=0, description="clip the gradient norm to this; null (or 0): no "
                                    "clipping, as the paper's reference code")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of steps spent warming up")
    weight_decay: float = Field(0.01, ge=0, le=1)

    # Model and parallelism.
    lora: bool = Field(True, description="train a LoRA adapter (else full fine-tuning)")
    lora_r: int = Field(16, ge=1, le=1024)
    lora_alpha: int = Field(32, ge=1, le=65_536)   # the paper uses 2x lora_r; rank 1024 x 64 at most
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    # at most the ~10 linear layer kinds of a transformer block (q/k/v/o, gate/up/down, ...)
    lora_target_modules: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1, max_length=64)
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="CPU runs only (GPU runs train in bf16 through DeepSpeed whatever this says). "
        "auto: on a CPU with bf16 matrix units, a LoRA run below ZeRO-3 keeps its frozen weights in bf16 "
        "and its adapter and optimizer state in fp32; else fp32. bf16 forces that; fp32 turns it off")
    zero_stage: Literal[0, 1, 2, 3] = Field(0, description="DeepSpeed ZeRO stage")
    workers_per_trial: int = Field(1, ge=1, le=1024, description="Ray Train workers (data parallel)")
    cpus_per_worker: float = Field(1.0, gt=0, le=1024)
    torch_threads: int | None = Field(
        None, ge=1, le=1024, description="torch CPU threads per worker (default: Ray's, one per reserved "
        "CPU); where training and scoring take turns on one box, its cores")
    gpus_per_worker: Literal[0, 1] = Field(0, description="1: one GPU per worker, bf16 and NCCL")
    accelerator_type: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$", max_length=64,
                                         description="GPU type the workers must run on (Ray's accelerator_type: "
                                         "A10G, A100, H100, ...)")

    # Data.
    split: str = Field("train", description=f"calibration split: {', '.join(SPLITS)}")
    families: FamilyNames | None = Field(None, description="calibration families (default: all)")
    # the train split's largest family grid has 121 prompts (calibrate_sft_grids.yaml max_specs)
    prompts_per_family: int | None = Field(None, ge=1, le=100_000,
                                           description="thin each family to this many prompts")
    num_decimals: int = Field(5, ge=0, le=8, description="decimals of continuous values")
    max_bins: int = Field(1001, ge=2, le=100_000, description="most values in one output space")
    hard_samples_per_prompt: int = Field(16, ge=1, le=10_000)
    replay: Literal["synthetic", "gsm8k"] = Field(
        "synthetic", description="replay source: synthetic arithmetic, or worked GSM8K train problems")
    replay_pool: int = Field(2000, ge=1, le=1_000_000, description="replay problems drawn from the source")
    replay_jsonl: str | None = Field(None, max_length=4096, description="GSM8K-format JSONL replay file instead")
    checkpoint_every: int = Field(50, ge=1, le=10_000_000, description="optimizer steps between checkpoints")

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def frozen_bf16(self) -> bool:
        """Whether a CPU run stores its frozen weights in bf16 (a LoRA run below ZeRO-3, whose partitioned
        weights DeepSpeed keeps in one dtype): a matmul runs ~2.8x faster in bf16 on AVX512-BF16 or AMX."""
        if self.use_gpu or not self.lora or self.zero_stage == 3 or self.precision == "fp32":
            return False
        return self.precision == "bf16" or cpu_has_bf16()

    @model_validator(mode="after")
    def _global_batch(self):
        if self.global_batch_size is not None:
            actual = self.batch_size * self.workers_per_trial * self.grad_accum
            if actual != self.global_batch_size:
                raise ValueError(
                    f"global_batch_size: {self.global_batch_size} asked, but batch_size ({self.batch_size}) x "
                    f"workers_per_trial ({self.workers_per_trial}) x grad_accum ({self.grad_accum}) = {actual}; "
                    "change batch_size or grad_accum so the product is the global batch")
        return self

    @field_validator("model")
    @classmethod
    def _local_model_exists(cls, ref: str) -> str:
        if ref and looks_like_path(ref) and not Path(ref).expanduser().exists():
            raise ValueError(f"local model path does not exist: {ref}")
        return ref

    @field_validator("split")
    @classmethod
    def _known_split(cls, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
        return split

    @field_validator("replay_jsonl")
    @classmethod
    def _replay_file_exists(cls, path: str | None) -> str | None:
        if path is not None and not Path(path).expanduser().is_file():
            raise ValueError(f"replay file does not exist: {path}")
        return path
