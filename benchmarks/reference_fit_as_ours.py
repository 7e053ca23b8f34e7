"""OfflineRL-Kit's fitted ensemble as our dynamics cache entry, so that an ordinary run of ours trains on the
reference's fit (the side by side's cross-fit test).

    python benchmarks/reference_fit_as_ours.py --ours-entry OUR_CACHE/dynamics/<key>.pt \
        --reference-fit FIT_DIR --out NEW_CACHE
    mbrl-train ... dynamics.cache_dir=NEW_CACHE      # the same config and seed as the entry's run

``OUR_CACHE`` is a side-by-side fit's cache (``<runs>/<dataset>/_fits/ours/seed<k>/cache``), ``FIT_DIR`` the
reference's fit of the same dataset, seed and dynamics config (``EnsembleDynamics.save``: ``dynamics.pth``,
``mu.npy``, ``std.npy``). The entry keeps its key (config and data) and its fit report; its weights, log-variance
bounds, elites and input standardiser become the reference's. The reference's ensemble layers hold
``[E, in, out]`` weights as ours do, ``backbones.i`` and ``output_layer`` being our ``hidden.i`` and ``output``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ours-entry", type=Path, required=True, help="our cache entry of the same config and seed")
    p.add_argument("--reference-fit", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="the new cache folder (dynamics.cache_dir)")
    a = p.parse_args(argv)
    entry = torch.load(a.ours_entry, weights_only=True)
    model = entry["model"]
    for name, value in torch.load(a.reference_fit / "dynamics.pth", weights_only=True).items():
        if "saved_" in name:  # the reference's copy of its best weights, already loaded into the live ones
            continue
        key = name.replace("backbones.", "hidden.").replace("output_layer.", "output.")
        if key not in model or model[key].shape != value.shape:
            raise SystemExit(f"{name}: no parameter {key} of that shape in our entry; fit both with one config")
        model[key] = value.to(model[key].dtype)
    for key, file in (("input_mean", "mu.npy"), ("input_std", "std.npy")):
        model[key] = torch.as_tensor(np.load(a.reference_fit / file)).reshape(-1).to(model[key].dtype)
    out = a.out / "dynamics"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(entry, out / a.ours_entry.name)
    print(f"wrote {out / a.ours_entry.name}: the reference's fit, elites {model['elites'].tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
