"""What every training unit's entry point does before it trains: its command line, its prepared
arrays, and Keras started on the backend `training.backend` names (no Keras import before that)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lib.common.core import ConfigError, build_config, load_params
from lib.common.paths import this_stage, unit_files, unit_name
from lib.train.configs import Training, use_backend


def arguments(doc: str, argv: list[str] | None, kind: str) -> argparse.Namespace:
    """What the unit is, from its stage name (DVC_STAGE, or --stage): its variant, seed, prepared file, run
    folder and model (lib/common/paths.py); --data, --out and --model move a file elsewhere (the
    benchmarks' scratch runs). And `backend`, the `training.backend` of the params, checked before
    anything else is read."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--stage", help=f"the unit's stage name, e.g. {unit_name(kind, 0, 'NAME', 'mnist_tips')} "
                        "(default: DVC_STAGE, which dvc sets)")
    parser.add_argument("--data", type=Path, help="the prepared .npz this unit trains on")
    parser.add_argument("--out", type=Path, help="the unit's run folder (metrics, config, curves)")
    if not kind.endswith("_cv"):  # a cross-validation unit keeps no model
        parser.add_argument("--model", type=Path, help="where to save the trained model (.keras)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = parser.parse_args(argv)
    stage = this_stage(args.stage)
    unit = unit_files(stage)
    if unit["kind"] != kind:
        raise ConfigError(f"stage {stage!r}: a {unit['kind']} unit; this is the {kind} unit")
    for key in ("variant", "seed", "data", "out", "model"):
        if getattr(args, key, None) is None:
            setattr(args, key, unit[key])
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
