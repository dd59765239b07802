"""The scale simulation's stand-in training (benchmarks/sim/standins.py) on an in-process Ray with one
fake A10G: it holds the trial's placement group first for a start-up (GPUs held, not working: logged
apart from training, so the simulation does not count it as work), then for its training time, and a
trial run again under its key resumes from its saved progress without a second start-up's work lost."""

import json

import pytest

from benchmarks.sim.standins import StandinConfig, run_training, start_up_seconds, training_seconds
from trainers.config import TrainConfig

pytestmark = pytest.mark.integration

COSTS = StandinConfig(seconds_per_hour=36.0)   # a simulated hour in 36 s: this trial trains about 3 s


@pytest.fixture(scope="module")
def fake_a10g():
    import ray

    ray.init(num_cpus=2, num_gpus=1, resources={"accelerator_type:A10G": 1}, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


def _events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "standins" / "timeline.jsonl").read_text().splitlines()]


def test_training_holds_its_gpu_for_a_start_up_then_for_its_training_time(fake_a10g, tmp_path):
    cfg = TrainConfig(model="Qwen/Qwen3-0.6B", method="soft", accelerator_type="A10G", gpus_per_worker=1,
                      cpus_per_worker=1, epochs=1)
    total_s, _ = training_seconds(cfg, COSTS)
    result = run_training(cfg, str(tmp_path / "adapter"), str(tmp_path / "train"), "t-000", COSTS, str(tmp_path))
    events = _events(tmp_path)
    assert [e["kind"] for e in events][:2] == ["train_run", "train_start"]
    start = events[1]
    assert start_up_seconds(cfg, COSTS) <= start["end"] - start["start"] < start_up_seconds(cfg, COSTS) + 2.0
    trained = [e for e in events if e["kind"] == "train"]
    assert trained and trained[0]["start"] >= start["end"]   # no training step before the start-up ends
    assert sum(e["end"] - e["start"] for e in trained) >= total_s * 0.99
    assert not any(e["lost"] for e in events if "lost" in e)
    assert result.metrics["resumed_from_s"] == 0.0

    again = run_training(cfg, str(tmp_path / "adapter"), str(tmp_path / "train"), "t-000", COSTS, str(tmp_path))
    assert again.metrics["resumed_from_s"] == pytest.approx(total_s)   # its progress was saved: nothing to redo
    assert [e["kind"] for e in _events(tmp_path)[len(events):]] == ["train_run"]


class _Response:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Handle:
    """A Serve handle's calling convention (`handle.score.remote(x).result()`), answering as the
    stand-in scorer app does."""

    class score:
        @staticmethod
        def remote(adapter):
            from benchmarks.sim.standins import made_up_summary

            return _Response(made_up_summary(adapter))


@pytest.mark.parametrize("trained", [False, True])
def test_the_simulation_backend_returns_what_the_sweep_reads(trained, tmp_path):
    """The sweep validates every evaluation (orchestrator.messages.Evaluation); a stand-in that
    drifts from it fails every trial of the simulation, not this test alone."""
    from benchmarks.sim.backend import SimBackend
    from orchestrator.messages import Evaluation

    adapter = None
    if trained:   # what the stand-in training writes
        adapter = str(tmp_path)
        (tmp_path / "train_config.json").write_text(json.dumps({"lr": 1e-4, "mix": 0.2}))
    result = SimBackend(COSTS, str(tmp_path)).evaluate(_Handle(), None, adapter)
    assert isinstance(result, Evaluation) and result.summary["sampled/calibration_error"] > 0
