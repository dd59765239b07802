"""Starting an embedded local Ray that survives other local Ray instances on the same machine.

Ray Train V2's placement-group cleaner asks the state API whether the train controller is alive; with
no address given, the state API auto-detects "the" local cluster, which is the most recently started
one. When another local Ray instance starts later (another test session, another run), the cleaner asks
that cluster, does not find our controller, declares it dead and removes our workers' placement group.
Pinning the state API to our own dashboard through the job's runtime env avoids that.
"""

from __future__ import annotations

import os
import socket


def free_port(preferred: int = 0) -> int:
    """`preferred` if it is free (8265: the dashboard's usual port), else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


FORWARDED_ENV = ("DS_ACCELERATOR", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "CFT_CACHE", "VLLM_CPU_KVCACHE_SPACE")


def init_local_ray(num_cpus: int | None = None, **kwargs):
    """Start the embedded local Ray; returns ray.init's context (its dashboard_url included)."""
    import ray

    # a 2-core machine cannot place a Tune/Train driver plus 1-CPU workers otherwise (STACK.md)
    num_cpus = num_cpus or max(4, os.cpu_count() or 1)
    port = free_port(preferred=8265)
    env = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
    env.update({name: os.environ[name] for name in FORWARDED_ENV if name in os.environ})
    return ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_port=port,
                    runtime_env={"env_vars": env}, **kwargs)
