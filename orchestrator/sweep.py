"""Run a CFT sweep: for every (model, method) cell, an Optuna multi-objective search over learning
rate x mix, each trial training on Ray Train + DeepSpeed and scored by the Serve scorer app.

    python -m orchestrator.sweep                       # the embedded default: sweeps/local.yaml
    python -m orchestrator.sweep sweeps/smoke.yaml
    python -m orchestrator.sweep sweeps/paper.yaml --address auto --storage /mnt/shared/cft-results
    python -m orchestrator.sweep sweeps/paper.yaml --plan --cluster cluster.yaml   # placement, no Ray

Rerunning the same spec and storage (or passing --resume) continues an interrupted sweep: finished
trials are kept, an interrupted one runs again under its key (resuming its last training checkpoint),
and every cell ends with its planned trial count.

Exit status: 0 when every trial finished (or the spec's `budget:` stopped the sweep: it names the budget
and the trials not run), 1 when a trial failed (its record holds the error) or a base
model could not be scored (baselines/<model>.error.json holds it), 2 for a bad spec or setting (refused
before Ray starts and before anything is written) or a run directory in use by another sweep, 130 /
143 when stopped by SIGINT / SIGTERM (no report is written; the command to resume is printed).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.interrupt import Interruption, SweepInterrupted
from orchestrator.lock import RunLock, RunLocked, describe, holder_is_alive, in_use, read_holder

if TYPE_CHECKING:
    from orchestrator.backend import TrialBackend
    from orchestrator.parts import SweepParts
    from orchestrator.spec import SweepSpec
    from orchestrator.store import RunStore

# Everything else is imported where it is used: a sweep refused because another one holds its run
# directory says so in a second or two, before pandas, scipy and torch are loaded.

DEFAULT_SPEC = Path(__file__).resolve().parents[1] / "sweeps" / "local.yaml"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m orchestrator.sweep", description=__doc__.split("\n")[0])
    p.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC), help="sweep spec YAML (default: %(default)s)")
    p.add_argument("--address", help="Ray address (e.g. auto); default: the spec's, $RAY_ADDRESS, or embedded")
    p.add_argument("--storage", help="override the spec's storage path")
    p.add_argument("--resume", action="store_true", help="require an existing sweep to continue")
    p.add_argument("--validate", action="store_true", help="only validate the spec and exit")
    p.add_argument("--plan", action="store_true",
                   help="only print where each cell's training and scoring land, whether they fit, the "
                        "concurrency and GPU-hours (starts no Ray); exit 2 if a cell fits nowhere")
    p.add_argument("--cluster", help="Ray cluster-launcher YAML to plan against and size concurrency by "
                                     "(default when joining a `ray up` cluster: its head's copy)")
    p.add_argument("--json", action="store_true", help="with --plan: print the plan as one JSON object")
    return p.parse_args(argv)


def prepare_run_dir(spec: SweepSpec, resume: bool) -> RunStore:
    """Create the run directory, or check that an existing one holds this same sweep. A directory
    with a spec but no results (a sweep that stopped before its first score) takes the new spec."""
    from orchestrator.spec import SpecError
    from orchestrator.store import RunStore, write_json

    store = RunStore(spec.run_dir)
    old = store.saved_spec()
    if old is None and resume:
        raise SpecError(f"--resume: nothing to resume at {store.root}")
    if old is not None:
        # where a sweep runs, what it may spend and where it reports, not what it is: a moved run resumes,
        # and so does one given a larger budget or another tracker
        where = {"storage", "ray_address", "budget", "tracking"}
        before, now = old.model_dump(exclude=where), spec.model_dump(exclude=where)
        if before == now:
            if any(old.model_dump(include={k}) != spec.model_dump(include={k}) for k in ("budget", "tracking")):
                write_json(store.root / "spec.json", spec.model_dump(mode="json"))   # the budget in force
            return store
        diff = sorted(k for k in now if before.get(k) != now[k])
        if store.has_results():
            raise SpecError(f"{store.root} holds sweep {old.name!r} with a different spec (fields: "
                            f"{', '.join(diff)}); use another name or storage to start a new sweep")
        print(f"note: {store.root} held a sweep that never scored anything; starting it with this spec "
              f"(changed: {', '.join(diff)})", flush=True)
    write_json(store.root / "spec.json", spec.model_dump(mode="json"))
    return store


def run(spec: SweepSpec, address: str | None = None, resume: bool = False, cluster_yaml: str | None = None,
        interruption: Interruption | None = None, backend: TrialBackend | None = None):
    """Run (or resume) a sweep. Everything checkable is checked before the run directory is locked,
    written or Ray started; the lock is held until the sweep ends. `backend` runs the trials (default:
    orchestrator.backend.RayBackend, the real trainer and scorers). Returns the Pareto front, the
    failed trials' records and, per model whose base model could not be scored, its error."""
    from orchestrator.backend import RayBackend
    from orchestrator.parts import slice_spec
    from orchestrator.preflight import PreflightError, check_sweep
    from orchestrator.spec import SpecError
    from orchestrator.store import RunStore
    from orchestrator.tracking import check_installed
    from orchestrator.tracking.callback import open_tracking

    try:
        check_sweep(spec, address)
    except PreflightError as err:
        raise SpecError(str(err)) from None
    check_installed(spec)
    if interruption:
        interruption.install()
    parts, backend = slice_spec(spec), backend or RayBackend()
    with RunLock(RunStore(spec.run_dir).root) as lock:
        if lock.taken_over:
            print(f"warning: took over {lock.path} from a sweep that is no longer running: "
                  f"{describe(lock.taken_over)}", flush=True)
        model_paths = backend.model_paths(parts.trials.model_refs)   # hub models are downloaded once, here
        store = prepare_run_dir(spec, resume)
        t0 = time.time()
        tracking = open_tracking(spec, store, parts)
        try:
            errors, over_budget = run_on_ray(parts, store, model_paths, backend, address or spec.ray_address or
                                             os.environ.get("RAY_ADDRESS"), cluster_yaml, interruption, tracking,
                                             spec.budget)
        except BaseException:
            tracking.close_sweep(finished=False)
            raise
        result = finish(store, parts.study.objectives, t0, errors, over_budget)
        tracking.close_sweep(finished=True)
    return result


