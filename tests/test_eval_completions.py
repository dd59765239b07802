"""Scoring completions produced elsewhere from a JSONL file (evaluators.completions), no model."""

import json

import numpy as np
import pytest

from cft.families import get_family
from cft.metrics import WORST, family_balanced, sample_metrics
from cft.output_space import format_value
from cft.splits import make_prompt
from evaluators.completions import CompletionsFormatError, score_completions_file


def true_samples(family, params, n, decimals, seed=0, shift=0.0):
    fam = get_family(family)
    x = fam.frozen(make_prompt(family, params).param_dict).rvs(n, random_state=np.random.default_rng(seed))
    return [format_value(v + shift, fam.integer, decimals) for v in x]


def write_jsonl(path, records, blank_lines=False):
    lines = [json.dumps(r) for r in records]
    path.write_text(("\n\n" if blank_lines else "\n").join(lines) + "\n")
    return path


RECORDS = [
    {"family": "gaussian", "params": {"mu": 1.0, "sigma": 2.0}, "num_decimals": 2,
     "samples": true_samples("gaussian", {"mu": 1.0, "sigma": 2.0}, 1000, 2)},
    {"family": "poisson", "params": {"lambda": 4.0}, "samples": true_samples("poisson", {"lambda": 4.0}, 1000, 0),
     "model": "some-hosted-api"},
    {"family": "uniform", "params": {"a": 0.0, "b": 3.0}, "num_decimals": 3, "samples": ["I can't do that"] * 50},
    {"family": "gaussian", "params": {"mu": -1.0, "sigma": 0.5}, "num_decimals": 2,
     "samples": true_samples("gaussian", {"mu": -1.0, "sigma": 0.5}, 1000, 2, shift=0.25)},
]


def test_rows_follow_the_input_order_and_the_summary_is_family_balanced(tmp_path):
    result = score_completions_file(write_jsonl(tmp_path / "c.jsonl", RECORDS, blank_lines=True))
    rows, summary = result["rows"], result["summary"]
    assert [r["family"] for r in rows] == ["gaussian", "poisson", "uniform", "gaussian"]
    assert [r["line"] for r in rows] == [1, 3, 5, 7]
    for row, rec in zip(rows, RECORDS):
        want = sample_metrics(make_prompt(rec["family"], rec["params"]), rec["samples"], rec.get("num_decimals"))
        assert row["calibration_error"] == want["calibration_error"]
        assert row["calibration_error_se"] == want["calibration_error_se"]
        assert row["valid_rate"] == want["valid_rate"]
    assert rows[0]["calibration_error"] < 0.1 and rows[1]["calibration_error"] < 0.1
    assert rows[2]["calibration_error"] == WORST and rows[2]["valid_rate"] == 0.0 and rows[2]["w1"] is None
    assert rows[3]["calibration_error"] > 3 * rows[0]["calibration_error"]   # half a sigma off
    balanced = family_balanced(rows, ["calibration_error"])
    assert summary["calibration_error"] == pytest.approx(balanced["calibration_error"])
    assert summary["calibration_error_se"] == pytest.approx(balanced["calibration_error_se"])
    assert summary["n_prompts"] == 4 and summary["n_families"] == 3
    json.dumps(result, allow_nan=False)   # strict JSON: nothing that cannot be computed is NaN


def test_samples_limit_uses_the_first_n(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", RECORDS[:2])
    result = score_completions_file(path, samples=100)
    assert [r["n_samples"] for r in result["rows"]] == [100, 100]
    want = sample_metrics(make_prompt("gaussian", {"mu": 1.0, "sigma": 2.0}), RECORDS[0]["samples"][:100], 2)
    assert result["rows"][0]["calibration_error"] == want["calibration_error"]
    # a limit above a line's count uses all of that line's samples
    assert score_completions_file(path, samples=5000)["rows"][0]["n_samples"] == 1000
    with pytest.raises(CompletionsFormatError, match="samples must be >= 1"):
        score_completions_file(path, samples=0)


GOOD = json.dumps({"family": "poisson", "params": {"lambda": 2.0}, "samples": ["1", "3"]})


@pytest.mark.parametrize("bad,message", [
    ("{not json", "not valid JSON"),
    ('["a list"]', "expected a JSON object"),
    (json.dumps({"family": "poisson", "samples": ["1"]}), "missing key.*params"),
    (json.dumps({"family": "poisson", "params": {"lambda": 2.0}, "sample": ["1"]}), "missing key.*samples"),
    (json.dumps({"family": "poison", "params": {"lambda": 2.0}, "samples": ["1"]}), "unknown family 'poison'"),
    (json.dumps({"family": "uniform", "params": {"a": 0.0, "width": 2.0}, "samples": ["1"]}), "missing parameter"),
    (json.dumps({"family": "poisson", "params": {"lambda": -2.0}, "samples": ["1"]}), "lambda must be > 0"),
    (json.dumps({"family": "poisson", "params": {"lambda": "2"}, "samples": ["1"]}), "params must be an object of numbers"),
    (json.dumps({"family": "poisson", "params": {"lambda": 2.0}, "samples": [1, 2]}), "list of strings"),
    (json.dumps({"family": "poisson", "params": {"lambda": 2.0}, "samples": []}), "samples is empty"),
    (json.dumps({"family": "poisson", "params": {"lambda": 2.0}, "num_decimals": -1, "samples": ["1"]}),
     "num_decimals must be an integer"),
])
def test_a_malformed_line_is_reported_with_its_line_number(tmp_path, bad, message):
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join([GOOD, "", bad, GOOD]) + "\n")
    with pytest.raises(CompletionsFormatError, match=rf"c\.jsonl:3: .*{message}"):
        score_completions_file(path)


def test_an_empty_or_missing_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(CompletionsFormatError, match="no prompts"):
        score_completions_file(tmp_path / "empty.jsonl")
    with pytest.raises(FileNotFoundError):
        score_completions_file(tmp_path / "missing.jsonl")


def test_the_cli_prints_one_json_object_and_exits_2_on_a_malformed_line(tmp_path):
    import json
    import subprocess
    import sys

    good = tmp_path / "good.jsonl"
    good.write_text('{"family": "poisson", "params": {"lambda": 4}, "samples": ["3", "4", "x"]}\n'
                    '{"family": "gaussian", "params": {"mu": 0.0, "sigma": 1.0}, "num_decimals": 1, '
                    '"samples": ["0.1", "-0.3"]}\n')
    run = [sys.executable, "-m", "evaluators.score", "--completions"]
    proc = subprocess.run(run + [str(good), "--json", "--samples", "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [r["family"] for r in result["rows"]] == ["poisson", "gaussian"]
    assert result["rows"][0]["n_samples"] == 2 and "calibration_error_se" in result["summary"]
    garbage = tmp_path / "garbage.jsonl"   # the table prints what cannot be computed (W1: null) as nan
    garbage.write_text(good.read_text() + '{"family": "poisson", "params": {"lambda": 1}, "samples": ["x"]}\n')
    proc = subprocess.run(run + [str(garbage)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    table = dict(line.split() for line in proc.stdout.splitlines())
    assert table["w1"] == "nan" and float(table["gof_pass"]) <= 1 and float(table["calibration_error"]) > 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"family": "zipf", "params": {}, "samples": ["1"]}\n')
    proc = subprocess.run(run + [str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and ":3:" in proc.stderr and proc.stdout == ""
