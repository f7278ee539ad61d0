"""Fashion-MNIST CNN: the post's small convnet, trained on all 60,000 training images and, as the
post does, validated on the test set each epoch (it tunes nothing on it)."""

from __future__ import annotations

import logging

from lib.common.core import load_params, run_stage
from lib.train.configs import check_fits, cnn_unit
from lib.train.unit import arguments, load_arrays, start_keras

log = logging.getLogger("stages.fashion_cnn")


def main(argv: list[str] | None) -> None:
    args = arguments(__doc__, argv, "fashion_cnn")
    fashion = {key: load_params(args.params, "fashion", key) for key in ("cnn", "training")}
    cnn, settings, config = cnn_unit(fashion, args.seed)
    arrays = load_arrays(args.data)
    images = len(arrays["x_train"])
    check_fits(settings.batch_size, images, "fashion.training.batch_size", "the images the CNN trains on")
    keras_train = start_keras(args.backend)
    log.info(f"cnn seed {args.seed}: {cnn.epochs} epochs on {images} images, validated on the test set")
    metrics = keras_train.write_unit(args.out, args.model, lambda callbacks: keras_train.train_cnn(
        cnn, settings, args.seed, arrays, callbacks), config)
    log.info(f"cnn seed {args.seed}: val_loss {metrics['val_loss']:.4f} val_accuracy {metrics['val_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
