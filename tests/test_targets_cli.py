import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from orchestrator.targets import main


def test_json_output_matches_scipy(capsys):
    assert main(["poisson", "lambda=4", "--max-bins", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"values", "probabilities"}
    k = np.array([int(v) for v in out["values"]])
    np.testing.assert_allclose(out["probabilities"][:-1], stats.poisson(4).pmf(k[:-1]), rtol=1e-9)
    assert sum(out["probabilities"]) == pytest.approx(1.0)


def test_table_output(capsys):
    assert main(["gaussian", "mu=3.5", "sigma=3.0", "--num-decimals", "1", "--max-bins", "20"]) == 0
    out = capsys.readouterr().out
    assert "Gaussian distribution with parameters mu=3.5, sigma=3.0" in out
    assert "20 support values" in out


@pytest.mark.parametrize("args,message", [
    (["zipf", "a=2"], "unknown family 'zipf'"),
    (["gaussian", "mu=0"], "missing parameter(s) sigma"),
    (["gaussian", "mu=0", "sigma=1", "nu=3"], "unknown parameter(s) nu"),
    (["gaussian", "mu=0", "sigma=0"], "sigma must be > 0"),
    (["binomial", "n=5", "p=1.5"], "p must be in [0, 1]"),
    (["gaussian", "mu=0", "sigma"], "not of the form name=value"),
    (["gaussian", "mu=zero", "sigma=1"], "not a number"),
])
def test_bad_input_exits_nonzero_naming_the_problem(args, message, capsys):
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "orchestrator.targets", "bernoulli", "p=0.25", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["values"] == ["0", "1"]
