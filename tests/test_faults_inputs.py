"""Hostile inputs, each refused up front: exit 2, a message naming the field, nothing written, no Ray.

Covers the sweep (`--validate` and a real run that must stop before Ray starts) and the single-step
CLIs (trainers.train, evaluators.score, orchestrator.targets), called in-process through their main().
Issue 11 lists the inputs.
"""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((ROOT / "sweeps" / "smoke.yaml").read_text())


def _spec(tmp_path, **patch) -> Path:
    """smoke.yaml with top-level fields replaced, its storage under tmp_path/store (not created)."""
    data = {**SMOKE, "storage": str(tmp_path / "store"), **patch}
    for section in ("training", "evaluation", "search"):
        if section in patch:
            data[section] = {**SMOKE.get(section, {}), **patch[section]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sweep(capsys, *argv) -> tuple[int, str]:
    from orchestrator.sweep import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _nothing_written(tmp_path) -> bool:
    return not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("*"))


# --validate: values that used to pass and crash (or poison the run directory) later
SPEC_INPUTS = [
    ({"training": {"cpus_per_worker": float("inf")}}, "training.cpus_per_worker", "finite"),
    ({"training": {"cpus_per_worker": float("nan")}}, "training.cpus_per_worker", "finite"),
    ({"training": {"cpus_per_worker": 0}}, "training.cpus_per_worker", "greater than 0"),
    ({"seed": -5}, "seed", "greater than or equal to 0"),
    ({"seed": 2**40}, "seed", "less than"),
    ({"models": [{"ref": "tiny", "name": "../../x"}]}, "models.0.name", "pattern"),
    ({"models": [{"ref": "tiny", "name": "a/b"}]}, "models.0.name", "pattern"),
    ({"models": [{"ref": "../../../no/such/model"}]}, "models.0.ref", "does not exist"),
    ({"search": {"lr": {"low": 1e-4, "high": 1e30, "log": True}}}, "search.lr", "(0, 1]"),
    ({"search": {"mix": {"low": 0.0, "high": 1.5}}}, "search.mix", "[0, 1)"),
    ({"trials_per_cell": 10**9}, "trials_per_cell", "less than or equal"),
    ({"max_concurrent_trials": 0}, "max_concurrent_trials", "greater than or equal"),
    ({"evaluation": {"replicas": 10**6}}, "evaluation.replicas", "less than or equal"),
    ({"evaluation": {"replicas": 0}}, "evaluation.replicas", "greater than or equal"),
    ({"evaluation": {"splits": ["train"]}}, "evaluation.splits", "training split"),
    ({"evaluation": {"families": ["zipf"]}}, "evaluation.families", "zipf"),
    ({"training": {"families": ["zipf"]}}, "training.families", "zipf"),
    ({"training": {"lr": 1e30}}, "training", "set per trial"),
    ({"storage": "s3://bucket/cft"}, "storage", "URI"),
]


@pytest.mark.parametrize("patch, field, reason", SPEC_INPUTS, ids=[f for _, f, _ in SPEC_INPUTS])
def test_validate_refuses_naming_the_field(tmp_path, capsys, patch, field, reason):
    code, err = _sweep(capsys, _spec(tmp_path, **patch), "--validate")
    assert code == 2 and f"{field}" in err and reason in err, err
    code, err = _sweep(capsys, _spec(tmp_path, **patch))   # a real run refuses the same, writing nothing
    assert code == 2 and field in err and _nothing_written(tmp_path), err


def _empty_model(tmp_path) -> Path:
    path = tmp_path / "empty-model"
    path.mkdir()
    return path


def _model_without(tmp_path, tiny_model_dir, *patterns) -> Path:
    path = tmp_path / "partial-model"
    shutil.copytree(tiny_model_dir, path)
    for pattern in patterns:
        for f in path.glob(pattern):
            f.unlink()
    return path


def test_storage_that_is_a_file_is_refused_before_anything(tmp_path, capsys):
    (tmp_path / "store").write_text("not a directory")
    code, err = _sweep(capsys, _spec(tmp_path))
    assert code == 2 and "storage:" in err and "is a file" in err, err
    assert (tmp_path / "store").read_text() == "not a directory"


def test_storage_below_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = _sweep(capsys, _spec(tmp_path, storage=str(tmp_path / "file" / "runs")))
    assert code == 2 and "storage:" in err and "cannot be created" in err, err


@pytest.mark.skipif(sys.platform != "linux" or __import__("os").geteuid() == 0,
                    reason="root writes through permission bits")
