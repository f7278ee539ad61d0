"""Fashion-MNIST cross-validation, one unit: one dense variant with one seed, every fold of the
post's `k_fold_val` trained in turn and its per-epoch curves recorded in its own fold folder.
Serves the dense-net table of the Fashion-MNIST post; each (variant, seed) is a DVC stage."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from lib.common.core import build_config, load_params, run_stage
from lib.train.configs import Training, check_fits, cv_unit, use_backend

log = logging.getLogger("stages.fashion_cv")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="key under `fashion.variants`")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the fashion_dense .npz")
    parser.add_argument("--out", required=True, type=Path, help="the folder of this seed's fold folders")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    training = build_config(Training, load_params(args.params, "training"), "training")
    fashion = {key: load_params(args.params, "fashion", key) for key in ("variants", "training", "cross_validation")}
    variant, settings, cv, _ = cv_unit(fashion, args.variant, args.seed, 0)
    with np.load(args.data) as npz:
        images, labels = npz["x_train"], npz["y_train"]
    check_fits(settings.batch_size, len(images) - len(images) // cv.k, "fashion.training.batch_size", "the images a fold trains on")
    use_backend(training.backend)
    from lib.common.paths import fold_folder
    from lib.train.keras_train import fold_indices, record, run_outputs, train_fold

    with run_outputs([args.out]) as ([out], _):
        out.mkdir()
        for fold in range(cv.k):
            train, val = fold_indices(len(images), cv.k, fold)
            label = f"{args.variant} seed {args.seed} fold {fold + 1}/{cv.k}"
            log.info(f"{label}: {len(train)} train / {len(val)} validation images, {variant}")
            started = time.perf_counter()
            metrics = record(fold_folder(out, fold), lambda callbacks: train_fold(
                variant, settings, args.seed, images[train], labels[train], images[val], labels[val], callbacks),
                cv_unit(fashion, args.variant, args.seed, fold)[3])
            log.info(f"{label}: done in {time.perf_counter() - started:.0f} s, {metrics}")


if __name__ == "__main__":
    run_stage(main)
