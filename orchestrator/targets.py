"""Print the target output space of one distribution.

    python -m orchestrator.targets gaussian mu=3.5 sigma=3.0 --num-decimals 1 --max-bins 50
    python -m orchestrator.targets poisson lambda=4 --json
"""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError

from cft.cli import format_errors
from cft.families import InvalidParameters
from cft.output_space import build_output_space
from cft.splits import make_prompt


def parse_params(pairs: list[str]) -> dict[str, float]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidParameters(f"parameter {pair!r} is not of the form name=value")
        try:
            params[key] = float(value)
        except ValueError:
            raise InvalidParameters(f"parameter {key} has a value that is not a number: {value!r}") from None
    return params


def check_space_settings(num_decimals: int, max_bins: int) -> None:
    """--num-decimals and --max-bins within the bounds the training and evaluation settings declare."""
    from evaluators.settings import EvalSettings

    try:
        EvalSettings.model_validate({"num_decimals": num_decimals, "max_bins": max_bins})
    except ValidationError as err:
        flags = format_errors(err).replace("num_decimals", "--num-decimals").replace("max_bins", "--max-bins")
        raise ValueError(flags.replace("\n", "; ")) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.targets", description=__doc__.split("\n")[0])
    parser.add_argument("family")
    parser.add_argument("params", nargs="*", metavar="name=value")
    parser.add_argument("--num-decimals", type=int, default=5)
    parser.add_argument("--max-bins", type=int, default=1001)
    parser.add_argument("--json", action="store_true", help='print {"values": [...], "probabilities": [...]}')
    args = parser.parse_args(argv)
    try:
        check_space_settings(args.num_decimals, args.max_bins)
        prompt = make_prompt(args.family, parse_params(args.params))
    except (InvalidParameters, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        space = build_output_space(prompt, args.num_decimals, args.max_bins)
    except (ArithmeticError, ValueError, TypeError) as err:   # parameters far outside what the family handles
        print(f"error: cannot build the output space of {args.family}({', '.join(args.params)}): "
              f"{type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(space.as_dict()))
        return 0
    print(prompt.text)
    print(f"{len(space)} support values, num_decimals={args.num_decimals}, max_bins={args.max_bins}")
    for value, p in zip(space.values, space.probs):
        print(f"{value}\t{p:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
