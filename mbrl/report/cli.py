"""The ``mbrl-report`` command line and :func:`write_report`, which finds, groups, summarises and writes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mbrl.report.grouping import condition_keys, parse_group_by
from mbrl.report.markdown import render_markdown
from mbrl.report.plots import plot_curves
from mbrl.report.runs import ReportError, find_runs, load_run
from mbrl.report.stats import build_report

log = logging.getLogger(__name__)
EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mbrl-report",
        description="Aggregate finished mbrl-train runs into report.md, report.json and curves_<dataset>.png.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="folders searched for run folders (e.g. a sweep dir)")
    parser.add_argument("--out", type=Path, help="where the report goes (default: the first folder)")
    parser.add_argument(
        "--group-by",
        metavar="KEYS",
        help="comma-separated config keys that define a condition, e.g. agent,penalty.coef "
        "(default: the keys whose values differ between the runs, seed excluded)",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CIs (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling (default 0)")
    parser.add_argument(
        "--name",
        default="report",
        help="file stem: <name>.md, <name>.json and, unless it is 'report', <name>_curves_<dataset>.png "
        "(default: report.md, report.json, curves_<dataset>.png)",
    )
    return parser


def write_report(
    folders: Sequence[Path],
    out: Path | None = None,
    group_by: str | None = None,
    num_bootstrap: int = 2000,
    seed: int = 0,
    name: str = "report",
    labels: Mapping[Path, str] | None = None,
    tables: bool = True,
) -> tuple[dict[str, Any], str]:
    """Find, group and summarise the runs under ``folders``; write the files into ``out``. Returns (json, markdown).

    ``labels`` maps run folders to condition names chosen by the caller (Python only: a benchmark
    that ran its own conditions); every finished run found must have one. Without it, conditions
    come from ``group_by`` or the config keys that vary. ``tables=False`` writes only the plots, for
    a caller that appends its own sections and then writes ``<name>.md`` and ``<name>.json`` once.
    """
    missing = [str(f) for f in folders if not Path(f).is_dir()]
    if missing:
        raise ReportError(f"not a folder: {', '.join(missing)}")
    if num_bootstrap <= 0:
        raise ReportError(f"--bootstrap must be positive, got {num_bootstrap}")
    finished, unfinished = find_runs(folders)
    runs = [load_run(p) for p in finished]
    if not runs:
        raise ReportError(
            f"no finished runs (folders with config.yaml and final.json) under {', '.join(map(str, folders))}"
            + (f"; {len(unfinished)} unfinished" if unfinished else "")
        )
    if labels is not None:
        labels = {Path(p).resolve(): label for p, label in labels.items()}
        unlabelled = [str(r.path) for r in runs if r.path.resolve() not in labels]
        if unlabelled:
            raise ReportError(f"no condition label for the finished runs {', '.join(unlabelled)}")
        keys, grouping = [], "labels"
    else:
        keys = parse_group_by(group_by, runs) if group_by else condition_keys(runs)
        grouping = "group-by" if group_by else "varying"
    result = build_report(runs, unfinished, keys, grouping, folders, num_bootstrap, seed, labels)
    out = Path(out if out is not None else folders[0])
    out.mkdir(parents=True, exist_ok=True)
    result["curves"] = plot_curves(result, runs, out, prefix="" if name == "report" else f"{name}_")
    markdown = render_markdown(result)
    if tables:
        (out / f"{name}.md").write_text(markdown)
        (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result, markdown


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mbrl-report``; prints the markdown table. Exit status 0, or 2 with ``error: ...`` on stderr."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # notes go to stderr, the table to stdout
    try:
        result, markdown = write_report(args.folders, args.out, args.group_by, args.bootstrap, args.seed, args.name)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(markdown, end="")
    out = args.out if args.out is not None else args.folders[0]
    plots, skipped = len(result["curves"]), len(result["skipped_unfinished"])
    name = args.name
    log.info("wrote %s (%s.md, %s.json, %d plots); %d unfinished runs skipped", out, name, name, plots, skipped)
    return 0
