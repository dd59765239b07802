"""What a sweep shows while it runs: Tune's progress table (every trial under its full key, with its
training step, loss and tokens/s while it trains and its objectives once scored) and names a person
recognises for the trial actors in the Ray dashboard.

Tune's default ("new") console output infers four metric columns from the first result it sees and
cuts every config value to 20 characters, so a trial key reads "...lm2-135m-hard-000" and the
objectives, reported last, never get a column. The classic CLIReporter takes the columns we name.
"""

from __future__ import annotations

import os

PROGRESS_COLUMNS = {"step": "step", "total_steps": "of", "loss": "loss", "tokens_per_s": "tok/s"}
REPORT_EVERY_S = 30   # the table is reprinted at most this often (a sweep runs for hours)


def trial_name(trial) -> str:
    """The trial's key (e.g. smollm2-135m-hard-000): the name in Tune's table, its logs and results."""
    return trial.config.get("key") or trial.trial_id


def reporter(objectives: list[str]):
    """A progress table with the parameters, training progress and objective columns; selects the
    classic console output, which honours it (RAY_AIR_NEW_OUTPUT=1 set by the user keeps Tune's)."""
    from ray.tune import CLIReporter

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    columns = PROGRESS_COLUMNS | {name: name for name in objectives}
    return CLIReporter(metric_columns=columns, parameter_columns=["lr", "mix"], max_column_length=24,
                       max_report_frequency=REPORT_EVERY_S, print_intermediate_tables=True, sort_by_metric=False)


class NamedTrialActor:
    """Mixed into the Tune trainable (`run_trial.__mixins__`) so each trial actor's repr, which the
    Ray dashboard's actor list shows, is `cft trial <key>` rather than the function's name; renamed
    when Tune reuses the actor for the next trial (orchestrator.tuning: reuse_actors)."""

    def setup(self, config, *args, **kwargs):
        self._name = actor_name(config)   # Tune's function trainable reprs as _name
        return super().setup(config, *args, **kwargs)

    def reset_config(self, new_config):
        self._name = actor_name(new_config)
        return super().reset_config(new_config)


def actor_name(config: dict) -> str:
    return f"cft trial {config.get('key', '?')}"
