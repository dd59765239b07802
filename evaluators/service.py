"""The Ray Serve application: scorer replicas, each holding one engine behind the engine interface.

Concurrent requests reaching a replica are merged into one engine call (serve.batch), so scoring for
several trials, each with its own adapter, shares the engine's batch. A request that fails on its own
(a missing adapter, a prompt too long) fails alone; the rest of its batch is answered.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import asdict

from ray import serve

from evaluators.settings import ScorerSettings

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHUTDOWN_CHECK_S = 0.1   # a stopping replica's check for requests in flight (deployment_options)


@serve.deployment(name="Scorer", health_check_period_s=5, health_check_timeout_s=60)
class ScorerDeployment:
    def __init__(self, settings: ScorerSettings):
        from evaluators.engines import make_engine

        self._settings = settings
        self.engine = make_engine(settings)
        self.lock = threading.Lock()   # engines are not thread-safe: one engine call at a time
        for batched in (self._score, self._generate, self._top_probs):
            batched.set_max_batch_size(settings.max_batch_size)

    def settings(self) -> ScorerSettings:
        return self._settings

    def info(self) -> dict:
        return asdict(self.engine.info()) | {"pid": os.getpid()}

    async def score(self, requests: list) -> list:
        return _raise_if_error(await self._score(requests))

    async def generate(self, requests: list) -> list:
        return _raise_if_error(await self._generate(requests))

    async def top_probs(self, requests: list) -> list:
        return _raise_if_error(await self._top_probs(requests))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _score(self, calls: list[list]) -> list:
        return await self._merged(self.engine.score, calls)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _generate(self, calls: list[list]) -> list:
        return await self._merged(self.engine.generate, calls)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _top_probs(self, calls: list[list]) -> list:
        return await self._merged(self.engine.top_probs, calls)

    async def _merged(self, fn, calls: list[list]) -> list:
        # In a thread, so the replica keeps answering health checks while the engine works.
        return await asyncio.to_thread(self._run_merged, fn, calls)

    def _run_merged(self, fn, calls: list[list]) -> list:
        """One engine call for all calls; if it fails, each call alone, so a bad one fails alone."""
        with self.lock:
            try:
                flat = fn([r for call in calls for r in call])
            except Exception as err:
                if len(calls) == 1:
                    return [err]
                return [_call_or_error(fn, call) for call in calls]
        out, i = [], 0
        for call in calls:
            out.append(flat[i:i + len(call)])
            i += len(call)
        return out


def _call_or_error(fn, call: list):
    try:
        return fn(call)
    except Exception as err:
        return err


def _raise_if_error(result):
    if isinstance(result, Exception):
        raise result
    return result


def build_app(settings: ScorerSettings):
    return ScorerDeployment.options(**deployment_options(settings)).bind(settings)


def deployment_options(settings: ScorerSettings) -> dict:
    """A replica is one Ray actor holding all its GPUs (tensor_parallel_size x gpus_per_replica, so on
    one node); vLLM runs its tensor-parallel ranks as local processes over them, so the replica needs no
    placement group (vLLM's Ray executor would, and loses it in its engine subprocess). With
    release_idle_after_s, Serve scales the app to zero replicas when idle and back up on a request
    (idle_autoscaling says how soon). A stopping replica checks for requests in flight every
    SHUTDOWN_CHECK_S rather than Serve's 2 s: it sleeps one check before its first look, and Serve only
    stops a replica that is idle, so the default held an idle replica's GPUs 2 s past every scale-down
    (40 simulated seconds a score in benchmarks/cluster_sim.py)."""
    resources = {"num_cpus": settings.cpus_per_replica, "num_gpus": settings.replica_gpus,
                 # replicas import this project: make it importable wherever they start
                 "runtime_env": {"env_vars": {"PYTHONPATH": _pythonpath()}}}
    if settings.accelerator_type:
        resources["accelerator_type"] = settings.accelerator_type
    options = {"ray_actor_options": resources, "max_ongoing_requests": settings.max_ongoing_requests,
               "graceful_shutdown_wait_loop_s": SHUTDOWN_CHECK_S}
    if settings.release_idle_after_s is None:
        return options | {"num_replicas": settings.replicas}
    return options | {"autoscaling_config": idle_autoscaling(settings.replicas, settings.release_idle_after_s)}


def idle_autoscaling(replicas: int, release_idle_after_s: float) -> dict:
    """Serve's autoscaling for replicas that go once idle for release_idle_after_s. Serve counts a
    replica idle only when the mean of the requests reported over its look-back window (30 s by default)
    is 0, and handles report every metrics_interval_s (10 s): with the defaults a replica held its GPUs
    some 40 s past the delay, between every trial's scores. Both scale with short delays here (a
    look-back of half the delay, 1-30 s, reported twice a look-back), so a replica goes within the delay
    plus 1.5 look-backs of its last request; delays of 60 s and more keep Serve's defaults."""
    look_back = max(1.0, min(30.0, release_idle_after_s / 2))
    return {"min_replicas": 0, "initial_replicas": 0, "max_replicas": replicas, "upscale_delay_s": 0,
            "downscale_delay_s": release_idle_after_s, "downscale_to_zero_delay_s": release_idle_after_s,
            "look_back_period_s": look_back, "metrics_interval_s": min(10.0, look_back / 2)}


def idle_report_wait_s(replicas: int, release_idle_after_s: float) -> float:
    """How long a process that scored through a handle waits before it exits, so the handle's last
    report to Serve says idle. Serve averages the requests a handle reported over its look-back window,
    and keeps the last report of a handle whose process ended for 10 s (Ray's
    RAY_SERVE_MIN_HANDLE_METRICS_TIMEOUT_S): a last report still holding the request's samples kept the
    replica, and its GPUs, up those 10 s (the controller's log: "Dropping stale metrics for handle ...
    Peak ongoing requests was: 1.0", then the downscale a second later). One look-back and two report
    intervals leave only idle samples; waiting past the 10 s saves nothing."""
    autoscaling = idle_autoscaling(replicas, release_idle_after_s)
    return min(autoscaling["look_back_period_s"] + 2 * autoscaling["metrics_interval_s"], 10.0)


def start_scorer(settings: ScorerSettings):
    """Deploy (or update) the scorer app for one base model and return its DeploymentHandle.

    Assumes Ray is initialised. Raises RuntimeError naming the cause when the engine fails to start.
    """
    return serve.run(build_app(settings), name=settings.app_name, route_prefix=settings.route_prefix)


def stop_scorer(app_name: str) -> None:
    serve.delete(app_name)


def _pythonpath() -> str:
    current = os.environ.get("PYTHONPATH", "")
    return PROJECT_ROOT + (os.pathsep + current if current else "")
