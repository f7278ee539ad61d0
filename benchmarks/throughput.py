"""One throughput measurement in its own process, printed as a JSON line: a few epochs of one model family through
our training code (lib.train.keras_train) or a plain port of the post's script (compile, fit the arrays) on the same
data, model, batches, optimizer and seed; or the float32 matmul rate. `--family fashion_dense64 --impl plain`"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import timeit
from dataclasses import replace
from pathlib import Path

import numpy as np

from lib.common.core import load_params
from lib.common.paths import PREPARED, fashion_cv_run, prepared_file
from lib.train.configs import cnn_unit, cv_unit, tips_unit, use_backend

PARAMS = Path("params.yaml")
use_backend(load_params(PARAMS, "training", "backend"))  # the stages' backend, chosen before Keras loads
import keras  # noqa: E402

from lib.train import keras_train as kt  # noqa: E402

# family -> (table, the params.yaml variant it stands for, epochs measured)
FAMILIES = {"mnist_3x689": ("mnist_tips", "crossentropy_sigmoid", 3), "mnist_11x689": ("mnist_tips", "deep_relu", 3),
            "fashion_dense64": ("fashion", "dense64", 5), "fashion_dense256x2": ("fashion", "dense256x2_dropout02", 4),
            "fashion_cnn": ("fashion_cnn", None, 3)}


class EpochTimer(keras.callbacks.Callback):
    """Each epoch's wall time in `.seconds`; in `.train_seconds`, the part before the validation pass."""

    def __init__(self):
        super().__init__()
        self.seconds, self.train_seconds = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._trained = time.perf_counter(), None

    def on_test_begin(self, logs=None):  # fit's validation pass at the end of an epoch
        self._trained = self._trained or time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.train_seconds.append(self._trained or self.seconds[-1])


def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the Dense and Conv2D layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
        elif isinstance(layer, keras.layers.Conv2D):
            total += 2 * np.prod(layer.output.shape[1:]) * np.prod(layer.kernel_size) * layer.input.shape[-1]
    return int(total)


def measure(family: str, impl: str, epochs: int, seed: int) -> dict:
    table, name, _ = FAMILIES[family]
    params, timer = load_params(PARAMS), EpochTimer()
    if table == "mnist_tips":
        tips = params["mnist_tips"]
        data = next(group for group, names in tips["data"].items() if name in names)
        settings = v = replace(tips_unit(tips["variants"], name, seed, data)[0], epochs=epochs)
        a = dict(np.load(prepared_file(data, seed)))
        x, y, validation = a["x_train"], a["y_train"], None  # the post's script keeps no test curve; our stage does
        build = lambda: kt.build_dense(x.shape[1:], v.hidden_units, v.activation, v.dropout_rate)  # noqa: E731
        ours = lambda: kt.train_tips(v, seed, a, [timer])  # noqa: E731
    elif table == "fashion":
        v, settings, cv, _ = cv_unit(params["fashion"], name, seed, 0)
        a = dict(np.load(PREPARED / "fashion_dense.npz"))
        train, val = kt.fold_indices(len(a["x_train"]), cv.k, 0)
        x, y, validation = a["x_train"][train], a["y_train"][train], (a["x_train"][val], a["y_train"][val])
        build = lambda: kt.build_dense(x.shape[1:], v.hidden_units, "relu", v.dropout_rate, v.l2)  # noqa: E731
        ours = lambda: kt.train_fold(v, settings, seed, x, y, *validation, [timer])  # noqa: E731
    else:
        v, settings, _ = cnn_unit(params["fashion"], seed)
        a = dict(np.load(PREPARED / "fashion_cnn.npz"))
        x, y, validation = a["x_train"], a["y_train"], (a["x_test"], a["y_test"])  # validated on the test set
        build = lambda: kt.build_cnn(x.shape[1:], v.dropout_rate)  # noqa: E731
        ours = lambda: kt.train_cnn(v, settings, seed, a, [timer])  # noqa: E731
    settings = replace(settings, epochs=epochs)  # before `ours` runs: it reads `settings` when called
    if impl == "plain":
        keras.utils.set_random_seed(seed)
        model = build()
        loss, optimizer = getattr(settings, "loss", "sparse_categorical_crossentropy"), settings.optimizer
        model.compile(loss=kt.make_loss(loss), optimizer=kt.make_optimizer(optimizer, settings.learning_rate),
                      metrics=["accuracy"])
        model.fit(x, y, batch_size=settings.batch_size, epochs=epochs, validation_data=validation, verbose=0,
                  callbacks=[timer])
    else:
        ours()
    n, n_val = len(x), len(validation[0]) if validation else len(a["x_test"]) if impl == "ours" else 0
    forward, backend = forward_flops(build()), keras.backend.backend()
    keras.backend.clear_session()
    # The fastest epoch after the first (which traces and compiles): other work on the machine only ever
    # slows an epoch down. Throughput counts the training part, before the validation pass, which the two
    # implementations do not always share; a training step counts as 3 forward passes.
    epoch, train, flops = min(timer.seconds[1:]), min(timer.train_seconds[1:]), 3 * forward * n + forward * n_val
    return {"family": family, "impl": impl, "backend": backend, "epochs": epochs, "batch_size": settings.batch_size,
            "train_images": n, "validation_images": n_val, "epoch_s": [round(s, 3) for s in timer.seconds],
            "train_s": [round(s, 3) for s in timer.train_seconds], "images_per_s": round(n / train, 1),
            "epoch_images_per_s": round(n / epoch, 1), "gflop_per_epoch": round(flops / 1e9, 2),
            "gflop_per_s": round(3 * forward * n / train / 1e9, 1), "epoch_gflop_per_s": round(flops / epoch / 1e9, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def matmul_rate(n: int = 2048, repeats: int = 10) -> dict:
    """Median and best float32 n x n x n matrix-multiply rate through the active Keras backend."""
    a = keras.ops.convert_to_tensor(np.random.default_rng(0).random((n, n), dtype=np.float32))
    seconds = timeit.repeat(lambda: keras.ops.convert_to_numpy(keras.ops.matmul(a, a)), number=1, repeat=repeats + 1)
    median, best = statistics.median(seconds[1:]), min(seconds[1:])  # the first warms up
    return {"n": n, "backend": keras.backend.backend(), "median_gflop_per_s": round(2 * n**3 / median / 1e9, 1),
            "best_gflop_per_s": round(2 * n**3 / best / 1e9, 1)}


def reproduction_tflop() -> dict:
    """The whole reproduction's arithmetic per kind of unit, from params.yaml and the models' layers (the
    early-stopping variant's epochs from its committed runs): at the matmul rate, a floor on its time."""
    tips, fashion = load_params(PARAMS, "mnist_tips"), load_params(PARAMS, "fashion")
    n_tips, n_train, n_test, k, seeds = 10000, 60000, 10000, fashion["cross_validation"]["k"], len(fashion["seeds"])
    total = dict.fromkeys(("mnist_tips", "fashion_cv", "fashion_final", "fashion_cnn"), 0.0)
    for variant in tips["variants"].values():  # each epoch trains, then evaluates the test set; both at the end
        forward = forward_flops(kt.build_dense((784,), tuple(variant["hidden_units"])))
        total["mnist_tips"] += len(tips["seeds"]) * (4 * variant["epochs"] + 2) * forward * n_tips
    for name, variant in fashion["variants"].items():
        forward = forward_flops(kt.build_dense((28, 28), tuple(variant["hidden_units"])))
        for seed in fashion["seeds"]:
            for fold in range(k):
                run, epochs = fashion_cv_run(name, seed, fold) / "metrics.json", fashion["training"]["epochs"]
                if variant.get("early_stopping_patience") and run.is_file():
                    epochs = json.loads(run.read_text())["epochs_run"]
                total["fashion_cv"] += epochs * (3 * (n_train - n_train // k) + n_train // k) * forward
    forward = forward_flops(kt.build_dense((28, 28), tuple(fashion["final"]["model"]["hidden_units"])))
    total["fashion_final"] = seeds * fashion["final"]["epochs"] * 3 * forward * n_train
    total["fashion_cnn"] = seeds * fashion["cnn"]["epochs"] * (3 * n_train + n_test) * forward_flops(kt.build_cnn())
    keras.backend.clear_session()
    return {name: round(flops / 1e12, 2) for name, flops in total.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(FAMILIES))
    parser.add_argument("--impl", choices=("ours", "plain"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--matmul", action="store_true")
    args = parser.parse_args()
    if not args.matmul and (not (args.family and args.impl) or args.epochs < 2):
        parser.error("--family and --impl are needed, and --epochs >= 2 (the first epoch compiles)")
    result = matmul_rate() if args.matmul else measure(args.family, args.impl, args.epochs, args.seed)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
