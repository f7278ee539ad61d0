"""Train MNIST tips variants outside DVC on whatever Keras backend is active and write the
results as JSON: how a row behaves on JAX (e.g. on a GPU machine without TensorFlow or DVC).

    KERAS_BACKEND=jax python -m tools.run_variants --prepared data/prepared \\
        --variants unscaled unscaled_keras2_loss --seeds 0 1 2 --out results.json

The file records what made each number: every variant's effective params (the same dict a DVC
unit writes to its config.json), the MD5 of every `stages` module the run loaded (the hashes
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

from stages.common import config_dict, write_json
from stages.layout import prepared_file
from stages.mnist_tips import train_and_evaluate, variant_config
from stages.mnist_tips_table import data_groups

ROOT = Path(__file__).resolve().parents[1]


def data_of(params: Path) -> dict[str, str]:
    """`mnist_tips.data` inverted: variant -> the prepared file group it trains on."""
    return {variant: data for data, variants in data_groups(params).items() for variant in variants}


def code_version() -> dict:
    """The commit (from $CODE_COMMIT where there is no git, e.g. a copied tree) and the MD5 of
    every module of the project's `stages` package that this run loaded."""
    commit = os.environ.get("CODE_COMMIT", "")
    if not commit:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        commit = found.stdout.strip() if found.returncode == 0 else "unknown"
    loaded = sorted({Path(m.__file__).resolve() for name, m in list(sys.modules.items())
                     if (name == "stages" or name.startswith("stages.")) and getattr(m, "__file__", None)})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", required=True, type=Path, help="the folder the preprocess and noise stages write (data/prepared)")
    parser.add_argument("--variants", required=True, nargs="+")
    parser.add_argument("--seeds", required=True, nargs="+", type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args()

    import keras

    groups = data_of(args.params)
    results, params = [], {}
    for name in args.variants:
        variant = variant_config(args.params, name)
        data = groups[name]
        params[name] = {"data": data, **config_dict(variant)}
        for seed in args.seeds:
            with np.load(prepared_file(args.prepared, data, seed)) as npz:
                arrays = {k: npz[k] for k in npz.files}
            started = time.perf_counter()
            result = train_and_evaluate(variant, seed, arrays)
            seconds = time.perf_counter() - started
            history = json.dumps(result["history"], sort_keys=True).encode()
            row = {
                "variant": name, "seed": seed, "seconds": round(seconds, 1),
                **{k: result[k] for k in ("train_accuracy", "test_accuracy", "train_loss", "test_loss")},
                # Equal digests mean every per-epoch loss and accuracy of two runs are bit-identical.
                "history_sha256": hashlib.sha256(history).hexdigest(),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    write_json(args.out, {
        "backend": keras.backend.backend(), "devices": devices, "machine": platform.machine(),
        "versions": versions(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "code": code_version(), "params": params, "runs": results,
    })


if __name__ == "__main__":
    main()
