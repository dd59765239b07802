"""Limits on what a sweep spec may hold, and its one secret: checked before pydantic copies, compares,
saves or prints a spec (orchestrator.spec), and the optuna_storage password kept out of every dump
(docs/security.md). No import of orchestrator.spec, which imports this."""

from __future__ import annotations

import os
import re


# The whole spec's bounds, checked on the YAML as loaded, before any validation copies or prints it:
# the largest real sweep (sweeps/paper.yaml) has a few hundred values, 6 levels deep.
SPEC_MAX_NODES = 20_000   # values, keys included, each alias counted once per use
SPEC_MAX_DEPTH = 24
SPEC_MAX_BYTES = 1 << 20   # sweeps/paper.yaml is under 4 KB


def check_spec_size(data, source: str = "spec") -> None:
    """ValueError if the loaded spec is larger than any real sweep: YAML anchors can nest a small file
    into an exponentially large value (an alias bomb) that validation, comparison and saving would
    expand; the walk stops at the bound, so it is cheap whatever the file holds."""
    budget = [SPEC_MAX_NODES]
    stack = [(data, "", 0)]
    while stack:
        x, path, depth = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError(f"{source}: the spec holds more than {SPEC_MAX_NODES} values (YAML anchors count "
                             f"once per use; last seen at {path.lstrip('.') or 'the top level'}); no sweep needs that")
        if depth > SPEC_MAX_DEPTH:
            raise ValueError(f"{source}: {path.lstrip('.')}: nested deeper than {SPEC_MAX_DEPTH} levels")
        if isinstance(x, dict):
            stack.extend((v, f"{path}.{k}", depth + 1) for k, v in x.items())
            budget[0] -= len(x)
        elif isinstance(x, (list, tuple, set, frozenset)):
            stack.extend((v, f"{path}.{i}", depth + 1) for i, v in enumerate(x))


def redact_url(url: str | None) -> str | None:
    """A database URL with its password (user:PASSWORD@, ?password=...) replaced by ***, for spec.json,
    messages and logs: `optuna_storage` may hold one (docs/security.md)."""
    if not url:
        return url
    url = re.sub(r"(//[^/@:]*:)[^@/]*@", r"\1***@", url)
    return re.sub(r"(?i)([?&](?:password|passwd|pwd|token|secret)=)[^&]*", r"\1***", url)


def storage_url(url: str) -> str:
    """The URL to open: `${VAR}` in a spec's optuna_storage is read from the environment, so the
    password never has to be in the spec (postgresql://sweep:${OPTUNA_DB_PASSWORD}@db/optuna)."""
    def value(match):
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value, url)
