"""The scale simulation (benchmarks/cluster_sim.py): a fake autoscaling cluster (cluster), the stand-in
train and score steps and their TrialBackend (standins, backend), its spec (config), what it watches
(monitor) and measures (measure), and the run itself (run)."""
