"""The one training core of every unit: seeding, the posts' models, losses and optimizers, a fit that
reshuffles every epoch, and the run writer (curves, metrics, config, and the model as a byte-stable
.keras file), all or nothing. Keras 3 API only, so the same code runs on TensorFlow and on JAX.
Import it after `lib.train.configs.use_backend`."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
from keras import layers

from lib.common.core import ConfigError, atomic_paths, write_json
from lib.train.overfitting import mean_curves, overfitting_warning

NUM_CLASSES = 10
EVAL_BATCH = 10000  # the posts evaluate with batch_size=10000; it changes nothing but speed
# Keras runs this many training steps per call into the compiled graph instead of one, so the host
# round trip (Python, callbacks, data handoff) is paid once per 100 batches. The batches, their order
# and every update stay the same: the losses match a one-step-per-call run exactly. (No
# jit_compile=True: with TensorFlow's deterministic ops, which seed_everything turns on, Keras refuses XLA.)
STEPS_PER_EXECUTION = 100


def seed_everything(seed: int) -> None:
    """Same seed, same numbers: Python, NumPy and backend RNGs, and deterministic kernels."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def reshuffled(x, y, batch_size: int, seed: int) -> dict:
    """The training data for `model.fit(**reshuffled(x, y, batch_size, seed), ...)`: reshuffled
    before every epoch, as `fit(shuffle=True)` documents and the posts' Keras did, and the same
    orders again for the same seed.

    Keras 3 on TensorFlow does not reshuffle once a seed is set: it draws each epoch's order with
    `tf.random.shuffle` inside a tf.data map, and under a global seed that op restarts from the same
    seed every time the dataset is iterated (tensorflow/tensorflow#35682), so every epoch replays one
    order (tests/test_models.py). There this gives Keras a tf.data pipeline of index batches that
    `Dataset.shuffle` reshuffles from `seed` on each iteration (each epoch), gathered and prefetched
    as Keras's own array pipeline does; on the other backends Keras reshuffles the arrays itself,
    from NumPy's generator, which seed_everything seeds."""
    if keras.backend.backend() != "tensorflow":
        return {"x": x, "y": y, "batch_size": batch_size}
    import tensorflow as tf

    images, labels = tf.constant(x), tf.constant(y)
    order = tf.data.Dataset.range(len(x)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    gathered = order.batch(batch_size).map(lambda i: (tf.gather(images, i), tf.gather(labels, i)),
                                           num_parallel_calls=tf.data.AUTOTUNE)
    # shuffle=False: the order is the pipeline's (Keras would ignore shuffle=True with a warning).
    return {"x": gathered.prefetch(tf.data.AUTOTUNE), "shuffle": False}


@keras.saving.register_keras_serializable(package="stages")
def clipped_categorical_crossentropy(y_true, y_pred):
    """Cross-entropy computed from clipped probabilities, as Keras 2 (standalone, 2019) did.

    Keras 3 on TensorFlow takes the logits behind a softmax output and computes the loss from them,
    so a saturated softmax still has a gradient. Old Keras normalised the probabilities and clipped
    them to [1e-7, 1 - 1e-7] before the log: a saturated wrong answer then has a zero gradient and
    the net cannot learn its way out. Written with keras.ops, the clip stays in the graph on every
    backend. Registered, so a saved model that trained with it loads (after importing this module).
    """
    eps = keras.config.epsilon()
    y_pred = y_pred / keras.ops.sum(y_pred, axis=-1, keepdims=True)
    y_pred = keras.ops.clip(y_pred, eps, 1.0 - eps)
    return -keras.ops.sum(y_true * keras.ops.log(y_pred), axis=-1)


def make_loss(name: str):
    if name == "categorical_crossentropy_clipped":
        return clipped_categorical_crossentropy
    return name  # Keras's own: "mse", "categorical_crossentropy", "sparse_categorical_crossentropy"


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    optimizers = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    if name not in optimizers:
        raise ValueError(f"optimizer {name!r} is not one of {', '.join(optimizers)}")
    return optimizers[name](learning_rate=learning_rate)


def build_dense(input_shape: tuple[int, ...], hidden_units: tuple[int, ...], activation: str = "relu",
                dropout_rate: float = 0.0, l2: float = 0.0) -> keras.Model:
    """Input -> [Flatten] -> (Dense(units, activation) [-> Dropout]) per hidden layer -> Dense(10, softmax)."""
    model = keras.Sequential(name="dense_net")
    model.add(keras.Input(shape=input_shape))
    if len(input_shape) > 1:
        model.add(layers.Flatten())
    regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
    for units in hidden_units:
        model.add(layers.Dense(units, activation=activation, kernel_regularizer=regularizer))
        if dropout_rate > 0:
            model.add(layers.Dropout(dropout_rate))
    model.add(layers.Dense(NUM_CLASSES, activation="softmax"))
    return model


def build_cnn(input_shape=(28, 28, 1), dropout_rate: float = 0.3) -> keras.Model:
    """Conv(32) - MaxPool - Conv(64) - MaxPool - Conv(64) - Flatten - Dropout - Dense(64) - Dense(10)."""
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (3, 3), activation="relu"), layers.Flatten(), layers.Dropout(dropout_rate),
        layers.Dense(64, activation="relu"), layers.Dense(NUM_CLASSES, activation="softmax"),
    ], name="cnn")


