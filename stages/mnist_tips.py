"""MNIST tips table, one unit: train one variant with one seed, then evaluate it as the post does
(`evaluate` on the 10,000 training images and on the test set). Each (variant, seed) is a DVC stage."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from lib.common.core import ConfigError, build_config, load_params, run_stage
from lib.train.configs import Training, check_fits, tips_unit, use_backend

log = logging.getLogger("stages.mnist_tips")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="key under `mnist_tips.variants`")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the prepared .npz of the row's `mnist_tips.data` group")
    parser.add_argument("--out", required=True, type=Path, help="directory for this run's metrics, config and curves")
    parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    training = build_config(Training, load_params(args.params, "training"), "training")
    # The data file is named by its `mnist_tips.data` group, which is what `data` records.
    variants = load_params(args.params, "mnist_tips", "variants")
    variant, config = tips_unit(variants, args.variant, args.seed, args.data.stem)
    if not args.data.is_file():
        raise ConfigError(f"--data {args.data}: no such prepared file; run `dvc repro preprocess` first")
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    check_fits(variant.batch_size, len(arrays["x_train"]), f"mnist_tips.variants.{args.variant}.batch_size",
               f"the training images of {args.data.name}")
    use_backend(training.backend)
    from lib.train.keras_train import record, run_outputs, train_tips

    label = f"{args.variant} seed {args.seed}"
    log.info(f"{label}: {variant}, data {args.data}")
    started = time.perf_counter()
    with run_outputs([args.out], args.model) as ([folder], model):
        metrics = record(folder, lambda callbacks: train_tips(variant, args.seed, arrays, callbacks), config, model)
    log.info(f"{label}: train_accuracy {metrics['train_accuracy']:.4f} test_accuracy {metrics['test_accuracy']:.4f} "
             f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    run_stage(main)
