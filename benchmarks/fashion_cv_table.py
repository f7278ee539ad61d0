"""Time the whole Fashion-MNIST cross-validation table outside DVC, on whatever Keras backend is
active: the post's seven dense variants x k folds x its epochs, one seed, with the stage's own
training code (stages.fashion_cv.train_fold). Made for a GPU machine, which has neither
TensorFlow nor DVC:

    KERAS_BACKEND=jax python -m benchmarks.fashion_cv_table --data data/prepared/fashion_dense.npz \\
        --out reports/benchmarks/gpu_fashion_cv.json

It writes the wall time, the devices, and each variant's mean last-epoch validation loss and
accuracy (to check the numbers are the table's, not only that it ran). `--variants`, `--folds`
and `--epochs` shrink it for a quick check on a CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from stages.common import build_config, load_params, write_json
from stages.fashion_cv import CrossValidation, DenseVariant, fold_indices, train_fold
from stages.training import RunSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="the fashion_dense .npz")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", help="default: every variant without early stopping (the post's seven)")
    parser.add_argument("--folds", nargs="+", type=int, help="default: all k")
    parser.add_argument("--epochs", type=int, help="default: fashion.training.epochs")
    args = parser.parse_args()

    import keras

    variants = load_params(args.params, "fashion", "variants")
    settings = build_config(RunSettings, load_params(args.params, "fashion", "training"), "fashion.training")
    if args.epochs:
        settings = replace(settings, epochs=args.epochs)
    cv = build_config(CrossValidation, load_params(args.params, "fashion", "cross_validation"), "fashion.cross_validation")
    names = args.variants or [n for n, v in variants.items() if not v.get("early_stopping_patience")]
    folds = args.folds if args.folds is not None else list(range(cv.k))
    with np.load(args.data) as npz:
        images, labels = npz["x_train"], npz["y_train"]

    started = time.perf_counter()
    rows = {}
    for name in names:
        variant = build_config(DenseVariant, variants[name], f"fashion.variants.{name}")
        last = []
        for fold in folds:
            unit_start = time.perf_counter()
            train, val = fold_indices(len(images), cv.k, fold)
            curves, _ = train_fold(variant, settings, args.seed, images[train], labels[train], images[val], labels[val])
            last.append((curves["val_loss"][-1], curves["val_accuracy"][-1]))
            print(json.dumps({"variant": name, "fold": fold, "seconds": round(time.perf_counter() - unit_start, 1), "val_loss": last[-1][0], "val_accuracy": last[-1][1]}), flush=True)
        rows[name] = {"val_loss": float(np.mean([v[0] for v in last])), "val_accuracy": float(np.mean([v[1] for v in last]))}
    seconds = time.perf_counter() - started

    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    write_json(args.out, {
        "table": "fashion_cv", "what": f"Fashion-MNIST CV table: {len(names)} variants x {len(folds)} folds x {settings.epochs} epochs, seed {args.seed}, benchmarks.fashion_cv_table",
        "backend": keras.backend.backend(), "keras": keras.__version__, "devices": devices, "machine": platform.machine(),
        "seconds": round(seconds, 1), "variants": rows,
    })
    print(f"{len(names)} variants x {len(folds)} folds x {settings.epochs} epochs in {seconds:.1f} s on {keras.backend.backend()} {devices}")


if __name__ == "__main__":
    main()