def run_on_ray(parts: SweepParts, store: RunStore, model_paths: dict[str, str], backend: TrialBackend,
               address: str | None, cluster_yaml: str | None, interruption: Interruption | None,
               tracking=None, budget=None) -> tuple[dict[str, str], str | None]:
    """Connect, start the scorer apps, score the base models and run Tune; the base models' errors and
    why the budget stopped the sweep (None if it did not)."""
    from orchestrator import cluster
    from orchestrator.baselines import BaselineScoring, scores_before_trials
    from orchestrator.scorer_apps import start_scorers, stop_scorers
    from orchestrator.tuning import run_tune

    try:
        print(cluster.connect(parts.demand, address, cluster_yaml), flush=True)
        if interruption:
            interruption.install()   # ray.init replaced the SIGTERM handler with sys.exit
        app_names = start_scorers(parts.scorers, model_paths, backend)
        try:
            with BaselineScoring(parts.scorers, parts.trials.evaluation, store, app_names, backend) as baselines:
                if scores_before_trials(cluster_gpus()):
                    baselines.wait()
                over_budget = run_tune(parts, store, model_paths, app_names, interruption, baselines.errors.keys,
                                       backend, tracking, budget)
        finally:  # free the replicas' resources for whatever runs next on this cluster
            stop_scorers(app_names)
    except SweepInterrupted:
        mark_interrupted(store, interruption.at if interruption else None)
        raise
    return baselines.errors, over_budget


def cluster_gpus() -> float:
    import ray

    return ray.cluster_resources().get("GPU", 0)


def finish(store: RunStore, objectives: list, t0: float, errors: dict[str, str], over_budget: str | None = None):
    """Write the report, print the fronts and what failed; the sweep's (front, failed, errors)."""
    from orchestrator.report import format_front, write_report
    from orchestrator.results import baselines

    front = write_report(store.root, state="stopped by its budget" if over_budget else "finished")
    print(f"\nSweep {store.root.name!r} {'stopped' if over_budget else 'finished'} in {time.time() - t0:.0f} s; "
          f"results in {store.root}")
    if over_budget:
        print(budget_note(store, over_budget), flush=True)
    print(f"Pareto front per cell ({store.root / 'pareto'}):\n"
          f"{format_front(front, objectives, baselines(store.root))}")
    failed = [r for r in store.trial_records() if r.status == "error"]
    for r in failed:
        print(f"trial {r.key} failed: {r.error}", file=sys.stderr)
    for label, error in errors.items():
        print(f"base model {label} could not be scored: {error}; its cells' remaining trials did not start "
              "(resume to score it again and run them)", file=sys.stderr)
    return front, failed, errors


