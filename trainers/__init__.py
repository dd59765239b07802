"""Calibration fine-tuning on Ray Train + DeepSpeed: soft- and hard-target CFT with data mixing.

Entry points: `trainers.config.TrainConfig`, `trainers.run.run_training`, and the CLI
`python -m trainers.train`.
"""
