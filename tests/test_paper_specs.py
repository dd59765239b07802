"""Issue 28: sweeps/paper.yaml sets the reference's switches, a plain number (or equal bounds) fixes a
search parameter for every sampler, and sweeps/paper_replication.yaml is paper.yaml at the paper's
settings (lr 2e-4, mix 0, seed 11, one trial a cell); both validate and plan on cluster.yaml."""

import json
from pathlib import Path

import pytest

from orchestrator.cells import Cell
from orchestrator.parts import trial_settings
from orchestrator.search import CellStudies
from orchestrator.spec import SpecError, load_spec, parse_spec
from orchestrator.sweep import main as sweep_main

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "sweeps" / "paper.yaml"
REPLICATION = ROOT / "sweeps" / "paper_replication.yaml"
CLUSTER = ROOT / "cluster.yaml"


# ---------------------------------------------------------------- the paper's specs

def test_paper_spec_sets_the_reference_switches():
    spec = load_spec(PAPER)
    assert len(spec.models) == 12
    for model, method in spec.cells:
        cfg = spec.training_for(model.label, method)
        assert cfg.grad_clip is None, model.label
        assert cfg.batch_size * cfg.workers_per_trial * cfg.grad_accum == cfg.global_batch_size == 8, model.label
        assert model.chat.terminator == "eos", model.label
    # the wide models keep their workers and divide the batch
    assert spec.training_for("gpt-oss-20b").workers_per_trial == 8
    assert spec.training_for("qwen3-8b").workers_per_trial == 2


def test_a_plain_number_or_equal_bounds_fix_a_search_parameter():
    spec = parse_spec({"name": "t", "models": [{"ref": "tiny"}], "search": {"lr": 2e-4, "mix": {"low": 0, "high": 0}}})
    assert (spec.search.lr.low, spec.search.lr.high) == (2e-4, 2e-4)
    assert (spec.search.mix.low, spec.search.mix.high) == (0.0, 0.0)
    with pytest.raises(SpecError, match="search.lr.*must be < high"):
        parse_spec({"name": "t", "models": [{"ref": "tiny"}], "search": {"lr": {"low": 1e-3, "high": 1e-4}}})
    with pytest.raises(SpecError, match=r"search.lr.*\(0, 1\]"):
        parse_spec({"name": "t", "models": [{"ref": "tiny"}], "search": {"lr": 0}})


@pytest.mark.parametrize("sampler", ["gp", "tpe", "random", "grid"])
def test_every_sampler_hands_out_the_fixed_values(tmp_path, sampler):
    spec = parse_spec({"name": "t", "models": [{"ref": "tiny"}], "search": {"lr": 2e-4, "mix": 0.0}})
    cell = Cell("tiny", "soft")
    studies = CellStudies("t", [cell], ["min", "min"], f"sqlite:///{tmp_path / 'o.db'}", sampler, 11, 4,
                          spec.search.lr, spec.search.mix)
    for _ in range(4):   # past the samplers' random start-up
        number, lr, mix = studies.ask(cell)
        assert (lr, mix) == (2e-4, 0.0)
        studies.tell(cell, number, [1.0 + number, 2.0 - number])


def test_replication_spec_is_paper_yaml_at_the_papers_settings():
    spec, paper = load_spec(REPLICATION), load_spec(PAPER)
    assert spec.trials_per_cell == 1 and spec.seed == 11
    assert (spec.search.lr.low, spec.search.lr.high, spec.search.mix.low, spec.search.mix.high) == (2e-4, 2e-4, 0, 0)
    same = ["storage", "models", "methods", "objectives", "training", "evaluation", "max_concurrent_trials"]
    assert spec.model_dump(include=set(same)) == paper.model_dump(include=set(same))
    # the trial's training seed is the spec's seed plus its trial number: the cell's only trial has 11
    assert trial_settings(spec).seed == 11


@pytest.mark.parametrize("path", [PAPER, REPLICATION])
def test_paper_specs_validate_and_plan_on_the_cluster(path, capsys):
    assert sweep_main([str(path), "--validate"]) == 0
    assert "valid (24 cells x" in capsys.readouterr().out
    assert sweep_main([str(path), "--plan", "--cluster", str(CLUSTER), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["unplaceable"] == [] and len(plan["cells"]) == 24 and all(c["fits"] for c in plan["cells"])
