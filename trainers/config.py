"""The settings of one training run, validated before anything starts."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field

from models.resolve import looks_like_path

METHODS = ("soft", "hard")
SPLITS = ("train", "test_unseen_params", "test_ood_family")


@dataclass
class TrainConfig:
    model: str
    method: str  # "soft" | "hard"
    lr: float = 2e-4
    mix: float = 0.0  # fraction of the training stream that is replay (capability-preserving) data
    epochs: float = 1.0
    max_steps: int | None = None  # caps the total optimizer steps
    batch_size: int = 8  # per worker, per micro-step
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.01
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    zero_stage: int = 0
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    split: str = "train"
    families: list[str] | None = None
    prompts_per_family: int | None = None
    num_decimals: int = 5
    max_bins: int = 1001
    hard_samples_per_prompt: int = 16
    replay_pool: int = 2000
    replay_jsonl: str | None = None
    checkpoint_every: int = 50
    seed: int = 0
    chat: dict = field(default_factory=dict)  # ChatOptions kwargs

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.method not in METHODS:
            raise ValueError(f"method: unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: learning rate must be a finite number > 0 (got {self.lr!r})")
        if not 0.0 <= self.mix < 1.0:
            raise ValueError(f"mix: replay fraction must be in [0, 1) (got {self.mix!r})")
        if looks_like_path(self.model) and not os.path.exists(os.path.expanduser(self.model)):
            raise ValueError(f"model: local model path does not exist: {self.model}")
        if not self.model:
            raise ValueError("model: empty model reference")
        _positive(self, "epochs", "batch_size", "grad_accum", "num_workers", "checkpoint_every",
                  "hard_samples_per_prompt", "replay_pool", "max_bins", "cpus_per_worker")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps: must be >= 1 or None (got {self.max_steps})")
        if self.prompts_per_family is not None and self.prompts_per_family < 1:
            raise ValueError(f"prompts_per_family: must be >= 1 or None (got {self.prompts_per_family})")
        if self.zero_stage not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage: must be 0, 1, 2 or 3 (got {self.zero_stage})")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio: must be in [0, 1) (got {self.warmup_ratio})")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay: must be >= 0 (got {self.weight_decay})")
        if self.lora and (self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1
                          or not self.lora_target_modules):
            raise ValueError("lora_r/lora_alpha/lora_dropout/lora_target_modules: need r >= 1, alpha > 0, "
                             f"dropout in [0, 1) and target modules (got {self.lora_r}, {self.lora_alpha}, "
                             f"{self.lora_dropout}, {self.lora_target_modules})")
        if self.split not in SPLITS:
            raise ValueError(f"split: unknown split {self.split!r}; expected one of {', '.join(SPLITS)}")
        if self.num_decimals < 0:
            raise ValueError(f"num_decimals: must be >= 0 (got {self.num_decimals})")
        if self.replay_jsonl is not None and not os.path.exists(self.replay_jsonl):
            raise ValueError(f"replay_jsonl: file does not exist: {self.replay_jsonl}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["lora_target_modules"] = list(self.lora_target_modules)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["lora_target_modules"] = tuple(d.get("lora_target_modules", cls.lora_target_modules))
        return cls(**d)


def _positive(cfg: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ValueError(f"{name}: must be > 0 (got {value!r})")
