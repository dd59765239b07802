"""Starting an embedded local Ray that survives other local Ray instances on the same machine, listens
on loopback only, and never fights another one over a port.

- Ray Train V2's placement-group cleaner asks the state API whether the train controller is alive;
  with no address given, the state API auto-detects "the" local cluster, which is the most recently
  started one. When another local Ray instance starts later (another test session, another run), the
  cleaner asks that cluster, does not find our controller, declares it dead and removes our workers'
  placement group. Pinning the state API to our own dashboard through the job's runtime env avoids that.
- Loopback only: on Linux Ray binds its GCS, raylet, workers and agents to every interface (the
  dashboard alone defaults to 127.0.0.1), and anyone who reaches them can run code. Ray binds them to
  127.0.0.1 when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (what it does on macOS and Windows); we set it
  unless the user set it (=1 keeps Ray's every-interface default, e.g. to let other nodes join).
- Ports: two processes that check port 8265 at once both see it free and both start a dashboard on
  it, and one of them hangs. A host-wide file lock serialises picking the port and starting Ray, so
  the second sees the first's dashboard and takes another port.
"""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
from contextlib import contextmanager

RAY_CONNECT_TIMEOUT_S = 10.0
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"   # Ray's own switch: "0" makes the node IP 127.0.0.1
START_LOCK = os.path.join(tempfile.gettempdir(), "cft-ray-local-start.lock")


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


@contextmanager
def _host_lock(path: str = START_LOCK):
    """One local Ray starts at a time on this host (released when ray.init has bound its ports)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def bind_loopback_only() -> bool:
    """Make the local Ray bind every port to 127.0.0.1 (unless the user set LOOPBACK_ENV); returns
    whether it will. Ray reads the switch when it computes the node IP, so it is set in this process
    (for the processes ray.init spawns) and in Ray's already-imported constants."""
    os.environ.setdefault(LOOPBACK_ENV, "0")
    loopback = os.environ[LOOPBACK_ENV].strip().lower() in ("0", "false", "no", "off")
    try:
        from ray._private import ray_constants
    except ImportError:   # a Ray without the switch: its own default applies
        return False
    ray_constants.ENABLE_RAY_CLUSTER = not loopback
    return loopback


def init_local_ray(num_cpus: int | None = None, **kwargs):
    """Start the embedded local Ray; returns ray.init's context (its dashboard_url included)."""
    import ray

    # a 2-core machine cannot place a Tune/Train driver plus 1-CPU workers otherwise (docs/stack.md)
    num_cpus = num_cpus or max(4, os.cpu_count() or 1)
    bind_loopback_only()
    with _host_lock():
        port = free_port(preferred=8265)
        env = {"RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{port}"}
        env.update({name: os.environ[name] for name in FORWARDED_ENV if name in os.environ})
        return ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_port=port,
                        runtime_env={"env_vars": env}, **kwargs)


def check_ray_address(address: str | None, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Raise (ValueError, ConnectionError) unless a Ray address given as host:port (or ray://host:port)
    answers within `timeout` s: `ray.init` itself retries an unreachable address for minutes."""
    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{address!r} is not host:port (or auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        reason = f"no answer within {timeout:.0f} s" if isinstance(err, socket.timeout) else (err.strerror or str(err))
        raise ConnectionError(f"cannot reach a Ray cluster at {address} ({reason}); is its head node running "
                              "(`ray start --head`, `ray up`)?") from None
