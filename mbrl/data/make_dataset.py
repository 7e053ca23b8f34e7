"""Create Minari datasets locally from behaviour policies (``mbrl-make-dataset``, ``scripts/make_dataset.py``).

Built-in datasets (regenerated from the policies shipped in the package)::

    mbrl-make-dataset halfcheetah-medium            # one dataset (skipped if already built)
    mbrl-make-dataset --all --force                 # every built-in dataset, rebuilt

Any level from your own behaviour-policy bundle (see ``mbrl-train-behavior``)::

    mbrl-make-dataset --bundle hopper.pt --level expert --id mylab/hopper/expert-v0 --size 1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mbrl.data.behavior import BehaviorBundle
from mbrl.data.builtin import (
    BUILTIN_DATASETS,
    RECORDED_HASHES,
    build_builtin,
    builtin_exists,
    builtin_hash,
    recorded_hashes,
)
from mbrl.data.generate import LEVELS, level_episodes, minari_root, write_minari
from mbrl.data.minari_io import load_minari


def _report(minari_id: str, root: str | None) -> None:
    with minari_root(root):
        s = load_minari(minari_id).summary()
    print(
        f"{minari_id}: {s['transitions']} transitions, {s['episodes']} episodes, "
        f"return {s['return_mean']:.1f} +- {s['return_std']:.1f}, hash {s['content_hash'][:12]}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"built-in datasets: {', '.join(sorted(BUILTIN_DATASETS))}")
    p.add_argument("--all", action="store_true", help="every built-in dataset")
    p.add_argument("--force", action="store_true", help="rebuild even if the dataset exists")
    p.add_argument(
        "--root", default=None, help="datasets folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)"
    )
    p.add_argument("--bundle", default=None, help="behaviour-policy bundle (.pt) for a custom dataset")
    p.add_argument("--level", choices=LEVELS, help="level of the custom dataset")
    p.add_argument("--id", dest="dataset_id", help="Minari id of the custom dataset, namespace/env/name-vN")
    p.add_argument("--size", type=int, default=100_000, help="transitions of the custom dataset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--record-hashes", action="store_true", help="write the built datasets' content hashes to builtin_hashes.json"
    )
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # progress notes go to stderr

    if a.bundle:
        if not (a.level and a.dataset_id):
            p.error("--bundle needs --level and --id")
        bundle = BehaviorBundle.load(a.bundle)
        episodes, behavior = level_episodes(bundle, a.level, a.size, a.seed)
        write_minari(a.dataset_id, episodes, bundle.env_id, behavior, f"{a.level} data from {a.bundle}", a.root)
        _report(a.dataset_id, a.root)
        return 0

    names = sorted(BUILTIN_DATASETS) if a.all else a.names
    if not names:
        p.error("name a built-in dataset, or pass --all, or --bundle/--level/--id")
    unknown = [n for n in names if n not in BUILTIN_DATASETS]
    if unknown:
        print(
            f"error: unknown built-in dataset(s) {unknown}; built-in: {', '.join(sorted(BUILTIN_DATASETS))}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        if a.force or not builtin_exists(name, a.root):
            build_builtin(name, a.root)
        _report(BUILTIN_DATASETS[name].minari_id, a.root)
    if a.record_hashes:
        hashes = {**recorded_hashes(), **{name: builtin_hash(name, a.root) for name in names}}
        RECORDED_HASHES.write_text(json.dumps(dict(sorted(hashes.items())), indent=2) + "\n")
        print(f"recorded {len(names)} content hashes in {RECORDED_HASHES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