def fit_verbosity() -> int:
    """A progress bar on a terminal, one line per epoch in a log."""
    return 1 if sys.stdout.isatty() else 2


def compiled(build: Callable[[], keras.Model], seed: int, loss: str, optimizer: str, learning_rate: float):
    """Seed, build and compile as the posts do, several steps per host round trip."""
    seed_everything(seed)
    model = build()
    model.compile(loss=make_loss(loss), optimizer=make_optimizer(optimizer, learning_rate), metrics=["accuracy"],
                  steps_per_execution=STEPS_PER_EXECUTION)
    return model


def fit(build: Callable[[], keras.Model], seed: int, x, y, *, epochs: int, batch_size: int, loss: str, optimizer: str,
        learning_rate: float, validation=None, validation_batch_size: int | None = None,
        early_stopping: int | None = None, callbacks=()) -> tuple[keras.Model, dict[str, list[float]]]:
    """The training core of every unit: seed, build, compile as the posts do (several steps per host
    round trip), fit on data reshuffled every epoch; with `early_stopping`, stop on val_loss and keep
    the best weights. Returns the model and its per-epoch curves. Call `keras.backend.clear_session()`
    when done with the model."""
    model = compiled(build, seed, loss, optimizer, learning_rate)
    callbacks = list(callbacks)
    if early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping,
                                                       restore_best_weights=True))
    history = model.fit(**reshuffled(x, y, batch_size, seed), epochs=epochs, validation_data=validation,
                        validation_batch_size=validation_batch_size, callbacks=callbacks, verbose=fit_verbosity())
    return model, {name: [float(v) for v in values] for name, values in history.history.items()}


def evaluate(model: keras.Model, x, y) -> tuple[float, float]:
    loss, accuracy = model.evaluate(x, y, batch_size=EVAL_BATCH, verbose=0)
    return float(loss), float(accuracy)


def confusion(model: keras.Model, x, y) -> list[list[int]]:
    """Test-set confusion matrix, rows actual, columns predicted."""
    predicted = np.argmax(model.predict(x, batch_size=EVAL_BATCH, verbose=0), axis=1)
    found = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    np.add.at(found, (y, predicted), 1)
    return found.tolist()


# The four unit kinds, each the core `fit` and what its table measures: (curves, metrics).


def train_tips(variant, seed: int, arrays: dict, callbacks=()) -> tuple[dict, dict]:
    """An MNIST tips row (a TipsVariant): fit, then `evaluate` on the training images and the test set.
    The test set is also the validation data, only to record its curve, in one evaluation batch."""
    x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    model, curves = fit(lambda: build_dense(x_train.shape[1:], variant.hidden_units, variant.activation,
                                            variant.dropout_rate),
                        seed, x_train, y_train, epochs=variant.epochs, batch_size=variant.batch_size, loss=variant.loss,
                        optimizer=variant.optimizer, learning_rate=variant.learning_rate,
                        validation=(x_test, y_test), validation_batch_size=EVAL_BATCH, callbacks=callbacks)
    (train_loss, train_accuracy), (test_loss, test_accuracy) = evaluate(model, x_train, y_train), evaluate(
        model, x_test, y_test)
    keras.backend.clear_session()
    return curves, {"train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
                    "train_loss": train_loss, "test_loss": test_loss}


def _dense(variant, settings, seed: int, x, y, callbacks=(), activation: str = "relu",
           **options) -> tuple[keras.Model, dict]:
    return fit(lambda: build_dense(x.shape[1:], variant.hidden_units, activation, variant.dropout_rate, variant.l2),
               seed, x, y, epochs=settings.epochs, batch_size=settings.batch_size,
               loss="sparse_categorical_crossentropy", optimizer=settings.optimizer,
               learning_rate=settings.learning_rate, callbacks=callbacks, **options)


