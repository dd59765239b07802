"""The sweep at cluster scale, simulated on one machine:

    python benchmarks/cluster_sim.py [--json] [--scorers always-on] [--spec SPEC] [--trials-per-cell N]
                                     [--seconds-per-hour S]
                                     [--sampler random] [--no-kill] [--keep-logs] [--repeats N]

Starts Ray's own fake multi-node autoscaling cluster (ray.cluster_utils.AutoscalingCluster: Ray's
autoscaler with its FakeMultiNodeProvider, which starts a raylet per "node") with GPU node types
shaped like cluster.yaml's (fake GPUs, accelerator_type resources), scaled down to a few nodes. It runs
the real sweep (driver, Tune, searcher, records, resume, Serve, the planner's concurrency) on
benchmarks/data/cluster_sim.yaml, whose `standins:` section swaps the train and score steps for
stand-ins that hold the real resource shapes for a cost model's time (benchmarks/sim/standins.py). Once
an A100 node has trained for a checkpoint, it kills that node's raylet (SIGKILL); the autoscaler
replaces the node and the trial resumes from its last checkpoint.

It prints:
- gpu_busy: GPU-seconds of work (training, lost training included, and scoring) / GPU-seconds of the
  GPU nodes that were up, from the first GPU node up to the last one gone after the sweep;
- gpu_busy_bound: the most any schedule could reach with this run's trials on nodes of these sizes
  (busy_bound), and gpu_busy_of_bound, the two's ratio;
- trials_planned, trials_finished (records "done"), trials_run_twice (keys trained by two trial runs),
  nodes_killed; and where the nodes' GPU-hours went (cost-model hours): work, the trials' start-ups,
  scorer replicas held (scoring, loading or idle), held by nothing (idle_gpu_hours, of which the
  stretches after each node's last work: idle_after_last_work_gpu_hours), lost training; node counts,
  wall time.
`--scorers always-on` runs the scorers as before (replicas held for the whole sweep, each over one GPU)
to compare.

Three departures from AutoscalingCluster as shipped: its start() and shutdown() run `ray stop --force`,
which stops every Ray on the machine, so this starts its head on free ports (the dashboard agent's
included) and its own temp dir and stops exactly the processes it started; its config template
(fake_multi_node/example.yaml) is missing from the wheel, so the template is here (BASE_CONFIG, from
Ray's repository); and its provider never replaces a killed node (SimNodeProvider says why), which
stalled the sweep: the killed node's trials waited for good for a node the autoscaler never launched.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Ray's token authentication, as on cluster.yaml's nodes, with a token of this cluster's own (Ray reads
# the mode when it is imported, so before that). The cluster's autoscaler imports SimNodeProvider from
# benchmarks.sim.cluster and already holds the cluster's token.
if os.environ.get("RAY_FAKE_CLUSTER") != "1":
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})

from benchmarks.sim.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(description=__doc__.split("\n")[0]))
