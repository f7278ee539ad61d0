"""Beyond the Fashion-MNIST post: the search's winner (reports/search_winner/winner.json) trained on all
60,000 training images for its seeds' mean warning epoch and evaluated on the test set, one seed of
`fashion.seeds` per unit, as the post's chosen model is (stages/fashion_final.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lib.common.core import ConfigError, config_dict, load_params, run_stage
from lib.train.configs import check_fits, searched_unit
from lib.train.unit import arguments, load_arrays, start_keras

WINNER = "reports/search_winner/winner.json"
log = logging.getLogger("stages.search_final")


def main(argv: list[str] | None) -> None:
    args = arguments(__doc__, argv, "search_final")
    try:
        winner = json.loads(Path(WINNER).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{WINNER}: no such file; run `dvc repro search_winner` first") from None
    training = load_params(args.params, "fashion", "training")
    variant, settings, activation = searched_unit(winner["params"], {**training, "epochs": winner["epochs"]})
    arrays = load_arrays(args.data)
    images = len(arrays["x_train"])
    check_fits(settings.batch_size, images, "fashion.training.batch_size", "the images the final model trains on")
    keras_train = start_keras(args.backend)
    config = {"place": winner["place"], "trial": winner["trial"], "seed": args.seed, "activation": activation,
              **config_dict(variant), **config_dict(settings)}
    log.info(f"search winner {winner['place']} (trial {winner['trial']}) seed {args.seed}: {variant}, {activation}, "
             f"{settings.epochs} epochs on {images} images")
    metrics = keras_train.write_unit(args.out, args.model, lambda callbacks: keras_train.train_final(
        variant, settings, args.seed, arrays, callbacks, activation), config)
    log.info(f"search winner seed {args.seed}: test_loss {metrics['test_loss']:.4f} "
             f"test_accuracy {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
