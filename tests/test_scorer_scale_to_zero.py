"""A real scorer app that scales to zero (evaluation.release_idle_after_s), on an in-process Ray: it
starts no replica until a request comes, the searcher's view of it (orchestrator.scorer_apps
ReplicasUp) counts the replica while it is up, and it goes again soon after its last request once
the handle has reported itself idle (orchestrator.trial let_handle_report_idle's wait)."""

import time

import pytest

from evaluators.service import idle_autoscaling
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
    time.sleep(1.5 * idle_autoscaling(1, 1.0)["metrics_interval_s"])   # what a trial waits after scoring
    _wait_for(0, replicas)