def fold_indices(n: int, k: int, fold: int) -> tuple[np.ndarray, np.ndarray]:
    """The post's split: fold i validates on the contiguous slice [i*n//k, (i+1)*n//k) and trains on
    everything else, in order (any remainder n % k always stays in training)."""
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} is outside 0-{k - 1}")
    size = n // k
    val = np.arange(fold * size, (fold + 1) * size)
    return np.concatenate([np.arange(0, fold * size), np.arange((fold + 1) * size, n)]), val


def train_fold(variant, settings, seed: int, x_train, y_train, x_val, y_val, callbacks=(),
               activation: str = "relu") -> tuple[dict, dict]:
    """One iteration of the post's k_fold_val loop (a DenseVariant and RunSettings): its curves; with
    early stopping, also the restored best weights measured on the validation fold."""
    stop = variant.early_stopping_patience
    model, curves = _dense(variant, settings, seed, x_train, y_train, callbacks, activation, validation=(x_val, y_val),
                           early_stopping=stop)
    metrics = {"epochs_run": len(curves["loss"])}
    if stop:
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        metrics.update(best_epoch=int(np.argmin(curves["val_loss"])) + 1, val_loss=val_loss, val_accuracy=val_accuracy)
    keras.backend.clear_session()
    return curves, metrics


def fit_folds(build: Callable[[], keras.Model], seed: int, x, y, k: int, settings, after_epoch: Callable) -> list[dict]:
    """The post's k folds trained side by side, one epoch each in turn (each model seeded, built and fed as
    `fit` does), so that `after_epoch(epoch, curves)` sees every fold's curves after each epoch: it may end
    the training (by returning True) or raise (a pruned search trial). Returns each fold's curves."""
    runs = []
    for fold in range(k):
        train, val = fold_indices(len(x), k, fold)
        model = compiled(build, seed, "sparse_categorical_crossentropy", settings.optimizer, settings.learning_rate)
        runs.append((model, reshuffled(x[train], y[train], settings.batch_size, seed), (x[val], y[val])))
    curves: list[dict[str, list[float]]] = [{} for _ in runs]
    try:
        for epoch in range(settings.epochs):
            for (model, data, validation), found in zip(runs, curves):
                history = model.fit(**data, initial_epoch=epoch, epochs=epoch + 1, validation_data=validation,
                                    verbose=0)
                for name, values in history.history.items():
                    found.setdefault(name, []).append(float(values[-1]))
            if after_epoch(epoch, curves):
                break
    finally:
        keras.backend.clear_session()
    return curves


def folds_until_warning(variant, settings, activation: str, seed: int, x, y, k: int, rule,
                        each_epoch: Callable | None = None) -> tuple[list[dict], int | None]:
    """A dense net (a DenseVariant, RunSettings, activation) on the post's k folds side by side, until the
    fold-mean val_loss warns (the post's rule, a fashion.overfitting OverfittingRule), else for every epoch:
    what a search trial trains and what its re-runs on other seeds train. `each_epoch(epoch, mean curves,
    warning)`, after each epoch, may raise to stop (a pruned trial). Returns each fold's curves and the
    warning's epoch (0-based; None if none): the figures are those of a run of every epoch."""
    found = {"warning": None}

    def after_epoch(epoch: int, curves: list[dict]) -> bool:
        mean = mean_curves(curves)
        found["warning"] = overfitting_warning(mean["val_loss"], rule)
        if each_epoch is not None:
            each_epoch(epoch, mean, found["warning"])
        return found["warning"] is not None

    curves = fit_folds(lambda: build_dense(x.shape[1:], variant.hidden_units, activation, variant.dropout_rate,
                                           variant.l2), seed, x, y, k, settings, after_epoch)
    return curves, found["warning"]


def train_final(variant, settings, seed: int, arrays: dict, callbacks=(),
                activation: str = "relu") -> tuple[dict, dict]:
    """The chosen dense net on all training images, then `evaluate` on the test set."""
    model, curves = _dense(variant, settings, seed, arrays["x_train"], arrays["y_train"], callbacks, activation)
    test_loss, test_accuracy = evaluate(model, arrays["x_test"], arrays["y_test"])
    found = confusion(model, arrays["x_test"], arrays["y_test"])
    keras.backend.clear_session()
    return curves, {"test_loss": test_loss, "test_accuracy": test_accuracy, "confusion": found}


