"""What every training unit's entry point does before it trains: its command line, its prepared
arrays, and Keras started on the backend `training.backend` names (no Keras import before that)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lib.common.core import ConfigError, build_config, load_params
from lib.train.configs import Training, use_backend


def arguments(doc: str, argv: list[str] | None, variant: str | None = None, model: bool = True) -> argparse.Namespace:
    """--seed, --data, --out and --params, with `variant` (its help) --variant, and with `model` --model;
    and `backend`, the `training.backend` of the params, checked before anything else is read."""
    parser = argparse.ArgumentParser(description=doc)
    if variant:
        parser.add_argument("--variant", required=True, help=variant)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--data", required=True, type=Path, help="the prepared .npz this unit trains on")
    parser.add_argument("--out", required=True, type=Path, help="the unit's run folder (metrics, config, curves)")
    if model:
        parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    args.backend = build_config(Training, load_params(args.params, "training"), "training").backend
    return args


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    if not Path(path).is_file():
        raise ConfigError(f"--data {path}: no such prepared file; run `dvc repro preprocess` first")
    with np.load(path) as npz:
        return {key: npz[key] for key in npz.files}


def start_keras(backend: str):
    """The training core, imported after Keras is set to `backend`."""
    use_backend(backend)
    from lib.train import keras_train

    return keras_train
