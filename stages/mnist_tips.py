"""MNIST tips table, one unit: train one variant with one seed, then evaluate it as the post does
(`evaluate` on the 10,000 training images and on the test set). Each (variant, seed) is a DVC stage."""

from __future__ import annotations

import logging
import time

from lib.common.core import load_params, run_stage
from lib.train.configs import check_fits, tips_unit
from lib.train.unit import arguments, load_arrays, start_keras

log = logging.getLogger("stages.mnist_tips")


def main(argv: list[str] | None) -> None:
    args = arguments(__doc__, argv, "mnist_tips")
    # The data file is named by its `mnist_tips.data` group, which is what `data` records.
    variants = load_params(args.params, "mnist_tips", "variants")
    variant, config = tips_unit(variants, args.variant, args.seed, args.data.stem)
    arrays = load_arrays(args.data)
    check_fits(variant.batch_size, len(arrays["x_train"]), f"mnist_tips.variants.{args.variant}.batch_size",
               f"the training images of {args.data.name}")
    keras_train = start_keras(args.backend)
    label, started = f"{args.variant} seed {args.seed}", time.perf_counter()
    log.info(f"{label}: {variant}, data {args.data}")
    metrics = keras_train.write_unit(args.out, args.model, lambda callbacks: keras_train.train_tips(
        variant, args.seed, arrays, callbacks), config)
    log.info(f"{label}: train_accuracy {metrics['train_accuracy']:.4f} test_accuracy {metrics['test_accuracy']:.4f} "
             f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    run_stage(main)
