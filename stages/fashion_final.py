"""Fashion-MNIST final model: the chosen dense net trained on all 60,000 training images and
evaluated on the test set (the post's `model.evaluate(test_images, test_labels)`)."""

from __future__ import annotations

import logging

from lib.common.core import load_params, run_stage
from lib.train.configs import check_fits, final_unit
from lib.train.unit import arguments, load_arrays, start_keras

log = logging.getLogger("stages.fashion_final")


def main(argv: list[str] | None) -> None:
    args = arguments(__doc__, argv, "fashion_final")
    fashion = {key: load_params(args.params, "fashion", key) for key in ("final", "training")}
    variant, settings, config = final_unit(fashion, args.seed)
    arrays = load_arrays(args.data)
    images = len(arrays["x_train"])
    check_fits(settings.batch_size, images, "fashion.training.batch_size", "the images the final model trains on")
    keras_train = start_keras(args.backend)
    log.info(f"final model seed {args.seed}: {variant}, {settings.epochs} epochs on {images} images")
    metrics = keras_train.write_unit(args.out, args.model, lambda callbacks: keras_train.train_final(
        variant, settings, args.seed, arrays, callbacks), config)
    log.info(f"final model seed {args.seed}: test_loss {metrics['test_loss']:.4f} "
             f"test_accuracy {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
