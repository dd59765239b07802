"""A cell is one (model, method) pair of a sweep: its own Optuna study, trials and Pareto front. Its
name ("<model label>:<method>") keys the plan, the records and the results; its slug names trial keys."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    model: str      # model label
    method: str

    @property
    def name(self) -> str:
        return cell_name(self.model, self.method)

    @property
    def slug(self) -> str:
        return f"{self.model}-{self.method}"


def cell_name(label: str, method: str) -> str:
    return f"{label}:{method}"


def trial_key(cell: Cell, number: int) -> str:
    return f"{cell.slug}-{number:03d}"


def key_number(key: str) -> int | None:
    """The Optuna number a trial key was made from (a rerun keeps its first key)."""
    match = re.search(r"-(\d+)$", key)
    return int(match.group(1)) if match else None
