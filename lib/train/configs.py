"""The training units' configs as frozen dataclasses, and each unit's effective config (what it writes
to config.json and what the tables check it against). No Keras here: the params check, the tables
and the report import this in a fraction of a second."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

from lib.common.core import MAX_SEED, ConfigError, build_config, config_dict, require, select

BACKENDS = ("tensorflow", "jax")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
OPTIMIZERS = ("sgd", "adam", "rmsprop")
TIPS_LOSSES = ("mse", "categorical_crossentropy", "categorical_crossentropy_clipped")


# Bounds on every count, far beyond what a run of either post needs, so that a typo (`epochs: 1000000000`)
# is refused instead of training until it is killed.
MOST = {"epochs": 10_000, "batch_size": 10_000_000, "patience": 10_000, "layers": 100, "units": 100_000, "k": 100}


def _units(value: tuple[int, ...]) -> None:
    ok = 1 <= len(value) <= MOST["layers"] and all(1 <= u <= MOST["units"] for u in value)
    require(ok, "hidden_units", list(value), f"allowed: a list of 1 to {MOST['layers']} integers "
            f"from 1 to {MOST['units']}")


def _rate(value: float) -> None:
    require(0 <= value < 1, "dropout_rate", value, "allowed: 0 <= dropout_rate < 1")


def _count(key: str, value: int) -> None:
    most = MOST[key]
    require(1 <= value <= most, key, value, f"allowed: an integer from 1 to {most}")


@dataclass(frozen=True)
class Training:
    """`training`: what every unit shares. The Keras backend is a param, so that DVC sees it: a
    change retrains exactly the units, and every table says what its units ran on."""

    backend: str = "tensorflow"

    def __post_init__(self):
        require(self.backend in BACKENDS, "backend", self.backend, f"allowed: {', '.join(BACKENDS)}")


def use_backend(backend: str):
    """Load Keras on `backend` and return it. KERAS_BACKEND, the old way to choose, is refused when it
    disagrees, since DVC does not see it; it is set only while Keras loads (Keras reads it once, then),
    so the processes this one starts do not inherit it as if a user had set it."""
    found = os.environ.get("KERAS_BACKEND")
    if found and found != backend:
        raise ConfigError(f"KERAS_BACKEND={found} is set, but training.backend is {backend!r}: the backend is a param "
                          f"(`dvc exp run -S training.backend={found}`); unset KERAS_BACKEND")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != backend:
        raise ConfigError(f"Keras is already loaded with another backend than {backend!r}")
    os.environ["KERAS_BACKEND"] = backend
    # TensorFlow's C++ log below WARNING (its CPU-instruction notice) off, unless the user set a level: it is
    # read once, as TensorFlow's library loads. Its oneDNN notice and absl's banner come before it is read.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        import keras
    finally:
        if found is None:
            del os.environ["KERAS_BACKEND"]
    return keras


@dataclass(frozen=True)
class TipsVariant:
    """One row of the MNIST tips table (`mnist_tips.variants.<name>`)."""

    hidden_units: tuple[int, ...]
    activation: str
    loss: str
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    dropout_rate: float = 0.0

    def __post_init__(self):
        _units(self.hidden_units)
        require(self.activation in ACTIVATIONS, "activation", self.activation, f"allowed: {', '.join(ACTIVATIONS)}")
        require(self.loss in TIPS_LOSSES, "loss", self.loss, f"allowed: {', '.join(TIPS_LOSSES)}")
        require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"allowed: {', '.join(OPTIMIZERS)}")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "allowed: a number > 0")
        _count("batch_size", self.batch_size)
        _count("epochs", self.epochs)
        _rate(self.dropout_rate)


@dataclass(frozen=True)
class RunSettings:
    """`fashion.training`: what every Fashion-MNIST run of the post shares."""

    epochs: int
    batch_size: int
    optimizer: str = "adam"
    learning_rate: float = 0.001  # Keras's default for optimizer='adam'

    def __post_init__(self):
        _count("epochs", self.epochs)
        _count("batch_size", self.batch_size)
        require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, f"allowed: {', '.join(OPTIMIZERS)}")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "allowed: a number > 0")


@dataclass(frozen=True)
class DenseVariant:
    """One row of the dense-net table: the post's build_model(middle_units_1, regularizer_1, dropout_1, ...)."""

    hidden_units: tuple[int, ...]
    dropout_rate: float = 0.0  # Dropout after every hidden layer
    l2: float = 0.0  # L2 factor on every hidden layer's kernel
    early_stopping_patience: int | None = None  # beyond the post: stop on val_loss, keep the best weights

    def __post_init__(self):
        _units(self.hidden_units)
        _rate(self.dropout_rate)
        require(self.l2 >= 0, "l2", self.l2, "allowed: a number >= 0")
        patience = self.early_stopping_patience
        require(patience is None or 1 <= patience <= MOST["patience"], "early_stopping_patience", patience,
                f"allowed: null or an integer from 1 to {MOST['patience']}")