def train_cnn(cnn, settings, seed: int, arrays: dict, callbacks=()) -> tuple[dict, dict]:
    """The post's CNN (a CnnConfig) on all training images, validated on the test set each epoch."""
    model, curves = fit(lambda: build_cnn(arrays["x_train"].shape[1:], cnn.dropout_rate), seed, arrays["x_train"],
                        arrays["y_train"], epochs=settings.epochs, batch_size=settings.batch_size,
                        loss="sparse_categorical_crossentropy", optimizer=settings.optimizer,
                        learning_rate=settings.learning_rate, validation=(arrays["x_test"], arrays["y_test"]),
                        callbacks=callbacks)
    found = confusion(model, arrays["x_test"], arrays["y_test"])
    keras.backend.clear_session()
    return curves, {"val_loss": curves["val_loss"][-1], "val_accuracy": curves["val_accuracy"][-1], "confusion": found}


class LiveLogger(keras.callbacks.Callback):
    """Log each epoch's metrics to a dvclive `Live` (`loss` as train/loss, `val_loss` as eval/loss);
    dvclive's own Keras callback imports TensorFlow, which a JAX machine may lack."""

    def __init__(self, live):
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            split, metric = ("eval", name[4:]) if name.startswith("val_") else ("train", name)
            self.live.log_metric(f"{split}/{metric}", float(value))
        self.live.next_step()


class KeepModel(keras.callbacks.Callback):
    """Save the model, byte-stably, as it is when training ends."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        self.model.save(self.path)
        stabilize(self.path)


def stabilize(path: Path) -> None:
    """Rewrite a .keras archive so that the same model always gives the same bytes: Keras stamps the
    save time (metadata.json's date_saved, the zip entries' times) and a Python object id
    (config.json's shared_object_id, numbered here in order of appearance, which keeps what it links)."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    ids: dict[bytes, int] = {}
    with zipfile.ZipFile(path, "w") as archive:
        for info, data in entries:
            if info.filename == "config.json":
                data = re.sub(rb'"shared_object_id": (\d+)',
                              lambda m: b'"shared_object_id": %d' % ids.setdefault(m[1], len(ids)), data)
            elif info.filename == "metadata.json":
                data = re.sub(rb', "date_saved": "[^"]*"', b"", data)
            stable = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            stable.compress_type, stable.external_attr = info.compress_type, info.external_attr
            archive.writestr(stable, data)


def record(folder: Path, train: Callable[[list], tuple[dict, dict]], config: dict, model: Path | None = None) -> dict:
    """Run `train(callbacks) -> (curves, metrics)` with dvclive logging the curves into `folder/live` (the
    unit's one record of them, which every table reads), then write `metrics.json` and `config.json`
    (with the Keras backend, so that a table never mixes backends silently); with `model`, the trained
    model is saved there."""
    from dvclive import Live

    folder.mkdir()
    keep = [KeepModel(model)] if model is not None else []
    # dvcyaml=False: the plots and metrics sections of dvc.yaml are ours, not dvclive's.
    with Live(dir=str(folder / "live"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
        curves, metrics = train([LiveLogger(live), *keep])
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "config.json", {**config, "backend": keras.backend.backend()})
    return metrics


def record_curves(folder: Path, curves: dict, config: dict) -> dict:
    """`record` curves trained already (`folds_until_warning`'s, one fold's), epoch by epoch as a fit logs them."""
    def replay(callbacks: list) -> tuple[dict, dict]:
        for epoch in range(len(curves["loss"])):
            for callback in callbacks:
                callback.on_epoch_end(epoch, {name: values[epoch] for name, values in curves.items()})
        return curves, {"epochs_run": len(curves["loss"])}
    return record(folder, replay, config)


@contextlib.contextmanager
def run_outputs(folders: list[Path], model: Path | None = None):
    """Temporaries for a unit's run folders (and model file), moved onto them together only when the
    block succeeds: an interrupted or failed unit leaves its last results as they were. Yields the
    temporary folders and the temporary model path (a `.keras` name, as Keras wants)."""
    if model is not None and Path(model).suffix != ".keras":
        raise ConfigError(f"--model {model}: a model file must end in .keras")
    targets = [Path(f) for f in folders] + ([Path(model)] if model is not None else [])
    with atomic_paths(*targets) as tmps:
        if model is None:
            yield list(tmps), None
            return
        tmps[-1].mkdir()
        inner = tmps[-1] / "model.keras"
        yield list(tmps[:-1]), inner
        moved = tmps[-1].with_name(tmps[-1].name + ".keras.tmp")
        os.replace(inner, moved)
        tmps[-1].rmdir()
        os.replace(moved, tmps[-1])  # the temporary is now the file itself


def write_unit(out: Path, model: Path | None, train: Callable[[list], tuple[dict, dict]], config: dict) -> dict:
    """`record` a unit into its run folder (and model file), both replaced only when it succeeds."""
    with run_outputs([out], model) as ([folder], model_file):
        return record(folder, train, config, model_file)
