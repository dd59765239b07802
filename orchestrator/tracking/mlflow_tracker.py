"""MLflow: one parent run per sweep (tag cft.sweep, cft.kind=sweep), one nested run per trial (tag
cft.trial_key; mlflow.parentRunId the sweep's run), both found again by tag search on resume."""

from __future__ import annotations

from pathlib import Path

from orchestrator.tracking.base import Tracker, TrialInfo, flatten, numbers

MAX_PARAM_CHARS = 6000   # MLflow's limit on a parameter's value
STATUS = {"done": "FINISHED", "error": "FAILED", "interrupted": "KILLED"}


class MlflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str | None = None):
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=artifact_location,
            tags={"mlflow.experimentKind": "custom_model_development"})   # the UI opens on its runs, not traces
        self.parent_id: str | None = None
        self.sweep = ""
        self.runs: dict[str, str] = {}   # trial key -> run id

    def _find(self, tags: dict[str, str]) -> str | None:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        runs = self.client.search_runs([self.experiment_id], filter_string=query, max_results=1,
                                       order_by=["attributes.start_time ASC"])
        return runs[0].info.run_id if runs else None

    def _reopen(self, run_id: str) -> None:
        if self.client.get_run(run_id).info.status != "RUNNING":
            self.client.update_run(run_id, status="RUNNING")

    def open_sweep(self, sweep: str, info: dict) -> None:
        self.sweep = sweep
        tags = {"cft.sweep": sweep, "cft.kind": "sweep"}
        self.parent_id = self._find(tags)
        if self.parent_id:
            self._reopen(self.parent_id)
        else:
            self.parent_id = self.client.create_run(self.experiment_id, run_name=sweep, tags=tags).info.run_id
        self._params(self.parent_id, flatten(info))

    def open_trial(self, trial: TrialInfo) -> None:
        tags = {"cft.sweep": self.sweep, "cft.kind": "trial", "cft.trial_key": trial.key}
        run_id = self._find(tags)
        if run_id:
            self._reopen(run_id)
        else:
            run_id = self.client.create_run(self.experiment_id, run_name=trial.key, tags={
                **tags, "cft.cell": trial.cell, "mlflow.parentRunId": self.parent_id}).info.run_id
        self.runs[trial.key] = run_id
        self._params(run_id, {k: str(v) for k, v in trial.params.items()} | flatten(trial.configs))
        self.client.log_dict(run_id, trial.configs, "configs.json")

    def _params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import MlflowException

        logged = self.client.get_run(run_id).data.params
        new = [Param(k, v[:MAX_PARAM_CHARS]) for k, v in params.items() if k not in logged]
        for i in range(0, len(new), 100):   # MLflow takes at most 100 parameters per batch
            try:
                self.client.log_batch(run_id, params=new[i:i + 100])
            except MlflowException as err:   # e.g. a value changed since the run was opened
                print(f"warning: mlflow: some parameters of run {run_id} were not logged: {err}", flush=True)

    def log_step(self, key: str, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        run_id = self.runs.get(key)
        if run_id and metrics:
            import time

            now = int(time.time() * 1000)
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, step) for k, v in numbers(metrics).items()])

    def close_trial(self, key: str, summary: dict[str, float], tags: dict[str, str], status: str) -> None:
        from mlflow.entities import Metric, RunTag

        run_id = self.runs.pop(key, None)
        if not run_id:
            return
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in numbers(summary).items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items() if v is not None])
        self.client.set_terminated(run_id, status=STATUS.get(status, "FAILED"))

    def close_sweep(self, summary: dict[str, float], artifacts: list[Path], finished: bool) -> None:
        from mlflow.entities import Metric

        if not self.parent_id:
            return
        import time

        now = int(time.time() * 1000)
        if summary:
            self.client.log_batch(self.parent_id, metrics=[Metric(k, v, now, 0) for k, v in numbers(summary).items()])
        for path in artifacts:
            if path.is_file():
                self.client.log_artifact(self.parent_id, str(path))
        for key in list(self.runs):   # interrupted: they continue on resume
            self.close_trial(key, {}, {}, "interrupted")
        self.client.set_terminated(self.parent_id, status="FINISHED" if finished else "KILLED")


def default_uri(run_dir: Path) -> str:
    """The run directory's own SQLite store (`mlflow ui --backend-store-uri sqlite:///<run>/mlflow.db`)."""
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"
