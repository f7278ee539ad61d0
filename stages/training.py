"""Training helpers of the training stages: the Fashion-MNIST run settings, a dvclive logger that
needs only Keras 3 (dvclive's own callback imports TensorFlow, which a JAX machine lacks), and
the one writer of a training unit's run folder (curves, history, metrics, config; atomically)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras

from stages.common import ConfigError, atomic_path, require, write_json

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


def write_run(out: Path, fit, config: dict) -> dict:
    """Run `fit(callbacks) -> (history, metrics)` with dvclive logging into `out/live`, then
    write `out/history.json`, `out/metrics.json` and `out/config.json`; all or nothing."""
    from dvclive import Live

    with atomic_path(out) as tmp:
        tmp.mkdir()
        # dvcyaml=False: the plots and metrics sections of dvc.yaml are ours, not dvclive's.
        with Live(dir=str(tmp / "live"), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            history, metrics = fit([LiveLogger(live)])
        write_json(tmp / "history.json", history)
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "config.json", config)
    return metrics
