"""A real scorer app that scales to zero (evaluation.release_idle_after_s), on an in-process Ray: it
starts no replica until a request comes, the searcher's view of it (orchestrator.scorer_apps
ReplicasUp) counts the replica while it is up, and it goes again soon after its last request once
the handle has reported itself idle (orchestrator.trial let_handle_report_idle's wait)."""

import time

import pytest

from evaluators.service import idle_report_wait_s
from evaluators.settings import ScorerSettings
from orchestrator.scorer_apps import ReplicasUp

pytestmark = pytest.mark.integration

APP = "scorer-to-zero"


@pytest.fixture(scope="module")
def handle(tiny_model_dir):
    import ray
    from ray import serve

    from evaluators.service import start_scorer

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(proxy_location="HeadOnly")
    yield start_scorer(ScorerSettings(model=tiny_model_dir, engine="hf", cpus_per_replica=0.5, app_name=APP,
                                      release_idle_after_s=1.0))
    serve.shutdown()
    ray.shutdown()


def _wait_for(count, replicas: ReplicasUp, timeout_s: float = 60.0) -> None:
    start = time.monotonic()
    while replicas()["m"] != count:
        assert time.monotonic() - start < timeout_s, f"still {replicas()} replicas after {timeout_s} s"
        time.sleep(0.2)


def test_a_replica_is_counted_while_up_and_goes_once_idle(handle):
    replicas = ReplicasUp({"m": APP}, every_s=0.0)
    assert replicas() == {"m": 0}                     # nothing until the first request
    assert handle.info.remote().result()["pid"] > 0   # the request starts one
    assert replicas() == {"m": 1}
    time.sleep(idle_report_wait_s(1, 1.0))            # what a trial waits after scoring
    _wait_for(0, replicas)



def test_base_models_are_scored_beside_the_trials_and_a_failure_is_recorded(handle, tmp_path):
    """orchestrator.baselines: each base model in a thread of its own, saved as it finishes. One whose
    scorer app cannot be reached is recorded with its error, which a trial waiting for it raises and
    the searcher reads (errors.keys); the next run scores only that one again."""
    from orchestrator.baselines import BaselineScoring
    from orchestrator.parts import scorer_setups, trial_settings
    from orchestrator.spec import parse_spec
    from orchestrator.store import BaselineUnavailable, RunStore

    spec = parse_spec({"name": "b", "storage": str(tmp_path),
                       "models": [{"ref": "tiny"}, {"ref": "tiny", "name": "lost"}],
                       "objectives": [{"name": "capability_loss"}],
                       "evaluation": {"engine": "hf", "evals": ["gsm8k"], "gsm8k_items": 2}})
    store = RunStore(spec.run_dir)
    store.save_baseline_error("tiny", "an earlier run's failure")
    models, evaluation = scorer_setups(spec), trial_settings(spec).evaluation
    with BaselineScoring(models, evaluation, store, {"tiny": APP, "lost": "no-such-app"}) as baselines:
        assert store.baseline_error("tiny") is None              # scored again: the old error is gone
        metrics = store.wait_for_baseline("tiny", poll_s=0.1)    # what a trial does after its own score
        assert "gsm8k/gold_logprob" in metrics
        with pytest.raises(BaselineUnavailable, match="base model lost could not be scored .*no-such-app"):
            store.wait_for_baseline("lost", poll_s=0.1)
    assert baselines.wait() == {"lost": baselines.errors["lost"]} and list(baselines.errors.keys()) == ["lost"]
    assert store.baselines()["tiny"]["metrics"] == metrics and store.baseline_rows("tiny")["gsm8k"]

    again = BaselineScoring(models, evaluation, store, {"tiny": APP, "lost": APP})
    with again:
        assert [t.name for t in again._threads] == ["baseline-lost"]   # tiny's saved score is reused
    assert again.wait() == {} and set(store.baselines()) == {"tiny", "lost"}
    assert store.baseline_error("lost") is None
