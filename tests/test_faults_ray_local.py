"""The embedded local Ray: every port it opens listens on loopback only, and two started at the same
moment never fight over one port. Real Ray, started by two processes at once."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Start the embedded local Ray, run a task, and print the dashboard URL and every address this
# process tree listens on.
PROBE = """
import json, os, psutil, ray
from trainers.ray_local import init_local_ray
ctx = init_local_ray(num_cpus=1)
ray.get(ray.remote(lambda: 1).remote())
tree = {p.pid for p in psutil.Process().children(recursive=True)} | {os.getpid()}
listening = sorted({c.laddr.ip for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in tree})
print("RESULT " + json.dumps({"dashboard": ctx.dashboard_url, "listening": listening}), flush=True)
ray.shutdown()
"""


def _start_probe(env=None) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_ADDRESS": ""} | (env or {})
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    return subprocess.Popen([sys.executable, "-c", PROBE], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, out[-3000:]
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.mark.integration
def test_two_local_rays_started_at_once_listen_on_loopback_on_distinct_ports():
    first, second = _start_probe(), _start_probe()
    a, b = _result(first), _result(second)
    assert a["dashboard"] != b["dashboard"]
    for r in (a, b):
        assert r["listening"] and set(r["listening"]) <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, r


def test_the_user_can_ask_for_every_interface(monkeypatch):
    from ray._private import ray_constants

    from trainers.ray_local import LOOPBACK_ENV, bind_loopback_only

    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    monkeypatch.setenv(LOOPBACK_ENV, "1")
    assert not bind_loopback_only() and ray_constants.ENABLE_RAY_CLUSTER
    monkeypatch.delenv(LOOPBACK_ENV)
    assert bind_loopback_only() and not ray_constants.ENABLE_RAY_CLUSTER and os.environ[LOOPBACK_ENV] == "0"
