"""The simulation's spec: a sweep spec beside its `standins:` section (the stand-ins' cost model and
clock). The benchmark reads the section; the sweep never sees it (its SweepSpec forbids unknown keys)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from benchmarks.sim.standins import StandinConfig
from orchestrator.spec import SpecError, SweepSpec, parse_spec


class SimSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep: SweepSpec
    standins: StandinConfig = StandinConfig()


def load_sim_spec(path: str | Path) -> SimSpec:
    """A sweep spec YAML with a `standins:` section; every invalid field is reported by its path."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the top level must be a mapping of fields")
    standins = data.pop("standins", None) or {}
    return SimSpec(sweep=parse_spec(data, str(path)), standins=StandinConfig.model_validate(standins))
