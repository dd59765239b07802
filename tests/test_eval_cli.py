"""The command line end to end: one evaluation on an embedded local Ray + Serve, and an engine that
fails to start reported as such (exit status 3), never a hang or a traceback."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def score(*args, timeout=400):
    return subprocess.run([sys.executable, "-m", "evaluators.score", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_cli_scores_fidelity_with_the_hf_engine(tiny_model_dir):
    done = score("--model", tiny_model_dir, "--engine", "hf", "--evals", "fidelity", "--split", "test_ood_family",
                 "--families", "poisson,bernoulli", "--num-decimals", "1", "--max-bins", "32", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    summary = result["summary"]
    assert {"fidelity/tv", "fidelity/w1", "fidelity/test_ood_family/tv"} <= set(summary)
    assert summary["fidelity/off_support_mass"] > 0.9      # a random model: garbage, scored, not crashed
    assert {r["family"] for r in result["rows"]["fidelity"]} == {"poisson", "bernoulli"}


def test_cli_reports_an_engine_that_fails_to_start_with_the_replicas_own_error(tmp_path, tiny_model_dir):
    """A complete model directory whose architecture no engine knows: the replica's exception is shown,
    not only Serve's "Failed to update the deployments"."""
    import shutil

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    done = score("--model", str(broken), "--engine", "hf", "--evals", "fidelity")
    assert done.returncode == 3, done.stderr[-3000:]
    error = next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    assert "engine failed to start" in error and "no-such-architecture" in error, done.stderr[-3000:]
