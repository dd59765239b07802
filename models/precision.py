"""Which float types this host computes fast: shared by the trainers and the scoring engines."""

from __future__ import annotations


def cpu_has_bf16() -> bool:
    """oneDNN's own test for native bf16 matmuls on this CPU (AVX512-BF16 or AMX): there a bf16 matmul
    runs 2.8x faster than fp32 (measured on this project's 2-core AVX512-BF16 box); elsewhere bf16 is
    emulated and slower."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
