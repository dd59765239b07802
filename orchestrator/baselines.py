"""Each base model's "before" evaluation (the baseline every capability loss is measured against),
scored once per sweep, alongside the first trials.

Trials need their base model's scores only after their own scoring (orchestrator.trial waits for
them in the run directory), so on a GPU cluster the sweep does not score every base model before Tune
starts: that phase held the scorers' GPU nodes while no trial trained, and the nodes brought up for it
went idle while Tune started (the scale simulation's first A10G node did 0.05 of its 1.9 GPU-hours).
Without GPUs it does (scores_before_trials): the base model's scoring and the first trial's training
then share the same CPU cores, two torch thread pools on 2 cores, which made the first trial 6x slower. A resumed sweep reuses the saved scores. A base model that cannot be scored is recorded
with its error: its trials stop waiting and are recorded interrupted (they run again on resume), the
searcher starts no more of them, the other models' trials go on, and the sweep exits non-zero;
resuming scores it again.
"""

from __future__ import annotations

import threading

from evaluators.settings import EvalSettings
from orchestrator.backend import RayBackend, TrialBackend
from orchestrator.parts import ScorerSetup
from orchestrator.store import RunStore


def scores_before_trials(cluster_gpus: float) -> bool:
    """Whether the base models are scored before the first trial starts: on a cluster without GPUs,
    where scoring and training would compete for the same cores."""
    return not cluster_gpus


class BaselineScoring:
    """Scores the base models the run directory lacks, each in a thread of its own, by its own scorer
    app; `with BaselineScoring(...) as baselines:` runs the sweep beside it and waits for it at the end."""

    def __init__(self, models: list[ScorerSetup], evaluation: EvalSettings, store: RunStore,
                 app_names: dict[str, str], backend: TrialBackend = RayBackend()):
        self.models, self.evaluation, self.store, self.app_names = models, evaluation, store, app_names
        self.backend = backend
        # model label -> why its base model could not be scored; the searcher skips those models'
        # cells, reading errors.keys (picklable, unlike this object: Tune pickles its searcher)
        self.errors: dict[str, str] = {}
        self._save = threading.Lock()      # baselines.json is read, updated and written whole
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> BaselineScoring:
        done = self.store.baselines()
        for m in self.models:
            if m.label in done:
                continue
            self.store.clear_baseline_error(m.label)   # an earlier run's failure: scored again now
            print(f"Scoring base model {m.label} (the 'before' row)", flush=True)
            # daemon: an interrupted sweep exits without waiting for a score (its scorers are deleted)
            thread = threading.Thread(target=self._score, args=(m,), name=f"baseline-{m.label}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _score(self, model: ScorerSetup) -> None:
        from ray import serve

        try:
            result = self.backend.evaluate(serve.get_app_handle(self.app_names[model.label]), self.evaluation,
                                           None, progress=f"base model {model.label}")
            # saved inside the try: a failed save (ENOSPC, EIO, a read-only mount) is this base model's
            # error too, recorded where its trials look, or they would wait for a baseline never written
            with self._save:
                self.store.save_baseline_rows(model.label, result.rows)
                self.store.save_baseline(model.label, {"model_ref": model.ref, "metrics": result.summary})
        except BaseException as err:   # any failure ends the wait of this model's trials
            self._record_error(model.label, f"{type(err).__name__}: {err}")
            if not isinstance(err, Exception):
                raise

    def _record_error(self, label: str, error: str) -> None:
        self.errors[label] = error
        print(f"error: base model {label} could not be scored: {error}", flush=True)
        try:
            self.store.save_baseline_error(label, error)
        except Exception as err:   # the disk that refused the rows may refuse this too
            print(f"error: could not record base model {label}'s error either ({type(err).__name__}: {err})",
                  flush=True)
            self.store.mark_baseline_failed(label)

    def wait(self) -> dict[str, str]:
        """Wait for every base model's score; return the errors of those that could not be scored."""
        for thread in self._threads:
            thread.join()
        return dict(self.errors)

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.wait()
