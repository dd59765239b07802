"""Each setting is declared once (on its component's pydantic model) and reaches every layer from there:
a sweep spec's section, the trial's config, and the component's CLI. A new field needs only a value in
the tables below (which the coverage tests demand) to be checked on every path; the smoke sweep test
(test_ray_jobs.py) checks the config a real Ray Train worker saved next to its adapter."""

import argparse

import pytest

from cft.cli import add_config_flags, config_values
from evaluators.score import SHORT_FLAGS as SCORE_FLAGS
from evaluators.score import build_settings
from evaluators.score import parse_args as score_args
from evaluators.settings import EngineOptions, EvalSettings, EvaluationConfig
from orchestrator.spec import SWEEP_EVAL_FIELDS, TRIAL_FIELDS, parse_spec
from orchestrator.messages import TrialConfig
from orchestrator.parts import trial_settings
from orchestrator.trial import train_config
from trainers.config import TrainConfig
from trainers.train import parse_args as train_args


def _train_values(tmp_path) -> dict:
    replay = tmp_path / "replay.jsonl"
    replay.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    return dict(
        model="tiny", method="hard", lr=0.003, mix=0.25, seed=7, chat={"enable_thinking": False},
        epochs=2.5, max_steps=9, batch_size=2, grad_accum=2, global_batch_size=8, grad_clip=0.5, warmup_ratio=0.1,
        weight_decay=0.02,
        lora=False, lora_r=4, lora_alpha=8, lora_dropout=0.1, lora_target_modules=["q_proj", "v_proj"],
        zero_stage=2, workers_per_trial=2, cpus_per_worker=0.5, gpus_per_worker=1, split="test_unseen_params",
        families=["gaussian", "poisson"], prompts_per_family=3, num_decimals=2, max_bins=64,
        hard_samples_per_prompt=5, replay="gsm8k", replay_pool=99, replay_jsonl=str(replay), checkpoint_every=4,
        accelerator_type="A100", torch_threads=3, precision="fp32")


EVAL_VALUES = dict(
    engine="hf", replicas=2, cpus_per_replica=0.5, gpus_per_replica=2, max_loras=3, max_lora_rank=32,
    max_model_len=1024, dtype="float32", kv_cache_gib=2, max_logprobs=64, max_ongoing_requests=4,
    max_batch_size=3, evals=["fidelity", "sampled"], splits=["test_ood_family"], selection="full",
    families=["poisson"], num_decimals=2, max_bins=64, samples_per_prompt=50, arithmetic_problems=7, seed=3,
    sample_max_tokens=20, arithmetic_max_tokens=100, openrandom_prompts=5, openrandom_samples=9, top_p=0.5,
    mcq_questions=11, mcq_max_tokens=50, chunk_size=4, tensor_parallel_size=2, accelerator_type="A100",
    release_idle_after_s=30.0, torch_threads=2,
    gsm8k_items=20, gsm8k_shots=2, gsm8k_generate=True, gsm8k_max_tokens=64)


def test_the_value_tables_cover_every_field_with_a_non_default(tmp_path):
    for config, values in [(TrainConfig, _train_values(tmp_path)), (EvaluationConfig, EVAL_VALUES)]:
        assert set(values) == set(config.model_fields), f"give every {config.__name__} field a test value"
        defaults = config()
        for name, value in values.items():
            assert getattr(config.model_validate({name: value}), name) != getattr(defaults, name), name


def _train_config(spec, method, lr, mix, seed):
    """What a trial of model "tiny" (at path "tiny") trains with."""
    trial = TrialConfig(key="k", model="tiny", method=method, optuna_number=0, lr=lr, mix=mix, seed=seed)
    return train_config(trial_settings(spec), trial, "tiny")


def test_every_training_field_reaches_the_trial_config_from_a_spec(tmp_path):
    values = _train_values(tmp_path)
    section = {k: v for k, v in values.items() if k not in TRIAL_FIELDS and k != "lora"}
    spec = parse_spec({"name": "t", "models": [{"ref": "tiny", "chat": values["chat"]}], "training": section})
    cfg = _train_config(spec, values["method"], values["lr"], values["mix"], values["seed"])
    assert cfg == TrainConfig.model_validate(values | {"lora": True})


def test_model_and_method_overrides_merge_in_that_order():
    spec = parse_spec({"name": "t", "models": [{"ref": "tiny", "training": {"lora_r": 4, "epochs": 2}}],
                       "methods": {"soft": {"epochs": 3}, "hard": {"max_bins": 16384}},
                       "training": {"lora_r": 8, "epochs": 1, "max_bins": 1001}})
    soft, hard = spec.training_for("tiny", "soft"), spec.training_for("tiny", "hard")
    assert (soft.lora_r, soft.epochs, soft.max_bins) == (4, 3, 1001)
    assert (hard.lora_r, hard.epochs, hard.max_bins) == (4, 2, 16384)
    assert _train_config(spec, "hard", 1e-3, 0.0, 0).max_bins == 16384


