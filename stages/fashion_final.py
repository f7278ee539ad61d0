"""Fashion-MNIST final model: the chosen dense net trained on all 60,000 training images and
evaluated on the test set (the post's `model.evaluate(test_images, test_labels)`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from lib.common.core import build_config, load_params, run_stage
from lib.train.configs import Training, check_fits, final_unit, use_backend

log = logging.getLogger("stages.fashion_final")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    training = build_config(Training, load_params(args.params, "training"), "training")
    fashion = {key: load_params(args.params, "fashion", key) for key in ("final", "training")}
    variant, settings, config = final_unit(fashion, args.seed)
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    check_fits(settings.batch_size, len(arrays["x_train"]), "fashion.training.batch_size", "the images the final model trains on")
    use_backend(training.backend)
    from lib.train.keras_train import record, run_outputs, train_final

    log.info(f"final model seed {args.seed}: {variant}, {settings.epochs} epochs on {len(arrays['x_train'])} images")
    with run_outputs([args.out], args.model) as ([folder], model):
        metrics = record(folder, lambda callbacks: train_final(variant, settings, args.seed, arrays, callbacks), config, model)
    log.info(f"final model seed {args.seed}: test_loss {metrics['test_loss']:.4f} test_accuracy {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
