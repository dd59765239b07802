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
        check_model_dir(path, ref)
        return str(path.resolve())
    return ref


# What a local Hugging Face model directory needs: one of each group (checked before any work starts,
# so an incomplete copy fails in one line instead of inside a Ray worker).
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")


def check_model_dir(path: Path, ref: str | None = None) -> None:
    """Raise ModelNotFound naming what a local model directory lacks: config, weights or tokenizer."""
    ref = ref or str(path)
    if not (path / "config.json").exists():
        raise ModelNotFound(f"model path {ref!r} has no config.json; is it a Hugging Face model directory?")
    if not any((path / f).exists() for f in WEIGHT_FILES) and not any(path.glob("*.safetensors")):
        raise ModelNotFound(f"model path {ref!r} has no weights (expected {' or '.join(WEIGHT_FILES[:3])})")
    if not any((path / f).exists() for f in TOKENIZER_FILES):
        raise ModelNotFound(f"model path {ref!r} has no tokenizer (expected {' or '.join(TOKENIZER_FILES)})")


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
    from huggingface_hub import constants, snapshot_download

    ref, revision = split_revision(ref)
    try:
        return snapshot_download(ref, revision=revision, ignore_patterns=SKIPPED_HUB_FILES)
    except Exception as err:   # offline, gated without HF_TOKEN, a typo: the hub's own message says which
        raise ModelNotFound(f"{ref!r} could not be fetched from the Hugging Face hub into "
                            f"{constants.HF_HUB_CACHE}: {type(err).__name__}: {err}") from None


def check_model_ref(ref: str) -> None:
    """Raise ModelNotFound (one line) for a reference that cannot load: an incomplete local directory,
    or a hub id missing from the cache while offline. Aliases build or convert themselves."""
    if ref.lower() not in ALIASES and looks_like_path(ref):
        resolve_model(ref)
    check_hub_model_offline(ref)   # which checks hub ids only


def check_hub_model_offline(ref: str) -> None:
    """Offline (HF_HUB_OFFLINE=1), a hub id must already be in the local cache; raise ModelNotFound in
    one line if it is not. Online this checks nothing (fetch_model downloads it, or says why not)."""
    from huggingface_hub import constants, snapshot_download

    if not is_hub_id(ref) or not constants.HF_HUB_OFFLINE:
        return
    name, revision = split_revision(ref)
    try:
        check_model_dir(Path(snapshot_download(name, revision=revision, local_files_only=True)), ref)
    except ModelNotFound:
        raise
    except Exception:
        raise ModelNotFound(f"{ref!r} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                            "HF_HUB_OFFLINE=1 forbids downloading it: check the name, or fetch it once online") from None


# --- provenance: which weights and which code a trial ran -----------------------------------------

def split_revision(ref: str) -> tuple[str, str | None]:
    """`org/name@<commit sha or tag>` -> (org/name, revision); a hub id without @ -> (ref, None).
    A spec pins a hub model by its commit this way (docs/security.md); local paths never carry one."""
    if is_hub_id(ref.split("@", 1)[0]) and "@" in ref:
        name, revision = ref.split("@", 1)
        return name, revision or None
    return ref, None


def model_revision(path: str | Path) -> str:
    """What a loaded model directory is, for its trials' records: the hub commit sha of a snapshot in
    the Hugging Face cache (.../snapshots/<sha>), else `sha256:<hex>` over every file's relative path
    and content (a local directory; it reads the weights once, about a second per GB)."""
    path = Path(path).expanduser().resolve()
    if path.parent.name == "snapshots" and len(path.name) == 40 and all(c in "0123456789abcdef" for c in path.name):
        return path.name
    return content_digest(path, sorted(p for p in path.rglob("*") if p.is_file()))


def content_digest(base: Path, files: list[Path]) -> str:
    """`sha256:<hex>` over each file's path relative to `base` and its content, in the order given."""
    import hashlib

    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(base)).encode() + b"\0")
        with open(f, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


PROJECT_PACKAGES = ("cft", "models", "trainers", "evaluators", "orchestrator")


def project_commit() -> str:
    """What a trial's record names as the code it ran: the project's git commit (with "-dirty" when
    tracked files differ from it), or, outside a git checkout of its own, `sha256:<hex>` over the
    product packages' Python files. `ray job submit --working-dir .` uploads the project without its
    .git (Ray leaves it out), so a job's driver has no commit to read, but the same sources hash the
    same."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        if Path(top).resolve() != root:
            raise OSError(f"{root} is not the top of a git checkout")   # e.g. a copy inside another repo
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return source_digest(root)
    return f"{sha}-dirty" if dirty else sha


def source_digest(root: Path) -> str:
    """`sha256:<hex>` over the product packages' Python files under `root`."""
    return content_digest(root, sorted(f for pkg in PROJECT_PACKAGES for f in (root / pkg).rglob("*.py")))
