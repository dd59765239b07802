import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.spec import SpecError, load_spec, parse_spec
from orchestrator.sweep import main

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"name": "t", "models": [{"ref": "tiny"}]}


def _with(path: str, value):
    """GOOD with one field set (dotted path; numbers index lists); value None deletes the field."""
    spec = copy.deepcopy(GOOD)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = spec
    for k in keys[:-1]:
        if isinstance(k, str) and k not in node:
            node[k] = {}
        node = node[k]
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return spec


MALFORMED = [
    (_with("models", []), "models", "at least 1 item"),
    (_with("models", None), "models", "Field required"),
    (_with("models.0.ref", "./no/such/model"), "models.0.ref", "does not exist"),
    (_with("models.0.ref", ""), "models.0.ref", "at least 1 character"),
    (_with("models.0.weights", "x"), "models.0.weights", "unknown field"),
    (_with("models.0.chat", {"thinking": False}), "models.0.chat.thinking", "Unexpected keyword argument"),
    (_with("models.0.training", {"zero_stage": 4}), "models.0.training", "zero_stage"),
    ({**GOOD, "models": [{"ref": "tiny"}, {"ref": "tiny"}]}, "models", "duplicate model name"),
    (_with("methods", ["soft", "medium"]), "methods.medium", "'soft' or 'hard'"),
    (_with("methods", ["soft", "soft"]), "methods", "listed twice"),
    (_with("methods", {"soft": {"lr": 0.1}}), "methods.soft.lr", "set per trial by the sweep"),
    (_with("methods", {"hard": {"max_bins": 1}}), "methods.hard", "max_bins"),
    (_with("training.lr", 0.1), "training.lr", "set per trial by the sweep"),
    (_with("evaluation.seed", 3), "evaluation.seed", "set per trial by the sweep"),
    (_with("training.cpus_per_worker", float("inf")), "training.cpus_per_worker", "finite number"),
    (_with("seed", -5), "seed", "greater than or equal to 0"),
    (_with("models.0.name", "../../x"), "models.0.name", "should match pattern"),
    (_with("models.0.name", "a/b"), "models.0.name", "should match pattern"),
    (_with("trials_per_cell", 10**9), "trials_per_cell", "less than or equal to"),
    (_with("evaluation.replicas", 10**6), "evaluation.replicas", "less than or equal to"),
    (_with("search.lr", {"low": 1e-4, "high": 1e30, "log": True}), "search.lr", "must lie in (0, 1]"),
    (_with("evaluation.splits", ["train"]), "evaluation.splits", "training split"),
    (_with("objectives", [{"name": "custom"}]), "objectives.0.name", "unknown objective"),
    (_with("objectives", [{"name": "c", "metric": "fidelity/kl"}]), "objectives.0.direction", "needs a direction"),
    (_with("objectives", [{"name": "c", "metric": "vibes/x", "direction": "min"}]), "objectives.0.metric",
     "names no evaluation"),
    (_with("methods", []), "methods", "at least 1 item"),
    (_with("search.lr", {"low": 1e-2, "high": 1e-4, "log": True}), "search.lr", "must be < high"),
    (_with("search.lr", {"low": -1.0, "high": 1e-4}), "search.lr", "must lie in (0, 1]"),
    (_with("search.lr", {"low": "fast", "high": 1e-4}), "search.lr.low", "valid number"),
    (_with("search.mix", {"low": 0.2, "high": 1.0}), "search.mix", "[0, 1)"),
    (_with("search.mix", {"low": -0.1, "high": 0.5}), "search.mix", "[0, 1)"),
    (_with("search.mix", {"low": 0.6, "high": 0.5}), "search.mix", "must be < high"),
    (_with("search.sampler", "cmaes"), "search.sampler", "'tpe', 'gp', 'random' or 'grid'"),
    (_with("objectives", [{"name": "accuracy"}]), "objectives.0.name", "unknown objective"),
    (_with("objectives", [{"name": "calibration_error", "direction": "down"}]), "objectives.0.direction",
     "'min' or 'max'"),
    (_with("objectives", []), "objectives", "at least 1 item"),
    (_with("objectives", [{"name": "exact_tv"}]), "objectives", "evaluation.evals to include ['fidelity']"),
    (_with("trials_per_cell", 0), "trials_per_cell", "greater than or equal to 1"),
    (_with("trials_per_cell", "many"), "trials_per_cell", "valid integer"),
    (_with("training.zero_stage", 5), "training.zero_stage", "0, 1, 2 or 3"),
    (_with("training.batch_size", 0), "training.batch_size", "greater than or equal to 1"),
    (_with("training.families", ["gaussian", "zipf"]), "training.families", "unknown family"),
    (_with("training.replay_jsonl", "/no/such/file.jsonl"), "training.replay_jsonl", "does not exist"),
    (_with("training.learning_rate", 1e-3), "training.learning_rate", "unknown field"),
    (_with("training.lora", False), "training.lora", "full fine-tuning is not supported in sweeps"),
    (_with("evaluation.engine", "tgi"), "evaluation.engine", "unknown engine 'tgi'; known: vllm, hf"),
    (_with("evaluation.splits", ["validation"]), "evaluation.splits", "unknown or training split"),
    (_with("evaluation.evals", ["fidelity", "vibes"]), "evaluation.evals", "unknown evaluation 'vibes'"),
    (_with("evaluation.replicas", 0), "evaluation.replicas", "greater than or equal to 1"),
    (_with("name", "has space"), "name", "should match pattern"),
    (_with("seeds", [1, 2]), "seeds", "unknown field"),
    (_with("models.0.evaluation", {"evals": ["fidelity"]}), "models.0.evaluation.evals", "same for every model"),
    (_with("models.0.evaluation", {"shards": 2}), "models.0.evaluation.shards", "unknown scorer setting"),
    (_with("models.0.evaluation", {"tensor_parallel_size": 2, "gpus_per_replica": 0.5}), "models.0.evaluation",
     "needs whole GPUs"),
    (_with("evaluation.tensor_parallel_size", 0), "evaluation.tensor_parallel_size", "greater than or equal to 1"),
    (_with("training.accelerator_type", "A100 80GB"), "training.accelerator_type", "should match pattern"),
    (_with("storage", "s3://bucket/cft"), "storage", "is a URI"),
    (_with("storage", "gs://bucket/cft"), "storage", "shared filesystem such as EFS"),
]


