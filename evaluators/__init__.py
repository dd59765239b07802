"""The scoring layer: inference engines behind one interface, served by Ray Serve, and the evaluations
that run over them (exact and sampled fidelity, arithmetic, open-ended randomness, MCQ balance).

- settings.py: ScorerSettings / EvalSettings
- engines/: the vLLM and HF transformers engines (one interface, engines/base.py)
- service.py: the Serve application of scorer replicas; start_scorer(settings) -> DeploymentHandle
- client.py: Scorer, the blocking client the evaluations call (over a handle or a local engine)
- fidelity.py, sampled.py, arithmetic.py, openrandom.py, mcq.py: one evaluation each
- evaluate.py: evaluate(handle, settings, adapter) -> {"summary": ..., "rows": ...}
- score.py: the command line (python -m evaluators.score)
"""
