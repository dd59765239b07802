"""The HF engine's bf16 (its CPU default where the CPU has bf16 matrix units) against fp32: exact
scoring moves the calibration metrics by less than 1e-3."""

import numpy as np
import pytest

from cft.splits import build_split
from evaluators.client import Scorer
from evaluators.engines.hf_engine import HFEngine, auto_dtype
from evaluators.fidelity import exact_fidelity
from models.precision import cpu_has_bf16
from models.toy import random_adapter


def test_auto_dtype_is_bf16_exactly_where_the_cpu_computes_it_natively():
    import torch

    assert auto_dtype("cpu") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    assert auto_dtype("cuda") == torch.bfloat16


@pytest.mark.parametrize("with_adapter", [False, True])
def test_bf16_exact_scoring_agrees_with_fp32(tiny_model_dir, tmp_path, with_adapter):
    prompts = build_split("test_interp_params", "selected", ["binomial", "geometric", "gaussian"])
    adapter = str(random_adapter(tiny_model_dir, tmp_path / "a", seed=3)) if with_adapter else None
    rows = {dtype: exact_fidelity(Scorer(HFEngine(tiny_model_dir, dtype=dtype)), prompts, adapter,
                                  num_decimals=1, max_bins=32)
            for dtype in ("float32", "bfloat16")}
    for metric in ("tv", "off_support_mass", "calibration_error"):
        want = np.array([r.get(metric, np.nan) for r in rows["float32"]], dtype=float)
        got = np.array([r.get(metric, np.nan) for r in rows["bfloat16"]], dtype=float)
        assert np.isfinite(want).any(), metric
        np.testing.assert_allclose(got, want, atol=1e-3, err_msg=metric)
