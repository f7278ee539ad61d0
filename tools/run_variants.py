"""Train variants of either post outside DVC on a Keras backend, or on Keras 2 (`--backend tf_keras`), and write
the results as JSON (e.g. on a GPU machine without TensorFlow or DVC): an MNIST tips row is one run per seed; a
Fashion-MNIST variant is one cross-validation per seed, every fold trained as its `fashion_cv` unit trains it, with
its validation loss also under both definitions a softmax output can get. The file records what made each number:
each variant's params, the MD5 of every module loaded, the commit, library versions, devices and XLA_FLAGS.

`--backend tf_keras` runs the units' own training code on Keras 2's API and implementation (the `tf-keras`
package, on the same TensorFlow), installed beside Keras 3 with `pip install --no-deps -r requirements-tf-keras.txt`
(it declares `tensorflow`, not `tensorflow-cpu`)."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lib.common.core import load_params, write_json
from lib.common.paths import prepared_file
from lib.results.other_backend import KERAS2, library
from lib.train.configs import Training, check_groups, cv_params, cv_unit, tips_unit, use_backend

ROOT = Path(__file__).resolve().parents[1]


def load_keras(backend: str):
    """Keras on `backend` (lib.train.configs.use_backend); for KERAS2, Keras 2 itself under the name `keras`, so
    that the units' training code, written to the API both share, runs on Keras 2 unchanged. TF_USE_LEGACY_KERAS
    makes TensorFlow's own `tf.keras` the same Keras 2."""
    if backend != KERAS2:
        return use_backend(backend)
    if "keras" in sys.modules:
        raise SystemExit("Keras is already loaded; Keras 2 cannot take its name")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    try:
        import tf_keras
    except ImportError:
        raise SystemExit("--backend tf_keras: the tf-keras package is not installed: "
                         "pip install --no-deps -r requirements-tf-keras.txt") from None
    import tensorflow as tf

    if tf_keras.__version__.split(".")[:2] != tf.__version__.split(".")[:2]:
        raise SystemExit(f"tf-keras {tf_keras.__version__} is not made for TensorFlow {tf.__version__}")
    sys.modules["keras"] = tf_keras
    return tf_keras


def code_version() -> dict:
    """The commit ($CODE_COMMIT where there is no git) and the MD5 of each `lib` and `stages` module loaded."""
    commit = os.environ.get("CODE_COMMIT", "")
    if not commit:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        commit = found.stdout.strip() if found.returncode == 0 else "unknown"
    loaded = sorted({Path(m.__file__).resolve() for name, m in list(sys.modules.items())
                     if name.split(".")[0] in ("lib", "stages") and getattr(m, "__file__", None)})
    return {"commit": commit,
            "md5": {str(path.relative_to(ROOT)): hashlib.md5(path.read_bytes()).hexdigest() for path in loaded}}


def history_digest(curves: dict) -> str:
    """Equal digests mean every per-epoch loss and accuracy of two runs are bit-identical."""
    return hashlib.sha256(json.dumps(curves, sort_keys=True).encode()).hexdigest()


