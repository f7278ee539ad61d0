"""Fashion-MNIST CNN: the post's small convnet, trained on all 60,000 training images and,
as the post does, validated on the test set each epoch (it tunes nothing on it)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common import build_config, config_dict, load_params, require, run_stage
from stages.training import RunSettings, compile_model, history_dict, write_run

log = logging.getLogger("stages.fashion_cnn")


@dataclass(frozen=True)
class CnnConfig:
    epochs: int
    dropout_rate: float = 0.3

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, "allowed: an integer >= 1")
        require(0 <= self.dropout_rate < 1, "dropout_rate", self.dropout_rate, "allowed: 0 <= dropout_rate < 1")


def build_cnn(input_shape=(28, 28, 1), dropout_rate: float = 0.3):
    """Conv(32) - MaxPool - Conv(64) - MaxPool - Conv(64) - Flatten - Dropout - Dense(64) - Dense(10)."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.MaxPooling2D((2, 2)),
            layers.Conv2D(64, (3, 3), activation="relu"),
            layers.Flatten(),
            layers.Dropout(dropout_rate),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="cnn",
    )


def train_cnn(config: CnnConfig, settings: RunSettings, seed: int, arrays: dict, callbacks=()):
    import keras

    from stages.models import fit_verbosity, reshuffled, seed_everything

    seed_everything(seed)
    model = build_cnn(arrays["x_train"].shape[1:], config.dropout_rate)
    compile_model(model, settings)
    history = model.fit(
        **reshuffled(arrays["x_train"], arrays["y_train"], settings.batch_size, seed), epochs=config.epochs,
        validation_data=(arrays["x_test"], arrays["y_test"]), callbacks=list(callbacks), verbose=fit_verbosity(),
    )
    predicted = np.argmax(model.predict(arrays["x_test"], batch_size=10000, verbose=0), axis=1)
    keras.backend.clear_session()
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (arrays["y_test"], predicted), 1)
    curves = history_dict(history)
    return curves, {"val_loss": curves["val_loss"][-1], "val_accuracy": curves["val_accuracy"][-1], "confusion": confusion.tolist()}


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the fashion_cnn .npz (with a channel axis)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    config = build_config(CnnConfig, load_params(args.params, "fashion", "cnn"), "fashion.cnn")
    settings = build_config(RunSettings, {**load_params(args.params, "fashion", "training"), "epochs": config.epochs}, "fashion.training")
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    settings.check_fits(len(arrays["x_train"]), "the CNN trains on")
    log.info(f"cnn seed {args.seed}: {config.epochs} epochs on {len(arrays['x_train'])} images, validated on the test set")
    metrics = write_run(args.out, lambda callbacks: train_cnn(config, settings, args.seed, arrays, callbacks), {"seed": args.seed, **config_dict(config), **config_dict(settings)}, args.model)
    log.info(f"cnn seed {args.seed}: val_loss {metrics['val_loss']:.4f} val_accuracy {metrics['val_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
