"""Training helpers of the training stages: the Fashion-MNIST run settings, a dvclive logger that
needs only Keras 3 (dvclive's own callback imports TensorFlow, which a JAX machine lacks), and
the one writer of a training unit's results (run folder: curves, history, metrics, config with
the Keras backend; optionally the trained model as a .keras file; each atomically)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras

from stages.common import ConfigError, atomic_paths, require, write_json

# Keras runs this many training steps per call into the compiled graph instead of one, so the
# host round trip (Python, callbacks, data handoff) is paid once per 100 batches. The batches,
# their order and every update stay the same: the losses match a one-step-per-call run exactly.
STEPS_PER_EXECUTION = 100


@dataclass(frozen=True)
class RunSettings:
    """`fashion.training`: what every Fashion-MNIST run of the post shares."""

    epochs: int
    batch_size: int
    optimizer: str = "adam"
    learning_rate: float = 0.001  # Keras's default for optimizer='adam'

    def __post_init__(self):
        require(self.epochs >= 1, "epochs", self.epochs, "allowed: an integer >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "allowed: an integer >= 1")
        require(self.optimizer in ("adam", "sgd"), "optimizer", self.optimizer, "allowed: adam, sgd")
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "allowed: a number > 0")

    def check_fits(self, images: int, what: str) -> None:
        """Fail before training if one batch is larger than the data (Keras would quietly train
        on one smaller batch, which is not the run the params describe)."""
        if self.batch_size > images:
            raise ConfigError(f"fashion.training.batch_size: {self.batch_size} is not allowed; allowed: at most {images}, the images {what}")


def compile_model(model: keras.Model, settings: RunSettings) -> keras.Model:
    """`model.compile(optimizer, loss='sparse_categorical_crossentropy', metrics=['accuracy'])` as
    the post calls it, run faster with several steps per execution. (No `jit_compile=True`: with
    TensorFlow's deterministic ops, which seed_everything turns on, Keras refuses XLA.)"""
    from stages.models import make_optimizer

    model.compile(
        optimizer=make_optimizer(settings.optimizer, settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


class LiveLogger(keras.callbacks.Callback):
    """Log each epoch's metrics to a dvclive `Live`: `loss` as train/loss, `val_loss` as eval/loss."""

    def __init__(self, live):
        super().__init__()
        self.live = live

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            split, metric = ("eval", name[4:]) if name.startswith("val_") else ("train", name)
            self.live.log_metric(f"{split}/{metric}", float(value))
        self.live.next_step()


def history_dict(history: keras.callbacks.History) -> dict[str, list[float]]:
    return {name: [float(v) for v in values] for name, values in history.history.items()}


class KeepModel(keras.callbacks.Callback):
    """Save the model as it is when training ends, before the stage clears the Keras session."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        self.model.save(self.path)


def write_run(out: Path, fit, config: dict, model_out: Path | None = None) -> dict:
    """Run `fit(callbacks) -> (history, metrics)` with dvclive logging into `out/live`, then
    write `out/history.json`, `out/metrics.json` and `out/config.json` (which also records the
    Keras backend, so a table never mixes backends silently); all or nothing. With `model_out`
    (a `.keras` path), the trained model is saved there too; both outputs or neither."""
    from dvclive import Live

    config = {**config, "backend": keras.backend.backend()}
    if model_out is not None and Path(model_out).suffix != ".keras":
        raise ConfigError(f"--model {model_out}: a model file must end in .keras")
    targets = (Path(out),) if model_out is None else (Path(out), Path(model_out))
    with atomic_paths(*targets) as tmps:
        tmps[0].mkdir()
        keep = []
        if model_out is not None:
            # Keras wants a name ending in .keras: the model is saved inside the temporary first.
            tmps[1].mkdir()
            keep = [KeepModel(tmps[1] / "model.keras")]
        # dvcyaml=False: the plots and metrics sections of dvc.yaml are ours, not dvclive's.
        with Live(dir=str(tmps[0] / "live"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            history, metrics = fit([LiveLogger(live), *keep])
        write_json(tmps[0] / "history.json", history)
        write_json(tmps[0] / "metrics.json", metrics)
        write_json(tmps[0] / "config.json", config)
        if model_out is not None:
            saved = tmps[1].with_name(tmps[1].name + ".keras.tmp")
            os.replace(tmps[1] / "model.keras", saved)
            tmps[1].rmdir()
            os.replace(saved, tmps[1])  # the temporary is now the file itself
    return metrics
