"""The CFT task core: distribution families, splits, output spaces, prompts, tries, arithmetic
replay, mixing and metrics. Pure Python + numpy/scipy; no Ray, no torch.

Both `trainers` and `evaluators` import this package; it imports neither of them.
"""
