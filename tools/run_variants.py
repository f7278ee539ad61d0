"""Train MNIST tips variants outside DVC on whatever Keras backend is active and write the
results as JSON: how a row behaves on JAX (e.g. on a GPU machine without TensorFlow or DVC).

    KERAS_BACKEND=jax python -m tools.run_variants --prepared data/prepared \\
        --variants unscaled unscaled_keras2_loss --seeds 0 1 2 --out results.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from stages.common import write_json
from stages.mnist_tips import train_and_evaluate, variant_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--variants", required=True, nargs="+")
    parser.add_argument("--seeds", required=True, nargs="+", type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args()

    import keras

    results = []
    for name in args.variants:
        variant = variant_config(args.params, name)
        with np.load(args.prepared / f"{variant.data}.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        for seed in args.seeds:
            started = time.perf_counter()
            result = train_and_evaluate(variant, seed, arrays)
            seconds = time.perf_counter() - started
            row = {"variant": name, "seed": seed, "train_accuracy": result["train_accuracy"], "test_accuracy": result["test_accuracy"], "seconds": round(seconds, 1)}
            print(json.dumps(row), flush=True)
            results.append(row)
    devices = []
    if keras.backend.backend() == "jax":
        import jax

        devices = [str(d) for d in jax.devices()]
    write_json(args.out, {"backend": keras.backend.backend(), "keras": keras.__version__, "devices": devices, "machine": platform.machine(), "runs": results})


if __name__ == "__main__":
    main()
