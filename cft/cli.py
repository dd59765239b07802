"""Command-line flags generated from a pydantic config, so a setting is declared once (on the model)
and shows up in the spec, the CLI and the worker with no other edit (as TRL's TrlParser does).

Every field `foo_bar` becomes `--foo-bar`; bools get `--foo/--no-foo`; lists take several values or one
comma-separated value (`--families a b` or `--families a,b`); nested models and dicts take JSON. Only
the flags a user passes reach the model, so the model's own defaults and constraints are the only ones.
"""

from __future__ import annotations

import argparse
import json
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ValidationError


def add_config_flags(parser: argparse.ArgumentParser, config: type[BaseModel],
                     aliases: dict[str, list[str]] | None = None, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of `config` (a pydantic model class) in an argument group named after it."""
    group = parser.add_argument_group(config.__name__, (config.__doc__ or "").strip().split("\n")[0])
    for name, field in config.model_fields.items():
        if name in skip:
            continue
        flags = [f"--{name.replace('_', '-')}", *(aliases or {}).get(name, [])]
        kind, choices = _flag_type(field.annotation)
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default, default=str) if isinstance(default, (dict, list)) else default
        one_of = f"one of {', '.join(map(str, choices))}; " if choices else ""
        kwargs: dict[str, Any] = dict(dest=name, default=argparse.SUPPRESS,
                                      help=f"{field.description or ''} ({one_of}default: {shown})".strip())
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif kind is list:
            kwargs["nargs"] = "+"
        else:   # the model validates the value (and names the field); argparse only converts it
            kwargs["type"] = kind
        group.add_argument(*flags, **kwargs)


def config_values(config: type[BaseModel], args: argparse.Namespace) -> dict:
    """The fields of `config` that were given on the command line (list values split on commas)."""
    values = {}
    for name in config.model_fields:
        if hasattr(args, name):
            value = getattr(args, name)
            if isinstance(value, list):
                value = [part.strip() for item in value for part in str(item).split(",") if part.strip()]
            values[name] = value
    return values


def format_errors(err: ValidationError, prefix: str = "") -> str:
    """One line per bad field, e.g. `lr: Input should be greater than 0 (got -1.0)`."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"] if p != "[key]") or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        elif "input" in e and not isinstance(e["input"], (dict, list)):
            msg += f" (got {e['input']!r})"
        lines.append(f"{prefix}{path}: {msg}")
    return "\n".join(lines)


def _flag_type(annotation) -> tuple[Any, list | None]:
    """The argparse type of a field's annotation, with choices for Literals."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated or (origin in (typing.Union, types.UnionType) and len(args) == 1):
        return _flag_type(args[0])   # the annotated type; X of `X | None`
    if origin is Literal:   # converted to the literals' type, e.g. "2" -> 2 for zero_stage
        return type(args[0]), list(args)
    if annotation in (bool, int, float, str):
        return annotation, None
    if origin in (list, tuple):
        return list, None
    return json.loads, None   # nested models, dicts, dataclasses: JSON on the command line
