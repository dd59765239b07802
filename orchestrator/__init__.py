"""The driver: sweep specs, the Ray Tune experiment, results. The only package that knows
`cft`, `models`, `trainers` and `evaluators` together."""