@pytest.mark.parametrize("data,path,reason", MALFORMED, ids=[m[1] + ":" + m[2][:20] for m in MALFORMED])
def test_malformed_spec_names_the_field(data, path, reason):
    with pytest.raises(SpecError) as info:
        parse_spec(data, "bad.yaml")
    message = str(info.value)
    line = next((l for l in message.splitlines() if l.strip().startswith(path + ":")), None)
    assert line is not None, message
    assert reason in line, message


def test_every_bad_field_is_reported_at_once():
    data = _with("trials_per_cell", 0) | {"methods": ["x"], "bogus": 1}
    message = str(pytest.raises(SpecError, parse_spec, data).value)
    for path in ("trials_per_cell:", "methods.x:", "bogus:"):
        assert path in message


def test_not_a_mapping_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="top level must be a mapping"):
        parse_spec([1, 2])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such sweep spec"):
        load_spec(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["smoke.yaml", "local.yaml", "paper.yaml", "paper_replication.yaml"])
def test_shipped_specs_are_valid(name):
    spec = load_spec(ROOT / "sweeps" / name)
    assert len(spec.cells) == len(spec.models) * len(spec.methods) >= 2
    # the default optimises calibration on the interpolation split (docs/default_sweep.md), the others on all splits
    calibration = "calibration_error_interp" if name == "local.yaml" else "calibration_error"
    assert [o.name for o in spec.objectives] == [calibration, "capability_loss"]
    assert spec.objectives[0].metric.startswith("sampled/") and spec.objectives[0].metric.endswith("calibration_error")


def test_paper_spec_covers_the_papers_models():
    spec = load_spec(ROOT / "sweeps" / "paper.yaml")
    assert len(spec.models) == 12 and list(spec.methods) == ["soft", "hard"]
    qwen = spec.models[0]
    assert qwen.chat.enable_thinking is False
    assert spec.training_for("gemma-3-27b").zero_stage == 3 and spec.training_for("qwen3-0.6b").zero_stage == 0


def test_cli_exits_2_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with("search.mix", {"low": 0.0, "high": 1.5})))
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "search.mix: mix must lie in [0, 1)" in proc.stderr


def test_validate_flag(capsys):
    assert main([str(ROOT / "sweeps" / "smoke.yaml"), "--validate"]) == 0
    assert "valid (2 cells x 2 trials)" in capsys.readouterr().out


def test_resume_needs_an_existing_sweep(tmp_path, capsys):
    assert main([str(ROOT / "sweeps" / "smoke.yaml"), "--storage", str(tmp_path), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_paper_spec_carries_the_papers_per_method_schedule():
    spec = load_spec(ROOT / "sweeps" / "paper.yaml")
    soft, hard = spec.training_for("qwen3-4b", "soft"), spec.training_for("qwen3-4b", "hard")
    assert (soft.epochs, soft.max_bins, soft.num_decimals) == (3, 1001, 5)
    assert (hard.epochs, hard.max_bins, hard.hard_samples_per_prompt) == (2, 16384, 16)
    assert spec.model("gpt-oss-20b").chat.assistant_prefix == "<|channel|>final<|message|>"


def test_a_storage_uri_on_the_command_line_is_rejected_too(capsys):
    assert main([str(ROOT / "sweeps" / "smoke.yaml"), "--storage", "s3://bucket/cft", "--validate"]) == 2
    err = capsys.readouterr().err
    assert "--storage: 's3://bucket/cft' is a URI" in err and "EFS" in err
    assert not Path("s3:").exists()
