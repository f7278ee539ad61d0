"""Train variants of either post outside DVC on whatever Keras backend is active and write the
results as JSON: how a row behaves on JAX (e.g. on a GPU machine without TensorFlow or DVC).

    python -m tools.run_variants --backend jax --prepared data/prepared \\
        --variants unscaled unscaled_keras2_loss --seeds 0 1 2 --out results.json
    python -m tools.run_variants --backend jax --post fashion --prepared data/prepared \\
        --variants dense64 dense64_l2 --seeds 0 1 2 3 4 --out reports/fashion_jax_cpu.json

An MNIST tips row is one run per seed (its final train and test accuracy and loss). A
Fashion-MNIST variant is one cross-validation per seed: every fold of `fashion.cross_validation`
trained as a `fashion_cv` unit trains it, and the fold-mean curves the overfitting warning is
taken on. Those curves carry the validation loss three ways: as the backend's Keras computed
it, and recomputed on the same weights after every epoch under both definitions a softmax
output can get (`val_loss_callback`), so the table can show how far the warning moves with
the definition alone.

The file records what made each number: every variant's effective params (the same dict a DVC
unit writes to its config.json), the MD5 of every `lib` and `stages` module the run loaded (the hashes
dvc.lock gives those files), the commit, the library versions, the devices and XLA_FLAGS.
"""

from __future__ import annotations

import argparse
import hashlib
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
from lib.train.configs import Training, check_groups, cv_params, cv_unit, tips_unit, use_backend

ROOT = Path(__file__).resolve().parents[1]


def data_of(params: Path) -> dict[str, str]:
    """`mnist_tips.data` inverted: variant -> the prepared file group it trains on."""
    tips = load_params(params, "mnist_tips")
    return {variant: data for data, variants in check_groups(tips["data"], list(tips["variants"])).items()
            for variant in variants}


def code_version() -> dict:
    """The commit (from $CODE_COMMIT where there is no git, e.g. a copied tree) and the MD5 of
    every module of the project's `lib` and `stages` packages that this run loaded."""
    commit = os.environ.get("CODE_COMMIT", "")
    if not commit:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        commit = found.stdout.strip() if found.returncode == 0 else "unknown"
    loaded = sorted({Path(m.__file__).resolve() for name, m in list(sys.modules.items())
                     if name.split(".")[0] in ("lib", "stages") and getattr(m, "__file__", None)})
    return {"commit": commit, "md5": {str(path.relative_to(ROOT)): hashlib.md5(path.read_bytes()).hexdigest() for path in loaded}}


def versions() -> dict:
    import keras

    found = {"keras": keras.__version__, "numpy": np.__version__, "python": platform.python_version()}
    if keras.backend.backend() == "jax":
        import jax

        found["jax"] = jax.__version__
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    return found