def budget_note(store: RunStore, why: str) -> str:
    """What the budget left undone, per cell, and how to go on."""
    from orchestrator.frames import progress

    cells = progress(store.root)
    undone = [f"{r.cell}: {r.planned - r.done - r.failed}" for r in cells.itertuples() if r.planned - r.done - r.failed]
    return (f"Stopped by the budget: {why}. Not run: {sum(int(x.rsplit(': ', 1)[1]) for x in undone)} trial(s) "
            f"({', '.join(undone) or 'none'}). Raise `budget:` in the spec and rerun with --resume to go on.")


def mark_interrupted(store, since: float | None) -> list[str]:
    """Trials the interruption stopped: "running" ones, and ones that failed after the signal (their
    failure was the stop itself). They run again on resume."""
    stopped = []
    for r in store.trial_records():
        failed_by_stop = r.status == "error" and since is not None and (r.finished_at or 0) >= since
        if r.status == "running" or failed_by_stop:
            store.write_trial(r.model_copy(update={"status": "interrupted"}))
            stopped.append(r.key)
    return stopped


def resume_command(args, storage: str) -> str:
    parts = [sys.executable, "-m", "orchestrator.sweep", args.spec, "--storage", storage, "--resume"]
    if args.address:
        parts += ["--address", args.address]
    if args.cluster:
        parts += ["--cluster", args.cluster]
    return " ".join(shlex.quote(p) for p in parts)


def refuse_if_in_use(args) -> None:
    """Raise RunLocked at once if a live sweep holds the run directory the spec names (read from the
    YAML without validating it; the full check, with the lock taken, comes after validation)."""
    import yaml

    if args.validate or args.plan:
        return
    try:
        data = yaml.safe_load(Path(args.spec).read_text())
        run_dir = Path(args.storage or data.get("storage", "results")).expanduser().resolve() / str(data["name"])
    except Exception:   # unreadable or invalid: validation says what is wrong
        return
    holder = read_holder(run_dir)
    if holder and holder_is_alive(holder):
        raise RunLocked(in_use(run_dir, holder))


def main(argv: list[str] | None = None, backend: TrialBackend | None = None) -> int:
    """The command line; `backend` runs the trials (a simulation passes its own)."""
    args = parse_args(argv)
    try:
        refuse_if_in_use(args)
    except RunLocked as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from orchestrator.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
        if args.storage:
            spec = spec.model_copy(update={"storage": _checked_storage(args.storage)})
        if args.validate:
            from orchestrator.tracking import check_installed

            check_installed(spec)
            print(f"{args.spec}: valid ({len(spec.cells)} cells x {spec.trials_per_cell} trials)")
            return 0
        if args.plan:
            return print_plan(spec, args.cluster, args.json, args.address)
        _, failed, unscored = run(spec, args.address, args.resume, args.cluster, Interruption(), backend)
    except (SpecError, RunLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SweepInterrupted as stop:
        storage = str(Path(spec.storage).expanduser().absolute())
        print(f"\nSweep {spec.name!r} interrupted by {signal.Signals(stop.signum).name}: unfinished trials are "
              f"marked interrupted and no report was written.\nResume with:\n  {resume_command(args, storage)}",
              file=sys.stderr, flush=True)
        return stop.exit_code
    return 1 if failed or unscored else 0


def _checked_storage(storage: str) -> str:
    from orchestrator.spec import SpecError, check_storage

    try:
        return check_storage(storage)
    except ValueError as err:
        raise SpecError(f"--storage: {err}") from None


def print_plan(spec: SweepSpec, cluster_yaml: str | None, as_json: bool, address: str | None = None) -> int:
    """`--plan`: 0 if every cell can be placed, else 2 (naming the cells)."""
    import json

    from orchestrator.parts import demand_of
    from orchestrator.scheduling.build import plan_for
    from orchestrator.scheduling.nodes import cluster_yaml_in_use
    from orchestrator.scheduling.render import format_plan
    from orchestrator.spec import SpecError

    if cluster_yaml and not Path(cluster_yaml).expanduser().is_file():
        raise SpecError(f"--cluster: no such file {cluster_yaml}")
    joining = bool(address or spec.ray_address or os.environ.get("RAY_ADDRESS"))   # e.g. on a `ray up` head
    plan = plan_for(demand_of(spec), cluster_yaml_in_use(cluster_yaml, joining))
    print(json.dumps(plan.to_dict(), indent=1) if as_json else format_plan(plan))
    for cell in plan.unplaceable:
        print(f"error: cell {cell.cell} (model {cell.model}) cannot be placed: {cell.reason}", file=sys.stderr)
    return 2 if plan.unplaceable else 0


if __name__ == "__main__":
    sys.exit(main())