def test_every_training_field_reaches_the_config_from_the_cli(tmp_path):
    values = _train_values(tmp_path)
    argv = ["--out", str(tmp_path / "o")]
    for name, value in values.items():
        argv += _flag(name, value)
    args = train_args(argv)
    assert TrainConfig.model_validate(config_values(TrainConfig, args)) == TrainConfig.model_validate(values)


def test_short_training_flags_keep_working(tmp_path):
    args = train_args(["--model", "tiny", "--workers", "2", "--zero", "3", "--full", "--gpu",
                       "--families", "binomial", "poisson", "--out", str(tmp_path)])
    cfg = TrainConfig.model_validate(config_values(TrainConfig, args))
    assert (cfg.workers_per_trial, cfg.zero_stage, cfg.lora, cfg.gpus_per_worker) == (2, 3, False, 1)
    assert cfg.families == ["binomial", "poisson"]


def test_every_evaluation_field_reaches_the_scorer_and_the_evaluation_from_a_spec():
    section = {k: v for k, v in EVAL_VALUES.items() if k not in SWEEP_EVAL_FIELDS}
    spec = parse_spec({"name": "t", "models": [{"ref": "tiny"}], "evaluation": section, "seed": 3,
                       "objectives": [{"name": "sampled_w1"}]})
    assert trial_settings(spec).evaluation == EvalSettings.model_validate(
        {k: v for k, v in EVAL_VALUES.items() if k in EvalSettings.model_fields})
    scorer = spec.evaluation.scorer(model="m", app_name="a")
    for name in EngineOptions.model_fields:
        assert getattr(scorer, name) == EVAL_VALUES[name], name


def test_every_evaluation_field_reaches_the_settings_from_the_cli(tiny_model_dir):
    argv = ["--model", tiny_model_dir]
    for name, value in EVAL_VALUES.items():
        argv += _flag(name, value)
    scorer, settings = build_settings(score_args(argv))
    for name, value in EVAL_VALUES.items():
        target = settings if name in EvalSettings.model_fields else scorer
        assert getattr(target, name) == value, name
    short = build_settings(score_args(["--model", tiny_model_dir, "--split", "test_ood_family", "--samples", "5",
                                       "--evals", "fidelity,sampled"]))[1]
    assert (short.splits, short.samples_per_prompt, short.evals) == (["test_ood_family"], 5, ["fidelity", "sampled"])


def test_generated_flags_are_the_model_fields():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, EvaluationConfig, aliases=SCORE_FLAGS)
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    assert dests == set(EvaluationConfig.model_fields)


@pytest.mark.parametrize("argv,needle", [
    (["--lr", "0"], "lr: Input should be greater than 0"),
    (["--cpus-per-worker", "inf"], "cpus_per_worker: Input should be a finite number"),
    (["--families", "zipf"], "families: unknown family(ies) ['zipf']"),
    (["--seed", "-5"], "seed: Input should be greater than or equal to 0"),
])
def test_training_cli_names_each_bad_field(tmp_path, capsys, argv, needle):
    from trainers.train import main

    assert main(["--model", "tiny", "--out", str(tmp_path / "o"), *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _flag(name: str, value) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else f"--no-{name.replace('_', '-')}"]
    if isinstance(value, list):
        return [flag, *map(str, value)]
    if isinstance(value, dict):
        import json

        return [flag, json.dumps(value)]
    return [flag, str(value)]


def test_a_run_directory_written_before_the_typed_configs_still_loads_and_resumes(tmp_path):
    """tests/data/legacy_run/smoke: spec.json, a trial record and baselines as the untyped version wrote
    them (methods as a list, objectives without metric, dict chat options, no objective_se)."""
    import shutil
    from pathlib import Path

    import orchestrator.results as results
    from orchestrator.store import RunStore
    from orchestrator.sweep import prepare_run_dir

    shutil.copytree(Path(__file__).parent / "data" / "legacy_run", tmp_path, dirs_exist_ok=True)
    run_dir = tmp_path / "smoke"
    frame = results.trials(run_dir)
    assert frame.loc[0, "calibration_error"] == 0.8 and pd_isna(frame.loc[0, "calibration_error_se"])
    assert results.pareto(run_dir)["key"].tolist() == ["tiny-soft-000"]
    saved = RunStore(run_dir).saved_spec()   # objectives from before they named their metric keep their meaning
    assert [(o.name, o.metric) for o in saved.objectives] == [("calibration_error", "fidelity/tv"),
                                                             ("capability_loss", "arithmetic/flexible_acc")]
    spec = saved.model_copy(update={"storage": str(tmp_path)})
    assert prepare_run_dir(spec, resume=True).root == run_dir.resolve()   # the same sweep: it resumes


def pd_isna(x) -> bool:
    import pandas as pd

    return bool(pd.isna(x))
