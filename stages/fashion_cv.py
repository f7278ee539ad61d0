"""Fashion-MNIST cross-validation, one unit: train one dense variant on one fold with one seed
and record its per-epoch curves (the post's `k_fold_val`, one iteration of its loop).

Serves the dense-net table of the Fashion-MNIST post; each (variant, seed, fold) is a DVC stage.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.common import ConfigError, build_config, config_dict, load_params, require, run_stage
from stages.training import RunSettings, compile_model, history_dict, write_run

log = logging.getLogger("stages.fashion_cv")


@dataclass(frozen=True)
class DenseVariant:
    """One row of the table: the post's build_model(middle_units_1, regularizer_1, dropout_1, ...)."""

    hidden_units: tuple[int, ...]
    dropout_rate: float = 0.0  # Dropout after every hidden layer
    l2: float = 0.0  # L2 factor on every hidden layer's kernel
    early_stopping_patience: int | None = None  # beyond the post: stop on val_loss, keep the best weights

    def __post_init__(self):
        require(len(self.hidden_units) >= 1 and all(u >= 1 for u in self.hidden_units), "hidden_units", list(self.hidden_units), "allowed: a non-empty list of integers >= 1")
        require(0 <= self.dropout_rate < 1, "dropout_rate", self.dropout_rate, "allowed: 0 <= dropout_rate < 1")
        require(self.l2 >= 0, "l2", self.l2, "allowed: a number >= 0")
        require(self.early_stopping_patience is None or self.early_stopping_patience >= 1, "early_stopping_patience", self.early_stopping_patience, "allowed: null or an integer >= 1")


@dataclass(frozen=True)
class CrossValidation:
    k: int
    folds: tuple[int, ...]  # which of the k folds to run (a DVC matrix needs them listed)

    def __post_init__(self):
        require(self.k >= 2, "k", self.k, "allowed: an integer >= 2")
        require(len(self.folds) >= 1 and all(0 <= f < self.k for f in self.folds) and len(set(self.folds)) == len(self.folds), "folds", list(self.folds), f"allowed: distinct fold numbers 0-{self.k - 1}")


def fold_indices(n: int, k: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """The post's split: fold i validates on the contiguous slice [i*n//k, (i+1)*n//k) and trains
    on everything else, in order (any remainder n % k always stays in training)."""
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} is outside 0-{k - 1}")
    size = n // k
    val = np.arange(fold * size, (fold + 1) * size)
    train = np.concatenate([np.arange(0, fold * size), np.arange((fold + 1) * size, n)])
    return train, val


def train_fold(variant: DenseVariant, settings: RunSettings, seed: int, x_train, y_train, x_val, y_val, callbacks=()):
    """Pure core: one model of `build_model` fitted on one split; returns (history, metrics)."""
    import keras

    from stages.models import build_dense, fit_verbosity, reshuffled, seed_everything

    seed_everything(seed)
    model = build_dense(x_train.shape[1:], variant.hidden_units, "relu", variant.dropout_rate, variant.l2)
    compile_model(model, settings)
    callbacks = list(callbacks)
    stopper = None
    if variant.early_stopping_patience:
        stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=variant.early_stopping_patience, restore_best_weights=True)
        callbacks.append(stopper)
    history = model.fit(
        **reshuffled(x_train, y_train, settings.batch_size, seed), epochs=settings.epochs,
        validation_data=(x_val, y_val), callbacks=callbacks, verbose=fit_verbosity(),
    )
    curves = history_dict(history)
    metrics = {"epochs_run": len(curves["loss"])}
    if stopper is not None:
        # The weights kept are those of the best val_loss epoch; measure them.
        val_loss, val_accuracy = model.evaluate(x_val, y_val, batch_size=10000, verbose=0)
        metrics.update(best_epoch=int(np.argmin(curves["val_loss"])) + 1, val_loss=float(val_loss), val_accuracy=float(val_accuracy))
    keras.backend.clear_session()
    return curves, metrics


def main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True, help="key under `fashion.variants`")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--fold", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the fashion_dense .npz")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)

    variants = load_params(args.params, "fashion", "variants")
    if args.variant not in variants:
        raise ConfigError(f"fashion.variants.{args.variant}: unknown variant; allowed: {', '.join(variants)}")
    variant = build_config(DenseVariant, variants[args.variant], f"fashion.variants.{args.variant}")
    settings = build_config(RunSettings, load_params(args.params, "fashion", "training"), "fashion.training")
    cv = build_config(CrossValidation, load_params(args.params, "fashion", "cross_validation"), "fashion.cross_validation")
    if args.fold not in cv.folds:
        raise ConfigError(f"--fold {args.fold} is not allowed; fashion.cross_validation.folds is {list(cv.folds)}")

    with np.load(args.data) as npz:
        images, labels = npz["x_train"], npz["y_train"]
    train, val = fold_indices(len(images), cv.k, args.fold)
    settings.check_fits(len(train), "a fold trains on")
    label = f"{args.variant} seed {args.seed} fold {args.fold + 1}/{cv.k}"
    log.info(f"{label}: {len(train)} train / {len(val)} validation images, {variant}")
    started = time.perf_counter()
    config = {"variant": args.variant, "seed": args.seed, "fold": args.fold, "k": cv.k, **config_dict(variant), **config_dict(settings)}
    metrics = write_run(
        args.out,
        lambda callbacks: train_fold(variant, settings, args.seed, images[train], labels[train], images[val], labels[val], callbacks),
        config,
    )
    log.info(f"{label}: done in {time.perf_counter() - started:.0f} s, {metrics}")


if __name__ == "__main__":
    run_stage(main)
