"""Where a sweep's trials and scorer replicas run: node types and their capacity (nodes), what one trial
or replica asks for (shapes), what a trial costs (cost), placement on the largest cluster (placement),
the GPUs each node type's trials may hold (budgets), the typed Plan that `--plan` prints and the
searcher reads (plan), and the searcher's gate that keeps each node type within its budget (admission).
It reads the sweep through its slice (demand.SweepDemand), never the whole spec."""