@dataclass(frozen=True)
class CrossValidation:
    k: int  # contiguous slices, as the post's k_fold_val; a unit trains every fold

    def __post_init__(self):
        require(2 <= self.k <= MOST["k"], "k", self.k, f"allowed: an integer from 2 to {MOST['k']}")


@dataclass(frozen=True)
class OverfittingRule:
    """`fashion.overfitting`: the post's visualize() warning."""

    patience: int = 10
    min_decrease: float = 0.02  # the post's 0.98 factor

    def __post_init__(self):
        _count("patience", self.patience)
        require(0 <= self.min_decrease < 1, "min_decrease", self.min_decrease, "allowed: 0 <= min_decrease < 1")


@dataclass(frozen=True)
class FinalModel:
    model: dict  # a DenseVariant: the post picks model 4, dense(256) with dropout 0.4
    epochs: int

    def __post_init__(self):
        _count("epochs", self.epochs)


@dataclass(frozen=True)
class CnnConfig:
    epochs: int
    dropout_rate: float = 0.3

    def __post_init__(self):
        _count("epochs", self.epochs)
        _rate(self.dropout_rate)


# What each key of `search.space` may hold: a rule on one value, and the rule in words.
SPACE = {
    "layers": (lambda v: isinstance(v, int) and 1 <= v <= MOST["layers"], f"integers from 1 to {MOST['layers']}"),
    "units": (lambda v: isinstance(v, int) and 1 <= v <= MOST["units"], f"integers from 1 to {MOST['units']}"),
    "activation": (lambda v: v in ACTIVATIONS, f"names among {', '.join(ACTIVATIONS)}"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"names among {', '.join(OPTIMIZERS)}"),
    "learning_rate": (lambda v: isinstance(v, (int, float)) and v > 0, "numbers > 0"),
    "dropout_rate": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "numbers from 0 to below 1"),
    "l2": (lambda v: isinstance(v, (int, float)) and v >= 0, "numbers >= 0"),
}


def _space_entry(key: str, entry) -> dict:
    """One key of `search.space`: `{choices: [...]}`, or a range `{low, high}` (with `log: true`, sampled on a
    log scale), every value meeting the key's rule."""
    ok, words = SPACE[key]
    where = f"space.{key}"
    if isinstance(entry, dict) and set(entry) == {"choices"}:
        values = entry["choices"]
        require(isinstance(values, list) and values and all(ok(v) and not isinstance(v, bool) for v in values)
                and len(set(values)) == len(values), where, values, f"allowed: a list of distinct {words}")
        return {"choices": list(values)}
    if isinstance(entry, dict) and {"low", "high"} <= set(entry) <= {"low", "high", "log"}:
        low, high, log = entry["low"], entry["high"], entry.get("log", False)
        require(key not in ("activation", "optimizer") and ok(low) and ok(high) and low < high
                and isinstance(log, bool) and not (log and low <= 0), where, entry,
                f"allowed: low < high, both {words} (low > 0 with log: true)")
        return {"low": low, "high": high, "log": log}
    raise ConfigError(f"{where}: {entry!r} is not allowed; allowed: {{choices: [...]}} or {{low, high, log}}")


@dataclass(frozen=True)
class Search:
    """`search`, beyond the post: its closing advice done, a seeded TPE search (Optuna) over the dense nets of
    its cross-validation that maximises the fold-mean val_accuracy at the overfitting warning, pruning on the
    fold-mean val_accuracy curve; the best trials, `top` (top1, top2, ...), are then re-run on every seed of
    `fashion.seeds` (stages/search_cv.py, one stage each place and seed)."""

    trials: int
    space: dict
    workers: int = 1  # Dask worker processes, each running trials against the one study file
    sampler_seed: int = 0
    seed: int = 0  # the training seed of every trial
    startup_trials: int = 8  # random trials before TPE proposes, and before the pruner prunes
    warmup_epochs: int = 5  # the epochs every trial trains before it can be pruned
    top: tuple[str, ...] = ("top1", "top2", "top3")

    def __post_init__(self):
        for key in ("trials", "workers", "startup_trials", "warmup_epochs"):
            require(isinstance(getattr(self, key), int) and 1 <= getattr(self, key) <= 10_000, key,
                    getattr(self, key), "allowed: an integer from 1 to 10000")
        places = isinstance(self.top, (list, tuple)) and 1 <= len(self.top) <= self.trials
        require(places and list(self.top) == [f"top{i + 1}" for i in range(len(self.top))], "top", self.top,
                f"allowed: the places of the best trials in order, top1, top2, ..., at most trials ({self.trials})")
        object.__setattr__(self, "top", tuple(self.top))
        for key in ("seed", "sampler_seed"):
            require(0 <= getattr(self, key) <= MAX_SEED, key, getattr(self, key), f"allowed: 0 to {MAX_SEED}")
        require(isinstance(self.space, dict) and set(self.space) == set(SPACE), "space", sorted(self.space),
                f"allowed: exactly the keys {', '.join(SPACE)}")
        object.__setattr__(self, "space", {key: _space_entry(key, self.space[key]) for key in SPACE})


