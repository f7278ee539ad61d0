"""Fashion-MNIST final model: the chosen dense net trained on all 60,000 training images and
evaluated on the test set (the post's `model.evaluate(test_images, test_labels)`)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common import build_config, config_dict, load_params, require, run_stage
from stages.fashion_cv import DenseVariant
from stages.training import RunSettings, compile_model, history_dict, write_run

log = logging.getLogger("stages.fashion_final")


@dataclass(frozen=True)
class FinalModel:
    model: dict  # a DenseVariant: the post picks model 4, dense(256) with dropout 0.4
    epochs: int

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, "allowed: an integer >= 1")


def train_final(variant: DenseVariant, settings: RunSettings, seed: int, arrays: dict, callbacks=()):
    import keras

    from stages.models import build_dense, fit_verbosity, reshuffled, seed_everything

    seed_everything(seed)
    model = build_dense(arrays["x_train"].shape[1:], variant.hidden_units, "relu", variant.dropout_rate, variant.l2)
    compile_model(model, settings)
    history = model.fit(**reshuffled(arrays["x_train"], arrays["y_train"], settings.batch_size, seed), epochs=settings.epochs, callbacks=list(callbacks), verbose=fit_verbosity())
    test_loss, test_accuracy = model.evaluate(arrays["x_test"], arrays["y_test"], batch_size=10000, verbose=0)
    predicted = np.argmax(model.predict(arrays["x_test"], batch_size=10000, verbose=0), axis=1)
    keras.backend.clear_session()
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (arrays["y_test"], predicted), 1)
    return history_dict(history), {"test_loss": float(test_loss), "test_accuracy": float(test_accuracy), "confusion": confusion.tolist()}


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    final = build_config(FinalModel, load_params(args.params, "fashion", "final"), "fashion.final")
    variant = build_config(DenseVariant, final.model, "fashion.final.model")
    training = load_params(args.params, "fashion", "training")
    settings = build_config(RunSettings, {**training, "epochs": final.epochs}, "fashion.training")
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    settings.check_fits(len(arrays["x_train"]), "the final model trains on")
    log.info(f"final model seed {args.seed}: {variant}, {final.epochs} epochs on {len(arrays['x_train'])} images")
    config = {"seed": args.seed, **config_dict(variant), **config_dict(settings)}
    metrics = write_run(args.out, lambda callbacks: train_final(variant, settings, args.seed, arrays, callbacks), config, args.model)
    log.info(f"final model seed {args.seed}: test_loss {metrics['test_loss']:.4f} test_accuracy {metrics['test_accuracy']:.4f}")


if __name__ == "__main__":
    run_stage(main)