def val_loss_definitions(logits: np.ndarray, labels: np.ndarray, regularization: float = 0.0) -> dict[str, float]:
    """Mean sparse categorical cross-entropy of a softmax output, two ways:
    - `logits`: from the logits behind the softmax, -log softmax(z)[y] in float64 (Keras 3 on
      TensorFlow, and TensorFlow 2.1's `fit`);
    - `clipped`: from the float32 probabilities, normalised and clipped to [1e-7, 1 - 1e-7]
      before the log (Keras 3 on JAX, and TensorFlow 2.1 in eager mode).
    They differ only where the true class's probability falls below 1e-7 (a confident wrong
    answer): there `clipped` stops at -log(1e-7) = 16.1 while `logits` keeps growing.
    `regularization` (the model's L2 penalty) is added to both, as Keras adds it to val_loss."""
    import keras

    rows = np.arange(len(labels))
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    by_logits = np.log(np.exp(shifted).sum(axis=1)) - shifted[rows, labels]
    z32 = np.asarray(logits, dtype=np.float32)
    e = np.exp(z32 - z32.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    p = p / p.sum(axis=1, keepdims=True)
    eps = np.float32(keras.config.epsilon())
    clipped = -np.log(np.clip(p[rows, labels], eps, np.float32(1) - eps))
    return {"logits": float(by_logits.mean()) + regularization, "clipped": float(clipped.astype(np.float64).mean()) + regularization}


def val_loss_callback(x_val, y_val):
    """A Keras callback that, after every epoch, computes the validation loss of the current
    weights under both `val_loss_definitions` (into its `curves`), from the logits the last
    Dense layer computes before its softmax (dropout off, as in Keras's own validation pass)."""
    import keras

    class ValLossDefinitions(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.curves = {"val_loss_logits": [], "val_loss_clipped": []}
            self.features = keras.Model(self.model.inputs, self.model.layers[-1].input)

        def on_epoch_end(self, epoch, logs=None):
            kernel, bias = (np.asarray(w) for w in self.model.layers[-1].get_weights())
            h = self.features.predict(x_val, batch_size=10000, verbose=0)
            penalty = float(sum(float(keras.ops.convert_to_numpy(loss)) for loss in self.model.losses))
            found = val_loss_definitions(h.astype(np.float64) @ kernel + bias, np.asarray(y_val), penalty)
            self.curves["val_loss_logits"].append(found["logits"])
            self.curves["val_loss_clipped"].append(found["clipped"])

    return ValLossDefinitions()


def fashion_setup(variant_name: str, params: Path):
    """A dense variant's config, the shared run settings and the cross-validation, from params, and the
    params the result file records for it (lib.train.configs.cv_params)."""
    fashion = {key: load_params(params, "fashion", key) for key in ("variants", "training", "cross_validation")}
    variant, settings, cv, _ = cv_unit(fashion, variant_name, 0, 0)
    if variant.early_stopping_patience:
        raise SystemExit(f"{variant_name}: stops early, so its folds have different lengths; choose a variant of the post")
    return variant, settings, cv, cv_params(fashion, variant_name)


def replay_order_callback():
    """A Keras callback that makes JAX replay one order of the training data every epoch, as
    Keras 3 on TensorFlow does once a seed is set (its tf.data permutation restarts from the
    same seed each epoch): Keras on JAX draws each epoch's order from NumPy's global generator,
    which this resets at every epoch's start to its state when training began. (Keras draws
    one order before that, to look at the data, and trains on none of its batches.)"""
    import keras

    class ReplayOrder(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.state = np.random.get_state()

        def on_epoch_begin(self, epoch, logs=None):
            np.random.set_state(self.state)

    return ReplayOrder()


def run_fashion(variant_name: str, seed: int, images: np.ndarray, labels: np.ndarray, params: Path, replay_order: bool = False) -> dict:
    """One cross-validation of one dense variant with one seed, every fold trained as its
    `fashion_cv` unit trains it (stages.fashion_cv.train_fold), plus the validation loss under
    both definitions; returns the fold-mean curves and a digest of each fold's history."""
    from lib.train.keras_train import fold_indices, train_fold

    variant, settings, cv, _ = fashion_setup(variant_name, params)
    folds, digests = [], []
    for fold in range(cv.k):
        train, val = fold_indices(len(images), cv.k, fold)
        definitions = val_loss_callback(images[val], labels[val])
        started = time.perf_counter()
        callbacks = [definitions, replay_order_callback()] if replay_order else [definitions]
        curves, _ = train_fold(variant, settings, seed, images[train], labels[train], images[val], labels[val], callbacks)
        # The digest of the history as Keras gave it: equal to the unit's history.json's on the same backend.
        digests.append(hashlib.sha256(json.dumps(curves, sort_keys=True).encode()).hexdigest())
        curves.update(definitions.curves)
        folds.append(curves)
        print(f"run_variants: {variant_name} seed {seed} fold {fold + 1}/{cv.k}: {time.perf_counter() - started:.0f} s,"
              f" final val_loss {curves['val_loss'][-1]:.4f} (logits {curves['val_loss_logits'][-1]:.4f},"
              f" clipped {curves['val_loss_clipped'][-1]:.4f})", file=sys.stderr, flush=True)
    return {"history_sha256": digests, "curves": {n: [float(v) for v in np.mean([f[n] for f in folds], axis=0)] for n in folds[0]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--post", choices=("mnist_tips", "fashion"), default="mnist_tips")
    parser.add_argument("--prepared", required=True, type=Path, help="the folder the preprocess and noise stages write (data/prepared)")
    parser.add_argument("--variants", required=True, nargs="+")
    parser.add_argument("--seeds", required=True, nargs="+", type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    parser.add_argument("--replay-order", action="store_true",
                        help="fashion on JAX: train every epoch on one order of the data, as seeded TensorFlow does")
    parser.add_argument("--backend", help="the Keras backend (default: params' training.backend)")
    args = parser.parse_args()
    use_backend(args.backend or Training(**load_params(args.params, "training")).backend)
    import keras

    if args.replay_order and (args.post != "fashion" or keras.backend.backend() != "jax"):
        raise SystemExit("--replay-order: only for --post fashion on --backend jax (seeded TensorFlow replays one order already)")

    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    # The order of the training data across epochs: Keras reshuffles before every epoch, except on
    # TensorFlow with a seed set (as every unit sets one), where each epoch replays one order.
    order = "reshuffled" if keras.backend.backend() == "jax" and not args.replay_order else "replayed"
    header = {"post": args.post, "backend": keras.backend.backend(), "devices": devices, "machine": platform.machine(),
              "versions": versions(), "xla_flags": os.environ.get("XLA_FLAGS", ""), "epoch_order": order}
    results, params = [], {}
    if args.out.is_file():
        # Resume: keep the runs an interrupted invocation wrote, if they were made the same way.
        found = json.loads(args.out.read_text())
        if {k: found.get(k) for k in header} != header:
            raise SystemExit(f"{args.out}: written by another backend, machine or library version; choose another --out")
        results, params = found["runs"], found["params"]
    done = {(r["variant"], r["seed"]) for r in results}

    def save(row: dict) -> None:
        print(json.dumps({k: v for k, v in row.items() if k not in ("curves", "history_sha256")}), flush=True)
        results.append(row)
        # Written after every run, atomically, so an interrupted invocation loses one run at most.
        write_json(args.out, {**header, "code": code_version(), "params": params, "runs": results})

    if args.post == "fashion":
        with np.load(Path(args.prepared) / "fashion_dense.npz") as npz:
            images, labels = npz["x_train"], npz["y_train"]
        for seed in args.seeds:  # seed by seed, so a cut-short invocation leaves whole seeds
            for name in args.variants:
                if params.setdefault(name, fashion_setup(name, args.params)[3]) != fashion_setup(name, args.params)[3]:
                    raise SystemExit(f"{args.out}: its {name} runs used other params; choose another --out")
                if (name, seed) in done:
                    continue
                started = time.perf_counter()
                run = run_fashion(name, seed, images, labels, args.params, args.replay_order)
                save({"variant": name, "seed": seed, "seconds": round(time.perf_counter() - started, 1), **run})
    else:
        from lib.train.keras_train import train_tips

        groups = data_of(args.params)
        for name in args.variants:
            data = groups[name]
            variant, config = tips_unit(load_params(args.params, "mnist_tips", "variants"), name, 0, data)
            recorded = {key: value for key, value in config.items() if key not in ("variant", "seed")}
            if params.setdefault(name, recorded) != recorded:
                raise SystemExit(f"{args.out}: its {name} runs used other params; choose another --out")
            for seed in args.seeds:
                if (name, seed) in done:
                    continue
                with np.load(prepared_file(data, seed, args.prepared)) as npz:
                    arrays = {k: npz[k] for k in npz.files}
                started = time.perf_counter()
                curves, result = train_tips(variant, seed, arrays)
                seconds = time.perf_counter() - started
                history = json.dumps(curves, sort_keys=True).encode()
                save({
                    "variant": name, "seed": seed, "seconds": round(seconds, 1), **result,
                    # Equal digests mean every per-epoch loss and accuracy of two runs are bit-identical.
                    "history_sha256": hashlib.sha256(history).hexdigest(),
                })


if __name__ == "__main__":
    main()
