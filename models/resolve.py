"""Turn a model reference from a spec or a command line into something `from_pretrained` loads.

A reference is one of: an alias (`tiny`, `smollm2-135m-instruct`), a local directory, or a hub id
(`org/name`, loaded on clusters that reach the hub).
"""

from __future__ import annotations

from pathlib import Path

ALIASES = ("tiny", "smollm2-135m-instruct")


class ModelNotFound(ValueError):
    """A model reference names a local path that does not exist or is not a model."""


def looks_like_path(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or Path(ref).exists() or ref.count("/") > 1


def resolve_model(ref: str) -> str:
    if ref == "tiny":
        from models.smollm2 import cache_root
        from models.tiny import build_tiny_model

        path = cache_root() / "models" / "tiny-llama-v2"   # v2: generation config lists both terminators
        if not (path / "config.json").exists():
            build_tiny_model(path)
        return str(path)
    if ref.lower() == "smollm2-135m-instruct":
        from models.smollm2 import ensure_smollm2

        return str(ensure_smollm2())
    if looks_like_path(ref):
        path = Path(ref).expanduser()
        if not path.is_dir():
            raise ModelNotFound(f"model path {ref!r} does not exist or is not a directory")
        if not (path / "config.json").exists():
            raise ModelNotFound(f"model path {ref!r} has no config.json; is it a Hugging Face model directory?")
        return str(path.resolve())
    return ref
