"""MNIST tips table, one unit: train one variant with one seed, then evaluate it as the post
does (`evaluate` on the 10,000 training images and on the test set).

Serves the nine-row table of the MNIST tips post; each (variant, seed) is its own DVC stage.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common import ConfigError, build_config, config_dict, load_params, require, run_stage
from stages.models import ACTIVATIONS, LOSSES, OPTIMIZERS
from stages.training import write_run

log = logging.getLogger("stages.mnist_tips")

# The post evaluates with batch_size=10000; it changes nothing but speed.
EVAL_BATCH = 10000


@dataclass(frozen=True)
class TipsVariant:
    hidden_units: tuple[int, ...]
    activation: str
    loss: str
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    dropout_rate: float = 0.0

    def __post_init__(self):
        require(len(self.hidden_units) >= 1 and all(u >= 1 for u in self.hidden_units), "hidden_units", list(self.hidden_units), "allowed: a non-empty list of integers >= 1")
        require(self.activation in ACTIVATIONS, "activation", self.activation, f"allowed: {', '.join(ACTIVATIONS)}")
        require(self.loss in LOSSES[:3], "loss", self.loss, f"allowed: {', '.join(LOSSES[:3])}")
        require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"allowed: {', '.join(OPTIMIZERS)}")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "allowed: a number > 0")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "allowed: an integer >= 1")
        require(self.epochs >= 1, "epochs", self.epochs, "allowed: an integer >= 1")
        require(0 <= self.dropout_rate < 1, "dropout_rate", self.dropout_rate, "allowed: 0 <= dropout_rate < 1")


def train_and_evaluate(variant: TipsVariant, seed: int, arrays: dict[str, np.ndarray], callbacks=()) -> dict:
    """Pure core: build, fit and evaluate one row; return its final metrics and history."""
    import keras

    from stages.models import build_dense, fit_verbosity, make_loss, make_optimizer, reshuffled, seed_everything
    from stages.training import STEPS_PER_EXECUTION

    x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    seed_everything(seed)
    model = build_dense(x_train.shape[1:], variant.hidden_units, variant.activation, variant.dropout_rate)
    # The post's compile, run faster: several steps per host round trip. The batches, their
    # order and the updates are the post's. (No jit_compile=True: with TensorFlow's deterministic
    # ops, which seed_everything turns on, Keras refuses XLA and falls back with a warning.)
    model.compile(
        loss=make_loss(variant.loss),
        optimizer=make_optimizer(variant.optimizer, variant.learning_rate),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    # validation_data only records the test curve per epoch; it does not touch the weights, so
    # it runs in the post's evaluation batch (one step) rather than the training batch.
    history = model.fit(
        **reshuffled(x_train, y_train, variant.batch_size, seed), epochs=variant.epochs,
        validation_data=(x_test, y_test), validation_batch_size=EVAL_BATCH,
        callbacks=list(callbacks), verbose=fit_verbosity(),
    )
    train_loss, train_accuracy = model.evaluate(x_train, y_train, batch_size=EVAL_BATCH, verbose=0)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=EVAL_BATCH, verbose=0)
    keras.backend.clear_session()
    return {
        "train_accuracy": float(train_accuracy),
        "test_accuracy": float(test_accuracy),
        "train_loss": float(train_loss),
        "test_loss": float(test_loss),
        "history": {k: [float(v) for v in values] for k, values in history.history.items()},
    }


def variant_config(params: Path, name: str) -> TipsVariant:
    variants = load_params(params, "mnist_tips", "variants")
    if name not in variants:
        raise ConfigError(f"mnist_tips.variants.{name}: unknown variant; allowed: {', '.join(variants)}")
    return build_config(TipsVariant, variants[name], f"mnist_tips.variants.{name}")


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="key under `mnist_tips.variants`")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the prepared .npz this row trains on (its `mnist_tips.data` group)")
    parser.add_argument("--out", required=True, type=Path, help="directory for this run's metrics, config and curves")
    parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)

    variant = variant_config(args.params, args.variant)
    if not args.data.is_file():
        raise ConfigError(f"--data {args.data}: no such prepared file; run `dvc repro preprocess` first")
    with np.load(args.data) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if variant.batch_size > len(arrays["x_train"]):  # Keras would quietly train on one smaller batch
        raise ConfigError(
            f"mnist_tips.variants.{args.variant}.batch_size: {variant.batch_size} is not allowed; "
            f"allowed: at most {len(arrays['x_train'])}, the training images of {args.data.name}"
        )

    label = f"{args.variant} seed {args.seed}"
    log.info(f"{label}: {variant}, data {args.data}")
    started = time.perf_counter()

    def fit(callbacks):
        result = train_and_evaluate(variant, args.seed, arrays, callbacks)
        return result.pop("history"), result

    # The data file is named by its preprocess variant, which is what `data` records.
    config = {"variant": args.variant, "seed": args.seed, "data": args.data.stem, **config_dict(variant)}
    metrics = write_run(args.out, fit, config, args.model)
    log.info(
        f"{label}: train_accuracy {metrics['train_accuracy']:.4f} test_accuracy {metrics['test_accuracy']:.4f} "
        f"({time.perf_counter() - started:.0f} s)"
    )

if __name__ == "__main__":
    run_stage(main)
