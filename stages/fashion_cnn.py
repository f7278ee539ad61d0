"""Fashion-MNIST CNN: the post's small convnet, trained on all 60,000 training images and, as the
post does, validated on the test set each epoch (it tunes nothing on it)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from lib.common.core import build_config, load_params, run_stage
from lib.train.configs import Training, check_fits, cnn_unit, use_backend

log = logging.getLogger("stages.fashion_cnn")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the fashion_cnn .npz (with a channel axis)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    training = build_config(Training, load_params(args.params, "training"), "training")
    cnn, settings, config = cnn_unit({key: load_params(args.params, "fashion", key) for key in ("cnn", "training")}, args.seed)
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    check_fits(settings.batch_size, len(arrays["x_train"]), "fashion.training.batch_size", "the images the CNN trains on")
    use_backend(training.backend)
    from lib.train.keras_train import record, run_outputs, train_cnn

    log.info(f"cnn seed {args.seed}: {cnn.epochs} epochs on {len(arrays['x_train'])} images, validated on the test set")
    with run_outputs([args.out], args.model) as ([folder], model):
        metrics = record(folder, lambda callbacks: train_cnn(cnn, settings, args.seed, arrays, callbacks), config, model)
    log.info(f"cnn seed {args.seed}: val_loss {metrics['val_loss']:.4f} val_accuracy {metrics['val_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
