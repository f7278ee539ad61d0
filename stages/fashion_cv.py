"""Fashion-MNIST cross-validation, one unit: one dense variant with one seed, every fold of the post's
`k_fold_val` trained in turn and its per-epoch curves recorded in its own fold folder. Serves the
dense-net table of the Fashion-MNIST post; each (variant, seed) is a DVC stage."""

from __future__ import annotations

import logging
import time

from lib.common.core import load_params, run_stage
from lib.common.paths import fold_folder
from lib.train.configs import check_fits, cv_unit
from lib.train.unit import arguments, load_arrays, start_keras

log = logging.getLogger("stages.fashion_cv")


def main(argv: list[str] | None) -> None:
    args = arguments(__doc__, argv, "fashion_cv")
    fashion = {key: load_params(args.params, "fashion", key) for key in ("variants", "training", "cross_validation")}
    variant, settings, cv, _ = cv_unit(fashion, args.variant, args.seed, 0)
    arrays = load_arrays(args.data)
    images, labels = arrays["x_train"], arrays["y_train"]
    check_fits(settings.batch_size, len(images) - len(images) // cv.k, "fashion.training.batch_size",
               "the images a fold trains on")
    keras_train = start_keras(args.backend)
    with keras_train.run_outputs([args.out]) as ([out], _):
        out.mkdir()
        for fold in range(cv.k):
            train, val = keras_train.fold_indices(len(images), cv.k, fold)
            label, started = f"{args.variant} seed {args.seed} fold {fold + 1}/{cv.k}", time.perf_counter()
            log.info(f"{label}: {len(train)} train / {len(val)} validation images, {variant}")
            metrics = keras_train.record(fold_folder(out, fold), lambda callbacks: keras_train.train_fold(
                variant, settings, args.seed, images[train], labels[train], images[val], labels[val], callbacks),
                cv_unit(fashion, args.variant, args.seed, fold)[3])
            log.info(f"{label}: done in {time.perf_counter() - started:.0f} s, {metrics}")


if __name__ == "__main__":
    run_stage(main)
