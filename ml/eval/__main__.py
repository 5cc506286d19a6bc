"""Command line for the built-in evaluations.

Each evaluation module exposes ``register(subparsers)`` which adds its sub-command and sets
``func`` (taking the parsed namespace, returning an exit code) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ml.openmp import prefer_passive_waits

EVALUATIONS = ("lfw", "oneshot", "detection", "face_size")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    prefer_passive_waits()  # before the evaluations below import torch
    parser = argparse.ArgumentParser(prog="python -m ml.eval", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in EVALUATIONS:
        importlib.import_module(f"ml.eval.{name}").register(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