# Each unit kind's typed configs and effective config (config.json less the backend), from the params
# it declares in dvc.yaml. The tables rebuild a unit's config with the same function to check it.


def tips_unit(variants: dict, name: str, seed: int, data: str) -> tuple[TipsVariant, dict]:
    variant = build_config(TipsVariant, select(variants, name, "mnist_tips.variants"), f"mnist_tips.variants.{name}")
    return variant, {"variant": name, "seed": seed, "data": data, **config_dict(variant)}


def run_settings(training: dict, epochs: int | None = None) -> RunSettings:
    section = training if epochs is None else {**training, "epochs": epochs}
    return build_config(RunSettings, section, "fashion.training")


def cv_unit(fashion: dict, name: str, seed: int, fold: int) -> tuple[DenseVariant, RunSettings, CrossValidation, dict]:
    """`fashion` needs `variants`, `training` and `cross_validation`."""
    where = f"fashion.variants.{name}"
    variant = build_config(DenseVariant, select(fashion["variants"], name, "fashion.variants"), where)
    settings = run_settings(fashion["training"])
    cv = build_config(CrossValidation, fashion["cross_validation"], "fashion.cross_validation")
    config = {"variant": name, "seed": seed, "fold": fold, "k": cv.k, **config_dict(variant), **config_dict(settings)}
    return variant, settings, cv, config


def cv_params(fashion: dict, name: str) -> dict:
    """A dense variant's params as `tools.run_variants` records them: its unit's config less the
    seed and fold (every fold and seed of a variant shares them)."""
    config = cv_unit(fashion, name, 0, 0)[3]
    return {key: value for key, value in config.items() if key not in ("variant", "seed", "fold")}


def final_unit(fashion: dict, seed: int) -> tuple[DenseVariant, RunSettings, dict]:
    final = build_config(FinalModel, fashion["final"], "fashion.final")
    variant = build_config(DenseVariant, final.model, "fashion.final.model")
    settings = run_settings(fashion["training"], final.epochs)
    return variant, settings, {"seed": seed, **config_dict(variant), **config_dict(settings)}


def cnn_unit(fashion: dict, seed: int) -> tuple[CnnConfig, RunSettings, dict]:
    cnn = build_config(CnnConfig, fashion["cnn"], "fashion.cnn")
    settings = run_settings(fashion["training"], cnn.epochs)
    return cnn, settings, {"seed": seed, **config_dict(cnn), **config_dict(settings)}


def searched_unit(trial: dict, training: dict) -> tuple[DenseVariant, RunSettings, str]:
    """A search trial's params (Optuna's names: `layers`, then `units_<i>` per layer) as the dense net, the
    run settings (`fashion.training` with the trial's optimizer and learning rate) and the activation."""
    units = [trial[f"units_{i + 1}"] for i in range(trial["layers"])]
    variant = build_config(DenseVariant, {"hidden_units": units, "dropout_rate": trial["dropout_rate"],
                                          "l2": trial["l2"]}, "search trial")
    settings = run_settings({**training, "optimizer": trial["optimizer"], "learning_rate": trial["learning_rate"]})
    return variant, settings, trial["activation"]


def check_groups(groups, variants: list[str]) -> dict[str, list[str]]:
    """`mnist_tips.data` (prepared file -> the rows that train on it) against the variants: every variant
    in exactly one group (dvc.yaml runs each group's rows on its file), every name a variant."""
    if not isinstance(groups, dict) or not all(isinstance(g, list) for g in groups.values()):
        raise ConfigError(f"mnist_tips.data: {groups!r} is not allowed; "
                          "allowed: a mapping of prepared file -> list of variants")
    named = [v for group in groups.values() for v in group]
    for name in named:
        if name not in variants:
            raise ConfigError(f"mnist_tips.data: {name!r} is not a variant; allowed: {', '.join(variants)}")
    twice = sorted({v for v in named if named.count(v) > 1})
    unplaced = [v for v in variants if v not in named]
    if twice or unplaced:
        raise ConfigError(f"mnist_tips.data: every variant must be in exactly one group; "
                          f"twice: {twice or 'none'}, in none: {unplaced or 'none'}")
    return groups


def check_fits(batch_size: int, images: int, where: str, what: str) -> None:
    """Fail before training if one batch is larger than the data (Keras would quietly train on one
    smaller batch, which is not the run the params describe)."""
    if batch_size > images:
        raise ConfigError(f"{where}: {batch_size} is not allowed; allowed: at most {images}, {what}")