def test_unwritable_storage_is_refused(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    code, err = _sweep(capsys, _spec(tmp_path, storage=str(locked / "runs")))
    assert code == 2 and "storage:" in err and "not writable" in err, err
    assert not (locked / "runs").exists()


def test_unwritable_storage_is_refused_even_for_root(tmp_path, capsys):
    """/proc accepts no new directories whoever asks."""
    code, err = _sweep(capsys, _spec(tmp_path, storage="/proc/cft-results"))
    assert code == 2 and "storage:" in err and "not writable" in err, err


@pytest.mark.parametrize("missing, what", [((), "config.json"), (("*.safetensors",), "weights"),
                                           (("tokenizer*",), "tokenizer")], ids=["empty", "weights", "tokenizer"])
def test_incomplete_model_directory_is_refused_before_ray(tmp_path, capsys, tiny_model_dir, missing, what):
    model = _empty_model(tmp_path) if not missing else _model_without(tmp_path, tiny_model_dir, *missing)
    started = time.time()
    code, err = _sweep(capsys, _spec(tmp_path, models=[{"ref": str(model)}]))
    assert code == 2 and "models.0.ref" in err and what in err, err
    assert _nothing_written(tmp_path) and time.time() - started < 30


def test_an_unknown_hub_model_offline_gets_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    code, err = _sweep(capsys, _spec(tmp_path, models=[{"ref": "no-such-org/no-such-model"}]))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "models.0.ref" in err and "no-such-org/no-such-model" in err and "HF_HUB_OFFLINE" in err
    assert _nothing_written(tmp_path)


def test_an_unreachable_ray_address_fails_within_30_s(tmp_path, capsys):
    started = time.time()
    code, err = _sweep(capsys, _spec(tmp_path, ray_address="127.0.0.1:1"))
    assert code == 2 and "ray_address" in err and "cannot reach" in err, err
    assert time.time() - started < 30 and _nothing_written(tmp_path)
    code, err = _sweep(capsys, _spec(tmp_path), "--address", "127.0.0.1:1")
    assert code == 2 and "--address" in err


# the single-step CLIs

def _train(capsys, *argv) -> tuple[int, str]:
    from trainers.train import main

    code = main(["--model", "tiny", "--out", "/nonexistent-cft-out", *map(str, argv)])
    return code, capsys.readouterr().err


TRAIN_INPUTS = [
    (["--lr", "1e30"], "lr"),
    (["--lr", "nan"], "lr"),
    (["--cpus-per-worker", "inf"], "cpus_per_worker"),
    (["--families", "zipf"], "families"),
    (["--num-decimals", "400"], "num_decimals"),
    (["--workers", "0"], "workers_per_trial"),
    (["--address", "127.0.0.1:1"], "--address"),
]


@pytest.mark.parametrize("argv, field", TRAIN_INPUTS, ids=[" ".join(a) for a, _ in TRAIN_INPUTS])
def test_train_cli_refuses_before_ray(capsys, argv, field):
    code, err = _train(capsys, *argv)
    assert code == 2 and field in err, err
    assert not Path("/nonexistent-cft-out").exists()


def test_train_cli_refuses_incomplete_and_unknown_models(tmp_path, capsys, tiny_model_dir, monkeypatch):
    from trainers.train import main

    for model, what in [(_model_without(tmp_path, tiny_model_dir, "tokenizer*"), "tokenizer")]:
        assert main(["--model", str(model), "--out", str(tmp_path / "out")]) == 2
        assert what in capsys.readouterr().err
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert main(["--model", "no-such-org/no-such-model", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no-such-org/no-such-model" in err
    assert not (tmp_path / "out").exists()


def _score(capsys, *argv) -> tuple[int, str]:
    from evaluators.score import main

    code = main([*map(str, argv)])
    return code, capsys.readouterr().err


SCORE_INPUTS = [
    (["--model", "tiny", "--families", "zipf"], "families"),
    (["--model", "tiny", "--replicas", "0"], "replicas"),
    (["--model", "tiny", "--split", "train"], "splits"),
    (["--model", "tiny", "--cpus-per-replica", "inf"], "cpus_per_replica"),
    (["--model", "tiny", "--evals", "nope"], "evals"),
    (["--model", "tiny", "--adapter", "/no/such/adapter"], "adapter"),
]


@pytest.mark.parametrize("argv, field", SCORE_INPUTS, ids=[" ".join(a[2:]) for a, _ in SCORE_INPUTS])
def test_score_cli_refuses_before_ray(capsys, argv, field):
    code, err = _score(capsys, *argv)
    assert code == 2 and field in err, err


def test_score_cli_refuses_incomplete_and_unknown_models(tmp_path, capsys, tiny_model_dir, monkeypatch):
    code, err = _score(capsys, "--model", _model_without(tmp_path, tiny_model_dir, "tokenizer*"))
    assert code == 2 and "--model" in err and "tokenizer" in err, err
    code, err = _score(capsys, "--model", _empty_model(tmp_path))
    assert code == 2 and "config.json" in err, err
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    code, err = _score(capsys, "--model", "no-such-org/no-such-model")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no-such-org/no-such-model" in err, err


TARGETS_INPUTS = [
    (["gaussian", "mu=1", "sigma=2", "--num-decimals", "400"], "--num-decimals"),
    (["gaussian", "mu=1", "sigma=2", "--num-decimals", "-1"], "--num-decimals"),
    (["gaussian", "mu=1", "sigma=2", "--max-bins", "1000000000"], "--max-bins"),
    (["gaussian", "mu=1", "sigma=2", "--max-bins", "0"], "--max-bins"),
    (["gaussian", "mu=1e300", "sigma=1"], "gaussian"),
    (["gaussian", "mu=1", "sigma=1e300"], "gaussian"),
    (["zipf", "a=2"], "zipf"),
]


@pytest.mark.parametrize("argv, named", TARGETS_INPUTS, ids=[" ".join(a) for a, _ in TARGETS_INPUTS])
def test_targets_cli_exits_2_without_a_traceback(capsys, argv, named):
    from orchestrator.targets import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "Traceback" not in err, err


def test_targets_cli_as_a_process_prints_one_line():
    out = subprocess.run([sys.executable, "-m", "orchestrator.targets", "gaussian", "mu=1", "sigma=2",
                          "--num-decimals", "400"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr


