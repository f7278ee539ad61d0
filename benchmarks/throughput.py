"""One throughput measurement, in its own process: train one model family for a few epochs,
either through our stage code or as a plain Keras script written the way the posts write it
(`model.compile(...)` then `model.fit(...)` with the posts' arguments), and print one JSON line.

    python -m benchmarks.throughput --family fashion_dense64 --impl plain --epochs 4
    python -m benchmarks.throughput --matmul     # the machine's float32 matrix-multiply rate

Both implementations get the same prepared arrays (data/prepared), model, batch size, optimizer
and seed. The first epoch (graph tracing, compilation) is reported apart; throughput is the
fastest of the later ones (timeit's rule: other work on the machine only ever slows an epoch),
counting the training part of the epoch, before Keras's validation pass; whole epochs with their
validation are reported next to it. FLOPs are counted from the model's layers: a training step
is taken as three times the forward pass (forward, gradient of the activations and of the weights).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

PREPARED = Path("data/prepared")

# family -> (table, the params.yaml variant it stands for)
FAMILIES = {
    "mnist_3x689": ("mnist_tips", "crossentropy_sigmoid"),
    "mnist_11x689": ("mnist_tips", "deep_relu"),
    "fashion_dense64": ("fashion", "dense64"),
    "fashion_dense256x2": ("fashion", "dense256x2_dropout02"),
    "fashion_cnn": ("fashion_cnn", None),
}


def epoch_timer():
    """A Keras callback that records each epoch's wall time in `.seconds`, and in
    `.train_seconds` the part of it before Keras's validation pass (all of it without one)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []
            self.train_seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._trained = time.perf_counter(), None

        def on_test_begin(self, logs=None):  # fit's validation pass at the end of an epoch
            if self._trained is None:
                self._trained = time.perf_counter() - self._start

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.train_seconds.append(self._trained if self._trained is not None else self.seconds[-1])

    return EpochTimer()


def forward_flops(model) -> int:
    """Multiply-adds x 2 of one image's forward pass through the Dense and Conv2D layers."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
        elif isinstance(layer, layers.Conv2D):
            _, out_h, out_w, filters = layer.output.shape
            kernel_h, kernel_w = layer.kernel_size
            total += 2 * out_h * out_w * filters * kernel_h * kernel_w * layer.input.shape[-1]
    return total


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(PREPARED / f"{name}.npz") as npz:
        return {k: npz[k] for k in npz.files}


def plain_mnist(variant, arrays, epochs, seed, timer):
    """The MNIST post's script: Sequential of Dense layers, compile, fit(batch_size, epochs)."""
    import keras
    from keras.layers import Dense, Dropout

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(784,))])
    for units in variant.hidden_units:
        model.add(Dense(units=units, activation=variant.activation))
        if variant.dropout_rate:
            model.add(Dropout(variant.dropout_rate))
    model.add(Dense(units=10, activation="softmax"))
    optimizer = keras.optimizers.SGD(learning_rate=variant.learning_rate) if variant.optimizer == "sgd" else "adam"
    model.compile(loss=variant.loss, optimizer=optimizer, metrics=["accuracy"])
    model.fit(arrays["x_train"], arrays["y_train"], batch_size=variant.batch_size, epochs=epochs, verbose=0, callbacks=[timer])
    return model


def plain_fashion(variant, x_train, y_train, x_val, y_val, epochs, seed, timer):
    """The Fashion-MNIST post's build_model + k_fold_val fit (validation_data, batch 128)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(28, 28)), layers.Flatten()])
    for units in variant.hidden_units:
        model.add(layers.Dense(units, activation="relu", kernel_regularizer=keras.regularizers.l2(variant.l2) if variant.l2 else None))
        if variant.dropout_rate:
            model.add(layers.Dropout(variant.dropout_rate))
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=128, validation_data=(x_val, y_val), verbose=0, callbacks=[timer])
    return model


def plain_cnn(arrays, epochs, seed, timer):
    """The Fashion-MNIST post's convnet, validated on the test set as the post does."""
    import keras

    from stages.fashion_cnn import build_cnn

    keras.utils.set_random_seed(seed)
    model = build_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(arrays["x_train"], arrays["y_train"], epochs=epochs, batch_size=128, validation_data=(arrays["x_test"], arrays["y_test"]), verbose=0, callbacks=[timer])
    return model


def measure(family: str, impl: str, epochs: int, seed: int, params: Path) -> dict:
    import keras

    from stages.common import build_config, load_params
    from stages.training import RunSettings

    table, variant_name = FAMILIES[family]
    timer = epoch_timer()
    if table != "mnist_tips":  # every Fashion-MNIST run shares fashion.training
        settings = replace(build_config(RunSettings, load_params(params, "fashion", "training"), "fashion.training"), epochs=epochs)
    if table == "mnist_tips":
        from stages.mnist_tips import train_and_evaluate, variant_config
        from tools.run_variants import data_of

        variant = replace(variant_config(params, variant_name), epochs=epochs)
        arrays = load(data_of(params)[variant_name])
        n_train, n_val = len(arrays["x_train"]), 0
        if impl == "plain":
            plain_mnist(variant, arrays, epochs, seed, timer)
        else:
            train_and_evaluate(variant, seed, arrays, [timer])
            n_val = len(arrays["x_test"])  # our stage also records the test curve every epoch
        flops_model = dense_probe(variant.hidden_units, (784,))
        batch = variant.batch_size
    elif table == "fashion":
        from stages.fashion_cv import DenseVariant, fold_indices, train_fold

        variant = build_config(DenseVariant, load_params(params, "fashion", "variants", variant_name), f"fashion.variants.{variant_name}")
        arrays = load("fashion_dense")
        train, val = fold_indices(len(arrays["x_train"]), 5, 0)
        x_train, y_train = arrays["x_train"][train], arrays["y_train"][train]
        x_val, y_val = arrays["x_train"][val], arrays["y_train"][val]
        if impl == "plain":
            plain_fashion(variant, x_train, y_train, x_val, y_val, epochs, seed, timer)
        else:
            train_fold(variant, settings, seed, x_train, y_train, x_val, y_val, [timer])
        n_train, n_val = len(x_train), len(x_val)
        flops_model = dense_probe(variant.hidden_units, (28, 28))
        batch = settings.batch_size
    else:
        from stages.fashion_cnn import CnnConfig, build_cnn, train_cnn

        config = replace(build_config(CnnConfig, load_params(params, "fashion", "cnn"), "fashion.cnn"), epochs=epochs)
        arrays = load("fashion_cnn")
        if impl == "plain":
            plain_cnn(arrays, epochs, seed, timer)
        else:
            train_cnn(config, settings, seed, arrays, [timer])
        n_train, n_val = len(arrays["x_train"]), len(arrays["x_test"])
        flops_model = build_cnn()
        batch = settings.batch_size

    forward = forward_flops(flops_model)
    # The fastest epoch after the first: what the code can do. On a shared VM an epoch is only
    # ever slowed by other work, never sped up, so the minimum is the least noisy estimate.
    # Throughput is training: the part of the epoch before the validation pass, which the two
    # implementations do not always share (our MNIST stage records a test curve, the post not).
    steady = min(timer.seconds[1:]) if len(timer.seconds) > 1 else timer.seconds[0]
    steady_train = min(timer.train_seconds[1:]) if len(timer.train_seconds) > 1 else timer.train_seconds[0]
    epoch_flops = 3 * forward * n_train + forward * n_val
    keras.backend.clear_session()
    return {
        "family": family,
        "impl": impl,
        "backend": keras.backend.backend(),
        "epochs": epochs,
        "batch_size": batch,
        "train_images": n_train,
        "validation_images": n_val,
        "first_epoch_s": round(timer.seconds[0], 3),
        "epoch_s": [round(s, 3) for s in timer.seconds],
        "steady_epoch_s": round(steady, 3),
        "steady_train_s": round(steady_train, 3),
        "train_s": [round(s, 3) for s in timer.train_seconds],
        "images_per_s": round(n_train / steady_train, 1),
        "epoch_images_per_s": round(n_train / steady, 1),
        "gflop_per_epoch": round(epoch_flops / 1e9, 2),
        "gflop_per_s": round(3 * forward * n_train / steady_train / 1e9, 1),
        "epoch_gflop_per_s": round(epoch_flops / steady / 1e9, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def dense_probe(hidden_units, input_shape):
    """The dense net's shape, for counting FLOPs (weights are never used)."""
    from stages.models import build_dense

    return build_dense(input_shape, tuple(hidden_units))


def matmul_rate(n: int = 2048, repeats: int = 10) -> dict:
    """Median float32 n x n x n matrix-multiply rate through the active Keras backend."""
    import keras

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).random((n, n), dtype=np.float32))
    b = keras.ops.convert_to_tensor(np.random.default_rng(1).random((n, n), dtype=np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b))
        seconds.append(time.perf_counter() - start)
    best, median = min(seconds), statistics.median(seconds)
    return {"n": n, "backend": keras.backend.backend(), "median_gflop_per_s": round(2 * n**3 / median / 1e9, 1), "best_gflop_per_s": round(2 * n**3 / best / 1e9, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", choices=sorted(FAMILIES))
    parser.add_argument("--impl", choices=("ours", "plain"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--matmul", action="store_true")
    args = parser.parse_args()
    if args.matmul:
        print(json.dumps(matmul_rate()), flush=True)
        return
    if not (args.family and args.impl) or args.epochs < 2:
        parser.error("--family and --impl are needed, and --epochs >= 2 (the first epoch compiles)")
    print(json.dumps(measure(args.family, args.impl, args.epochs, args.seed, args.params)), flush=True)


if __name__ == "__main__":
    main()