def val_loss_definitions(logits: np.ndarray, labels: np.ndarray, regularization: float = 0.0) -> dict[str, float]:
    """Mean sparse categorical cross-entropy of a softmax output, two ways: `logits`, -log softmax(z)[y] in float64
    (Keras 3 on TensorFlow, TensorFlow 2.1's `fit`); `clipped`, from the float32 probabilities normalised and
    clipped to [1e-7, 1 - 1e-7] (Keras 3 on JAX, TensorFlow 2.1 eager). They differ only where the true class's
    probability is below 1e-7 (a confident wrong answer): `clipped` stops at 16.1, `logits` keeps growing. Both
    add `regularization` (the model's L2 penalty), as Keras adds it to val_loss."""
    import keras

    rows = np.arange(len(labels))
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    by_logits = np.log(np.exp(shifted).sum(axis=1)) - shifted[rows, labels]
    z32 = np.asarray(logits, dtype=np.float32)
    e = np.exp(z32 - z32.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    p = p / p.sum(axis=1, keepdims=True)
    eps = np.float32(keras.backend.epsilon())
    clipped = -np.log(np.clip(p[rows, labels], eps, np.float32(1) - eps))
    return {"logits": float(by_logits.mean()) + regularization,
            "clipped": float(clipped.astype(np.float64).mean()) + regularization}


def val_loss_callback(x_val, y_val):
    """A Keras callback: after every epoch, the validation loss under both `val_loss_definitions` (into its `curves`),
    from the logits the last Dense layer computes before its softmax (dropout off, as in Keras's validation)."""
    import keras

    class ValLossDefinitions(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.curves = {"val_loss_logits": [], "val_loss_clipped": []}
            self.features = keras.Model(self.model.inputs, self.model.layers[-1].input)

        def on_epoch_end(self, epoch, logs=None):
            kernel, bias = (np.asarray(w) for w in self.model.layers[-1].get_weights())
            h = self.features.predict(x_val, batch_size=10000, verbose=0)
            penalty = float(sum(float(np.asarray(loss)) for loss in self.model.losses))
            found = val_loss_definitions(h.astype(np.float64) @ kernel + bias, np.asarray(y_val), penalty)
            self.curves["val_loss_logits"].append(found["logits"])
            self.curves["val_loss_clipped"].append(found["clipped"])

    return ValLossDefinitions()


def fashion_setup(variant_name: str, params: Path):
    """A dense variant's config, run settings and cross-validation, and the params the results record for it."""
    fashion = {key: load_params(params, "fashion", key) for key in ("variants", "training", "cross_validation")}
    variant, settings, cv, _ = cv_unit(fashion, variant_name, 0, 0)
    if variant.early_stopping_patience:
        raise SystemExit(f"{variant_name}: stops early, so its folds have different lengths; "
                         "choose a variant of the post")
    return variant, settings, cv, cv_params(fashion, variant_name)


def replay_order_callback():
    """A Keras callback that makes JAX replay one order of the training data every epoch, as seeded Keras 3 on
    TensorFlow does (its tf.data permutation restarts from the seed): Keras on JAX draws each epoch's order from
    NumPy's global generator, which this resets at each epoch's start to its state when training began (Keras
    draws one order before that, to look at the data, and trains on none of its batches)."""
    import keras

    class ReplayOrder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.state = np.random.get_state()

        def on_epoch_begin(self, epoch, logs=None):
            np.random.set_state(self.state)

    return ReplayOrder()


def run_fashion(variant_name: str, seed: int, images: np.ndarray, labels: np.ndarray, params: Path,
                replay_order: bool = False) -> dict:
    """One cross-validation of one dense variant with one seed, every fold trained as its `fashion_cv` unit
    trains it, plus the validation loss under both definitions: the fold-mean curves and each fold's digest."""
    from lib.train.keras_train import fold_indices, train_fold

    variant, settings, cv, _ = fashion_setup(variant_name, params)
    folds, digests = [], []
    for fold in range(cv.k):
        train, val = fold_indices(len(images), cv.k, fold)
        definitions = val_loss_callback(images[val], labels[val])
        started = time.perf_counter()
        callbacks = [definitions, replay_order_callback()] if replay_order else [definitions]
        curves, _ = train_fold(variant, settings, seed, images[train], labels[train], images[val], labels[val],
                               callbacks)
        # The digest of the curves as Keras gave them: equal to the unit's (its dvclive record) on the same backend.
        digests.append(history_digest(curves))
        curves.update(definitions.curves)
        folds.append(curves)
        print(f"run_variants: {variant_name} seed {seed} fold {fold + 1}/{cv.k}: {time.perf_counter() - started:.0f} s,"
              f" final val_loss {curves['val_loss'][-1]:.4f} (logits {curves['val_loss_logits'][-1]:.4f},"
              f" clipped {curves['val_loss_clipped'][-1]:.4f})", file=sys.stderr, flush=True)
    return {"history_sha256": digests,
            "curves": {n: [float(v) for v in np.mean([f[n] for f in folds], axis=0)] for n in folds[0]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--post", choices=("mnist_tips", "fashion"), default="mnist_tips")
    parser.add_argument("--prepared", required=True, type=Path,
                        help="the folder the preprocess and noise stages write (data/prepared)")
    parser.add_argument("--variants", required=True, nargs="+")
    parser.add_argument("--seeds", required=True, nargs="+", type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--replay-order", action="store_true",
                        help="fashion on JAX: train every epoch on one order of the data, as Keras 3's own fit on "
                             "TensorFlow does once seeded")
    parser.add_argument("--backend", help=f"the Keras backend (default: params' training.backend), or {KERAS2}: "
                                          "Keras 2 on TensorFlow")
    args = parser.parse_args()
    keras = load_keras(args.backend or Training(**load_params(args.params, "training")).backend)
    backend = KERAS2 if args.backend == KERAS2 else keras.backend.backend()
    if args.replay_order and (args.post != "fashion" or backend != "jax"):
        raise SystemExit("--replay-order: only for --post fashion on --backend jax "
                         "(seeded TensorFlow replays one order already)")
    devices = [str(d) for d in importlib.import_module("jax").devices()] if backend == "jax" else []
    versions = {"keras": keras.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if (module := library(backend)) in ("jax", "tensorflow"):  # the backend's own library, named as its module
        versions[module] = importlib.import_module(module).__version__
    # The order of the training data across epochs: reshuffled before every epoch, as the units train
    # (lib.train.keras_train.reshuffled), unless --replay-order replays one.
    order = "replayed" if args.replay_order else "reshuffled"
    header = {"post": args.post, "backend": backend, "devices": devices, "machine": platform.machine(),
              "versions": versions, "xla_flags": os.environ.get("XLA_FLAGS", ""), "epoch_order": order}
    results, params = [], {}
    if args.out.is_file():
        # Resume: keep the runs an interrupted invocation wrote, if they were made the same way.
        found = json.loads(args.out.read_text())
        if {k: found.get(k) for k in header} != header:
            raise SystemExit(f"{args.out}: written by another backend, machine or library version; "
                             "choose another --out")
        results, params = found["runs"], found["params"]
    done = {(r["variant"], r["seed"]) for r in results}

    def same_params(name: str, recorded: dict) -> None:
        if params.setdefault(name, recorded) != recorded:
            raise SystemExit(f"{args.out}: its {name} runs used other params; choose another --out")

    def save(name: str, seed: int, started: float, run: dict) -> None:
        row = {"variant": name, "seed": seed, "seconds": round(time.perf_counter() - started, 1), **run}
        print(json.dumps({k: v for k, v in row.items() if k not in ("curves", "history_sha256")}), flush=True)
        results.append(row)
        # Written after every run, atomically, so an interrupted invocation loses one run at most.
        write_json(args.out, {**header, "code": code_version(), "params": params, "runs": results})

    if args.post == "fashion":
        with np.load(Path(args.prepared) / "fashion_dense.npz") as npz:
            images, labels = npz["x_train"], npz["y_train"]
        for seed in args.seeds:  # seed by seed, so a cut-short invocation leaves whole seeds
            for name in args.variants:
                same_params(name, fashion_setup(name, args.params)[3])
                if (name, seed) not in done:
                    started = time.perf_counter()
                    save(name, seed, started, run_fashion(name, seed, images, labels, args.params, args.replay_order))
        return
    from lib.train.keras_train import train_tips

    tips = load_params(args.params, "mnist_tips")
    groups = {variant: data for data, variants in check_groups(tips["data"], list(tips["variants"])).items()
              for variant in variants}  # variant -> the prepared file it trains on
    for name in args.variants:
        variant, config = tips_unit(load_params(args.params, "mnist_tips", "variants"), name, 0, groups[name])
        if backend == KERAS2 and variant.loss == "categorical_crossentropy_clipped":
            raise SystemExit(f"{name}: its loss is Keras 2's clipped cross-entropy written in Keras 3's ops; "
                             f"on {KERAS2}, run the row it varies with Keras 2's own loss")
        same_params(name, {key: value for key, value in config.items() if key not in ("variant", "seed")})
        for seed in [s for s in args.seeds if (name, s) not in done]:
            with np.load(prepared_file(groups[name], seed, args.prepared)) as npz:
                arrays = {k: npz[k] for k in npz.files}
            started = time.perf_counter()
            curves, result = train_tips(variant, seed, arrays)
            save(name, seed, started, {**result, "history_sha256": history_digest(curves)})


if __name__ == "__main__":
    main()
