"""Resolving a LoRA adapter path into a stable identity, shared by the engines.

The identity includes the weights file's modification time, so an adapter directory rewritten by a
later checkpoint is loaded afresh instead of being served stale from an engine's cache.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


class AdapterNotFound(FileNotFoundError):
    pass


@dataclass(frozen=True)
class AdapterRef:
    path: str
    key: str   # a module-name-safe id: "a" + hash of (real path, weights mtime)


def resolve_adapter(path: str) -> AdapterRef:
    real = os.path.realpath(os.path.expanduser(path))
    if not os.path.isfile(os.path.join(real, "adapter_config.json")):
        raise AdapterNotFound(f"no LoRA adapter at {path!r} (missing adapter_config.json)")
    weights = [os.path.join(real, f) for f in WEIGHT_FILES if os.path.isfile(os.path.join(real, f))]
    if not weights:
        raise AdapterNotFound(f"LoRA adapter at {path!r} has no {' or '.join(WEIGHT_FILES)}")
    stamp = f"{real}:{os.stat(weights[0]).st_mtime_ns}"
    return AdapterRef(real, "a" + hashlib.sha1(stamp.encode()).hexdigest()[:16])
