"""``mbrl-dataset``: inspect offline datasets from the command line.

    mbrl-dataset info halfcheetah-medium                 # a built-in dataset
    mbrl-dataset info ~/.d4rl/datasets/hopper_medium-v2.hdf5 --json
    mbrl-dataset info mujoco/hopper/medium-v0 --download
    mbrl-dataset info recorded.hdf5 --env-id Hopper-v5   # a file that names no env

Errors print ``error: <message>`` to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from mbrl.data.transitions import DatasetError

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand sets ``func(args) -> exit status``."""
    parser = argparse.ArgumentParser(prog="mbrl-dataset", description="Inspect offline RL datasets.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    info = commands.add_parser("info", help="summarise a dataset (transitions, episodes, returns, ...)")
    info.add_argument("dataset", metavar="PATH_OR_ID", help="built-in name, D4RL .hdf5 file or name, or Minari id")
    info.add_argument("--json", action="store_true", help="print exactly one JSON object")
    info.add_argument("--download", action="store_true", help="download a Minari dataset that is not stored locally")
    info.add_argument(
        "--env-id",
        metavar="ENV_ID",
        help="gymnasium id of the env the data belongs to (e.g. Hopper-v5): names the env of a D4RL file that "
        "names none, and the dataset is checked against it",
    )
    info.add_argument(
        "--allow-version-mismatch",
        action="store_true",
        help="accept a dataset of another version of --env-id's env (e.g. D4RL's Hopper-v3 data for Hopper-v5)",
    )
    info.set_defaults(func=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mbrl-dataset``; returns the exit status (0, or 2 on a dataset error)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress notes go to stderr
    try:
        return args.func(args)
    except (DatasetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def _info(args: argparse.Namespace) -> int:
    from mbrl.data.loading import load_dataset

    # Progress messages (e.g. building a built-in dataset) go to stderr so stdout stays parseable.
    with contextlib.redirect_stdout(sys.stderr):
        summary = load_dataset(
            args.dataset,
            download=args.download,
            env_id=args.env_id,
            allow_version_mismatch=args.allow_version_mismatch,
        ).summary()
    if args.json:
        print(json.dumps(_json_safe(summary)))
    else:
        print(_format_summary(summary))
    return 0


def _json_safe(summary: dict[str, Any]) -> dict[str, Any]:
    """NaN (an empty dataset's statistics) is not valid JSON: write it as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in summary.items()}


def _format_summary(summary: dict[str, Any]) -> str:
    width = max(len(key) for key in summary)
    lines = []
    for key, value in summary.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
