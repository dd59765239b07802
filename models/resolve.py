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


# A hub repository's files a loader needs: the safetensors weights, configs and tokenizer, not the
# duplicate checkpoints some repositories also carry (Llama's original/*.pth, gpt-oss's original/, metal/).
SKIPPED_HUB_FILES = ["original/*", "metal/*", "*.pth", "*.bin", "*.pt", "*.gguf", "*.onnx", "*.h5", "*.msgpack"]


def is_hub_id(ref: str) -> bool:
    return ref.lower() not in ALIASES and not looks_like_path(ref)


def fetch_model(ref: str) -> str:
    """resolve_model, with a hub id downloaded once into the Hugging Face cache ($HF_HOME, on a cluster
    a shared filesystem) and returned as that local directory, so the trials and scorer replicas on
    every node load one copy and need neither the hub nor HF_TOKEN. Aliases and local paths never
    touch the network."""
    if not is_hub_id(ref):
        return resolve_model(ref)
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(ref, ignore_patterns=SKIPPED_HUB_FILES)
    except Exception as err:   # offline, gated without HF_TOKEN, a typo: the hub's own message says which
        raise ModelNotFound(f"{ref!r} could not be fetched from the Hugging Face hub into {_hub_cache()}: "
                            f"{type(err).__name__}: {err}") from None


def _hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE
