"""Two scorer replicas behind one DeploymentHandle: concurrent requests spread over both, and killing
one mid-request still ends with every request answered (the client resends what the dead one held)."""

import logging
import threading
import time

import numpy as np
import pytest

from cft.splits import make_prompt
from evaluators.client import Scorer
from evaluators.fidelity import value_distributions
from evaluators.settings import ScorerSettings

pytestmark = pytest.mark.integration

APP = "scorer-replicas"


@pytest.fixture(scope="module")
def handle(tiny_model_dir):
    import ray
    from ray import serve

    from evaluators.service import start_scorer

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield start_scorer(ScorerSettings(model=tiny_model_dir, engine="hf", replicas=2,
                                      cpus_per_replica=0.5, app_name=APP))
    serve.shutdown()
    ray.shutdown()


def replica_actors():
    import ray

    names = [a for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith(f"SERVE_REPLICA::{APP}#")]
    return [ray.get_actor(a["name"], namespace=a["namespace"]) for a in names]


def test_concurrent_requests_reach_both_replicas(handle):
    pids = {r["pid"] for r in [h.result() for h in [handle.info.remote() for _ in range(24)]]}
    assert len(pids) == 2


def test_killing_a_replica_mid_request_loses_no_request(handle, caplog):
    import ray

    prompts = [make_prompt("gaussian", {"mu": 0.0, "sigma": 1.0})] * 24   # 1,001 values each: seconds of work
    scorer = Scorer(handle, chunk_size=1)
    expected = value_distributions(Scorer(handle), prompts[:1], None, 3, 1001)[0].probs
    results = {}

    def run():
        results["out"] = value_distributions(scorer, prompts, None, 3, 1001)

    worker = threading.Thread(target=run)
    with caplog.at_level(logging.WARNING, logger="evaluators.client"):
        worker.start()
        time.sleep(0.5)
        victim = replica_actors()[0]
        ray.kill(victim, no_restart=True)
        assert worker.is_alive()   # the kill lands while requests are in flight
        worker.join(timeout=300)
    assert not worker.is_alive()
    assert len(results["out"]) == len(prompts)
    for dist in results["out"]:
        np.testing.assert_allclose(dist.probs, expected, atol=1e-6)
    print(caplog.text)   # "resending" lines: the requests the dead replica held, sent again
